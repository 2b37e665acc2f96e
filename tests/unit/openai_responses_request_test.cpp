#include <doctest/doctest.h>

#include <map>
#include <string>

#include "openai_responses/request.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::openai_responses;

namespace {

translated_request run(std::string_view body, const history& earlier = {}) {
    counter_ids ids;
    return translate_request(body, earlier, ids);
}

}  // namespace

TEST_CASE("responses request: input and items -> chat messages") {
    struct row {
        std::string_view name;
        std::string_view in;
        std::string_view chat;
    };
    const row
        rows
            [] =
                {
                    {"input string -> one user message", R"({"model":"gpt-4o","input":"Hi"})",
                     R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]})"},
                    {"instructions first, as a system message",
                     R"({"input":"Hi","instructions":"Be brief.","model":"m"})",
                     R"({"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]})"},
                    {"message items of every role; developer stays for the messages rule",
                     R"({"model":"m","input":[{"role":"developer","content":"D"},{"type":"message","role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}]})",
                     R"({"model":"m","messages":[{"role":"developer","content":"D"},{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}]})"},
                    {"parts: input_text, input_image (URL, data URL, detail), input_file",
                     R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"https://x/y.png","detail":"low"},{"type":"input_image","image_url":"data:image/png;base64,AAA=","detail":"auto"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"},{"type":"input_file","file_id":"f-1"}]}]})",
                     R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA=","detail":"auto"}},{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE","filename":"a.pdf"}},{"type":"file","file":{"file_id":"f-1"}}]}]})"},
                    {"assistant history: output_text and refusal parts -> text",
                     R"({"model":"m","input":[{"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"Hel","annotations":[]},{"type":"refusal","refusal":"lo"}]},{"role":"user","content":"go on"}]})",
                     R"({"model":"m","messages":[{"role":"assistant","content":"Hello"},{"role":"user","content":"go on"}]})"},
                    {"function_call items merge into one assistant message; outputs become tool messages",
                     R"({"model":"m","input":[{"role":"user","content":"weather?"},{"type":"reasoning","id":"rs_1","summary":[]},{"type":"function_call","call_id":"call_abc","name":"get","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call","call_id":"call_def","name":"get","arguments":"{}"},{"type":"function_call_output","call_id":"call_abc","output":"sunny"},{"type":"function_call_output","call_id":"call_def","output":[{"type":"input_text","text":"rain"}]}]})", R"({"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_def","type":"function","function":{"name":"get","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_abc","name":"get","content":"sunny"},{"role":"tool","tool_call_id":"call_def","name":"get","content":[{"type":"text","text":"rain"}]}]})"},
                    {"assistant text followed by a function call: one assistant message",
                     R"({"model":"m","input":[{"role":"assistant","content":"Let me check."},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}]})",
                     R"({"model":"m","messages":[{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","name":"f","content":"ok"}]})"},
                };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto t = run(r.in);
        REQUIRE_FALSE(t.error);
        CHECK(t.chat_body == r.chat);
        CHECK(t.chat_body.capacity() >= t.chat_body.size() + 64);
        CHECK(t.response_id == "resp_000000000000000000000000000000000000000000000001");
    }
}

