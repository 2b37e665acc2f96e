// The translated chat body goes through the chat normalizer exactly as a chat
// request would: the chat rules fire on it, and what reaches Mistral is its chat.
#include <doctest/doctest.h>

#include <string>

#include "normalizer_support.hpp"
#include "openai_responses/answer.hpp"
#include "openai_responses/request.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::openai_responses;

namespace {

normalizer_test::outcome pipeline(std::string_view body) {
    counter_ids ids;
    const auto translated = translate_request(body, {}, ids);
    REQUIRE_FALSE(translated.error);
    return normalizer_test::run(translated.chat_body);
}

}  // namespace

TEST_CASE("responses request through the chat normalizer") {
    SUBCASE("alias, developer -> system, required -> any, tool call ids, max_tokens, stream usage") {
        const auto out = pipeline(
            R"({"model":"gpt-4o","instructions":"Be brief.","input":[{"role":"developer","content":"Use tools."},{"role":"user","content":"weather?"},{"type":"function_call","call_id":"call_abc123XYZ456","name":"get","arguments":"{}"},{"type":"function_call_output","call_id":"call_abc123XYZ456","output":"sunny"}],"tools":[{"type":"function","name":"get","parameters":{"type":"object","properties":{}},"strict":false}],"tool_choice":"required","max_output_tokens":64,"store":true,"metadata":{"a":"b"},"stream":true})");
        REQUIRE(out.ok);
        CAPTURE(out.body);
        CHECK(out.model_sent == "mistral-large-latest");
        CHECK(out.rules.find("model_alias") != std::string::npos);
        CHECK(out.rules.find("tool_choice_any") != std::string::npos);
        CHECK(out.rules.find("tool_call_ids") != std::string::npos);
        CHECK(out.rules.find("messages") != std::string::npos);
        CHECK(out.body.find(R"("tool_choice":"any")") != std::string::npos);
        CHECK(out.body.find(R"("role":"developer")") == std::string::npos);
        CHECK(out.body.find("call_abc123XYZ456") == std::string::npos);
        CHECK(out.body.find(R"("max_tokens":64)") != std::string::npos);
        CHECK(out.body.find("stream_options") == std::string::npos);
        CHECK(out.request.stream);
        CHECK(out.request.include_usage);
        CHECK(out.body.find("metadata") == std::string::npos);
    }
    SUBCASE("a PDF input_file is taken by the documents rule") {
        const auto out = pipeline(
            R"({"model":"mistral-small-latest","input":[{"role":"user","content":[{"type":"input_text","text":"Summarise"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}]}]})");
        REQUIRE(out.ok);
        CAPTURE(out.body);
        CHECK(out.rules.find("documents") != std::string::npos);
        CHECK(out.body.find(R"("type":"document_url")") != std::string::npos);
    }
    SUBCASE("json_object without 'json' in the messages gets the hint") {
        const auto out = pipeline(
            R"({"model":"mistral-small-latest","input":"List three colours.","text":{"format":{"type":"json_object"}}})");
        REQUIRE(out.ok);
        CHECK(out.rules.find("json_mode_hint") != std::string::npos);
    }
    SUBCASE("reasoning.effort Mistral does not know is dropped by params") {
        const auto out = pipeline(R"({"model":"mistral-small-latest","input":"x","reasoning":{"effort":"max"}})");
        REQUIRE(out.ok);
        CHECK(out.body.find("reasoning_effort") == std::string::npos);
        const auto kept = pipeline(R"({"model":"mistral-small-latest","input":"x","reasoning":{"effort":"low"}})");
        REQUIRE(kept.ok);
        CHECK(kept.body.find(R"("reasoning_effort":"low")") != std::string::npos);
    }
}

TEST_CASE("responses chain: answer items feed the next request (previous_response_id)") {
    counter_ids ids;
    // Turn 1: the user asks; Mistral answers with a tool call.
    const auto first = translate_request(R"({"model":"mistral-small-latest","input":"Weather in Paris?"})", {}, ids);
    REQUIRE_FALSE(first.error);
    answer_context context;
    context.response_id = first.response_id;
    context.settings = &first.settings;
    context.ids = &ids;
    const auto answer = translate_answer(
        R"({"id":"c","model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"D681PevKs","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}]})",
        context);
    REQUIRE_FALSE(answer.error);
    const std::string conversation = join_items("", first.input_items, answer.output_items);

    // Turn 2: only the tool's output, continuing the stored response.
    history earlier;
    earlier.previous_items = conversation;
    const auto second = translate_request(
        R"({"model":"mistral-small-latest","previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"D681PevKs","output":"22C"}]})",
        earlier, ids);
    REQUIRE_FALSE(second.error);
    CHECK(
        second.chat_body ==
        R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},{"role":"assistant","tool_calls":[{"id":"D681PevKs","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"D681PevKs","name":"get_weather","content":"22C"}]})");
    const auto out = normalizer_test::run(second.chat_body);
    REQUIRE(out.ok);
    CHECK(out.body.find(R"("tool_call_id":"D681PevKs")") != std::string::npos);
}
