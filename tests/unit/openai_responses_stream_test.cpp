#include <doctest/doctest.h>

#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

#include "openai_responses/stream.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::openai_responses;

namespace {

std::string events(std::initializer_list<std::string_view> data) {
    std::string out;
    for (const auto d : data) {
        out += "data: ";
        out += d;
        out += "\n\n";
    }
    return out;
}

struct harness {
    response_settings settings;
    counter_ids ids;
    stream_transcoder transcoder;
    std::string out;

    harness() : transcoder(make_context()) {}

    stream_context make_context() {
        settings.model_asked = "gpt-4o";
        stream_context c;
        c.response_id = "resp_x";
        c.created_at = 1700000000;
        c.settings = &settings;
        c.ids = &ids;
        c.now = [] { return std::int64_t{1700000009}; };
        return c;
    }
};

// Feeds `body` in pieces of `piece` bytes (0: whole), then ends it.
std::string transcode(std::string_view body, std::size_t piece = 0, bool end = true) {
    harness h;
    if (piece == 0) {
        h.transcoder.on_body(body, h.out);
    } else {
        for (std::size_t at = 0; at < body.size(); at += piece) {
            h.transcoder.on_body(body.substr(at, piece), h.out);
        }
    }
    if (end) {
        h.transcoder.on_end(h.out);
    }
    return h.out;
}

struct event {
    std::string type;
    std::string data;
};

// Splits the output into its events; every event is "event: T\ndata: J\n\n".
std::vector<event> split(std::string_view out) {
    std::vector<event> list;
    while (!out.empty()) {
        const auto end = out.find("\n\n");
        REQUIRE(end != std::string_view::npos);
        const std::string_view block = out.substr(0, end);
        out.remove_prefix(end + 2);
        REQUIRE(block.substr(0, 7) == "event: ");
        const auto newline = block.find('\n');
        REQUIRE(newline != std::string_view::npos);
        REQUIRE(block.substr(newline + 1, 6) == "data: ");
        list.push_back({std::string(block.substr(7, newline - 7)), std::string(block.substr(newline + 7))});
    }
    return list;
}

// Required members, from openai-openapi.yaml (the event schemas, Response,
// ResponseUsage and the output item schemas).
const std::map<std::string, std::vector<std::string>, std::less<>>& required_members() {
    static const std::map<std::string, std::vector<std::string>, std::less<>> list = {
        {"response.created", {"type", "response", "sequence_number"}},
        {"response.in_progress", {"type", "response", "sequence_number"}},
        {"response.completed", {"type", "response", "sequence_number"}},
        {"response.incomplete", {"type", "response", "sequence_number"}},
        {"response.failed", {"type", "response", "sequence_number"}},
        {"response.output_item.added", {"type", "output_index", "item", "sequence_number"}},
        {"response.output_item.done", {"type", "output_index", "item", "sequence_number"}},
        {"response.content_part.added",
         {"type", "item_id", "output_index", "content_index", "part", "sequence_number"}},
        {"response.content_part.done", {"type", "item_id", "output_index", "content_index", "part", "sequence_number"}},
        {"response.output_text.delta",
         {"type", "item_id", "output_index", "content_index", "delta", "sequence_number", "logprobs"}},
        {"response.output_text.done",
         {"type", "item_id", "output_index", "content_index", "text", "sequence_number", "logprobs"}},
        {"response.function_call_arguments.delta", {"type", "item_id", "output_index", "delta", "sequence_number"}},
        {"response.function_call_arguments.done",
         {"type", "item_id", "name", "output_index", "arguments", "sequence_number"}},
        {"response.reasoning_summary_part.added",
         {"type", "item_id", "output_index", "summary_index", "part", "sequence_number"}},
        {"response.reasoning_summary_part.done",
         {"type", "item_id", "output_index", "summary_index", "part", "sequence_number"}},
        {"response.reasoning_summary_text.delta",
         {"type", "item_id", "output_index", "summary_index", "delta", "sequence_number"}},
        {"response.reasoning_summary_text.done",
         {"type", "item_id", "output_index", "summary_index", "text", "sequence_number"}},
        {"error", {"type", "code", "message", "param", "sequence_number", "error"}},
        // Not events: the objects inside them.
        {"Response",
         {"id", "object", "created_at", "error", "incomplete_details", "instructions", "model", "tools", "output",
          "parallel_tool_calls", "metadata", "tool_choice", "temperature", "top_p"}},
        {"ResponseUsage",
         {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}},
        {"message", {"id", "type", "role", "content", "status"}},
        {"output_text", {"type", "text", "annotations", "logprobs"}},
        {"function_call", {"type", "call_id", "name", "arguments"}},
        {"reasoning", {"id", "summary", "type"}},
        {"summary_text", {"type", "text"}},
    };
    return list;
}

void check_required(simdjson::dom::object object, std::string_view schema) {
    const auto it = required_members().find(schema);
    REQUIRE(it != required_members().end());
    for (const std::string& name : it->second) {
        CAPTURE(schema);
        CAPTURE(name);
        CHECK(object.at_key(name).error() == simdjson::SUCCESS);
    }
}

void check_item(simdjson::dom::object item) {
    std::string_view type;
    REQUIRE(item.at_key("type").get(type) == simdjson::SUCCESS);
    check_required(item, type);
    simdjson::dom::array parts;
    if (item.at_key("content").get(parts) == simdjson::SUCCESS) {
        for (simdjson::dom::element part : parts) {
            simdjson::dom::object part_object;
            REQUIRE(part.get(part_object) == simdjson::SUCCESS);
            check_required(part_object, "output_text");
        }
    }
    if (item.at_key("summary").get(parts) == simdjson::SUCCESS) {
        for (simdjson::dom::element part : parts) {
            simdjson::dom::object part_object;
            REQUIRE(part.get(part_object) == simdjson::SUCCESS);
            check_required(part_object, "summary_text");
        }
    }
}

// Every event: valid JSON, `type` equal to the event: line, sequence_number
// counting from 0, the members its schema requires, and the same for the
// Response, usage, items and parts inside. Returns the event types in order.
std::vector<std::string> check_events(std::string_view out) {
    std::vector<std::string> types;
    simdjson::dom::parser parser;
    std::uint64_t expected = 0;
    for (const event& e : split(out)) {
        CAPTURE(e.data);
        simdjson::dom::object object;
        REQUIRE(parser.parse(e.data).get(object) == simdjson::SUCCESS);
        std::string_view type;
        REQUIRE(object.at_key("type").get(type) == simdjson::SUCCESS);
        CHECK(type == e.type);
        std::uint64_t sequence = 0;
        REQUIRE(object.at_key("sequence_number").get(sequence) == simdjson::SUCCESS);
        CHECK(sequence == expected++);
        check_required(object, type);
        simdjson::dom::object response;
        if (object.at_key("response").get(response) == simdjson::SUCCESS) {
            check_required(response, "Response");
            simdjson::dom::object usage;
            if (response.at_key("usage").get(usage) == simdjson::SUCCESS) {
                check_required(usage, "ResponseUsage");
            }
            simdjson::dom::array output;
            REQUIRE(response.at_key("output").get(output) == simdjson::SUCCESS);
            for (simdjson::dom::element item : output) {
                simdjson::dom::object item_object;
                REQUIRE(item.get(item_object) == simdjson::SUCCESS);
                check_item(item_object);
            }
        }
        simdjson::dom::object item;
        if (object.at_key("item").get(item) == simdjson::SUCCESS) {
            check_item(item);
        }
        types.emplace_back(type);
    }
    return types;
}

const std::string text_stream = events({
    R"({"id":"a1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
    R"({"id":"a1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})",
    R"({"id":"a1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"lo \"w\u00e9\""},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
    "[DONE]",
});

