// Embeddings: the client's encoding read from the request, base64 float32
// built from Mistral's floats (see embeddings.hpp).
#include "responses/embeddings.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include "json/walk.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::begin_member;
using detail::copy_member;

namespace {

// The 4 little-endian bytes of `value` as IEEE 754 binary32, at `at`.
void store_float32_le(char* at, float value) noexcept {
    std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
    if constexpr (std::endian::native == std::endian::big) {
        bits = __builtin_bswap32(bits);
    }
    std::memcpy(at, &bits, sizeof bits);
}

constexpr std::size_t max_retained_bytes = 1024 * 1024;

// `bytes` is a per-thread buffer whose size only grows: the floats are stored
// in place, not appended a byte at a time (four out-of-line push_backs per
// value were a third of an embeddings answer's cost).
bool write_base64_embedding(od::array numbers, std::string& bytes, std::string& out) {
    std::size_t used = 0;
    for (auto element : numbers) {
        od::value number;
        double value = 0;
        if (element.get(number) != simdjson::SUCCESS || json::get_number(number, value) != simdjson::SUCCESS) {
            return false;
        }
        if (bytes.size() - used < 4) {
            bytes.resize(std::max<std::size_t>(4096, bytes.size() * 2));
        }
        // Through double, as a client's Float32Array.from(floats) would round.
        store_float32_le(bytes.data() + used, static_cast<float>(value));
        used += 4;
    }
    out += '"';
    append_base64(out, std::string_view(bytes.data(), used));
    out += '"';
    if (bytes.size() > max_retained_bytes) {
        std::string().swap(bytes);  // a huge answer's buffer is not kept for the thread's lifetime
    }
    return true;
}

// Two base64 digits for every 12-bit value: one lookup per half of a 3-byte
// group instead of one per digit.
struct base64_pairs {
    std::array<std::array<char, 2>, 4096> pair{};
    constexpr base64_pairs() {
        constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (std::size_t i = 0; i < pair.size(); ++i) {
            pair[i] = {alphabet[i >> 6], alphabet[i & 0x3F]};
        }
    }
};
constexpr base64_pairs base64_table;

}  // namespace

body_result transform_embeddings_response(std::string_view body, embedding_encoding client_encoding) {
    body_result result;
    if (client_encoding == embedding_encoding::floats) {
        result.unchanged = true;
        return result;
    }
    const auto bad_body = [&]() -> body_result& {
        result.body.clear();
        result.error =
            errors::make_error(502, "upstream answered with a body that is not an embedding list", "upstream_bad_body");
        return result;
    };
    thread_local detail::json_reader reader;
    thread_local std::string bytes;
    od::document doc;
    od::object root;
    if (!reader.open(body, doc, root)) {
        return bad_body();
    }
    std::string& out = result.body;
    // base64 is 4/3 of 4 bytes per value where the decimal text was ~20: smaller.
    out.reserve(body.size());
    out += '{';
    bool first = true;
    bool saw_data = false;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            return bad_body();
        }
        if (key != "data") {
            if (key == "usage") {
                std::string_view raw;
                usage_counts counts;
                const auto usage = detail::read_usage_value(value, raw, counts);
                if (usage == detail::usage_read::malformed) {
                    return bad_body();
                }
                if (usage == detail::usage_read::read) {
                    result.usage = counts;
                    begin_member(out, first, "usage");
                    out += raw;
                    continue;
                }
            }
            if (!copy_member(out, first, key, value)) {
                return bad_body();
            }
            continue;
        }
        od::array data;
        if (value.get_array().get(data) != simdjson::SUCCESS) {
            return bad_body();
        }
        saw_data = true;
        begin_member(out, first, "data");
        out += '[';
        bool first_item = true;
        for (auto element : data) {
            od::object item;
            if (element.get_object().get(item) != simdjson::SUCCESS) {
                return bad_body();
            }
            if (!first_item) {
                out += ',';
            }
            first_item = false;
            out += '{';
            bool first_member = true;
            for (auto item_field : item) {
                std::string_view item_key;
                if (item_field.unescaped_key().get(item_key) != simdjson::SUCCESS) {
                    return bad_body();
                }
                od::value item_value = item_field.value();
                od::array numbers;
                if (item_key == "embedding" && item_value.get_array().get(numbers) == simdjson::SUCCESS) {
                    begin_member(out, first_member, "embedding");
                    if (!write_base64_embedding(numbers, bytes, out)) {
                        return bad_body();
                    }
                } else if (!copy_member(out, first_member, item_key, item_value)) {
                    return bad_body();
                }
            }
            out += '}';
        }
        out += ']';
    }
    if (!saw_data || !detail::at_end(doc)) {
        return bad_body();
    }
    out += '}';
    result.hits.add(response_rule::embeddings_base64);
    return result;
}

void append_base64(std::string& out, std::string_view bytes) {
    const std::size_t at = out.size();
    out.resize(at + (bytes.size() + 2) / 3 * 4);
    char* p = out.data() + at;
    const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])); };
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3, p += 4) {
        const std::uint32_t triple = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        std::memcpy(p, base64_table.pair[triple >> 12].data(), 2);
        std::memcpy(p + 2, base64_table.pair[triple & 0xFFF].data(), 2);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest != 0) {
        const std::uint32_t triple = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
        std::memcpy(p, base64_table.pair[triple >> 12].data(), 2);
        p[2] = rest == 2 ? base64_table.pair[triple & 0xFFF][0] : '=';
        p[3] = '=';
    }
}

void append_float32_le(std::string& out, float value) {
    char bytes[4];
    store_float32_le(bytes, value);
    out.append(bytes, sizeof bytes);
}

}  // namespace mistral_proxy::responses
