// Rule `tool_call_ids` (SPEC §6): a tool call id that is not 9 characters of
// [a-zA-Z0-9] (what Mistral accepts) is mapped to one, deterministically, so
// tool_calls[].id and the tool_call_id answering it map alike on every request
// and every proxy. The walk of messages (walk/) calls these, and
// map_result_id() for each message. No settings in the rule file;
// `switches: {tool_call_ids: false}` turns it off.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

bool is_tool_call_id(std::string_view id) noexcept {
    return id.size() == 9 && std::all_of(id.begin(), id.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
           });
}

// Deterministic (same id -> same result on every request and every proxy), so
// the ids of a conversation's earlier turns map the same way on its next turn.
std::array<char, 9> map_tool_call_id(std::string_view id) noexcept {
    std::uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
    for (const char c : id) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ull;
    }
    // splitmix64 finaliser: spreads FNV's weak low bits over the 9 digits.
    hash ^= hash >> 30;
    hash *= 0xbf58476d1ce4e5b9ull;
    hash ^= hash >> 27;
    hash *= 0x94d049bb133111ebull;
    hash ^= hash >> 31;
    // The 9 base-62 digits of the hash, lowest first: out[k] = (hash / 62^k) % 62.
    // Taken three at a time from three parts computed side by side (a chain of
    // nine 64-bit divisions was most of this function's time); the same digits.
    constexpr std::string_view digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    constexpr std::uint64_t cube = 62ull * 62 * 62;
    const std::array<std::uint32_t, 3> parts{static_cast<std::uint32_t>(hash % cube),
                                             static_cast<std::uint32_t>(hash / cube % cube),
                                             static_cast<std::uint32_t>(hash / (cube * cube) % cube)};
    std::array<char, 9> out{};
    for (std::size_t i = 0; i < 3; ++i) {
        const std::uint32_t part = parts[i];
        out[3 * i] = digits[part % 62];
        out[3 * i + 1] = digits[part / 62 % 62];
        out[3 * i + 2] = digits[part / (62 * 62)];
    }
    return out;
}

// map_tool_call_id through the worker's memo (see mapped_id_memo).
std::array<char, 9> map_tool_call_id(std::string_view id, mapped_id_memo& memo) noexcept {
    const std::size_t length = id.size();
    if (length < sizeof(std::uint64_t) || length > mapped_id_memo::max_length) {
        return map_tool_call_id(id);  // not an id an SDK makes: mapped each time
    }
    const auto word = [](const char* at) {
        std::uint64_t w;
        std::memcpy(&w, at, sizeof w);
        return w;
    };
    // The slot: three words of the id folded and multiplied (no chain per byte).
    const std::uint64_t fold = length ^ word(id.data()) ^ std::rotl(word(id.data() + length / 2 - 4), 21) ^
                               std::rotl(word(id.data() + length - 8), 42);
    constexpr unsigned slot_bits = std::countr_zero(mapped_id_memo::slot_count);
    mapped_id_memo::slot& slot = memo.slots[(fold * 0x9e3779b97f4a7c15ull) >> (64 - slot_bits)];
    if (slot.length == length) {
        // Word by word, the last one overlapping: ids differ in their middle.
        bool same = word(slot.original.data() + length - 8) == word(id.data() + length - 8);
        for (std::size_t i = 0; same && i + 8 < length; i += 8) {
            same = word(slot.original.data() + i) == word(id.data() + i);
        }
        if (same) {
            return slot.mapped;
        }
    }
    slot.mapped = map_tool_call_id(id);
    slot.length = static_cast<std::uint8_t>(length);
    std::memcpy(slot.original.data(), id.data(), length);
    return slot.mapped;
}

// A tool result's tool_call_id maps as the tool_calls[].id it answers did
// (computed once; the writer and role_order both use it).
void engine::map_result_id(message_walk& w) {
    w.map_result_id = w.role == role_kind::tool && w.has_tool_call_id && on(rule_id::tool_call_ids) &&
                      !is_tool_call_id(w.tool_call_id);
    if (!w.map_result_id) {
        return;
    }
    // Usually the call it answers is pending and was mapped already.
    const auto call = std::find_if(s_.pending.begin(), s_.pending.end(), [&](const pending_call& c) {
        return !c.original.empty() && same_key(c.original, w.tool_call_id);
    });
    w.mapped_result_id = call != s_.pending.end() ? call->id : map_tool_call_id(w.tool_call_id, s_.mapped_ids);
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