constexpr std::string_view response_tail =
    R"(,"parallel_tool_calls":true,"previous_response_id":null,"prompt_cache_key":null,"reasoning":null,"safety_identifier":null,"service_tier":"default","store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":null,"truncation":"disabled")";

}  // namespace

TEST_CASE("responses stream: a text answer, exactly") {
    const std::string out = transcode(text_stream);
    const std::string head =
        R"({"id":"resp_x","object":"response","created_at":1700000000,"status":"in_progress","background":false,"completed_at":null,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":"mistral-small-latest","output":[])" +
        std::string(response_tail) + R"(,"metadata":{}})";
    const std::string msg = "msg_000000000000000000000000000000000000000000000001";
    const std::string item_done =
        R"({"id":")" + msg +
        R"(","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello \"wé\""}],"role":"assistant"})";
    std::string expected;
    expected +=
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":" + head +
        "}\n\n";
    expected +=
        "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":" +
        head + "}\n\n";
    expected +=
        R"(event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":")" +
        msg + R"(","type":"message","status":"in_progress","content":[],"role":"assistant"}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":3,"item_id":")" +
        msg +
        R"(","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":")" +
        msg + R"(","output_index":0,"content_index":0,"delta":"Hel","logprobs":[]}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":5,"item_id":")" +
        msg + R"(","output_index":0,"content_index":0,"delta":"lo \"wé\"","logprobs":[]}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":6,"item_id":")" +
        msg + R"(","output_index":0,"content_index":0,"text":"Hello \"wé\"","logprobs":[]}

