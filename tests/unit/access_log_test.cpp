#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

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

namespace {

// Runs `write` with stdout and stderr sent to a temporary file; returns what they received.
template <class F>
std::string captured_output(F write) {
    std::FILE* sink = std::tmpfile();
    REQUIRE(sink != nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    const int saved_out = ::dup(STDOUT_FILENO);
    const int saved_err = ::dup(STDERR_FILENO);
    ::dup2(::fileno(sink), STDOUT_FILENO);
    ::dup2(::fileno(sink), STDERR_FILENO);
    write();
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out, STDOUT_FILENO);
    ::dup2(saved_err, STDERR_FILENO);
    ::close(saved_out);
    ::close(saved_err);
    std::string text;
    std::rewind(sink);
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, sink)) > 0;) {
        text.append(buffer, n);
    }
    std::fclose(sink);
    return text;
}

}  // namespace

TEST_CASE("an access log that cannot be opened is an error; off writes nothing") {
    CHECK_THROWS_AS(access_log("/nonexistent-dir/x/access.log"), std::runtime_error);
    access_record record;
    record.request_id = "req-off-test";
    record.status = 200;
    access_log off("off");
    CHECK_FALSE(off.enabled());
    CHECK(captured_output([&] { off.write(record); }).empty());
    // The same capture sees what a log that is on writes: the check above can fail.
    access_log on("stderr");
    CHECK(captured_output([&] { on.write(record); }).find("req-off-test") != std::string::npos);
}
