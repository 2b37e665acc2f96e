// Whole-body response transforms: chat, legacy text_completion, embeddings, models.
#include <doctest/doctest.h>

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "responses/chat_response.hpp"
#include "responses/embeddings.hpp"
#include "responses/models.hpp"
#include "responses_support.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::responses;

namespace {

const response_rules& answer_rules = responses_test::shipped_rules();  // rules/mistral.yaml, loaded

std::string chat(std::string_view message, std::string_view finish = R"("stop")") {
    return R"({"id":"a1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":)" +
           std::string(message) + R"(,"finish_reason":)" + std::string(finish) +
           R"(}],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}})";
}

// What the proxy answers for chat(message, finish): OpenAI's required members
// added at the end of their objects ("refusal":null in the message — `message`
// is given without its closing brace — and "logprobs":null in the choice).
std::string openai_chat(std::string_view message_open, std::string_view finish = R"("stop")") {
    return R"({"id":"a1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":)" +
           std::string(message_open) + R"(,"refusal":null},"finish_reason":)" + std::string(finish) +
           R"(,"logprobs":null}],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}})";
}

}  // namespace

TEST_CASE("chat response: mappings") {
    struct row {
        std::string_view name;
        std::string in;
        std::string out;  // "" = unchanged
        response_rule rule;
    };
    const row rows[] = {
        {"an answer already in OpenAI's shape is unchanged",
         R"({"id":"a1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}]})",
         "", response_rule::finish_reason},
        {"refusal and logprobs added; tool_calls null dropped",
         chat(R"({"role":"assistant","content":"Hi","tool_calls":null})"),
         openai_chat(R"({"role":"assistant","content":"Hi")"), response_rule::message_repair},
        {"role and content added when Mistral leaves them out", chat(R"({})"),
         openai_chat(R"({"role":"assistant","content":null)"), response_rule::message_repair},
        {"a choice without a message gets an empty assistant message",
         R"({"id":"a1","choices":[{"index":0,"finish_reason":"stop"}]})",
         R"({"id":"a1","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":null,"refusal":null},"logprobs":null}]})",
         response_rule::message_repair},
        {"logprobs and refusal Mistral sends are kept",
         R"({"id":"a1","choices":[{"index":0,"message":{"role":"assistant","content":"x","refusal":"no"},"logprobs":{"content":null,"refusal":null},"finish_reason":"stop"}]})",
         "", response_rule::message_repair},
        {"model_length -> length", chat(R"({"role":"assistant","content":"Hi"})", R"("model_length")"),
         openai_chat(R"({"role":"assistant","content":"Hi")", R"("length")"), response_rule::finish_reason},
        {"prefix dropped", chat(R"({"role":"assistant","content":"Hi","prefix":false})"),
         openai_chat(R"({"role":"assistant","content":"Hi")"), response_rule::message_repair},
        {"content \"\" next to tool calls -> null; index dropped; real id kept",
         chat(
             R"({"role":"assistant","content":"","tool_calls":[{"id":"abcDEF123","type":"function","index":0,"function":{"name":"f","arguments":"{}"}}],"prefix":false})",
             R"("tool_calls")"),
         openai_chat(
             R"({"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}])",
             R"("tool_calls")"),
         response_rule::message_repair},
        {"content \"\" after the tool calls -> null too",
         chat(
             R"({"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}],"content":""})",
             R"("tool_calls")"),
         openai_chat(
             R"({"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}],"content":null)",
             R"("tool_calls")"),
         response_rule::message_repair},
        {"an empty text list next to tool calls -> null",
         chat(
             R"({"role":"assistant","content":[{"type":"text","text":""}],"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}]})",
             R"("tool_calls")"),
         openai_chat(
             R"({"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}])",
             R"("tool_calls")"),
         response_rule::reasoning},
        {"an empty text list without tool calls stays \"\"",
         chat(R"({"role":"assistant","content":[{"type":"text","text":""}]})"),
         openai_chat(R"({"role":"assistant","content":"")"), response_rule::reasoning},
        {"content \"\" without tool calls stays", chat(R"({"role":"assistant","content":"","tool_calls":[]})"),
         openai_chat(R"({"role":"assistant","content":"","tool_calls":[])"), response_rule::message_repair},
        {"arguments object -> string; type added",
         chat(
             R"({"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","function":{"name":"f","arguments":{"a":[1,"x"]}}}]})"),
         openai_chat(
             R"({"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{\"a\":[1,\"x\"]}"}}])"),
         response_rule::message_repair},
        {"thinking -> content + reasoning_content",
         chat(
             R"({"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Let me see."}]},{"type":"text","text":"42"}]})"),
         openai_chat(R"({"role":"assistant","content":"42","reasoning_content":"Let me see.")"),
         response_rule::reasoning},
        {"choices[].messages dropped",
         R"({"id":"a1","choices":[{"index":0,"message":{"role":"assistant","content":"x","refusal":null},"messages":[],"finish_reason":"stop","logprobs":null}]})",
         R"({"id":"a1","choices":[{"index":0,"message":{"role":"assistant","content":"x","refusal":null},"finish_reason":"stop","logprobs":null}]})",
         response_rule::message_repair},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const body_result result = transform_chat_response(r.in, answer_rules);
        REQUIRE_FALSE(result.error);
        if (r.out.empty()) {
            CHECK(result.unchanged);
            CHECK(result.body.empty());
            CHECK(result.hits.empty());
        } else {
            CHECK_FALSE(result.unchanged);
            CHECK(result.body == r.out);
            simdjson::dom::parser parser;
            CHECK(parser.parse(result.body).error() == simdjson::SUCCESS);
            CHECK(result.hits.has(r.rule));
        }
    }
}

