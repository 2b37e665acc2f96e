#include <doctest/doctest.h>

#include <simdjson.h>

#include <string>

#include "normalize/request_peek.hpp"

using namespace mistral_proxy;
using normalize::peek_request;

namespace {

// As the I/O layer does: the body followed by SIMDJSON_PADDING spare bytes.
normalize::peek_result peek(std::string_view body) {
    std::string buffer(body);
    buffer.reserve(body.size() + normalize::body_padding);
    buffer.append(normalize::body_padding, '\0');
    return peek_request(std::string_view(buffer.data(), body.size()));
}

}  // namespace

TEST_CASE("peek_request reads model and stream") {
    struct row {
        std::string_view body;
        std::string_view model;
        bool stream;
    };
    const row rows[] = {
        {R"({"model":"mistral-small-latest","messages":[]})", "mistral-small-latest", false},
        {R"({"model":"m","stream":true})", "m", true},
        {R"({"stream":false,"model":"m"})", "m", false},
        {R"({"stream":null,"model":"m"})", "m", false},
        {R"({})", "", false},
        {R"( {"messages":[{"role":"user","content":"hi"}]} )", "", false},
        {R"({"mod\u0065l":"escaped","str\u0065am":true})", "escaped", true},
        {R"({"model":"first","model":"last"})", "last", false},
        {R"({"stream":true,"stream":false})", "", false},
        {R"({"model":"caf\u00e9 \ud83d\ude00"})", "caf\xC3\xA9 \xF0\x9F\x98\x80", false},
        {R"({"model":"","x":{"model":"nested"}})", "", false},
        {"{\"model\":\"m\"}\n", "m", false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.body);
        const auto result = peek(r.body);
        REQUIRE_FALSE(result.error);
        REQUIRE(result.facts);
        CHECK(result.facts->model == r.model);
        CHECK(result.facts->stream == r.stream);
    }
}

TEST_CASE("peek_request refuses what is not one valid JSON object") {
    struct row {
        std::string name;
        std::string body;
        std::string_view message;  // part of the message
        std::optional<std::string> param;
    };
    const std::string deep_ok = std::string(127, '[') + std::string(127, ']');
    const row rows[] = {
        {"empty", "", "empty", std::nullopt},
        {"blank", "   \n", "empty", std::nullopt},
        {"not json", "model=x", "not valid JSON", std::nullopt},
        {"truncated", R"({"model":"m")", "not valid JSON", std::nullopt},
        {"trailing garbage", R"({"model":"m"}})", "not valid JSON", std::nullopt},
        {"two objects", R"({"model":"m"} {"model":"n"})", "not valid JSON", std::nullopt},
        {"trailing text", R"({"model":"m"} x)", "not valid JSON", std::nullopt},
        {"bad literal deep inside", R"({"model":"m","a":[tru]})", "not valid JSON", std::nullopt},
        {"single quotes", R"({'model':'m'})", "not valid JSON", std::nullopt},
        {"invalid utf-8", "{\"model\":\"m\xC3\x28\"}", "UTF-8", std::nullopt},
        {"invalid utf-8 in a key", "{\"\xFF\":1}", "UTF-8", std::nullopt},
        {"lone surrogate escape", R"({"model":"\ud800"})", "not valid JSON", std::nullopt},
        {"array", R"([{"model":"m"}])", "must be a JSON object, got an array", std::nullopt},
        {"string", R"("hello")", "must be a JSON object, got a string", std::nullopt},
        {"number", "42", "must be a JSON object, got a number", std::nullopt},
        {"null", "null", "must be a JSON object, got null", std::nullopt},
        {"model number", R"({"model":42})", "'model' must be a string, got a number", "model"},
        {"model null", R"({"model":null})", "'model' must be a string, got null", "model"},
        {"model object", R"({"model":{"id":"m"}})", "'model' must be a string, got an object", "model"},
        {"escaped model key, bad type", R"({"mod\u0065l":[]})", "'model' must be a string, got an array", "model"},
        {"last duplicate bad", R"({"model":"m","model":1})", "'model' must be a string", "model"},
        {"stream string", R"({"model":"m","stream":"true"})", "'stream' must be a boolean, got a string", "stream"},
        {"stream number", R"({"model":"m","stream":1})", "'stream' must be a boolean, got a number", "stream"},
        {"too deep", R"({"a":)" + std::string(200, '[') + std::string(200, ']') + "}", "nested too deeply",
         std::nullopt},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const auto result = peek(r.body);
        CHECK_FALSE(result.facts);
        REQUIRE(result.error);
        CHECK(result.error->status == 400);
        CHECK(result.error->type == "invalid_request_error");
        CHECK_MESSAGE(result.error->message.find(r.message) != std::string::npos, result.error->message);
        CHECK(result.error->param == r.param);
    }
    // 127 levels of arrays inside the object (128 in all) are fine.
    const auto ok = peek(R"({"a":)" + deep_ok + "}");
    CHECK_FALSE(ok.error);
    const auto too_deep = peek(R"({"a":)" + std::string(128, '[') + std::string(128, ']') + "}");
    CHECK(too_deep.error);
}

TEST_CASE("peek_request survives a large body and keeps working afterwards") {
    std::string big = R"({"model":"m","messages":[)";
    for (int i = 0; i < 50000; ++i) {
        big += R"({"role":"user","content":"0123456789012345678901234567890123456789"},)";
    }
    big += R"({"role":"user","content":"end"}],"stream":true})";
    const auto result = peek(big);
    REQUIRE(result.facts);
    CHECK(result.facts->stream);
    // After the parser for the big body is dropped, a small body still parses with the depth limit.
    CHECK(peek(R"({"model":"small"})").facts->model == "small");
    CHECK(peek(R"({"a":)" + std::string(200, '[') + std::string(200, ']') + "}").error);
}