TEST_CASE("responses request: settings -> chat fields, echo and flags") {
    const auto t = run(
        R"({"model":"gpt-4o","input":"Hi","tools":[{"type":"function","name":"get","description":"Get it","parameters":{"type":"object","properties":{}},"strict":true},{"type":"function","name":"bare","parameters":null,"strict":null}],"tool_choice":"required","parallel_tool_calls":false,"text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true,"description":"d"},"verbosity":"low"},"temperature":0.5,"top_p":0.9,"max_output_tokens":100,"reasoning":{"effort":"high","summary":"auto"},"metadata":{"k":"v"},"user":"u1","truncation":"disabled","include":["reasoning.encrypted_content"],"store":false,"previous_response_id":null,"service_tier":"auto","prompt_cache_key":"pk","safety_identifier":"s","background":false,"stream":true,"stream_options":{"include_obfuscation":false},"top_logprobs":0,"max_tool_calls":3})");
    REQUIRE_FALSE(t.error);
    CHECK(
        t.chat_body ==
        R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"get","description":"Get it","parameters":{"type":"object","properties":{}},"strict":true}},{"type":"function","function":{"name":"bare"}}],"tool_choice":"required","parallel_tool_calls":false,"response_format":{"type":"json_schema","json_schema":{"name":"out","description":"d","schema":{"type":"object"},"strict":true}},"temperature":0.5,"top_p":0.9,"max_tokens":100,"reasoning_effort":"high","stream":true,"stream_options":{"include_usage":true}})");
    CHECK(t.stream);
    CHECK_FALSE(t.store);
    const response_settings& s = t.settings;
    CHECK(s.model_asked == "gpt-4o");
    CHECK(
        s.tools ==
        R"([{"type":"function","name":"get","description":"Get it","parameters":{"type":"object","properties":{}},"strict":true},{"type":"function","name":"bare","parameters":null,"strict":false}])");
    CHECK(s.tool_choice == R"("required")");
    CHECK(s.parallel_tool_calls == "false");
    CHECK(
        s.text ==
        R"({"format":{"type":"json_schema","name":"out","description":"d","schema":{"type":"object"},"strict":true}})");
    CHECK(s.temperature == "0.5");
    CHECK(s.top_p == "0.9");
    CHECK(s.max_output_tokens == "100");
    CHECK(s.max_tool_calls == "3");
    CHECK(s.reasoning == R"({"effort":"high","summary":"auto"})");
    CHECK(s.metadata == R"({"k":"v"})");
    CHECK(s.user == R"("u1")");
    CHECK(s.prompt_cache_key == R"("pk")");
    CHECK(s.safety_identifier == R"("s")");
    CHECK(s.previous_response_id == "null");
    CHECK_FALSE(s.store);
    CHECK(t.notes.size() >= 3);  // verbosity, max_tool_calls, include, service_tier

    SUBCASE("tool_choice object and json_object / text formats") {
        const auto u = run(
            R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_object"}}})");
        REQUIRE_FALSE(u.error);
        CHECK(
            u.chat_body ==
            R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_object"}})");
        CHECK(u.settings.tool_choice == R"({"type":"function","name":"f"})");
        CHECK(u.settings.text == R"({"format":{"type":"json_object"}})");
        const auto v = run(R"({"model":"m","input":"x","text":{"format":{"type":"text"}},"tool_choice":"auto"})");
        REQUIRE_FALSE(v.error);
        CHECK(v.chat_body == R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})");
    }
    SUBCASE("defaults echoed when absent") {
        const auto u = run(R"({"model":"m","input":"x"})");
        REQUIRE_FALSE(u.error);
        CHECK(u.store);
        CHECK_FALSE(u.stream);
        CHECK(u.settings.tools == "[]");
        CHECK(u.settings.tool_choice == R"("auto")");
        CHECK(u.settings.temperature == "null");
        CHECK(u.settings.metadata == "{}");
        CHECK(u.settings.instructions == "null");
        CHECK(u.settings.user.empty());
    }
}

TEST_CASE("responses request: input items listed for the store") {
    const auto t = run(
        R"({"model":"m","input":[{"role":"user","content":"hi"},{"type":"message","role":"user","id":"msg_mine","content":[{"type":"input_text","text":"a"}]},{"role":"assistant","content":"yo"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"},{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}]}]})");
    REQUIRE_FALSE(t.error);
    CHECK(
        t.input_items ==
        R"([{"id":"msg_000000000000000000000000000000000000000000000002","type":"message","role":"user","content":[{"type":"input_text","text":"hi"}],"status":"completed"},)"
        R"({"id":"msg_mine","type":"message","role":"user","content":[{"type":"input_text","text":"a"}],"status":"completed"},)"
        R"({"id":"msg_000000000000000000000000000000000000000000000003","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"yo"}],"role":"assistant"},)"
        R"({"id":"fc_000000000000000000000000000000000000000000000004","type":"function_call","status":"completed","arguments":"{}","call_id":"c","name":"f"},)"
        R"({"id":"fco_000000000000000000000000000000000000000000000005","type":"function_call_output","call_id":"c","output":"r","status":"completed"},)"
        R"({"id":"rs_000000000000000000000000000000000000000000000006","type":"reasoning","summary":[{"type":"summary_text","text":"t"}]}])");
    CHECK(t.notes.size() == 1);  // reasoning items dropped
    // What was listed reads back as the same conversation.
    history earlier;
    earlier.previous_items = t.input_items;
    const auto again = run(R"({"model":"m","input":"next"})", earlier);
    REQUIRE_FALSE(again.error);
    CHECK(
        again.chat_body ==
        R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"assistant","content":"yo","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","name":"f","content":"r"},{"role":"user","content":"next"}]})");
}

