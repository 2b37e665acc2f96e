#pragma once
// The one validation policy for JSON the proxy copies through (DESIGN.md "JSON
// rewriting"), on the request side (the normalizer) and the answer side (the
// answer rewriters) alike: a body is parsed once, with simdjson On-Demand, and
// every value that reaches the output as a raw slice of the input is walked
// whole first. On-Demand checks only what is visited — stage 1 has already
// checked UTF-8 and the structural characters, but `"created":5(`, `[tru]`
// or a bad escape inside an unvisited value would reach the client as is —
// so nothing is copied unwalked. Values the proxy drops are not validated:
// they reach no one. Header-only: the walk is inlined into the callers'
// translation units (the normalizer's hot loop among them). No Asio.
#include <simdjson.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "json/number.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mistral_proxy::json {

namespace od = simdjson::ondemand;

// Deeper documents are refused (a request's 400 says so; an answer that deep
// is not rewritten).
inline constexpr std::size_t max_depth = 128;

inline bool is_space(char c) noexcept { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The unescaped key of a field. Keys without a backslash (nearly all) are
// views of the input: no copy into simdjson's string buffer, and nothing to
// validate (stage 1 checked UTF-8 and refused raw control characters). Others
// are unescaped, which validates them. Eight bytes at a time: the key's end is
// its first '"' or '\\' (the input is padded, so reading past the key stays
// inside the buffer).
[[gnu::always_inline]] inline simdjson::error_code key_of(od::field& field, std::string_view& key) noexcept {
    static_assert(std::endian::native == std::endian::little);
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t highs = 0x8080808080808080ull;
    const char* begin = field.key().raw();
    const char* p = begin;
    for (;;) {
        std::uint64_t word;
        std::memcpy(&word, p, sizeof word);
        const std::uint64_t quote = word ^ (ones * '"');
        const std::uint64_t backslash = word ^ (ones * '\\');
        // A zero byte in either marks a hit; the lowest marked byte is exact.
        const std::uint64_t hits = ((quote - ones) & ~quote & highs) | ((backslash - ones) & ~backslash & highs);
        if (hits != 0) {
            p += std::countr_zero(hits) / 8;
            break;
        }
        p += sizeof word;
    }
    if (*p == '\\') {
        return field.unescaped_key().get(key);
    }
    key = std::string_view(begin, static_cast<std::size_t>(p - begin));
    return simdjson::SUCCESS;
}

// One member of an object being iterated (`for (auto member : object)`): its
// field and key (key_of). The error of a malformed member otherwise.
[[gnu::always_inline]] inline simdjson::error_code member_of(simdjson::simdjson_result<od::field>&& result,
                                                             od::field& field, std::string_view& key) noexcept {
    if (auto e = std::move(result).get(field)) {
        return e;
    }
    return key_of(field, key);
}

// The field or item an object's or array's iterator just gave, in place: a
// reference into the result, not a copy. simdjson builds that state with
// separate small stores, and a copy made right after reads it back as one
// 16-byte load, which cannot be forwarded from those stores and waits for
// them to retire (~15 cycles, twice a member: the field, then its value).
// Check the result's error before using what this refers to.
[[gnu::always_inline]] inline od::field& field_in(simdjson::simdjson_result<od::field>& result) noexcept {
    od::field&& inner = std::move(result).value_unsafe();
    return inner;
}
[[gnu::always_inline]] inline od::value& value_in(simdjson::simdjson_result<od::value>& result) noexcept {
    od::value&& inner = std::move(result).value_unsafe();
    return inner;
}
// member_of for a field used in place (field_in): the error of the member, or its key.
[[gnu::always_inline]] inline simdjson::error_code member_of(simdjson::simdjson_result<od::field>& result,
                                                             std::string_view& key) noexcept {
    if (auto e = result.error()) {
        return e;
    }
    return key_of(field_in(result), key);
}

// Marks a string value read without unescaping it (its raw token was enough).
// A value left unread is skipped by the iterator's next step, and that skip
// only counts brackets: `{"a":"b":"c"}}` would pass as an object, its second
// ':' and its extra '}' unseen. Every scalar the proxy looks at by its token
// alone goes through here. false when it is not a string.
[[gnu::always_inline]] inline bool consume_string(od::value& value) noexcept {
    od::raw_json_string raw;
    return value.get_raw_json_string().get(raw) == simdjson::SUCCESS;
}

// A number's value: simdjson's get_double, read again exactly where simdjson
// 3.0.1 misreads it (json/number.hpp). Use it for every number the proxy
// compares or converts, never get_double alone.
[[gnu::always_inline]] inline simdjson::error_code get_number(od::value& value, double& out) noexcept {
    const std::string_view token = value.raw_json_token();
    if (auto e = value.get_double().get(out)) {
        return e;
    }
    if (may_have_over_19_digits(token) && !read_exactly(token, out)) {
        return simdjson::NUMBER_ERROR;
    }
    return simdjson::SUCCESS;
}

#if defined(__SSE2__)
// Bit i set: p[i] is a backslash, for the 16 bytes from p (which may run past
// the string into the input's padding).
[[gnu::always_inline]] inline unsigned backslashes_in_16(const char* p) noexcept {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('\\'))));
}
#endif

