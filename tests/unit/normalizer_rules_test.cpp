// Table-driven tests of every request rule id of SPEC §6: fires, does not fire,
// interacts with others. Inputs are compact JSON so the expected output (the
// normalizer writes rebuilt levels compactly and copies the rest byte for byte)
// can be spelled out exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>

#include "normalizer_support.hpp"

using namespace normalizer_test;
using normalize::endpoint;

namespace {

struct row {
    std::string_view name;
    std::string_view input;
    std::string_view expected;  // "" = the input itself, unchanged
    std::string_view rules;     // fired ids, SPEC order
    endpoint which = endpoint::chat_completions;
};

void check_rows(const std::vector<row>& rows, const rules::rule_set& set = shipped()) {
    for (const auto& r : rows) {
        CAPTURE(r.name);
        CAPTURE(r.input);
        const auto out = run(r.input, r.which, set);
        REQUIRE_MESSAGE(out.ok, out.message);
        CHECK(out.body == (r.expected.empty() ? r.input : r.expected));
        CHECK(out.rules == r.rules);
    }
}

constexpr std::string_view hi = R"("messages":[{"role":"user","content":"hi"}])";

// Content a rule cannot pass on: a 400 naming the part or message, never a silent drop.
struct refusal_row {
    std::string_view name;
    std::string_view input;
    std::string_view param;    // the part or message named
    std::string_view message;  // a piece of the message: what is wrong or what to send
    std::string_view rule;     // the rule named at the end of the message
};

void check_refusals(const std::vector<refusal_row>& rows, const rules::rule_set& set = shipped()) {
    for (const auto& r : rows) {
        CAPTURE(r.name);
        CAPTURE(r.input);
        const auto out = run(r.input, endpoint::chat_completions, set);
        REQUIRE_FALSE_MESSAGE(out.ok, out.body);
        CHECK(out.status == 400);
        CHECK(out.code == "unsupported_content");
        CHECK(out.param == r.param);
        CHECK_MESSAGE(out.message.find(r.message) != std::string::npos, out.message);
        CHECK_MESSAGE(out.message.ends_with("(mistral-proxy rule " + std::string(r.rule) + ")"), out.message);
        CHECK_MESSAGE(out.message.starts_with(std::string(r.param)), out.message);
    }
}

}  // namespace

TEST_CASE("a request Mistral accepts as it is passes through byte for byte") {
    check_rows({
        {"plain", R"({"model":"mistral-small-latest","messages":[{"role":"user","content":"hi"}],"temperature":0.3})", "", ""},
        {"whitespace kept", "{ \"model\" : \"mistral-small-latest\",\n \"messages\": [ {\"role\":\"user\", \"content\":\"hi\"} ] }\n", "", ""},
        {"valid tool conversation",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"sunny","name":"w"}],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}]})",
         "", ""},
        {"fim", R"({"model":"codestral-latest","prompt":"def f","suffix":"x","max_tokens":10})", "", "", endpoint::fim_completions},
        {"embeddings", R"({"model":"mistral-embed","input":["a","b"],"encoding_format":"float"})", "", "", endpoint::embeddings},
    });
}

TEST_CASE("model_rewrite and model_alias") {
    check_rows({
        {"rewrite tiny", R"({"model":"mistral-tiny","messages":[{"role":"user","content":"hi"}]})",
         R"({"model":"open-mistral-nemo","messages":[{"role":"user","content":"hi"}]})", "model_rewrite"},
        {"rewrite small", R"({"model":"mistral-small","messages":[]})", R"({"model":"mistral-small-latest","messages":[]})",
         "model_rewrite"},
        {"rewrite medium", R"({"model":"mistral-medium","messages":[]})",
         R"({"model":"mistral-small-latest","messages":[]})", "model_rewrite"},
        {"alias gpt-4o", R"({"model":"gpt-4o","messages":[]})", R"({"model":"mistral-large-latest","messages":[]})",
         "model_alias"},
        {"alias gpt-4o-mini (specific first)", R"({"model":"gpt-4o-mini-2024-07-18","messages":[]})",
         R"({"model":"mistral-small-latest","messages":[]})", "model_alias"},
        {"alias o3-mini", R"({"model":"o3-mini","messages":[]})", R"({"model":"magistral-small-latest","messages":[]})",
         "model_alias"},
        {"alias embeddings", R"({"model":"text-embedding-3-small","input":"x"})",
         R"({"model":"mistral-embed","input":"x"})", "model_alias", endpoint::embeddings},
        {"ada", R"({"model":"text-embedding-ada-002","input":"x"})", R"({"model":"mistral-embed","input":"x"})",
         "model_alias", endpoint::embeddings},
        {"current id: nothing", R"({"model":"mistral-large-latest","messages":[]})", "", ""},
        {"escaped key is the model key", R"({"mod\u0065l":"gpt-4o","messages":[]})",
         R"({"model":"mistral-large-latest","messages":[]})", "model_alias"},
        {"escaped model value", R"({"model":"gpt\u002d4o","messages":[]})",
         R"({"model":"mistral-large-latest","messages":[]})", "model_alias"},
        {"duplicate model: last wins, one key sent", R"({"model":"x","messages":[],"model":"gpt-4o"})",
         R"({"model":"mistral-large-latest","messages":[]})", "model_alias"},
    });
}