TEST_CASE("responses request: previous conversation and item_reference") {
    const std::map<std::string, std::string, std::less<>> store = {
        {"msg_a",
         R"({"id":"msg_a","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Paris."}],"role":"assistant"})"},
    };
    history earlier;
    earlier.previous_items =
        R"([{"id":"msg_1","type":"message","role":"user","content":[{"type":"input_text","text":"Capital of France?"}],"status":"completed"},{"id":"msg_a","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Paris."}],"role":"assistant"}])";
    earlier.find_item = [&](std::string_view id) -> std::string_view {
        const auto it = store.find(id);
        return it == store.end() ? std::string_view() : std::string_view(it->second);
    };
    const auto t = run(
        R"({"model":"m","instructions":"New rules.","previous_response_id":"resp_1","input":[{"type":"item_reference","id":"msg_a"},{"id":"msg_a"},{"role":"user","content":"And Italy?"}]})",
        earlier);
    REQUIRE_FALSE(t.error);
    CHECK(
        t.chat_body ==
        R"({"model":"m","messages":[{"role":"system","content":"New rules."},{"role":"user","content":[{"type":"text","text":"Capital of France?"}]},{"role":"assistant","content":"Paris."},{"role":"assistant","content":"Paris."},{"role":"assistant","content":"Paris."},{"role":"user","content":"And Italy?"}]})");
    CHECK(t.settings.previous_response_id == R"("resp_1")");
    CHECK(t.input_items.substr(0, 21) == R"([{"id":"msg_a","type")");

    const auto refs = find_references(
        R"({"previous_response_id":"resp_1","input":[{"type":"item_reference","id":"msg_a"},{"id":"msg_b"},{"role":"user","id":"msg_c","content":"x"}]})");
    CHECK_FALSE(refs.error);
    CHECK(refs.previous_response_id == "resp_1");
    REQUIRE(refs.item_ids.size() == 2);
    CHECK(refs.item_ids[0] == "msg_a");
    CHECK(refs.item_ids[1] == "msg_b");
    CHECK(find_references("[1]").error);

    const auto unknown = run(
        R"({"model":"m","input":[{"role":"user","content":"x"},{"type":"item_reference","id":"msg_zz"}]})", earlier);
    REQUIRE(unknown.error);
    CHECK(unknown.error->status == 400);
    CHECK(unknown.error->param == "input[1].id");
    CHECK(unknown.error->code == "item_not_found");
    CHECK(unknown.chat_body.empty());

    CHECK(join_items("", R"([{"a":1}])", R"([ ])") == R"([{"a":1}])");
    CHECK(join_items(R"([{"a":1}])", R"([{"b":2},{"c":3}])", R"([{"d":4}])") == R"([{"a":1},{"b":2},{"c":3},{"d":4}])");
}