// The first backslash in [p, end), or null. Sixteen bytes at a time (SSE2,
// which every x86-64 has; eight elsewhere) for the first 64 (most strings of
// a request are shorter: a call to memchr costs more than the scan), memchr
// for the rest. Reads up to 15 bytes past `end`: the input is padded.
[[gnu::always_inline]] inline const char* find_backslash(const char* p, const char* end) noexcept {
    const char* const near = end - p > 64 ? p + 64 : end;
#if defined(__SSE2__)
    for (; p < near; p += 16) {
        const unsigned hits = backslashes_in_16(p);
        if (hits != 0) {
            const char* hit = p + std::countr_zero(hits);
            return hit < end ? hit : nullptr;
        }
    }
#else
    static_assert(std::endian::native == std::endian::little);
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t highs = 0x8080808080808080ull;
    for (; p < near; p += sizeof(std::uint64_t)) {
        std::uint64_t word;
        std::memcpy(&word, p, sizeof word);
        const std::uint64_t x = word ^ (ones * '\\');
        const std::uint64_t hits = (x - ones) & ~x & highs;
        if (hits != 0) {
            const char* hit = p + std::countr_zero(hits) / 8;
            return hit < end ? hit : nullptr;
        }
    }
#endif
    if (p >= end) {
        return nullptr;
    }
    return static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p)));
}

// True when the escapes of a string's text are valid JSON, as simdjson's
// unescaping judges them (the same strings refused), without unescaping:
// `p` is the first backslash, `end` the closing quote. A \u escape has four
// hex digits; a high surrogate must be followed by an escaped low one, and a
// low one alone is refused. (Stage 1 checked UTF-8 and control characters.)
inline bool valid_escapes(const char* p, const char* end) noexcept {
    const auto hex4 = [end](const char* at, std::uint32_t& out) noexcept {
        if (end - at < 4) {
            return false;
        }
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = at[i];
            const std::uint32_t digit = c >= '0' && c <= '9'   ? static_cast<std::uint32_t>(c - '0')
                                        : c >= 'a' && c <= 'f' ? static_cast<std::uint32_t>(c - 'a' + 10)
                                        : c >= 'A' && c <= 'F' ? static_cast<std::uint32_t>(c - 'A' + 10)
                                                               : 16;
            if (digit == 16) {
                return false;
            }
            out = out << 4 | digit;
        }
        return true;
    };
#if defined(__SSE2__)
    const char* block = p;  // the next 16 bytes to look for backslashes in
    unsigned pending = 0;   // backslashes of the block before it, not yet taken
#endif
    while (p != nullptr && p < end) {
        if (end - p < 2) {
            return false;
        }
        switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u': {
                std::uint32_t code = 0;
                if (!hex4(p + 2, code)) {
                    return false;
                }
                p += 6;
                if (code >= 0xd800 && code < 0xdc00) {
                    std::uint32_t low = 0;
                    if (end - p < 2 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, low) || low < 0xdc00 ||
                        low > 0xdfff) {
                        return false;
                    }
                    p += 6;
                } else if (code >= 0xdc00 && code <= 0xdfff) {
                    return false;
                }
                break;
            }
            default:
                return false;
        }
        // The next backslash at or after p. Escapes come in runs in JSON text
        // inside a string (tool arguments: \"city\":\"Paris\"): the backslashes
        // of a 16-byte block are found at once and taken one by one, skipping
        // those an escape just consumed.
#if defined(__SSE2__)
        for (;;) {
            if (pending != 0) {
                const char* next = block - 16 + std::countr_zero(pending);
                pending &= pending - 1;
                if (next >= p) {
                    p = next;
                    break;
                }
                continue;
            }
            if (block >= end) {
                return true;
            }
            pending = backslashes_in_16(block);
            block += 16;
        }