TEST_CASE("tool_choice_any") {
    constexpr std::string_view tool = R"("tools":[{"type":"function","function":{"name":"w","parameters":{}}}])";
    const std::string in = std::string(R"({"model":"mistral-small-latest",)") + std::string(hi) + "," +
                           std::string(tool) + R"(,"tool_choice":"required"})";
    const std::string want = std::string(R"({"model":"mistral-small-latest",)") + std::string(hi) + "," +
                             std::string(tool) + R"(,"tool_choice":"any"})";
    const std::string auto_in = std::string(R"({"model":"mistral-small-latest",)") + std::string(hi) + "," +
                                std::string(tool) + R"(,"tool_choice":"auto"})";
    const std::string object_in = std::string(R"({"model":"mistral-small-latest",)") + std::string(hi) + "," +
                                  std::string(tool) + R"(,"tool_choice":{"type":"function","function":{"name":"w"}}})";
    check_rows({
        {"required -> any", in, want, "tool_choice_any"},
        {"auto untouched", auto_in, "", ""},
        {"named function untouched", object_in, "", ""},
    });
}

TEST_CASE("params: renames, drops at every level, legacy functions") {
    check_rows({
        {"renames and drops",
         R"({"model":"mistral-small-latest","messages":[],"max_completion_tokens":50,"seed":7,"user":"u","store":false,"logit_bias":{"1":-100},"logprobs":false,"top_logprobs":0,"n":1})",
         R"({"model":"mistral-small-latest","messages":[],"max_tokens":50,"random_seed":7,"n":1})", "params"},
        {"the client's own max_tokens wins",
         R"({"model":"mistral-small-latest","messages":[],"max_tokens":5,"max_completion_tokens":50})",
         R"({"model":"mistral-small-latest","messages":[],"max_tokens":5})", "params"},
        {"stream_options dropped", R"({"model":"mistral-small-latest","messages":[],"stream":true,"stream_options":{"include_usage":true}})",
         R"({"model":"mistral-small-latest","messages":[],"stream":true})", "params"},
        {"OpenAI-only fields",
         R"({"model":"mistral-small-latest","messages":[],"metadata":{"a":"b"},"modalities":["text"],"audio":null,"web_search_options":{},"service_tier":"default","verbosity":"low","safety_identifier":"x","prompt_cache_key":"k","parallel_tool_calls":false,"reasoning_effort":"high"})",
         R"({"model":"mistral-small-latest","messages":[],"metadata":{"a":"b"},"prompt_cache_key":"k","parallel_tool_calls":false,"reasoning_effort":"high"})",
         "params"},
        {"null where Mistral wants a value", R"({"model":"mistral-small-latest","messages":[],"stream":null,"temperature":null})",
         R"({"model":"mistral-small-latest","messages":[],"temperature":null})", "params"},
        {"functions -> tools, function_call -> tool_choice",
         R"({"model":"mistral-small-latest","messages":[],"functions":[{"name":"w","parameters":{"type":"object"}}],"function_call":{"name":"w"}})",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"w"}}})",
         "params"},
        {"function_call auto", R"({"model":"mistral-small-latest","messages":[],"functions":[{"name":"w","parameters":{}}],"function_call":"auto"})",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{}}}],"tool_choice":"auto"})",
         "params"},
        {"tool and function keys filtered",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{},"strict":true,"x":1},"cache_control":{}}]})",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{},"strict":true}}]})",
         "params"},
        {"non-function tools dropped",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"custom","custom":{"name":"c"}},{"type":"function","function":{"name":"w","parameters":{}}}]})",
         R"({"model":"mistral-small-latest","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{}}}]})",
         "params"},
        {"response_format json_schema keys filtered",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"},"strict":true,"extra":1}}})",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"},"strict":true}}})",
         "params"},
        {"content part keys filtered (not content: cache_control)",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{}}]}]})",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]})",
         "params"},
        {"OpenAI input_audio object -> Mistral string",
         R"({"model":"voxtral-small-latest","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]})",
         R"({"model":"voxtral-small-latest","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":"AAAA"}]}]})",
         "params"},
        {"embeddings: dimensions, user, base64", R"({"model":"mistral-embed","input":["a"],"dimensions":256,"user":"u","encoding_format":"base64"})",
         R"({"model":"mistral-embed","input":["a"],"output_dimension":256})", "params", endpoint::embeddings},
        {"fim: seed, user", R"({"model":"codestral-latest","prompt":"x","seed":1,"user":"u","echo":false})",
         R"({"model":"codestral-latest","prompt":"x","random_seed":1})", "params", endpoint::fim_completions},
    });
}