TEST_CASE("chat response: placeholder tool call ids get stable generated ones") {
    const std::string in = chat(
        R"({"role":"assistant","content":"","tool_calls":[{"id":"null","function":{"name":"f","arguments":"{}"}},{"function":{"name":"g","arguments":"{}"}}]})",
        R"("tool_calls")");
    const auto a = transform_chat_response(in, answer_rules);
    const auto b = transform_chat_response(in, answer_rules);
    REQUIRE_FALSE(a.unchanged);
    CHECK(a.body == b.body);
    simdjson::dom::parser parser;
    simdjson::dom::array calls;
    REQUIRE(parser.parse(a.body)["choices"].at(0)["message"]["tool_calls"].get(calls) == simdjson::SUCCESS);
    std::vector<std::string> ids;
    for (auto call : calls) {
        std::string_view id;
        std::string_view type;
        REQUIRE(call["id"].get(id) == simdjson::SUCCESS);
        REQUIRE(call["type"].get(type) == simdjson::SUCCESS);
        CHECK(type == "function");
        CHECK(id.size() == 9);
        ids.emplace_back(id);
    }
    REQUIRE(ids.size() == 2);
    CHECK(ids[0] != ids[1]);
}

TEST_CASE("chat response: finish_reason error and malformed bodies") {
    const auto error =
        transform_chat_response(chat(R"({"role":"assistant","content":"par"})", R"("error")"), answer_rules);
    REQUIRE(error.error);
    CHECK(error.error->status == 502);
    CHECK(error.error->type == "api_error");
    CHECK(error.error->code == "upstream_generation_error");
    CHECK(error.hits.has(response_rule::errors));

    for (const std::string_view bad :
         {"", "not json", "[1,2]", R"({"id":"x"})", R"({"choices":[]}})", R"({"choices":[)"}) {
        CAPTURE(bad);
        const auto result = transform_chat_response(bad, answer_rules);
        CHECK(result.unchanged);
        CHECK_FALSE(result.error);
    }
    const auto usage = transform_chat_response(chat(R"({"role":"assistant","content":"x"})"), answer_rules);
    REQUIRE(usage.usage);
    CHECK(usage.usage->prompt_tokens == 2);
    CHECK(usage.usage->completion_tokens == 3);
    CHECK(usage.usage->total_tokens == 5);
}

