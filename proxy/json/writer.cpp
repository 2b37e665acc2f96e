// JSON string escaping and a validity check for the proxy's own small outputs.
#include "json/writer.hpp"

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace mistral_proxy::json {

namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF), or 0 when ill-formed.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
    const std::uint8_t b0 = byte(i);
    std::size_t len = 0;
    std::uint8_t lo = 0x80;
    std::uint8_t hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) {
            lo = 0xA0;
        } else if (b0 == 0xED) {
            hi = 0x9F;
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) {
            lo = 0x90;
        } else if (b0 == 0xF4) {
            hi = 0x8F;
        }
    } else {
        return 0;
    }
    if (i + len > text.size()) {
        return 0;
    }
    const std::uint8_t b1 = byte(i + 1);
    if (b1 < lo || b1 > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < len; ++k) {
        const std::uint8_t b = byte(i + k);
        if (b < 0x80 || b > 0xBF) {
            return 0;
        }
    }
    return len;
}

// Bytes that end a run copied as is: control characters, '"', '\\' and the
// first byte of a multi-byte UTF-8 sequence (checked, then copied).
constexpr std::array<bool, 256> special_bytes = [] {
    std::array<bool, 256> table{};
    for (std::size_t c = 0; c < 256; ++c) {
        table[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
    }
    return table;
}();

std::size_t plain_run(std::string_view text, std::size_t from) noexcept {
    while (from < text.size() && !special_bytes[static_cast<std::uint8_t>(text[from])]) {
        ++from;
    }
    return from;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::size_t i = plain_run(text, 0);
    if (i == text.size()) {
        // The common case (keys, ids, most text): one copy between the quotes.
        const std::size_t at = out.size();
        out.resize(at + text.size() + 2);
        char* p = out.data() + at;
        *p = '"';
        if (!text.empty()) {  // text.data() may be null then
            std::memcpy(p + 1, text.data(), text.size());
        }
        p[text.size() + 1] = '"';
        return;
    }
    out.reserve(out.size() + text.size() + 2);
    out.push_back('"');
    out.append(text.data(), i);
    while (i < text.size()) {
        // Copy the run of bytes that need no escaping in one go.
        const std::size_t run = plain_run(text, i);
        out.append(text.data() + i, run - i);
        i = run;
        if (i == text.size()) {
            break;
        }
        const auto c = static_cast<std::uint8_t>(text[i]);
        if (c >= 0x80) {
            const std::size_t len = utf8_sequence_length(text, i);
            if (len == 0) {
                out.append(replacement);
                ++i;
            } else {
                out.append(text.data() + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 0xF]);
                break;
        }
        ++i;
    }
    out.push_back('"');
}

std::string json_string(std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
}

bool is_json(std::string_view text) {
    simdjson::dom::parser parser;
    const simdjson::padded_string padded(text);
    return parser.parse(padded).error() == simdjson::SUCCESS;
}

}  // namespace mistral_proxy::json