TEST_CASE("ranges") {
    check_rows({
        {"clamped", R"({"model":"mistral-small-latest","messages":[],"temperature":2,"top_p":0,"random_seed":-5})",
         R"({"model":"mistral-small-latest","messages":[],"temperature":1.5,"top_p":0.000001,"random_seed":0})", "ranges"},
        {"after a rename", R"({"model":"mistral-small-latest","messages":[],"seed":-1})",
         R"({"model":"mistral-small-latest","messages":[],"random_seed":0})", "params,ranges"},
        {"penalties", R"({"model":"mistral-small-latest","messages":[],"presence_penalty":3.5,"frequency_penalty":-9})",
         R"({"model":"mistral-small-latest","messages":[],"presence_penalty":2,"frequency_penalty":-2})", "ranges"},
        {"in range: untouched", R"({"model":"mistral-small-latest","messages":[],"temperature":1.5,"top_p":1,"random_seed":0})", "", ""},
        {"exponent form", R"({"model":"mistral-small-latest","messages":[],"temperature":1e0})", "", ""},
        // More than 19 digits: simdjson 3.0.1's get_double reads this top_p (2.1e-6,
        // in range) as 2.55e-7, which the rule would have raised to 0.000001.
        {"long numbers read exactly",
         R"({"model":"mistral-small-latest","messages":[],"top_p":0.0000020999999999999999223})", "", ""},
    });
}

TEST_CASE("messages") {
    check_rows({
        {"developer -> system", R"({"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"}]})",
         R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]})", "messages"},
        {"name dropped except on tool messages",
         R"({"model":"m","messages":[{"role":"system","content":"s","name":"x"},{"role":"user","content":"hi","name":"alice"}]})",
         R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]})", "messages"},
        {"system parts -> string",
         R"({"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"Part one."},{"type":"text","text":"Part \"two\"."}]},{"role":"user","content":"hi"}]})",
         R"({"model":"m","messages":[{"role":"system","content":"Part one.\n\nPart \"two\"."},{"role":"user","content":"hi"}]})",
         "messages"},
        {"role after content", R"({"model":"m","messages":[{"content":[{"type":"text","text":"a"}],"role":"system"},{"role":"user","content":"hi"}]})",
         R"({"model":"m","messages":[{"role":"system","content":"a"},{"role":"user","content":"hi"}]})", "messages"},
        {"assistant extras dropped",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","refusal":null,"audio":null},{"role":"user","content":"c"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]})",
         "messages"},
        {"assistant refusal part -> text",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},{"role":"user","content":"c"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"no"}]},{"role":"user","content":"c"}]})",
         "params"},
    });
}