TEST_CASE("chat response: usage read in one walk, its bytes kept as they came") {
    const std::string message = R"({"role":"assistant","content":"x"})";
    const auto with_usage = [&](std::string_view usage) {
        return R"({"id":"a1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":)" +
               message + R"(,"finish_reason":"stop"}],"usage":)" + std::string(usage) + "}";
    };
    struct row {
        std::string_view usage;
        std::uint64_t prompt, completion, total;
    };
    const row rows[] = {
        // Nested details validated and kept; whitespace inside kept, after it not.
        {R"({"prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1, "x": [true, null, "s\n"]},
            "completion_tokens":3,"total_tokens":5 })",
         2, 3, 5},
        // Counts that are not unsigned integers are valid JSON, not counts.
        {R"({"prompt_tokens":1.5,"completion_tokens":-3,"total_tokens":"5"})", 0, 0, 0},
        {R"({"total_tokens":18446744073709551615,"completion_tokens":1e2})", 0, 0, 18446744073709551615ull},
        {R"({})", 0, 0, 0},
    };
    for (const auto& r : rows) {
        CAPTURE(r.usage);
        const auto result = transform_chat_response(with_usage(r.usage), answer_rules);
        REQUIRE_FALSE(result.unchanged);
        REQUIRE(result.usage);
        CHECK(result.usage->prompt_tokens == r.prompt);
        CHECK(result.usage->completion_tokens == r.completion);
        CHECK(result.usage->total_tokens == r.total);
        std::string_view usage = r.usage;
        while (usage.back() == ' ') {
            usage.remove_suffix(1);
        }
        CHECK(result.body.find(R"("usage":)" + std::string(usage) + "}") != std::string::npos);
    }
    // A usage that is not an object is copied as any other value, unread.
    for (const std::string_view other : {"null", "7", R"("n/a")", "[1,2]"}) {
        CAPTURE(other);
        const auto result = transform_chat_response(with_usage(other), answer_rules);
        REQUIRE_FALSE(result.unchanged);
        CHECK_FALSE(result.usage);
        CHECK(result.body.find(R"("usage":)" + std::string(other) + "}") != std::string::npos);
    }
    // Anything malformed inside usage leaves the whole answer as it came.
    for (const std::string_view bad : {R"({"prompt_tokens":2,"x":tru})", R"({"prompt_tokens":2,"x":"\q"})",
                                       R"({"prompt_tokens":02})", R"({"prompt_tokens":2,})"}) {
        CAPTURE(bad);
        const auto result = transform_chat_response(with_usage(bad), answer_rules);
        CHECK(result.unchanged);
        CHECK_FALSE(result.usage);
    }
}

TEST_CASE("legacy text_completion from chat and FIM answers") {
    struct row {
        std::string_view name;
        std::string in;
        std::string out;
    };
    const std::string usage = R"("usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5})";
    const row rows[] = {
        {"FIM answer", chat(R"({"role":"assistant","content":"return a + b","prefix":false,"tool_calls":null})"),
         R"({"id":"a1","object":"text_completion","created":7,"model":"m","choices":[{"text":"return a + b","index":0,"logprobs":null,"finish_reason":"stop"}],)" +
             usage + "}"},
        {"model_length", chat(R"({"role":"assistant","content":"x\ny"})", R"("model_length")"),
         R"({"id":"a1","object":"text_completion","created":7,"model":"m","choices":[{"text":"x\ny","index":0,"logprobs":null,"finish_reason":"length"}],)" +
             usage + "}"},
        {"content null", chat(R"({"role":"assistant","content":null})"),
         R"({"id":"a1","object":"text_completion","created":7,"model":"m","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],)" +
             usage + "}"},
        {"content list",
         chat(
             R"({"role":"assistant","content":[{"type":"thinking","thinking":[{"text":"t"}]},{"type":"text","text":"A\"B"}]})"),
         R"({"id":"a1","object":"text_completion","created":7,"model":"m","choices":[{"text":"A\"B","index":0,"logprobs":null,"finish_reason":"stop"}],)" +
             usage + "}"},
        {"object missing", R"({"id":"a1","choices":[{"message":{"content":"x"},"finish_reason":"stop"}]})",
         R"({"id":"a1","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":"stop"}],"object":"text_completion"})"},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto result = chat_to_text_completion(r.in, answer_rules);
        REQUIRE_FALSE(result.error);
        CHECK(result.body == r.out);
        CHECK(result.hits.has(response_rule::text_completion));
    }
    CHECK(chat_to_text_completion("<html>", answer_rules).error->status == 502);
    CHECK(chat_to_text_completion(chat(R"({"content":"x"})", R"("error")"), answer_rules).error->code ==
          "upstream_generation_error");
}

