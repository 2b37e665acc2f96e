#include <doctest/doctest.h>

#include <string>

#include "responses/usage.hpp"

using mistral_proxy::responses::find_usage;

TEST_CASE("find_usage reads Mistral's usage wherever it is") {
    SUBCASE("at the end, after a big array") {
        std::string body = R"({"data":[)";
        for (int i = 0; i < 2000; ++i) {
            if (i != 0) {
                body += ',';
            }
            body += std::to_string(i * 0.001);
        }
        body += R"(],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}})";
        const auto usage = find_usage(body);
        REQUIRE(usage);
        CHECK(usage->prompt_tokens == 7);
        CHECK(usage->total_tokens == 7);
    }
    SUBCASE("first, before the choices") {
        const auto usage = find_usage(
            R"({"usage":{"prompt_tokens":3,"completion_tokens":4},"choices":[{"message":{"content":"a \"usage\" word"}}]})");
        REQUIRE(usage);
        CHECK(usage->total_tokens == 7);
    }
    SUBCASE("absent, or not JSON") {
        CHECK_FALSE(find_usage(R"({"choices":[]})"));
        CHECK_FALSE(find_usage("not json"));
        CHECK_FALSE(find_usage(R"({"usage":{"foo":1}})"));
    }
}