TEST_CASE("tool_call_ids and role_order") {
    const auto mapped = [](std::string_view id) {
        // The mapping is deterministic: learn it from one request, expect it in another.
        const auto out = run(std::string(R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":")") +
                             std::string(id) + R"(","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":")" +
                             std::string(id) + R"(","content":"r"}]})");
        REQUIRE(out.ok);
        const auto at = out.body.find(R"("id":")");
        return out.body.substr(at + 6, 9);
    };
    const std::string a = mapped("call_Ab3dEf9hIjKlMnOp");
    const std::string b = mapped("call_Zz9yXw8vUt7sRq6p");
    CHECK(a.size() == 9);
    CHECK(a != b);
    // Stable across versions too: a conversation's earlier turns map as they did.
    CHECK(a == "nINOxmbar");
    CHECK(b == "TAezXfZqR");
    CHECK(a == mapped("call_Ab3dEf9hIjKlMnOp"));
    for (char c : a + b) {
        CHECK(std::isalnum(static_cast<unsigned char>(c)));
    }

    check_rows({
        {"ids mapped the same way in calls and results",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_Ab3dEf9hIjKlMnOp","type":"function","function":{"name":"w","arguments":"{}"}},{"id":"call_Zz9yXw8vUt7sRq6p","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_Ab3dEf9hIjKlMnOp","content":"1","name":"w"},{"role":"tool","tool_call_id":"call_Zz9yXw8vUt7sRq6p","content":"2"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":")" + a +
             R"(","type":"function","function":{"name":"w","arguments":"{}"}},{"id":")" + b +
             R"(","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":")" + a +
             R"(","content":"1","name":"w"},{"role":"tool","tool_call_id":")" + b + R"(","content":"2"}]})",
         "tool_call_ids"},
        {"bridge user after tool",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"r"},{"role":"user","content":"more"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"r"},{"role":"assistant","content":"Understood."},{"role":"user","content":"more"}]})",
         "role_order"},
        {"trailing assistant gets prefix; empty assistant dropped",
         R"({"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":""},{"role":"user","content":"haiku"},{"role":"assistant","content":"Autumn","prefix":false}]})",
         R"({"model":"m","messages":[{"role":"user","content":"first"},{"role":"user","content":"haiku"},{"role":"assistant","content":"Autumn","prefix":true}]})",
         "role_order"},
        {"tool call without a result gets one",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}},{"id":"abcDEF124","function":{"name":"v","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"r"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}},{"id":"abcDEF124","function":{"name":"v","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"r"},{"role":"tool","tool_call_id":"abcDEF124","name":"v","content":"No result was returned for this tool call."}]})",
         "role_order"},
        {"two calling assistant turns in a row: each call's result right after its own turn",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}}]},{"role":"assistant","tool_calls":[{"id":"abcDEF124","function":{"name":"v","arguments":"{}"}}]}]})",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","name":"w","content":"No result was returned for this tool call."},{"role":"assistant","tool_calls":[{"id":"abcDEF124","function":{"name":"v","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF124","name":"v","content":"No result was returned for this tool call."}]})",
         "role_order"},
        {"a valid order is left alone",
         R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"b"}]})",
         "", ""},
        {"prefix already true", R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","prefix":true}]})", "", ""},
    });
}

TEST_CASE("tool_call_ids: ids a worker remembers map as they do afresh") {
    // A conversation with more ids than the worker's memo has slots (so some
    // share a slot and push each other out), of several lengths, one escaped.
    const auto conversation = [](int first, int count) {
        std::string body = R"({"model":"m","messages":[{"role":"user","content":"q"})";
        for (int i = first; i < first + count; ++i) {
            std::string id = "call_" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 23), 'x') + "Q";
            if (i % 50 == 7) {
                id += R"(A)";  // "A", escaped: the map reads the id unescaped
            }
            body += R"(,{"role":"assistant","tool_calls":[{"id":")" + id +
                    R"(","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":")" +
                    id + R"(","content":"r"})";
        }
        return body + "]}";
    };
    const auto normalized = [](const std::string& json, normalize::normalize_scratch& scratch) {
        static const config::proxy_config config = config_with();
        std::string buffer = json;
        buffer.append(normalize::body_padding, '\0');
        const auto result = normalize::normalize_request(shipped(), config, endpoint::chat_completions,
                                                         std::string_view(buffer.data(), json.size()), scratch);
        REQUIRE(result.ok());
        return std::string(result.request->body);
    };
    normalize::normalize_scratch worker;
    const std::string first = conversation(0, 300);
    const std::string once = normalized(first, worker);
    CHECK(once.find("tool_call_id\":\"call_") == std::string::npos);  // every id was mapped
    CHECK(normalized(first, worker) == once);  // remembered
    {
        normalize::normalize_scratch fresh;
        CHECK(normalized(first, fresh) == once);
    }
    // The next turn: the ids before and new ones, in a worker that saw others.
    const std::string next = conversation(150, 300);
    normalize::normalize_scratch fresh;
    CHECK(normalized(next, worker) == normalized(next, fresh));
    CHECK(normalized(next, worker) == normalized(next, fresh));
}

TEST_CASE("tools") {
    check_rows({
        {"empty tools removed with tool_choice", R"({"model":"m","messages":[],"tools":[],"tool_choice":"auto"})",
         R"({"model":"m","messages":[]})", "tools"},
        {"missing parameters defaulted", R"({"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"np"}}]})",
         R"({"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"np","parameters":{"type":"object","properties":{}}}}]})",
         "tools"},
        {"$schema and $id stripped",
         R"({"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"s","parameters":{"$schema":"http://json-schema.org/draft-07/schema#","$id":"urn:x","type":"object","properties":{"a":{"$id":"kept"}}}}}]})",
         R"({"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"s","parameters":{"type":"object","properties":{"a":{"$id":"kept"}}}}}]})",
         "tools"},
    });
}