TEST_CASE("base64 of little-endian float32: exact bytes") {
    struct row {
        float value;
        std::string_view bytes_hex;  // little-endian
    };
    const row rows[] = {
        {1.0F, "0000803f"},
        {-2.0F, "000000c0"},
        {0.0F, "00000000"},
        {-0.0F, "00000080"},
        {0.1F, "cdcccc3d"},
        {std::numeric_limits<float>::denorm_min(), "01000000"},
        {-std::numeric_limits<float>::denorm_min(), "01000080"},
        {std::numeric_limits<float>::max(), "ffff7f7f"},
    };
    for (const row& r : rows) {
        CAPTURE(r.value);
        std::string bytes;
        append_float32_le(bytes, r.value);
        static constexpr char hex[] = "0123456789abcdef";
        std::string got;
        for (const char c : bytes) {
            got += hex[static_cast<unsigned char>(c) >> 4];
            got += hex[static_cast<unsigned char>(c) & 0xF];
        }
        CHECK(got == r.bytes_hex);
    }
    struct b64_row {
        std::string_view in;
        std::string_view out;
    };
    const b64_row b64_rows[] = {{"", ""},
                                {"f", "Zg=="},
                                {"fo", "Zm8="},
                                {"foo", "Zm9v"},
                                {"foob", "Zm9vYg=="},
                                {"fooba", "Zm9vYmE="},
                                {"foobar", "Zm9vYmFy"},
                                {std::string_view("\xff\xfe\x00", 3), "//4A"}};
    for (const auto& r : b64_rows) {
        std::string out;
        append_base64(out, r.in);
        CHECK(out == r.out);
    }
}

TEST_CASE("embeddings: base64 answer from floats") {
    const std::string body =
        R"({"id":"e1","object":"list","data":[{"object":"embedding","embedding":[1.0,-2,0.1,-0.0,1e-45],"index":0},{"object":"embedding","embedding":[],"index":1}],"model":"mistral-embed","usage":{"prompt_tokens":3,"total_tokens":3}})";
    SUBCASE("float: untouched") {
        const auto result = transform_embeddings_response(body, embedding_encoding::floats);
        CHECK(result.unchanged);
        CHECK(result.body.empty());
    }
    SUBCASE("base64") {
        const auto result = transform_embeddings_response(body, embedding_encoding::base64);
        REQUIRE_FALSE(result.error);
        // 1.0, -2.0, 0.1f, -0.0, denorm_min: 0000803f 000000c0 cdcccc3d 00000080 01000000
        CHECK(
            result.body ==
            R"({"id":"e1","object":"list","data":[{"object":"embedding","embedding":"AACAPwAAAMDNzMw9AAAAgAEAAAA=","index":0},{"object":"embedding","embedding":"","index":1}],"model":"mistral-embed","usage":{"prompt_tokens":3,"total_tokens":3}})");
        CHECK(result.hits.has(response_rule::embeddings_base64));
        REQUIRE(result.usage);
        CHECK(result.usage->total_tokens == 3);
    }
    SUBCASE("already a string: kept") {
        const auto result = transform_embeddings_response(R"({"data":[{"embedding":"AACAPw==","index":0}]})",
                                                          embedding_encoding::base64);
        CHECK(result.body == R"({"data":[{"embedding":"AACAPw==","index":0}]})");
    }
    SUBCASE("not an embedding list: 502") {
        for (const std::string_view bad : {"", "oops", R"({"object":"list"})", R"({"data":[{"embedding":["x"]}]})"}) {
            CAPTURE(bad);
            const auto result = transform_embeddings_response(bad, embedding_encoding::base64);
            REQUIRE(result.error);
            CHECK(result.error->status == 502);
        }
    }
}

TEST_CASE("embeddings: a long embedding, then a short one, encode right (the per-thread buffer grows, then is let go)") {
    // 300,000 values: 1.2 MB of float32, past what the encoder keeps between answers.
    const auto encoded = [](std::size_t count) {
        std::string body = R"({"data":[{"embedding":[)";
        std::string bytes;
        for (std::size_t i = 0; i < count; ++i) {
            const float value = static_cast<float>(static_cast<int>(i % 2001) - 1000) / 1024.0F;
            char text[32];
            std::snprintf(text, sizeof text, "%s%.9g", i == 0 ? "" : ",", static_cast<double>(value));  // exact
            body += text;
            append_float32_le(bytes, value);
        }
        body += R"(],"index":0}]})";
        std::string expected = R"({"data":[{"embedding":")";
        append_base64(expected, bytes);
        expected += R"(","index":0}]})";
        return std::pair{body, expected};
    };
    for (const std::size_t count : {300000U, 3U, 300000U}) {
        CAPTURE(count);
        const auto [body, expected] = encoded(count);
        const auto result = transform_embeddings_response(body, embedding_encoding::base64);
        REQUIRE_FALSE(result.error);
        CHECK(result.body == expected);
    }
}

