// Inputs the libFuzzer targets (tests/fuzz) found, kept as unit tests so the
// ordinary build guards them too.
#include <doctest/doctest.h>

#include <simdjson.h>

#include <cstdint>
#include <limits>
#include <string>

#include "config/config.hpp"
#include "normalizer_support.hpp"
#include "responses/chat_response.hpp"
#include "responses/stream_transcoder.hpp"
#include "responses_support.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

TEST_CASE("fuzz regression: a stray flow indicator in YAML is an error, not an endless loop (yaml-cpp 0.7)") {
    for (const std::string text : {",", ",\n", ",b", "}\n"}) {
        CAPTURE(text);
        CHECK_THROWS_AS(config::parse_config(text, "/nonexistent/c.yaml"), config::config_error);
        CHECK_THROWS_AS(rules::parse_rule_text(text, "/nonexistent/r.yaml"), config::config_error);
    }
    CHECK_THROWS_WITH(config::parse_config("listen: 127.0.0.1:1\n---\nregion: eu\n", "/x/c.yaml"),
                      "/x/c.yaml:3:1: only one YAML document is allowed per file");
}

TEST_CASE("fuzz regression: max_tokens past 2^64 saturates instead of overflowing") {
    const auto r = normalizer_test::run(
        R"({"model":"mistral-small-latest","max_tokens":1e300,"messages":[{"role":"user","content":"x"}]})");
    REQUIRE(r.ok);
    REQUIRE(r.request.max_tokens.has_value());
    CHECK(*r.request.max_tokens == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("fuzz regression: a stream event with an invalid scalar ends the stream with an error") {
    responses::stream_transcoder transcoder(responses_test::shipped_rules(), {});
    std::string out;
    transcoder.on_body(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5(,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\n",
        out);
    CHECK(transcoder.failed());
    // Nothing of the bad chunk goes out as a chunk: the only event is the error.
    CHECK(out.rfind("data: {\"error\":", 0) == 0);
    CHECK(out.find("\n\ndata: ") == std::string::npos);
    CHECK(out.find("upstream_bad_event") != std::string::npos);
}

TEST_CASE("fuzz regression: a second ':' inside a value copied through ends the stream with an error") {
    // {"id":"g":"x"}} — the walk reads "g" by its token; left unread, the
    // iterator's skip would take `"g":"x"` for a member and the extra '}' for
    // the array's end.
    responses::stream_transcoder transcoder(responses_test::shipped_rules(), {});
    std::string out;
    transcoder.on_body(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"x\":[{\"id\":\"g\":\"x\"}}]},\"finish_reason\":null}]}\n\n",
        out);
    CHECK(transcoder.failed());
    CHECK(out.rfind("data: {\"error\":", 0) == 0);
    CHECK(out.find("upstream_bad_event") != std::string::npos);
}

TEST_CASE("fuzz regression: a whole answer with a second ':' inside a copied value is relayed as it came") {
    const auto result = responses::transform_chat_response(
        R"({"id":"a","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","x":[{"id":"g":"x"}}]},"finish_reason":"stop"}]})",
        responses_test::shipped_rules());
    CHECK(result.unchanged);  // not the proxy's to reject; never rewritten into something that looks valid
    CHECK(result.body.empty());
}

TEST_CASE("fuzz regression: a chunk that repeats \"choices\" still gives valid JSON") {
    responses::stream_transcoder transcoder(responses_test::shipped_rules(), {});
    std::string out;
    transcoder.on_body(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}],"
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":null}]}\n\n",
        out);
    CHECK_FALSE(transcoder.failed());
    // Every event's payload parses as JSON (or is the [DONE] marker), and there is one.
    simdjson::dom::parser parser;
    std::size_t events = 0;
    std::string_view rest = out;
    while (!rest.empty()) {
        const auto end = rest.find("\n\n");
        REQUIRE(end != std::string_view::npos);
        const auto event = rest.substr(0, end);
        rest.remove_prefix(end + 2);
        REQUIRE(event.rfind("data: ", 0) == 0);
        const auto payload = event.substr(6);
        if (payload == "[DONE]") {
            continue;
        }
        CAPTURE(payload);
        simdjson::dom::element element;
        CHECK(parser.parse(std::string(payload)).get(element) == simdjson::SUCCESS);
        ++events;
    }
    CHECK(events >= 1);
}

TEST_CASE("fuzz regression: a usage object sent over several data: lines stays on one line in the usage chunk") {
    responses::stream_options options;
    options.include_usage = true;
    responses::stream_transcoder transcoder(responses_test::shipped_rules(), options);
    std::string out;
    transcoder.on_body(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\n"
        "data: \"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: [DONE]\n\n",
        out);
    CHECK_FALSE(transcoder.failed());
    CAPTURE(out);
    // Every event is one data: line.
    std::string_view rest = out;
    std::size_t events = 0;
    while (!rest.empty()) {
        const auto end = rest.find("\n\n");
        REQUIRE(end != std::string_view::npos);
        const auto event = rest.substr(0, end);
        CHECK(event.rfind("data: ", 0) == 0);
        CHECK(event.find('\n') == std::string_view::npos);
        rest.remove_prefix(end + 2);
        ++events;
    }
    CHECK(events == 3);  // the content chunk, the usage chunk, [DONE]
    CHECK(out.find(R"("choices":[],"usage":{"prompt_tokens":4, "completion_tokens":1,"total_tokens":5})") != std::string::npos);
}