#else
        const char* near = end - p > 16 ? p + 16 : end;
        while (p < near && *p != '\\') {
            ++p;
        }
        if (p == near) {
            p = find_backslash(p, end);
        }
#endif
    }
    return true;
}

// Reads a string value whose text is not needed unescaped: `written` is its
// text as written between the quotes, `escaped` whether it has escapes, which
// are checked in place (unescaping only to check was ~10% of the
// normalizer's time on tool arguments). The value is consumed.
[[gnu::always_inline]] inline simdjson::error_code check_string(od::value& value, std::string_view& written,
                                                                bool& escaped) noexcept {
    const std::string_view token = value.raw_json_token();
    const char* close = token.data() + token.size();
    while (is_space(close[-1])) {
        --close;
    }
    --close;  // the closing quote
    written = std::string_view(token.data() + 1, static_cast<std::size_t>(close - token.data() - 1));
    const char* backslash = find_backslash(written.data(), close);
    escaped = backslash != nullptr;
    if (escaped && !valid_escapes(backslash, close)) {
        return simdjson::STRING_ERROR;
    }
    return consume_string(value) ? simdjson::SUCCESS : simdjson::TAPE_ERROR;
}

// Walks `value` (of JSON type `type`, at nesting `depth`) whole: every
// member, item and scalar read as its type. SUCCESS when all of it is valid.
inline simdjson::error_code validate(od::value& value, od::json_type type, std::size_t depth) {
    switch (type) {
        case od::json_type::object: {
            if (depth >= max_depth) {
                return simdjson::DEPTH_ERROR;
            }
            od::object object;
            if (auto e = value.get_object().get(object)) {
                return e;
            }
            for (auto member : object) {
                std::string_view key;
                if (auto e = member_of(member, key)) {
                    return e;
                }
                od::value& child = field_in(member).value();
                od::json_type child_type;
                if (auto e = child.type().get(child_type)) {
                    return e;
                }
                if (auto e = validate(child, child_type, depth + 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::array: {
            if (depth >= max_depth) {
                return simdjson::DEPTH_ERROR;
            }
            od::array array;
            if (auto e = value.get_array().get(array)) {
                return e;
            }
            for (auto item_result : array) {
                if (auto e = item_result.error()) {
                    return e;
                }
                od::value& item = value_in(item_result);
                od::json_type item_type;
                if (auto e = item.type().get(item_type)) {
                    return e;
                }
                if (auto e = validate(item, item_type, depth + 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::string: {
            // Only escapes can be wrong in a string that stage 1 accepted.
            std::string_view written;
            bool escaped = false;
            return check_string(value, written, escaped);
        }
        case od::json_type::number: {
            double number = 0;  // validated, not used: get_double's misreadings do not matter
            return value.get_double().get(number);
        }
        case od::json_type::boolean: {
            bool flag = false;
            return value.get_bool().get(flag);
        }
        case od::json_type::null: {
            bool is_null = false;
            if (auto e = value.is_null().get(is_null)) {
                return e;
            }
            return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
        }
    }
    return simdjson::TAPE_ERROR;
}

// The bytes of a value in the input, without the whitespace after it, once
// validate() walked it: `token` is value.raw_json_token() taken before the
// walk; an object's or array's end is where the walk left the iterator.
// `input_end` bounds a container that ends the document (null: unknown, and
// then such a container has no extent: empty).
inline std::string_view extent(std::string_view token, od::value& value, od::json_type type,
                               const char* input_end) noexcept {
    const char* end = token.data() + token.size();
    if (type == od::json_type::object || type == od::json_type::array) {
        end = input_end;
        const char* location = nullptr;
        if (value.current_location().get(location) == simdjson::SUCCESS) {
            end = location;
        }
        if (end == nullptr) {
            return {};  // no end known: never a JSON value
        }
    }
    while (end > token.data() && is_space(end[-1])) {
        --end;
    }
    return std::string_view(token.data(), static_cast<std::size_t>(end - token.data()));
}

// Validates a value whole and gives its bytes in the input (a raw copy that
// is safe to send). `depth` is the value's nesting. false when it is invalid.
inline bool validated_raw(od::value& value, std::size_t depth, const char* input_end, std::string_view& raw) {
    const std::string_view token = value.raw_json_token();
    od::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS || validate(value, type, depth) != simdjson::SUCCESS) {
        return false;
    }
    raw = extent(token, value, type, input_end);
    return !raw.empty();
}

}  // namespace mistral_proxy::json
