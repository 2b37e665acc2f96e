#include <doctest/doctest.h>

#include <string>

#include "openai_responses/answer.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::openai_responses;

namespace {

constexpr std::string_view id1 = "000000000000000000000000000000000000000000000001";

translated_answer run(std::string_view body, const response_settings& settings = {}) {
    counter_ids ids;
    answer_context context;
    context.response_id = "resp_x";
    context.created_at = 1700000000;
    context.completed_at = 1700000002;
    context.settings = &settings;
    context.ids = &ids;
    return translate_answer(body, context);
}

// The Response members around `output` for default settings.
std::string response(std::string_view status, std::string_view completed_at, std::string_view incomplete,
                     std::string_view model, std::string_view output, std::string_view usage) {
    std::string out = R"({"id":"resp_x","object":"response","created_at":1700000000,"status":")";
    out += status;
    out += R"(","background":false,"completed_at":)";
    out += completed_at;
    out += R"(,"error":null,"incomplete_details":)";
    out += incomplete;
    out += R"(,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":")";
    out += model;
    out += R"(","output":)";
    out += output;
    out +=
        R"(,"parallel_tool_calls":true,"previous_response_id":null,"prompt_cache_key":null,"reasoning":null,"safety_identifier":null,"service_tier":"default","store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":null,"truncation":"disabled","usage":)";
    out += usage;
    out += R"(,"metadata":{}})";
    return out;
}

constexpr std::string_view usage_10_5 =
    R"({"input_tokens":10,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15})";

}  // namespace

TEST_CASE("responses answer: text") {
    const auto a = run(
        R"({"id":"cmpl-1","object":"chat.completion","created":1,"model":"mistral-large-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"you\"","tool_calls":null,"prefix":false},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})");
    REQUIRE_FALSE(a.error);
    const std::string items =
        std::string(R"([{"id":"msg_)") + std::string(id1) +
        R"(","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello \"you\""}],"role":"assistant"}])";
    CHECK(a.output_items == items);
    CHECK(a.body == response("completed", "1700000002", "null", "mistral-large-latest", items, usage_10_5));
    CHECK(a.status == "completed");
    REQUIRE(a.usage);
    CHECK(a.usage->prompt_tokens == 10);
    CHECK(a.usage->completion_tokens == 5);
}

TEST_CASE("responses answer: tool calls, thinking, length, error, not a completion") {
    SUBCASE("tool calls: arguments as string and as object; a missing id gets a stable one") {
        const auto a = run(
            R"({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"D681PevKs","type":"function","function":{"name":"get","arguments":"{\"a\":1}"},"index":0},{"id":"null","function":{"name":"put","arguments":{"b":2}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})");
        REQUIRE_FALSE(a.error);
        CHECK(a.output_items.find(R"("type":"message")") == std::string::npos);
        CHECK(
            a.output_items.find(
                R"({"id":"fc_000000000000000000000000000000000000000000000001","type":"function_call","status":"completed","arguments":"{\"a\":1}","call_id":"D681PevKs","name":"get"})") !=
            std::string::npos);
        CHECK(a.output_items.find(R"("arguments":"{\"b\":2}","call_id":")") != std::string::npos);
        CHECK(a.output_items.find(R"("call_id":"null")") == std::string::npos);
        // Same answer, same generated id.
        CHECK(
            run(R"({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"D681PevKs","type":"function","function":{"name":"get","arguments":"{\"a\":1}"},"index":0},{"id":"null","function":{"name":"put","arguments":{"b":2}}}]},"finish_reason":"tool_calls"}]})")
                .output_items == a.output_items);
        CHECK(a.status == "completed");
    }
    SUBCASE("thinking chunks -> a reasoning item before the message") {
        const auto a = run(
            R"({"id":"c","model":"magistral-medium-latest","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Let me think."}]},{"type":"text","text":"42"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})");
        REQUIRE_FALSE(a.error);
        CHECK(
            a.output_items ==
            R"([{"id":"rs_000000000000000000000000000000000000000000000001","type":"reasoning","summary":[{"type":"summary_text","text":"Let me think."}]},{"id":"msg_000000000000000000000000000000000000000000000002","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"42"}],"role":"assistant"}])");
    }
    SUBCASE("length and model_length -> incomplete, max_output_tokens") {
        for (std::string_view reason : {"length", "model_length"}) {
            CAPTURE(reason);
            const auto a = run(
                std::string(
                    R"({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"finish_reason":")") +
                std::string(reason) + R"("}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})");
            REQUIRE_FALSE(a.error);
            CHECK(a.status == "incomplete");
            const std::string items =
                std::string(R"([{"id":"msg_)") + std::string(id1) +
                R"(","type":"message","status":"incomplete","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hel"}],"role":"assistant"}])";
            CHECK(a.body ==
                  response("incomplete", "null", R"({"reason":"max_output_tokens"})", "m", items, usage_10_5));
        }
    }
    SUBCASE("finish_reason error -> 502") {
        const auto a = run(
            R"({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"finish_reason":"error"}]})");
        REQUIRE(a.error);
        CHECK(a.error->status == 502);
        CHECK(a.error->code == "upstream_generation_error");
        CHECK(a.body.empty());
    }
    SUBCASE("not a completion -> 502") {
        for (std::string_view body :
             {"", "not json", R"({"object":"list"})", R"({"choices":[]})", R"({"choices":[{}]})"}) {
            CAPTURE(body);
            const auto a = run(body);
            REQUIRE(a.error);
            CHECK(a.error->status == 502);
            CHECK(a.error->code == "upstream_bad_body");
        }
    }
    SUBCASE("settings are echoed") {
        response_settings settings;
        settings.model_asked = "gpt-4o";
        settings.instructions = R"("Be brief.")";
        settings.tools = R"([{"type":"function","name":"f","parameters":null,"strict":false}])";
        settings.user = R"("u")";
        settings.store = false;
        const auto a = run(
            R"({"id":"c","model":"mistral-large-2411","choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]})",
            settings);
        REQUIRE_FALSE(a.error);
        CHECK(a.body.find(R"("instructions":"Be brief.")") != std::string::npos);
        CHECK(a.body.find(R"("tools":[{"type":"function","name":"f","parameters":null,"strict":false}])") !=
              std::string::npos);
        CHECK(a.body.find(R"("user":"u")") != std::string::npos);
        CHECK(a.body.find(R"("store":false)") != std::string::npos);
        CHECK(a.body.find(R"("model":"mistral-large-2411")") != std::string::npos);
        // No usage from Mistral: zeros, as the schema wants an object.
        CHECK(a.body.find(R"("usage":{"input_tokens":0,)") != std::string::npos);
    }
}
