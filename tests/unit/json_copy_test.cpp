// json::copy_member: a member copied through as the input's bytes in one
// append when its key needs no escaping and sits right before its value
// (member_text), and rebuilt key by key otherwise. Both must write the same
// member; the fast path must never take bytes that are not the member's.
#include <doctest/doctest.h>

#include <simdjson.h>

#include <string>
#include <string_view>

#include "json/copy.hpp"

using namespace mistral_proxy;
namespace od = simdjson::ondemand;

namespace {

struct copied {
    std::string text;  // the members copied, comma-separated
    int fast = 0;      // how many went through member_text
    bool ok = true;
};

copied copy_all(std::string_view object) {
    copied result;
    od::parser parser;
    const simdjson::padded_string input(object);
    od::document doc;
    od::object root;
    if (parser.iterate(input).get(doc) != simdjson::SUCCESS || doc.get_object().get(root) != simdjson::SUCCESS) {
        result.ok = false;
        return result;
    }
    bool first = true;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!json::member_of(field, key, value)) {
            result.ok = false;
            return result;
        }
        // member_text looks at the same bytes copy_member does: read the raw
        // value first, then copy from a fresh walk below.
        std::string_view raw = value.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\t' || raw.back() == '\r')) {
            raw.remove_suffix(1);
        }
        if (!json::member_text(key, raw).empty()) {
            ++result.fast;
        }
        if (!json::copy_member(result.text, first, key, value)) {
            result.ok = false;
            return result;
        }
    }
    return result;
}

}  // namespace

TEST_CASE("copy_member: compact members are copied as the input's bytes") {
    const auto c = copy_all(R"({"id":"cmpl-1","n":12,"o":{"a":[1,2,{"b":null}]},"":true,"t":"x\"y"})");
    REQUIRE(c.ok);
    CHECK(c.text == R"("id":"cmpl-1","n":12,"o":{"a":[1,2,{"b":null}]},"":true,"t":"x\"y")");
    CHECK(c.fast == 5);
}

TEST_CASE("copy_member: escaped keys and spaced members are rebuilt, with the same meaning") {
    struct row {
        std::string_view input;
        std::string_view expected;
    };
    const row rows[] = {
        {R"({"a\"b":1})", R"("a\"b":1)"},              // the key holds a quote
        {R"({"\u0061":1})", R"("a":1)"},               // escaped, no quote in its text
        {R"({"\u0061\u0062":1})", R"("ab":1)"},        // a quote n+3 bytes back would be in the escape
        {R"({"x\\":1})", R"("x\\":1)"},                // the key holds a backslash
        {R"({"\"":1})", R"("\"":1)"},                  // the key is a quote
        {R"({"q\"\"":2})", R"("q\"\"":2)"},            // escaped quotes right before the closing one
        // An escaped quote exactly n+3 bytes before the value (the text `"`
        // and a newline, n = 2): the bytes from there, `"\n":`, would name
        // another key. The quote in the text sends it the slow way.
        {R"({"\"\n":1})", R"("\"\n":1)"},
        {R"({"id" : "x"})", R"("id":"x")"},            // spaces around the colon
        {R"({"id": "x"})", R"("id":"x")"},             // a space after it
        {"{\"id\"\n:1}", R"("id":1)"},                 // a newline before it
        {R"({"é":1})", R"("é":1)"},                    // UTF-8 needs no escaping: copied as is
    };
    for (const auto& r : rows) {
        CAPTURE(r.input);
        const auto c = copy_all(r.input);
        REQUIRE(c.ok);
        CHECK(c.text == r.expected);
    }
    // Only the last row takes the fast path.
    CHECK(copy_all(R"({"\u0061\u0062":1})").fast == 0);
    CHECK(copy_all(R"({"q\"\"":2})").fast == 0);
    CHECK(copy_all(R"({"\"\n":1})").fast == 0);
    CHECK(copy_all(R"({"id" : "x"})").fast == 0);
    CHECK(copy_all(R"({"é":1})").fast == 1);
}
