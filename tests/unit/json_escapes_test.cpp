// json::valid_escapes and json::find_backslash (json/walk.hpp): the request
// walk checks a string's escapes in place instead of unescaping it, so it
// must refuse exactly the strings simdjson's unescaping refuses. Checked
// against simdjson itself on every string of a generated set: all escapes,
// surrogates alone, in pairs and cut short, escapes at the end, runs of them,
// and random strings over a small alphabet rich in backslashes.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "json/walk.hpp"

using namespace mistral_proxy;

namespace {

// simdjson's verdict on the JSON string "`inner`" (inner as written, escapes and all).
bool simdjson_accepts(const std::string& inner) {
    const std::string json = "[\"" + inner + "\"]";
    simdjson::ondemand::parser parser;
    simdjson::padded_string padded(json);
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) {
        return false;  // stage 1 refused it (an unescaped quote ended the string early, say)
    }
    std::string_view text;
    return doc.at(0).get_string().get(text) == simdjson::SUCCESS;
}

// Ours, as the walk calls it: from the first backslash to the closing quote.
bool ours_accepts(const std::string& inner) {
    std::string buffer = "\"" + inner + "\"";
    const std::size_t length = buffer.size();
    buffer.append(simdjson::SIMDJSON_PADDING, '\\');  // padding that looks like escapes must not matter
    const char* begin = buffer.data() + 1;
    const char* close = buffer.data() + length - 1;
    const char* backslash = json::find_backslash(begin, close);
    return backslash == nullptr || json::valid_escapes(backslash, close);
}

// A string stage 1 accepts as one string: no raw quote ends it early (an
// escaped one is fine), no control character.
bool well_quoted(const std::string& inner) {
    bool escaped = false;
    for (const char c : inner) {
        if (static_cast<unsigned char>(c) < 0x20) {
            return false;
        }
        if (c == '"' && !escaped) {
            return false;
        }
        escaped = c == '\\' && !escaped;
    }
    return !escaped;  // a trailing lone backslash would escape the closing quote
}

}  // namespace

TEST_CASE("valid_escapes refuses exactly what simdjson's unescaping refuses") {
    std::vector<std::string> cases = {
        "", "plain", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\q", "\\x41", "\\'", "\\0",
        "\\u0041", "\\u00e9", "\\uFFFF", "\\u0000", "\\u12", "\\u12G4", "\\uZZZZ", "\\u", "a\\u004",
        "\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud800\\udc00", "\\uD83D\\uDE00", "\\udbff\\udfff",
        "\\ud800\\u0041", "\\ud800\\ud800", "\\ud800x", "\\ud800\\", "\\ud800\\u", "\\ud800\\udc0",
        "\\ud800\\uZZZZ", "\\ud800\\\\udc00", "\\udc00\\ud800", "x\\ud83d\\ude00y\\n",
        "{\\\"city\\\":\\\"Paris\\\",\\\"unit\\\":\\\"c\\\"}", "\\\\\\\\\\\\", "\\\\u0041", "\\\\\\u0041",
        std::string(100, 'a') + "\\q", std::string(100, 'a') + "\\n" + std::string(70, 'b') + "\\u00",
        std::string(63, 'a') + "\\n", std::string(64, 'a') + "\\n", std::string(65, 'a') + "\\z",
    };
    // Random strings over an alphabet where escapes are frequent.
    std::mt19937 random(12345);
    const std::string alphabet = "\\\\\\uudDcC80a0fF\"n/x ";
    // Lengths up to 24 mostly; up to 80 for one in four, so that runs of
    // escapes cross the 16-byte blocks the scan takes them in.
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        const int length = static_cast<int>(random() % (i % 4 == 0 ? 80 : 24));
        for (int j = 0; j < length; ++j) {
            s += alphabet[random() % alphabet.size()];
        }
        cases.push_back(s);
    }
    int compared = 0;
    for (const auto& inner : cases) {
        if (!well_quoted(inner)) {
            continue;
        }
        ++compared;
        INFO("string: \"" << inner << "\"");
        CHECK(ours_accepts(inner) == simdjson_accepts(inner));
    }
    CHECK(compared > 5000);
}

TEST_CASE("find_backslash finds the first backslash before the end, and none past it") {
    std::string text(200, 'a');
    text.append(simdjson::SIMDJSON_PADDING, '\\');
    for (std::size_t end = 0; end < 150; ++end) {
        for (std::size_t at = 0; at < 160; at += 7) {
            std::string s = text;
            s[at] = '\\';
            const char* found = json::find_backslash(s.data(), s.data() + end);
            if (at < end) {
                CHECK(found == s.data() + at);
            } else {
                CHECK(found == nullptr);
            }
        }
    }
}
