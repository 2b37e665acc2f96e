#pragma once
// Shared by the libFuzzer targets: a failed invariant prints what broke and
// aborts, so libFuzzer records the input as a crash (and the sanitizers' stack
// trace shows where).
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "responses/response_rules.hpp"

namespace fuzz {

[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
    std::fprintf(stderr, "\nINVARIANT BROKEN: %.*s\n", static_cast<int>(what.size()), what.data());
    if (!detail.empty()) {
        std::fprintf(stderr, "---- detail (%zu bytes) ----\n%.*s\n----\n", detail.size(),
                     static_cast<int>(detail.size() > 4000 ? 4000 : detail.size()), detail.data());
    }
    std::abort();
}

inline void check(bool holds, std::string_view what, std::string_view detail = {}) {
    if (!holds) {
        fail(what, detail);
    }
}

// Parses `text` with simdjson's DOM parser (which validates every byte: syntax,
// UTF-8, one value, nothing after it). One parser per target, reused.
inline simdjson::simdjson_result<simdjson::dom::element> parse_dom(std::string_view text) {
    static simdjson::dom::parser parser;
    return parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true);
}

// A plain RFC 8259 validator (one value, optional whitespace around it; UTF-8
// checked by simdjson), for what simdjson's DOM refuses although it is JSON:
// integers past 2^64 (NUMBER_ERROR in 3.0.1).
class json_validator {
public:
    static bool valid(std::string_view text) {
        if (!simdjson::validate_utf8(text.data(), text.size())) {
            return false;
        }
        json_validator v(text);
        v.space();
        if (!v.value(0)) {
            return false;
        }
        v.space();
        return v.at_ == text.size();
    }

private:
    explicit json_validator(std::string_view text) : text_(text) {}
    bool more() const { return at_ < text_.size(); }
    char peek() const { return more() ? text_[at_] : '\0'; }
    void space() {
        while (more() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
            ++at_;
        }
    }
    bool literal(std::string_view word) {
        if (text_.substr(at_, word.size()) != word) {
            return false;
        }
        at_ += word.size();
        return true;
    }
    bool digits() {
        const std::size_t start = at_;
        while (more() && peek() >= '0' && peek() <= '9') {
            ++at_;
        }
        return at_ > start;
    }
    bool number() {
        if (peek() == '-') {
            ++at_;
        }
        if (peek() == '0') {
            ++at_;
        } else if (!digits()) {
            return false;
        }
        if (peek() == '.') {
            ++at_;
            if (!digits()) {
                return false;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            ++at_;
            if (peek() == '+' || peek() == '-') {
                ++at_;
            }
            if (!digits()) {
                return false;
            }
        }
        return true;
    }
    bool string() {
        ++at_;  // opening quote
        while (more()) {
            const auto c = static_cast<unsigned char>(text_[at_++]);
            if (c == '"') {
                return true;
            }
            if (c < 0x20) {
                return false;
            }
            if (c == '\\') {
                const char e = peek();
                ++at_;
                if (e == 'u') {
                    for (int i = 0; i < 4; ++i, ++at_) {
                        const char h = peek();
                        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) {
                            return false;
                        }
                    }
                } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || e == '\0') {
                    return false;
                }
            }
        }
        return false;
    }
    bool value(int depth) {
        if (depth > 1024) {
            return false;
        }
        switch (peek()) {
        case '{':
            ++at_;
            space();
            if (peek() == '}') {
                ++at_;
                return true;
            }
            for (;;) {
                space();
                if (peek() != '"' || !string()) {
                    return false;
                }
                space();
                if (peek() != ':') {
                    return false;
                }
                ++at_;
                space();
                if (!value(depth + 1)) {
                    return false;
                }
                space();
                if (peek() == ',') {
                    ++at_;
                    continue;
                }
                if (peek() == '}') {
                    ++at_;
                    return true;
                }
                return false;
            }
        case '[':
            ++at_;
            space();
            if (peek() == ']') {
                ++at_;
                return true;
            }
            for (;;) {
                space();
                if (!value(depth + 1)) {
                    return false;
                }
                space();
                if (peek() == ',') {
                    ++at_;
                    continue;
                }
                if (peek() == ']') {
                    ++at_;
                    return true;
                }
                return false;
            }
        case '"':
            return string();
        case 't':
            return literal("true");
        case 'f':
            return literal("false");
        case 'n':
            return literal("null");
        default:
            return number();
        }
    }

    std::string_view text_;
    std::size_t at_ = 0;
};

// Valid JSON: simdjson's DOM, or for numbers it cannot hold, the plain validator.
inline bool valid_json(std::string_view text, bool& is_object) {
    auto parsed = parse_dom(text);
    if (parsed.error() == simdjson::NUMBER_ERROR) {
        std::size_t first = text.find_first_not_of(" \t\r\n");
        is_object = first != std::string_view::npos && text[first] == '{';
        return json_validator::valid(text);
    }
    is_object = parsed.error() == simdjson::SUCCESS && parsed.value_unsafe().is_object();
    return parsed.error() == simdjson::SUCCESS;
}

// The input of the stream targets: byte 0 = options, byte 1 = how many cut
// points (mod 16), two bytes (little endian) per cut point taken modulo the
// body's length + 1 (sorted), then the body. false when the input is too short.
struct split_input {
    std::uint8_t flags = 0;
    std::string_view body;
    std::vector<std::size_t> cuts;
};

inline bool read_split_input(const std::uint8_t* data, std::size_t size, split_input& out) {
    if (size < 2) {
        return false;
    }
    out.flags = data[0];
    const std::size_t cut_count = data[1] % 16;
    if (size < 2 + 2 * cut_count) {
        return false;
    }
    out.body = std::string_view(reinterpret_cast<const char*>(data) + 2 + 2 * cut_count, size - 2 - 2 * cut_count);
    out.cuts.clear();
    for (std::size_t i = 0; i < cut_count; ++i) {
        const std::size_t raw = data[2 + 2 * i] | (static_cast<std::size_t>(data[3 + 2 * i]) << 8);
        out.cuts.push_back(raw % (out.body.size() + 1));
    }
    std::sort(out.cuts.begin(), out.cuts.end());
    return true;
}

inline bool same_usage(const std::optional<mistral_proxy::responses::usage_counts>& a,
                       const std::optional<mistral_proxy::responses::usage_counts>& b) {
    if (a.has_value() != b.has_value()) {
        return false;
    }
    return !a || (a->prompt_tokens == b->prompt_tokens && a->completion_tokens == b->completion_tokens &&
                  a->total_tokens == b->total_tokens);
}

}  // namespace fuzz
