#include <doctest/doctest.h>

#include <string>

#include "responses/legacy_completions.hpp"

using namespace mistral_proxy::responses;

TEST_CASE("legacy completions request -> FIM or chat body") {
    struct row {
        std::string_view name;
        std::string_view in;
        completions_target target;
        std::string_view out;
        bool stream = false;
        bool include_usage = false;
    };
    const row rows[] = {
        {"FIM: the schema's fields, seed renamed, the rest dropped",
         R"({"model":"codestral-latest","prompt":"def add(a, b):","suffix":"\n","max_tokens":16,"temperature":0.2,"top_p":0.9,"stop":["\n\n"],"seed":3,"min_tokens":1,"user":"u","logprobs":null,"echo":false,"best_of":1,"n":1,"frequency_penalty":0,"logit_bias":{}})",
         completions_target::fim,
         R"({"model":"codestral-latest","suffix":"\n","max_tokens":16,"temperature":0.2,"top_p":0.9,"stop":["\n\n"],"random_seed":3,"min_tokens":1,"prompt":"def add(a, b):"})"},
        {"FIM streamed with include_usage",
         R"({"model":"codestral-latest","prompt":["x = "],"stream":true,"stream_options":{"include_usage":true}})",
         completions_target::fim, R"({"model":"codestral-latest","stream":true,"prompt":"x = "})", true, true},
        {"chat: prompt as the user message; suffix dropped",
         R"({"model":"mistral-small-latest","prompt":"Say \"hi\"","suffix":"!","max_tokens":16,"n":2,"presence_penalty":0.5,"seed":null,"stream":false})",
         completions_target::chat,
         R"({"model":"mistral-small-latest","max_tokens":16,"n":2,"presence_penalty":0.5,"random_seed":null,"stream":false,"messages":[{"role":"user","content":"Say \"hi\""}]})"},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto mapped = map_completions_request(r.in, r.target);
        REQUIRE_FALSE(mapped.error);
        CHECK(mapped.body == r.out);
        CHECK(mapped.body.capacity() >= mapped.body.size() + 64);
        CHECK(mapped.stream == r.stream);
        CHECK(mapped.include_usage == r.include_usage);
    }
}

TEST_CASE("legacy completions request: what cannot be honoured is a 400") {
    struct row {
        std::string_view in;
        completions_target target;
        std::string_view param;
    };
    const row rows[] = {
        {R"({"model":"m"})", completions_target::fim, "prompt"},
        {R"({"model":"m","prompt":null})", completions_target::chat, "prompt"},
        {R"({"model":"m","prompt":[1,2,3]})", completions_target::fim, "prompt"},
        {R"({"model":"m","prompt":[[1,2]]})", completions_target::chat, "prompt"},
        {R"({"model":"m","prompt":["a","b"]})", completions_target::fim, "prompt"},
        {R"({"model":"m","prompt":[]})", completions_target::fim, "prompt"},
        {R"({"model":"m","prompt":"x","echo":true})", completions_target::chat, "echo"},
        {R"({"model":"m","prompt":"x","best_of":3})", completions_target::chat, "best_of"},
        {R"({"model":"m","prompt":"x","n":2})", completions_target::fim, "n"},
    };
    for (const row& r : rows) {
        CAPTURE(r.in);
        const auto mapped = map_completions_request(r.in, r.target);
        REQUIRE(mapped.error);
        CHECK(mapped.error->status == 400);
        CHECK(mapped.error->param == std::string(r.param));
    }
    for (const std::string_view bad : {"", "[]", "{\"prompt\":\"x\"}}", "{\"prompt\":"}) {
        CAPTURE(bad);
        const auto mapped = map_completions_request(bad, completions_target::fim);
        REQUIRE(mapped.error);
        CHECK(mapped.error->status == 400);
    }
}