TEST_CASE("json_mode_hint") {
    check_rows({
        {"fires", R"({"model":"m","messages":[{"role":"user","content":"give me the data"}],"response_format":{"type":"json_object"}})",
         R"({"model":"m","messages":[{"role":"system","content":"Answer with a single valid JSON object and nothing else."},{"role":"user","content":"give me the data"}],"response_format":{"type":"json_object"}})",
         "json_mode_hint"},
        {"response_format before messages", R"({"response_format":{"type":"json_object"},"model":"m","messages":[{"role":"user","content":"x"}]})",
         R"({"response_format":{"type":"json_object"},"model":"m","messages":[{"role":"system","content":"Answer with a single valid JSON object and nothing else."},{"role":"user","content":"x"}]})",
         "json_mode_hint"},
        {"a message mentions JSON", R"({"model":"m","messages":[{"role":"user","content":"answer in Json please"}],"response_format":{"type":"json_object"}})", "", ""},
        {"a text part mentions json", R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"as JSON"}]}],"response_format":{"type":"json_object"}})", "", ""},
        {"text format", R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})", "", ""},
        // Texts with escapes are read as text: "\u004aSON" is "JSON", "\\json" a backslash then "json",
        // and "j\u0073on" would be "json" (the case without a mention spells "js on").
        {"an escaped mention", R"({"model":"m","messages":[{"role":"user","content":"in \u004aSON\n"}],"response_format":{"type":"json_object"}})", "", ""},
        {"an escaped part mention", R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a\tb \\json"}]}],"response_format":{"type":"json_object"}})", "", ""},
        {"escapes, no mention", R"({"model":"m","messages":[{"role":"user","content":"j\u0073 on? \"no\""}],"response_format":{"type":"json_object"}})",
         R"({"model":"m","messages":[{"role":"system","content":"Answer with a single valid JSON object and nothing else."},{"role":"user","content":"j\u0073 on? \"no\""}],"response_format":{"type":"json_object"}})",
         "json_mode_hint"},
    });
}

TEST_CASE("vision_route and tool_capable") {
    const std::string image = R"({"model":"open-mistral-nemo","messages":[{"role":"user","content":[{"type":"text","text":"what?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iV"}}]}]})";
    auto out = run(image);
    REQUIRE(out.ok);
    CHECK(out.model_sent == "pixtral-12b-2409");
    CHECK(out.rules == "vision_route");
    CHECK(out.body.starts_with(R"({"model":"pixtral-12b-2409",)"));

    // A model with vision keeps its images.
    out = run(R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"image_url","image_url":"https://x/y.png"}]}]})");
    CHECK(out.rules == "");

    const std::string tools = R"({"model":"open-mistral-nemo","messages":[{"role":"user","content":"w?"}],"tools":[{"type":"function","function":{"name":"w","parameters":{}}}]})";
    out = run(tools);
    REQUIRE_FALSE(out.ok);
    CHECK(out.status == 400);
    CHECK(out.code == "model_without_tools");
    CHECK(out.message.find("open-mistral-nemo") != std::string::npos);
    CHECK(out.message.find("mistral-small-latest") != std::string::npos);

    // Rewritten into a model without tools: the check runs on the model sent.
    out = run(R"({"model":"mistral-tiny","messages":[],"tools":[{"type":"function","function":{"name":"w","parameters":{}}}]})");
    CHECK_FALSE(out.ok);

    const auto reroute = rules_with("tool_capable:\n  action: reroute\n  reroute_to: mistral-small-latest\n"
                                    "vision_route:\n  action: deny\n");
    out = run(tools, endpoint::chat_completions, *reroute);
    REQUIRE(out.ok);
    CHECK(out.model_sent == "mistral-small-latest");
    CHECK(out.rules == "tool_capable");
    out = run(image, endpoint::chat_completions, *reroute);
    REQUIRE_FALSE(out.ok);
    CHECK(out.code == "model_without_vision");
    CHECK(out.message.find("pixtral-12b-2409") != std::string::npos);
}