event: response.content_part.done
data: {"type":"response.content_part.done","sequence_number":7,"item_id":")" +
        msg +
        R"(","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello \"wé\""}}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":8,"output_index":0,"item":)" +
        item_done + R"(}

)";
    expected +=
        R"(event: response.completed
data: {"type":"response.completed","sequence_number":9,"response":{"id":"resp_x","object":"response","created_at":1700000000,"status":"completed","background":false,"completed_at":1700000009,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":"mistral-small-latest","output":[)" +
        item_done + "]" + std::string(response_tail) +
        R"(,"usage":{"input_tokens":3,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":5},"metadata":{}}}

)";
    CHECK(out == expected);
    check_events(out);

    harness h;
    h.transcoder.on_body(text_stream, h.out);
    CHECK(h.transcoder.done());
    CHECK_FALSE(h.transcoder.failed());
    CHECK(h.transcoder.status() == "completed");
    CHECK(h.transcoder.output_items() == "[" + item_done + "]");
    CHECK(h.transcoder.response_json().substr(0, 59) ==
          R"({"id":"resp_x","object":"response","created_at":1700000000,)");
    REQUIRE(h.transcoder.usage());
    CHECK(h.transcoder.usage()->total_tokens == 5);
    CHECK(h.transcoder.events_in() == 4);
    // After done(), nothing more is written.
    const std::size_t size = h.out.size();
    h.transcoder.on_body(text_stream, h.out);
    h.transcoder.on_end(h.out);
    CHECK(h.out.size() == size);
}

namespace {

const std::string thinking_tool_stream = events({
    R"({"id":"b2","object":"chat.completion.chunk","created":1,"model":"magistral-medium-latest","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"The user"}]}]},"finish_reason":null}]})",
    R"({"id":"b2","object":"chat.completion.chunk","created":1,"model":"magistral-medium-latest","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":" wants weather."}]}]},"finish_reason":null}]})",
    R"({"id":"b2","object":"chat.completion.chunk","created":1,"model":"magistral-medium-latest","choices":[{"index":0,"delta":{"content":"Checking."},"finish_reason":null}]})",
    R"({"id":"b2","object":"chat.completion.chunk","created":1,"model":"magistral-medium-latest","choices":[{"index":0,"delta":{"tool_calls":[{"id":"D681PevKs","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"},"index":0},{"id":"null","function":{"name":"get_time","arguments":{"tz":"CET"}},"index":1}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}})",
    "[DONE]",
});

}  // namespace

TEST_CASE("responses stream: thinking, text and whole tool calls") {
    const std::string out = transcode(thinking_tool_stream);
    const auto types = check_events(out);
    const std::vector<std::string> expected = {"response.created",
                                               "response.in_progress",
                                               "response.output_item.added",
                                               "response.reasoning_summary_part.added",
                                               "response.reasoning_summary_text.delta",
                                               "response.reasoning_summary_text.delta",
                                               "response.reasoning_summary_text.done",
                                               "response.reasoning_summary_part.done",
                                               "response.output_item.done",
                                               "response.output_item.added",
                                               "response.content_part.added",
                                               "response.output_text.delta",
                                               "response.output_text.done",
                                               "response.content_part.done",
                                               "response.output_item.done",
                                               "response.output_item.added",
                                               "response.function_call_arguments.delta",
                                               "response.output_item.added",
                                               "response.function_call_arguments.delta",
                                               "response.function_call_arguments.done",
                                               "response.output_item.done",
                                               "response.function_call_arguments.done",
                                               "response.output_item.done",
                                               "response.completed"};
    CHECK(types == expected);
    CHECK(out.find(R"("summary":[{"type":"summary_text","text":"The user wants weather."}])") != std::string::npos);
    CHECK(
        out.find(
            R"("status":"completed","arguments":"{\"city\": \"Paris\"}","call_id":"D681PevKs","name":"get_weather"})") !=
        std::string::npos);
    CHECK(out.find(R"("arguments":"{\"tz\":\"CET\"}","call_id":")") != std::string::npos);
    CHECK(out.find(R"("call_id":"null")") == std::string::npos);
    CHECK(out.find(R"("output_index":3,"item":{"id":"fc_)") != std::string::npos);
}

TEST_CASE("responses stream: tool call arguments in fragments (OpenAI style)") {
    const std::string body = events({
        R"({"id":"c3","model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"abcdefghi","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]})",
        R"({"id":"c3","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]},"finish_reason":null}]})",
        R"({"id":"c3","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]})",
        R"({"id":"c3","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
        R"({"id":"c3","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})",
        "[DONE]",
    });
    const std::string out = transcode(body);
    const auto types = check_events(out);
    const std::vector<std::string> expected = {"response.created",
                                               "response.in_progress",
                                               "response.output_item.added",
                                               "response.function_call_arguments.delta",
                                               "response.function_call_arguments.delta",
                                               "response.function_call_arguments.done",
                                               "response.output_item.done",
                                               "response.completed"};
    CHECK(types == expected);
    CHECK(out.find(R"("name":"f","arguments":"{\"a\":1}"})") != std::string::npos);
    // Usage that came after finish_reason is in response.completed.
    CHECK(out.find(R"("usage":{"input_tokens":1,)") != std::string::npos);
}