TEST_CASE("models: list merged with aliases") {
    const std::vector<model_alias> aliases = {
        {"gpt-4o", "mistral-large-latest"},
        {"text-embedding-3-small", "mistral-embed"},
        {"mistral-large-latest", "mistral-small-latest"},  // an upstream id: the real model wins
        {"gpt-4o", "other"},                               // the same alias twice: first wins
    };
    const std::string list =
        R"({"object":"list","data":[{"id":"mistral-large-latest","object":"model","created":100,"owned_by":"mistralai","capabilities":{"completion_chat":true,"vision":true},"max_context_length":131072,"aliases":["mistral-large-2411"],"type":"base"}]})";
    const auto result = merge_model_list(list, aliases, 42);
    REQUIRE_FALSE(result.error);
    CHECK(result.hits.has(response_rule::model_alias));
    CHECK(
        result.body ==
        R"({"object":"list","data":[{"id":"mistral-large-latest","object":"model","created":100,"owned_by":"mistralai","capabilities":{"completion_chat":true,"vision":true},"max_context_length":131072,"aliases":["mistral-large-2411"],"type":"base"},)"
        R"({"id":"gpt-4o","object":"model","created":100,"capabilities":{"completion_chat":true,"vision":true},"max_context_length":131072,"type":"base","owned_by":"mistral-proxy","alias_for":"mistral-large-latest"},)"
        R"({"id":"text-embedding-3-small","object":"model","created":42,"owned_by":"mistral-proxy","alias_for":"mistral-embed"}]})");

    SUBCASE("no aliases: unchanged") { CHECK(merge_model_list(list, {}, 0).unchanged); }
    SUBCASE("empty upstream list") {
        const auto only = merge_model_list(R"({"object":"list","data":[]})", std::span(aliases).first(1), 5);
        CHECK(
            only.body ==
            R"({"object":"list","data":[{"id":"gpt-4o","object":"model","created":5,"owned_by":"mistral-proxy","alias_for":"mistral-large-latest"}]})");
    }
    SUBCASE("not a list: 502, never an empty list") {
        for (const std::string_view bad : {"", "<html>", R"({"object":"list"})", R"({"data":{}})"}) {
            CAPTURE(bad);
            const auto r = merge_model_list(bad, aliases, 0);
            REQUIRE(r.error);
            CHECK(r.error->status == 502);
        }
    }
}

TEST_CASE("models: a card for /v1/models/{alias}") {
    const model_alias alias{"gpt-4o", "mistral-large-latest"};
    CHECK(find_alias(std::span(&alias, 1), "gpt-4o") == &alias);
    CHECK(find_alias(std::span(&alias, 1), "gpt-4") == nullptr);
    CHECK(
        alias_model_card(R"({"id":"mistral-large-latest","object":"model","created":1,"owned_by":"mistralai"})", alias,
                         9) ==
        R"({"id":"gpt-4o","object":"model","created":1,"owned_by":"mistral-proxy","alias_for":"mistral-large-latest"})");
    const std::string synthesized =
        R"({"id":"gpt-4o","object":"model","created":9,"owned_by":"mistral-proxy","alias_for":"mistral-large-latest"})";
    CHECK(alias_model_card("", alias, 9) == synthesized);
    CHECK(alias_model_card(R"({"detail":"Not Found"}})", alias, 9) == synthesized);
}

TEST_CASE("response rules come from the rule files, as the server builds them") {
    CHECK(answer_rules.map_finish_reason("model_length") == "length");
    CHECK(answer_rules.map_finish_reason("stop") == "stop");
    CHECK(response_rules{}.finish_reasons.empty());  // no built-in copy of rules/mistral.yaml
    const auto off = normalizer_test::rules_with("switches: {finish_reason: false}\n");
    CHECK(response_rules::from(*off).finish_reasons.empty());
    const auto more = normalizer_test::rules_with("finish_reason: {stop: end_turn}\n");
    CHECK(response_rules::from(*more).map_finish_reason("stop") == "end_turn");
}