TEST_CASE("every rule can be switched off") {
    const auto off = rules_with(
        "switches: {model_rewrite: false, model_alias: false, tool_choice_any: false, params: false, ranges: false, "
        "messages: false, tool_call_ids: false, role_order: false, tools: false, tool_capable: false, "
        "json_mode_hint: false, vision_route: false, documents: false}\n");
    const std::string_view everything =
        R"({"model":"mistral-tiny","messages":[{"role":"developer","content":"d","name":"n"},{"role":"user","content":[{"type":"image_url","image_url":"u"},{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER","filename":"a.pdf"}}]},{"role":"assistant","tool_calls":[{"id":"call_1","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"r"},{"role":"user","content":"x"},{"role":"assistant","content":"p"}],"tools":[{"type":"function","function":{"name":"w","parameters":{"$schema":"s"}}}],"tool_choice":"required","user":"u","seed":-1,"temperature":3,"response_format":{"type":"json_object"}})";
    const auto out = run(everything, endpoint::chat_completions, *off);
    REQUIRE(out.ok);
    CHECK(out.rules == "");
    CHECK(out.body == everything);

    // One at a time: only that id stops firing.
    const auto on = run(everything);
    REQUIRE(on.ok);
    CHECK(on.rules ==
          "model_rewrite,tool_choice_any,params,ranges,messages,tool_call_ids,role_order,tools,json_mode_hint,vision_route,"
          "documents");
    for (std::string_view id : {"model_rewrite", "tool_choice_any", "params", "ranges", "messages", "tool_call_ids",
                                "role_order", "tools", "json_mode_hint", "vision_route", "documents"}) {
        CAPTURE(id);
        const auto one_off = rules_with("switches: {" + std::string(id) + ": false}\n");
        const auto result = run(everything, endpoint::chat_completions, *one_off);
        if (id == "vision_route") {
            // open-mistral-nemo keeps the tools: tool_capable refuses.
            CHECK_FALSE(result.ok);
            continue;
        }
        REQUIRE_MESSAGE(result.ok, result.message);
        CHECK(result.rules.find(id) == std::string::npos);
    }
}

TEST_CASE("documents: OpenAI file parts become what Mistral's chat reads") {
    constexpr std::string_view uuid = "3b7c1f2e-8a4d-4c6b-9e2f-1a2b3c4d5e6f";
    const std::string with_id = std::string(R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":")") +
                                std::string(uuid) + R"(","filename":"a.pdf"}}]}]})";
    const std::string mistral_file = std::string(R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file_id":")") +
                                     std::string(uuid) + R"("}]}]})";
    check_rows({
        // fires
        {"PDF data URL -> document_url with the same URL, filename -> document_name",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"summarize"},{"type":"file","file":{"filename":"doc.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQK"}}]}]})",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"summarize"},{"type":"document_url","document_url":"data:application/pdf;base64,JVBERi0xLjQK","document_name":"doc.pdf"}]}]})",
         "documents"},
        {"no filename: no document_name",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER"}}]}]})",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"document_url","document_url":"data:application/pdf;base64,JVBER"}]}]})",
         "documents"},
        {"media type in any case, with parameters; escapes copied as written",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:Application\/PDF;name=a.pdf;base64,JVBER","filename":null}}]}]})",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"document_url","document_url":"data:Application\/PDF;name=a.pdf;base64,JVBER"}]}]})",
         "documents"},
        {"file_data wins over file_id",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"x","file_data":"data:application/pdf;base64,JVBER"}}]}]})",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"document_url","document_url":"data:application/pdf;base64,JVBER"}]}]})",
         "documents"},
        {"a Mistral file id -> Mistral's file part", with_id, mistral_file, "documents"},
        {"an image -> image_url",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:image/png;base64,iVBOR","filename":"a.png"}}]}]})",
         R"({"model":"mistral-small-latest","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/png;base64,iVBOR"}]}]})",
         "documents"},
        {"an image to a model without vision: vision_route as for any image",
         R"({"model":"open-mistral-nemo","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:image/jpeg;base64,/9j/"}}]}]})",
         R"({"model":"pixtral-12b-2409","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/jpeg;base64,/9j/"}]}]})",
         "vision_route,documents"},
        // does not fire: Mistral's own document parts pass as they are
        {"Mistral's document_url part",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"document_url","document_url":"https://x.test/a.pdf","document_name":"a"}]}]})",
         "", ""},
        {"Mistral's file part", mistral_file, "", ""},
    });

    // Switched off: the part goes as the client wrote it (params does not empty it).
    const auto off = rules_with("switches: {documents: false}\n");
    const std::string_view openai = R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER","filename":"a.pdf"}}]}]})";
    const auto out = run(openai, endpoint::chat_completions, *off);
    REQUIRE(out.ok);
    CHECK(out.body == openai);
    CHECK(out.rules == "");

    // Malformed or untranslatable: refused, naming the part and what to send.
    const std::string bad_id = std::string(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"file","file":{"file_id":"file-abc","filename":"a.pdf"}}]}]})");
    check_refusals({
        {"raw base64, not a data URL",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"file","file":{"file_data":"JVBERi0xLjQK","filename":"a.pdf"}}]}]})",
         "messages[0].content[1]", "file_data must be a base64 data URL; got text starting 'JVBERi0xLjQK'. Send a PDF as file.file_data, a data URL (data:application/pdf;base64,", "documents"},
        {"a data URL that is not base64",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf,%25PDF"}}]}]})",
         "messages[0].content[0]", "must be a base64 data URL", "documents"},
        {"a type Mistral does not read",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/csv;base64,YSxi","filename":"a.csv"}}]}]})",
         "messages[0].content[0]", "file_data is text/csv, which Mistral's chat does not read; it reads documents of type application/pdf and images of type image/png, image/jpeg, image/webp, image/gif. Convert the file to PDF, or send its text in a text part.", "documents"},
        {"an OpenAI file id", bad_id, "messages[0].content[1]", "file.file_id 'file-abc' is not a Mistral file id (a UUID)", "documents"},
        {"neither file_data nor file_id",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf"}}]}]})",
         "messages[0].content[0]", "file has neither file_data nor file_id", "documents"},
        {"file_data not a string",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":5}}]}]})",
         "messages[0].content[0]", "got a number", "documents"},
        {"file not an object",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":"data:application/pdf;base64,JVBER"}]}]})",
         "messages[0].content[0]", "file must be an object with file_data (a data URL) or file_id, got a string", "documents"},
        {"filename not a string",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER","filename":7}}]}]})",
         "messages[0].content[0]", "file.filename must be a string, got a number", "documents"},
        {"a PDF in a system message",
         R"({"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"use this"},{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER"}}]},{"role":"user","content":"q"}]})",
         "messages[0].content[1]", "is a 'document_url' part, which a system message cannot hold: send it in a user message", "messages"},
    });
    // Bad JSON inside a file part is bad JSON.
    const auto broken = run(R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER",}}]}]})");
    CHECK_FALSE(broken.ok);
    CHECK(broken.status == 400);
    CHECK(broken.message.find("not valid JSON") != std::string::npos);
}