TEST_CASE("responses request: refusals name the field") {
    struct row {
        std::string_view in;
        std::string_view param;
        std::string_view code;
    };
    const row rows[] = {
        {R"({"model":"m","input":"x","tools":[{"type":"web_search"}]})", "tools[0].type", "unsupported_tool_type"},
        {R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"file_search","vector_store_ids":[]}]})",
         "tools[1].type", "unsupported_tool_type"},
        {R"({"model":"m","input":"x","tools":[{"type":"mcp","server_label":"s"}]})", "tools[0].type",
         "unsupported_tool_type"},
        {R"({"model":"m","input":"x","tools":[{"type":"computer_use_preview"}]})", "tools[0].type",
         "unsupported_tool_type"},
        {R"({"model":"m","input":"x","tools":[{"type":"function"}]})", "tools[0].name", "missing_required_parameter"},
        {R"({"model":"m","input":"x","background":true})", "background", "unsupported_parameter"},
        {R"({"model":"m","input":"x","frobnicate":1})", "frobnicate", "unknown_parameter"},
        {R"({"model":"m","input":"x","messages":[]})", "messages", "unknown_parameter"},
        {R"({"model":"m","input":"x","temperature":"hot"})", "temperature", "invalid_type"},
        {R"({"model":"m","input":"x","max_output_tokens":1.5})", "max_output_tokens", "invalid_type"},
        {R"({"model":"m","input":42})", "input", "invalid_type"},
        {R"({"model":5,"input":"x"})", "model", "invalid_type"},
        {R"({"input":"x"})", "model", "missing_required_parameter"},
        {R"({"model":"m"})", "input", "missing_required_parameter"},
        {R"({"model":"m","input":"x","tool_choice":"any"})", "tool_choice", "invalid_value"},
        {R"({"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}})", "tool_choice.type",
         "unsupported_tool_choice"},
        {R"({"model":"m","input":"x","tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}})",
         "tool_choice.type", "unsupported_tool_choice"},
        {R"({"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}})", "text.format.name",
         "missing_required_parameter"},
        {R"({"model":"m","input":"x","text":{"format":{"type":"yaml"}}})", "text.format.type", "invalid_value"},
        {R"({"model":"m","input":"x","prompt":{"id":"pmpt_1"}})", "prompt", "unsupported_parameter"},
        {R"({"model":"m","input":"x","conversation":"conv_1"})", "conversation", "unsupported_parameter"},
        {R"({"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]})", "input[0].type", "unsupported_item_type"},
        {R"({"model":"m","input":[{"role":"tool","content":"x"}]})", "input[0].role", "invalid_value"},
        {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1","detail":"auto"}]}]})",
         "input[0].content[0].file_id", "unsupported_parameter"},
        {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x/a.pdf"}]}]})",
         "input[0].content[0].file_url", "unsupported_parameter"},
        {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]})", "input[0].content[0].type",
         "invalid_value"},
        {R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})", "input[0].call_id",
         "missing_required_parameter"},
        {R"({"model":"m","input":[{"type":"function_call_output","call_id":"c"}]})", "input[0].output",
         "missing_required_parameter"},
        {R"({"model":"m","input":[{"type":"item_reference","id":"msg_1"}]})", "input[0].id", "item_not_found"},
        {R"({"model":"m","input":["x"]})", "input[0]", "invalid_type"},
    };
    for (const row& r : rows) {
        CAPTURE(r.in);
        const auto t = run(r.in);
        REQUIRE(t.error);
        CHECK(t.error->status == 400);
        CHECK(t.error->type == "invalid_request_error");
        CHECK(t.error->param.value_or("") == r.param);
        CHECK(t.error->code.value_or("") == r.code);
        CHECK_FALSE(t.error->message.empty());
        CHECK(t.chat_body.empty());
    }
    SUBCASE("not JSON, not an object, trailing bytes, bad UTF-8") {
        for (std::string_view bad : {R"({"model":"m","input":"x")", "[1,2]", R"({"model":"m","input":"x"}})", "",
                                     "{\"model\":\"m\",\"input\":\"\xff\"}"}) {
            CAPTURE(bad);
            const auto t = run(bad);
            REQUIRE(t.error);
            CHECK(t.error->status == 400);
        }
    }
    SUBCASE("the built-in tool is named in the message") {
        const auto t = run(R"({"model":"m","input":"x","tools":[{"type":"web_search"}]})");
        REQUIRE(t.error);
        CHECK(t.error->message.find("'web_search'") != std::string::npos);
        CHECK(t.error->message.find("function") != std::string::npos);
    }
}

TEST_CASE("responses request: a large body (a 3 MB data URL) goes through") {
    const std::string data(3 * 1024 * 1024, 'A');
    const std::string body =
        R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file","filename":"big.pdf","file_data":"data:application/pdf;base64,)" +
        data + R"("}]}]})";
    const auto t = run(body);
    REQUIRE_FALSE(t.error);
    CHECK(t.chat_body.size() > data.size());
    CHECK(t.input_items.size() > data.size());
    // And the next small one still works (the parser was given back).
    CHECK_FALSE(run(R"({"model":"m","input":"x"})").error);
}

TEST_CASE("responses ids: OpenAI's look") {
    counter_ids counter(7);
    CHECK(counter.make("resp_") == "resp_000000000000000000000000000000000000000000000007");
    CHECK(counter.make("msg_") == "msg_000000000000000000000000000000000000000000000008");
    random_ids random;
    const std::string a = random.make("resp_");
    const std::string b = random.make("resp_");
    CHECK(a.size() == 5 + 48);
    CHECK(a.substr(0, 5) == "resp_");
    CHECK(a.find_first_not_of("0123456789abcdef", 5) == std::string::npos);
    CHECK(a != b);
}