TEST_CASE("responses stream: every split point gives the same bytes") {
    for (const std::string* body : {&text_stream, &thinking_tool_stream}) {
        const std::string whole = transcode(*body);
        for (std::size_t piece = 1; piece <= body->size(); ++piece) {
            const std::string out = transcode(*body, piece);
            if (out != whole) {
                CAPTURE(piece);
                CHECK(out == whole);
                break;
            }
        }
        for (std::size_t cut = 1; cut < body->size(); ++cut) {
            harness h;
            h.transcoder.on_body(std::string_view(*body).substr(0, cut), h.out);
            h.transcoder.on_body(std::string_view(*body).substr(cut), h.out);
            h.transcoder.on_end(h.out);
            if (h.out != whole) {
                CAPTURE(cut);
                CHECK(h.out == whole);
                break;
            }
        }
    }
    // CRLF line ends and a missing [DONE] after a finished answer.
    std::string crlf;
    for (const char c : text_stream.substr(0, text_stream.size() - std::string_view("data: [DONE]\n\n").size())) {
        if (c == '\n') {
            crlf += "\r\n";
        } else {
            crlf += c;
        }
    }
    CHECK(transcode(crlf, 7) == transcode(text_stream));
}

TEST_CASE("responses stream: length, errors, cuts, failures") {
    SUBCASE("finish_reason length -> response.incomplete") {
        const std::string out = transcode(events({
            R"({"id":"d","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":16,"total_tokens":17}})",
            "[DONE]",
        }));
        const auto types = check_events(out);
        REQUIRE_FALSE(types.empty());
        CHECK(types.back() == "response.incomplete");
        CHECK(
            out.find(
                R"("status":"incomplete","background":false,"completed_at":null,"error":null,"incomplete_details":{"reason":"max_output_tokens"})") !=
            std::string::npos);
        CHECK(out.find(R"("type":"message","status":"incomplete")") != std::string::npos);
    }
    SUBCASE("a Mistral error object mid-stream -> error, response.failed") {
        harness h;
        h.transcoder.on_body(
            events({
                R"({"id":"e","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})",
                R"({"object":"error","message":"Service unavailable","type":"internal_error","param":null,"code":"3000"})",
            }),
            h.out);
        CHECK(h.transcoder.done());
        CHECK(h.transcoder.failed());
        CHECK(h.transcoder.status() == "failed");
        const auto types = check_events(h.out);
        REQUIRE(types.size() >= 2);
        CHECK(types[types.size() - 2] == "error");
        CHECK(types.back() == "response.failed");
        CHECK(h.out.find(R"("code":"3000","message":"Service unavailable","param":null)") != std::string::npos);
        // The same members nested under `error`, as OpenAI sends them: the SDKs throw on it.
        CHECK(
            h.out.find(
                R"("param":null,"error":{"type":"api_error","code":"3000","message":"Service unavailable","param":null}})") !=
            std::string::npos);
        CHECK(
            h.out.find(
                R"("status":"failed","background":false,"completed_at":null,"error":{"code":"server_error","message":"Service unavailable"})") !=
            std::string::npos);
        // The partial message is in the failed response, marked in progress.
        CHECK(
            h.out.find(
                R"("status":"in_progress","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hel"}])") !=
            std::string::npos);
        CHECK(h.transcoder.response_json().find(R"("status":"failed")") != std::string::npos);
        const std::size_t size = h.out.size();
        h.transcoder.on_end(h.out);
        CHECK(h.out.size() == size);
    }
    SUBCASE("event: error, detail, and error members are errors too") {
        for (std::string_view body :
             {std::string_view("event: error\ndata: {\"message\":\"x\"}\n\n"),
              std::string_view(
                  "data: {\"detail\":[{\"loc\":[\"body\"],\"msg\":\"bad\",\"type\":\"value_error\"}]}\n\n"),
              std::string_view("data: {\"error\":{\"message\":\"quota\",\"type\":\"rate_limit_error\"}}\n\n")}) {
            CAPTURE(body);
            const std::string out = transcode(body);
            const auto types = check_events(out);
            REQUIRE(types.size() == 4);
            CHECK(types[2] == "error");
            CHECK(types[3] == "response.failed");
        }
    }
    SUBCASE("finish_reason error -> failed") {
        const std::string out = transcode(events({
            R"({"id":"e","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":"error"}]})",
        }));
        const auto types = check_events(out);
        CHECK(types.back() == "response.failed");
        CHECK(out.find(R"("code":"upstream_generation_error")") != std::string::npos);
    }
    SUBCASE("a cut stream -> failed") {
        const std::string body = events({
            R"({"id":"f","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})",
        });
        const std::string out = transcode(body + "data: {\"id\":\"f\",\"choi");
        const auto types = check_events(out);
        CHECK(types.back() == "response.failed");
        CHECK(out.find("upstream_bad_event") != std::string::npos);
        const std::string cut = transcode(body);
        CHECK(check_events(cut).back() == "response.failed");
        CHECK(cut.find(R"("code":"upstream_stream_truncated")") != std::string::npos);
    }
    SUBCASE("not JSON -> failed") {
        const std::string out = transcode("data: <html>\n\n");
        CHECK(check_events(out).back() == "response.failed");
    }
    SUBCASE("on_failure mid-stream, and before anything came") {
        harness h;
        h.transcoder.on_body(
            events(
                {R"({"id":"g","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})"}),
            h.out);
        h.transcoder.on_failure(errors::make_error(504, "upstream stalled", "upstream_timeout"), h.out);
        CHECK(h.transcoder.failed());
        CHECK(check_events(h.out).back() == "response.failed");
        harness early;
        early.transcoder.on_failure(errors::make_error(429, "slow down"), early.out);
        const auto types = check_events(early.out);
        CHECK(types ==
              std::vector<std::string>{"response.created", "response.in_progress", "error", "response.failed"});
        CHECK(early.out.find(R"("error":{"code":"rate_limit_exceeded","message":"slow down"})") != std::string::npos);
        // No code given: the type stands for it, at the top and nested.
        CHECK(
            early.out.find(
                R"("code":"rate_limit_error","message":"slow down","param":null,"error":{"type":"rate_limit_error","code":"rate_limit_error","message":"slow down","param":null}})") !=
            std::string::npos);
    }
    SUBCASE("an oversized event -> failed") {
        harness h;
        (void)h;
        response_settings settings;
        counter_ids ids;
        stream_context c;
        c.settings = &settings;
        c.ids = &ids;
        c.max_event_bytes = 64;
        stream_transcoder t(std::move(c));
        std::string out;
        t.on_body("data: " + std::string(100, 'x'), out);
        CHECK(t.failed());
        CHECK(out.find("upstream_event_too_large") != std::string::npos);
    }
}

TEST_CASE("responses stream: two streams whose events alternate on one thread each come out as alone") {
    // The streams of a thread share one parser (openai_responses/stream.cpp):
    // what one keeps between events must not depend on the other's parse.
    const std::string alone_text = transcode(text_stream);
    const std::string alone_tools = transcode(thinking_tool_stream);
    harness a;
    harness b;
    std::size_t at_a = 0;
    std::size_t at_b = 0;
    const auto feed_one_event = [](harness& h, const std::string& body, std::size_t& at) {
        if (at >= body.size()) {
            return;
        }
        const std::size_t end = std::min(body.find("\n\n", at), body.size() - 2) + 2;
        h.transcoder.on_body(std::string_view(body).substr(at, end - at), h.out);
        at = end;
    };
    while (at_a < text_stream.size() || at_b < thinking_tool_stream.size()) {
        feed_one_event(a, text_stream, at_a);
        feed_one_event(b, thinking_tool_stream, at_b);
    }
    a.transcoder.on_end(a.out);
    b.transcoder.on_end(b.out);
    CHECK(a.out == alone_text);
    CHECK(b.out == alone_tools);
}