TEST_CASE("nothing the client sent is dropped: reshaped, or refused") {
    check_rows({
        {"an assistant refusal with no content becomes the content",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":null,"refusal":"I can't help with that."},{"role":"user","content":"c"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"I can't help with that."},{"role":"user","content":"c"}]})",
         "messages"},
        {"... after string content",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"refusal":"no \"that\"","role":"assistant","content":"b"},{"role":"user","content":"c"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b\n\nno \"that\""},{"role":"user","content":"c"}]})",
         "messages"},
        {"... after content parts",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"b"}],"refusal":"no"},{"role":"user","content":"c"}]})",
         R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"text","text":"no"}]},{"role":"user","content":"c"}]})",
         "messages"},
        {"thinking parts of a system message stay parts (Mistral takes them there)",
         R"({"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"thinking","thinking":[{"type":"text","text":"t"}]}]},{"role":"user","content":"q"}]})",
         "", ""},
    });

    // A legacy function call and its result: one tool call and its answer, not two lost messages.
    const std::string legacy =
        R"({"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"function_call":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"role":"function","name":"get_weather","content":"sunny"},{"role":"user","content":"thanks"}]})";
    const auto out = run(legacy);
    REQUIRE_MESSAGE(out.ok, out.message);
    const auto at = out.body.find(R"("id":")");
    REQUIRE(at != std::string::npos);
    const std::string id = out.body.substr(at + 6, 9);
    CHECK(std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }));
    CHECK(out.body ==
          R"({"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":")" + id +
              R"(","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","name":"get_weather","content":"sunny","tool_call_id":")" +
              id + R"("},{"role":"assistant","content":"Understood."},{"role":"user","content":"thanks"}]})");
    CHECK(out.rules == "messages,role_order");
    CHECK(run(legacy).body == out.body);  // the same id on every turn

    check_refusals({
        {"a part type Mistral does not know",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"video","video":{}}]}]})",
         "messages[0].content[1]", "is a 'video' part, which Mistral's chat does not take; send it as one of the part types Mistral takes: image_url, document_url, text",
         "params"},
        {"a part without a type",
         R"({"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]})", "messages[0].content[0]", "has no type",
         "params"},
        {"input_audio without data",
         R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"format":"wav"}}]}]})",
         "messages[0].content[0]", "input_audio has no data", "params"},
        {"an image in a system message",
         R"({"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":"https://x.test/a.png"}]},{"role":"user","content":"q"}]})",
         "messages[0].content[0]", "is a 'image_url' part, which a system message cannot hold", "messages"},
        {"a tool result that answers no call",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"tool","tool_call_id":"abcDEF123","content":"r"},{"role":"user","content":"x"}]})",
         "messages[1]", "is a tool result for tool_call_id 'abcDEF123' that answers no tool call of the assistant message before it", "role_order"},
        {"a second result for one call",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"abcDEF123","content":"r"},{"role":"tool","content":"again"}]})",
         "messages[3]", "is a tool result that answers no tool call", "role_order"},
        {"an assistant message that holds only OpenAI audio",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"audio":{"id":"audio_1"}},{"role":"user","content":"x"}]})",
         "messages[1]", "holds only an OpenAI audio answer (audio.id)", "role_order"},
        {"a custom tool call",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"custom","custom":{"name":"c","input":"x"}}]}]})",
         "messages[1].tool_calls[0]", "is a 'custom' tool call; Mistral's chat takes function calls only", "params"},
        {"tool_calls and a legacy function_call",
         R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"w","arguments":"{}"}}],"function_call":{"name":"v","arguments":"{}"}}]})",
         "messages[1]", "has both tool_calls and the legacy function_call", "messages"},
    });
}

