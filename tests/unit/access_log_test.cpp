#include <doctest/doctest.h>

#include <simdjson.h>

#include "log/access_log.hpp"

using namespace mistral_proxy::logging;

TEST_CASE("access log lines are one JSON object with every field, escaped") {
    access_record record;
    record.request_id = "abc123";
    record.method = "POST";
    record.path = "/v1/chat/\"completions\"";
    record.model_requested = "mistral-tiny";
    record.model_sent = "open-mistral-nemo";
    record.upstream = "mistral";
    record.status = 200;
    record.duration_ms = 12.3456;
    record.bytes_received = 10;
    record.bytes_sent = 20;
    record.rules = "model_rewrite,params";
    record.retries = 1;
    record.prompt_tokens = 7;
    record.completion_tokens = 3;
    record.stream = true;
    const auto line = access_log::format(record, "2026-01-01T00:00:00.000Z");
    CHECK(line.find('\n') == std::string::npos);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(parser.parse(line).get(doc) == simdjson::SUCCESS);
    CHECK(std::string_view(doc["path"]) == "/v1/chat/\"completions\"");
    CHECK(int64_t(doc["status"]) == 200);
    CHECK(std::string_view(doc["rules"]) == "model_rewrite,params");
    CHECK(int64_t(doc["prompt_tokens"]) == 7);
    CHECK(bool(doc["stream"]) == true);
    CHECK(double(doc["duration_ms"]) == doctest::Approx(12.346));
}

TEST_CASE("unknown token counts and empty errors are left out") {
    access_record record;
    record.status = 502;
    const auto line = access_log::format(record, "t");
    CHECK(line.find("prompt_tokens") == std::string::npos);
    CHECK(line.find("\"error\"") == std::string::npos);
}

TEST_CASE("an access log that cannot be opened is an error; off writes nothing") {
    CHECK_THROWS_AS(access_log("/nonexistent-dir/x/access.log"), std::runtime_error);
    access_log off("off");
    CHECK_FALSE(off.enabled());
}
