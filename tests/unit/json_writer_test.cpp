// json::append_json_string against a plain byte-at-a-time escaper: every
// byte that needs care, at every position of strings of 0 to 40 bytes (the
// escaper looks at eight bytes a step, so each lands in the first step, the
// last full step and the tail).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "json/writer.hpp"

using namespace mistral_proxy;

namespace {

// RFC 8259's escapes, ill-formed UTF-8 as U+FFFD, a byte at a time.
std::string reference(const std::string& text) {
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<std::uint8_t>(text[i]);
        if (c >= 0x80) {
            // The tests below use one well-formed sequence (é), lone bytes otherwise.
            if (c == 0xC3 && i + 1 < text.size() && static_cast<std::uint8_t>(text[i + 1]) == 0xA9) {
                out += "\xC3\xA9";
                ++i;
            } else {
                out += "\xEF\xBF\xBD";
            }
            continue;
        }
        static constexpr char hex[] = "0123456789abcdef";
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

}  // namespace

TEST_CASE("append_json_string escapes every special byte wherever it falls") {
    const std::string specials[] = {"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f", "\xC3\xA9", "\xC3",
                                    "\xFF", "\x80", " ", "~"};
    for (std::size_t length = 0; length <= 40; ++length) {
        const std::string plain(length, 'a');
        std::string out = "prefix";
        json::append_json_string(out, plain);
        REQUIRE(out == "prefix" + reference(plain));
        for (std::size_t at = 0; at <= length; ++at) {
            for (const std::string& special : specials) {
                const std::string text = plain.substr(0, at) + special + plain.substr(at);
                CAPTURE(text);
                std::string got;
                json::append_json_string(got, text);
                CHECK(got == reference(text));
                // Two specials: the second is found after the first was handled.
                const std::string twice = text + plain + special;
                std::string got_twice;
                json::append_json_string(got_twice, twice);
                CHECK(got_twice == reference(twice));
            }
        }
    }
}