TEST_CASE("routing, facts for the session and the limiter") {
    auto out = run(R"({"model":"codestral-latest","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":77})");
    REQUIRE(out.ok);
    CHECK(out.upstream == "codestral");
    CHECK(out.path == "/chat/completions");
    CHECK(out.request.stream);
    CHECK(out.request.include_usage);
    CHECK(out.request.max_tokens == 77u);
    CHECK(out.request.estimated_prompt_tokens > 0);

    out = run(R"({"model":"codestral-embed","input":"x","encoding_format":"base64"})", endpoint::embeddings);
    REQUIRE(out.ok);
    CHECK(out.upstream == "mistral");
    CHECK(out.path == "/embeddings");
    CHECK(out.request.encoding == normalize::encoding_format::base64);

    out = run(R"({"model":"codestral-latest","prompt":"x"})", endpoint::fim_completions);
    CHECK(out.upstream == "codestral");
    CHECK(out.path == "/fim/completions");

    // Legacy completions: routed, body untouched.
    out = run(R"({"model":"codestral-2405","prompt":"def","user":"u"})", endpoint::completions);
    REQUIRE(out.ok);
    CHECK(out.upstream == "codestral");
    CHECK(out.path == "/fim/completions");
    CHECK(out.model_sent == "codestral-latest");
    CHECK(out.request.legacy_to_fim);
    CHECK(out.rules == "");
    out = run(R"({"model":"gpt-3.5-turbo-instruct","prompt":"x"})", endpoint::completions);
    CHECK(out.path == "/chat/completions");
    CHECK(out.model_sent == "mistral-small-latest");

    const auto eu = config_with("region: eu\neu_strict: true\n");
    out = run(R"({"model":"mistral-small-latest","messages":[]})", endpoint::chat_completions, shipped(), &eu);
    CHECK(out.upstream == "mistral_eu");
    out = run(R"({"model":"codestral-latest","messages":[]})", endpoint::chat_completions, shipped(), &eu);
    REQUIRE_FALSE(out.ok);
    CHECK(out.status == 403);
    CHECK(out.code == "eu_residency_required");

}

TEST_CASE("the fired rules' names: each mask its own, though the last one's are kept") {
    normalize::rule_mask two;
    two.add(rules::rule_id::tools);
    two.add(rules::rule_id::params);
    normalize::rule_mask one;
    one.add(rules::rule_id::model_alias);
    std::string out;
    two.append_names(out);
    CHECK(out == "params,tools");
    out.clear();
    one.append_names(out);
    CHECK(out == "model_alias");
    out = "x;";
    two.append_names(out);  // appends, after a mask that was not the last one
    CHECK(out == "x;params,tools");
    out.clear();
    two.append_names(out, ", ");
    CHECK(out == "params, tools");
    out.clear();
    normalize::rule_mask{}.append_names(out);
    CHECK(out.empty());
}
