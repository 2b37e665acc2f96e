#include <doctest/doctest.h>

#include <simdjson.h>

#include <string>
#include <vector>

#include "responses/stream_transcoder.hpp"
#include "responses_support.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::responses;

namespace {

// data: lines of Mistral's stream, each a whole event.
std::string events(std::initializer_list<std::string_view> data) {
    std::string out;
    for (const auto d : data) {
        out += "data: ";
        out += d;
        out += "\n\n";
    }
    return out;
}

struct outcome {
    std::string out;
    rule_hits hits;
    bool done = false;
    bool failed = false;
    std::optional<usage_counts> usage;
};

outcome transcode(const std::string& body, stream_options options = {}, bool end = true,
                  const response_rules& rules = responses_test::shipped_rules()) {
    stream_transcoder transcoder(rules, options);
    outcome result;
    transcoder.on_body(body, result.out);
    if (end) {
        transcoder.on_end(result.out);
    }
    result.hits = transcoder.hits();
    result.done = transcoder.done();
    result.failed = transcoder.failed();
    result.usage = transcoder.usage();
    return result;
}

// The error event's message, parsed.
std::string error_message(const std::string& out) {
    const auto at = out.rfind("data: {\"error\"");
    REQUIRE(at != std::string::npos);
    std::string json = out.substr(at + 6);
    json.resize(json.size() - 2);
    simdjson::dom::parser parser;
    std::string_view message;
    REQUIRE(parser.parse(json)["error"]["message"].get(message) == simdjson::SUCCESS);
    return std::string(message);
}

const std::string_view head = R"("id":"c1","object":"chat.completion.chunk","created":5,"model":"m")";

std::string chunk(std::string_view choices, std::string_view extra = "") {
    std::string out = "{";
    out += head;
    out += R"(,"choices":[)";
    out += choices;
    out += ']';
    out += extra;
    out += '}';
    return out;
}

}  // namespace

TEST_CASE("stream: Mistral's plain answer passes, usage moved, [DONE] kept") {
    const std::string usage = R"({"prompt_tokens":3,"completion_tokens":2,"total_tokens":5})";
    const std::string body = events({
        chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"content":"Hi"},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"stop"})", ",\"usage\":" + usage),
        "[DONE]",
    });
    const std::string content = events({
        chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"content":"Hi"},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"stop"})"),
    });
    SUBCASE("without include_usage: usage stays in the chunk Mistral put it in") {
        const std::string kept = events({
            chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
            chunk(R"({"index":0,"delta":{"content":"Hi"},"finish_reason":null})"),
            chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"stop"})", ",\"usage\":" + usage),
        });
        const auto r = transcode(body);
        CHECK(r.out == kept + "data: [DONE]\n\n");
        CHECK(r.done);
        CHECK_FALSE(r.failed);
        REQUIRE(r.usage);
        CHECK(r.usage->total_tokens == 5);
        CHECK_FALSE(r.hits.has(response_rule::finish_reason));
    }
    SUBCASE("with include_usage: OpenAI's final chunk before [DONE]") {
        stream_options options;
        options.include_usage = true;
        const auto r = transcode(body, options);
        CHECK(r.out == content + "data: {" + std::string(head) + R"(,"choices":[],"usage":)" + usage + "}\n\n" +
                           "data: [DONE]\n\n");
    }
}

TEST_CASE("stream: per-chunk repairs") {
    struct row {
        std::string_view name;
        std::string in;   // one Mistral chunk (whole data)
        std::string out;  // the chunk sent to the client
        response_rule rule;
    };
    const row rows[] = {
        {"model_length -> length",
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":"model_length"})"),
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":"length"})"),
         response_rule::finish_reason},
        {"first delta without role gets it", chunk(R"({"index":0,"delta":{"content":"x"},"finish_reason":null})"),
         chunk(R"({"index":0,"delta":{"content":"x","role":"assistant"},"finish_reason":null})"),
         response_rule::stream_repair},
        {"role null on the first delta",
         chunk(R"({"index":0,"delta":{"role":null,"content":"x"},"finish_reason":null})"),
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null})"),
         response_rule::stream_repair},
        {"choice without delta or finish_reason", chunk(R"({"index":0})"),
         chunk(R"({"index":0,"delta":{"role":"assistant"},"finish_reason":null})"), response_rule::stream_repair},
        {"tool call with placeholder id, no index, no type",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"null","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"ID0","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"})"),
         response_rule::stream_repair},
        {"tool call with a real id keeps it; Mistral-only keys dropped",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"function","index":0,"extra":1,"function":{"name":"f","arguments":""}}]},"finish_reason":null})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"abcDEF123","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null})"),
         response_rule::message_repair},
        {"arguments as an object become a string",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"abcDEF123","type":"function","index":0,"function":{"name":"f","arguments":{"q":"x\"y"}}}]},"finish_reason":"tool_calls"})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{\"q\":\"x\\\"y\"}"}}]},"finish_reason":"tool_calls"})"),
         response_rule::message_repair},
        {"two parallel calls in one chunk",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"aaaaaaaaa","function":{"name":"f","arguments":"{}"}},{"id":"bbbbbbbbb","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"aaaaaaaaa","type":"function","function":{"name":"f","arguments":"{}"}},{"index":1,"id":"bbbbbbbbb","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"})"),
         response_rule::stream_repair},
        {"thinking chunks: content string plus reasoning_content",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm "},{"type":"text","text":"ok"}]},{"type":"text","text":"Answer"}]},"finish_reason":null})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","content":"Answer","reasoning_content":"hmm ok"},"finish_reason":null})"),
         response_rule::reasoning},
        {"thinking only: content null",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"a\nb"}]}]},"finish_reason":null})"),
         chunk(
             R"({"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"a\nb"},"finish_reason":null})"),
         response_rule::reasoning},
        {"text chunks with references: the text only",
         chunk(
             R"({"index":0,"delta":{"role":"assistant","content":[{"type":"text","text":"A"},{"type":"reference","reference_ids":[1]},{"text":"B"}]},"finish_reason":null})"),
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"AB"},"finish_reason":null})"),
         response_rule::reasoning},
        {"tool_calls null dropped (OpenAI's is an array or absent)",
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"x","tool_calls":null},"finish_reason":null})"),
         chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null})"),
         response_rule::message_repair},
        {"choice without index gets it", chunk(R"({"delta":{"role":"assistant","content":"x"},"finish_reason":null})"),
         chunk(R"({"delta":{"role":"assistant","content":"x"},"finish_reason":null,"index":0})"),
         response_rule::stream_repair},
        {"object missing is added",
         R"({"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null}]})",
         R"({"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null}],"object":"chat.completion.chunk"})",
         response_rule::stream_repair},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        auto result = transcode(events({r.in}), {}, false);
        std::string expected = events({r.out});
        // Generated ids are checked for shape, then replaced for the comparison.
        const auto at = result.out.find(R"("id":")", result.out.find("tool_calls"));
        if (r.out.find("\"ID0\"") != std::string::npos) {
            REQUIRE(at != std::string::npos);
            const std::string id = result.out.substr(at + 6, 9);
            for (const char c : id) {
                CHECK(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')));
            }
            CHECK(result.out[at + 15] == '"');
            result.out.replace(at + 6, 9, "ID0");
        }
        CHECK(result.out == expected);
        CHECK(result.hits.has(r.rule));
        CHECK_FALSE(result.done);
    }
}

TEST_CASE("stream: tool calls in separate chunks get increasing indexes and stable ids") {
    const std::string body = events({
        chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
        chunk(
            R"({"index":0,"delta":{"tool_calls":[{"id":"null","index":0,"function":{"name":"f","arguments":"{}"}}]},"finish_reason":null})"),
        chunk(
            R"({"index":0,"delta":{"tool_calls":[{"id":"null","index":0,"function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"})"),
        "[DONE]",
    });
    const auto first = transcode(body);
    const auto again = transcode(body);
    CHECK(first.out == again.out);  // stable: the same answer gives the same ids
    CHECK(first.out.find(R"("tool_calls":[{"index":0,"id":")") != std::string::npos);
    CHECK(first.out.find(R"("tool_calls":[{"index":1,"id":")") != std::string::npos);
    CHECK(first.out.find("\"null\"") == std::string::npos);

    // The ids differ between the two calls.
    simdjson::dom::parser parser;
    std::vector<std::string> ids;
    sse_splitter splitter;
    splitter.feed(first.out);
    sse_event event;
    while (splitter.next(event) == sse_status::event) {
        if (event.data == "[DONE]") {
            continue;
        }
        simdjson::dom::array calls;
        if (parser.parse(std::string(event.data))["choices"].at(0)["delta"]["tool_calls"].get(calls) ==
            simdjson::SUCCESS) {
            std::string_view id;
            REQUIRE(calls.at(0)["id"].get(id) == simdjson::SUCCESS);
            ids.emplace_back(id);
        }
    }
    REQUIRE(ids.size() == 2);
    CHECK(ids[0] != ids[1]);
}

TEST_CASE("stream: a continuation fragment (no name, no id) extends the last call") {
    const std::string body = events({
        chunk(
            R"({"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"})"),
    });
    const auto r = transcode(body, {}, false);
    CHECK(r.out.find(R"({"index":0,"function":{"arguments":":1}"}})") != std::string::npos);
}

TEST_CASE("stream: an event sent in several data: lines goes out as one line") {
    // SSE joins the data: lines with a line break; inside a value copied
    // through, that break is JSON whitespace and becomes a space.
    const std::string body =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"hi\",\"x\":{\"a\":1,\r\ndata: \"b\":2}},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    const auto r = transcode(body);
    CHECK(r.out ==
          "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,"
          "\"delta\":{\"role\":\"assistant\",\"content\":\"hi\",\"x\":{\"a\":1, \"b\":2}},\"finish_reason\":\"stop\"}]}\n\n"
          "data: [DONE]\n\n");
}

TEST_CASE("stream: errors end the stream without [DONE]") {
    const std::string ok = chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null})");
    struct row {
        std::string_view name;
        std::string body;
        std::string_view message_part;
    };
    const row rows[] = {
        {"Mistral error object",
         events(
             {ok,
              R"({"object":"error","message":"Service overloaded","type":"internal_server_error","param":null,"code":"3000"})",
              "[DONE]"}),
         "Service overloaded"},
        {"detail object", events({ok, R"({"detail":"Model overloaded"})"}), "Model overloaded"},
        {"message without choices", events({ok, R"({"message":"Unauthorized"})"}), "Unauthorized"},
        {"event: error", "event: error\ndata: {\"message\":\"boom\",\"choices\":[]}\n\n", "boom"},
        {"not JSON", events({ok, "{\"id\":\"c1\",\"cho"}), "not a JSON object"},
        {"trailing bytes", events({ok + "}"}), "not a JSON object"},
        {"malformed usage",
         events({chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"stop"})",
                       R"(,"usage":{"prompt_tokens":2,"x":tru})"),
                 "[DONE]"}),
         "not a JSON object"},
        {"malformed count in usage",
         events({chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"stop"})",
                       R"(,"usage":{"prompt_tokens":02,"total_tokens":2})"),
                 "[DONE]"}),
         "not a JSON object"},
        {"plain text", events({"Internal Server Error"}), "not a JSON object"},
        {"finish_reason error",
         events({chunk(R"({"index":0,"delta":{"content":"par"},"finish_reason":"error"})"), "[DONE]"}),
         "finish_reason \"error\""},
        {"cut before the end", events({ok}), "ended the stream before"},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto result = transcode(r.body);
        CHECK(result.done);
        CHECK(result.failed);
        CHECK(result.hits.has(response_rule::errors));
        CHECK(result.out.find("[DONE]") == std::string::npos);
        CHECK(error_message(result.out).find(r.message_part) != std::string::npos);
        CHECK(result.out.ends_with("}}\n\n"));
    }
}

TEST_CASE("stream: keys an upstream echoes in an error event are redacted") {
    const std::vector<std::string> secrets{"mk-secret-7f3a9c"};
    stream_options options;
    options.redact = errors::redactor(secrets, "client-bearer-51be");
    const std::string ok = chunk(R"({"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":null})");
    const std::string long_text = std::string(190, 'y') + "mk-secret-7f3a9c";  // past the quoted prefix's cut
    const std::pair<std::string, std::string_view> rows[] = {
        {events({ok, R"({"object":"error","message":"bad key mk-secret-7f3a9c","type":"x","code":"client-bearer-51be"})"}),
         "bad key [redacted]"},
        {events({ok, "not json: Bearer client-bearer-51be"}), "not json: Bearer [redacted]"},
        {events({ok, long_text}), "not a JSON object"},
    };
    for (const auto& row : rows) {
        // Named, not a structured binding: clang 14 cannot capture a binding in CAPTURE.
        const std::string& body = row.first;
        const std::string_view message_part = row.second;
        CAPTURE(body);
        const auto result = transcode(body, options);
        CHECK(result.failed);
        CHECK(error_message(result.out).find(message_part) != std::string::npos);
        CHECK(result.out.find("mk-secret") == std::string::npos);
        CHECK(result.out.find("client-bearer") == std::string::npos);
        CHECK(result.out.find("7f3a") == std::string::npos);
    }
}

TEST_CASE("stream: a finish_reason error keeps the content already produced") {
    const auto r = transcode(events({chunk(R"({"index":0,"delta":{"content":"par"},"finish_reason":"error"})")}));
    CHECK(r.out.starts_with(
        "data: " + chunk(R"({"index":0,"delta":{"content":"par","role":"assistant"},"finish_reason":null})") + "\n\n"));
}

TEST_CASE("stream: endings") {
    const std::string done_chunk = chunk(R"({"index":0,"delta":{"content":"x"},"finish_reason":"stop"})");
    SUBCASE("a complete answer without [DONE] still ends with it") {
        const auto r = transcode(events({done_chunk}));
        CHECK(r.out.ends_with("data: [DONE]\n\n"));
        CHECK_FALSE(r.failed);
    }
    SUBCASE("[DONE] lacking its blank line") {
        const auto r = transcode(events({done_chunk}) + "data: [DONE]");
        CHECK(r.out.ends_with("}\n\ndata: [DONE]\n\n"));
    }
    SUBCASE("an empty body is an error") { CHECK(transcode("").failed); }
    SUBCASE("events after [DONE] are ignored") {
        const auto r = transcode(events({done_chunk, "[DONE]", done_chunk}));
        CHECK(r.out.ends_with("data: [DONE]\n\n"));
        CHECK(r.out.find("[DONE]") == r.out.size() - 8);
    }
    SUBCASE("on_failure after the end writes nothing; before, one error event") {
        stream_transcoder t(responses_test::shipped_rules(), {});
        std::string out;
        t.on_body(events({done_chunk}), out);
        const auto failure = errors::make_error(502, "upstream broke off", "upstream_reset");
        t.on_failure(failure, out);
        CHECK(out.ends_with(errors::to_sse_event(failure)));
        const auto size = out.size();
        t.on_failure(failure, out);
        t.on_end(out);
        CHECK(out.size() == size);
    }
    SUBCASE("an oversized event is an error") {
        stream_options options;
        options.max_event_bytes = 64;
        const auto r = transcode(events({done_chunk}), options);
        CHECK(r.failed);
        CHECK(error_message(r.out).find("larger than 64 bytes") != std::string::npos);
    }
    SUBCASE("usage-only chunk with empty choices is not forwarded") {
        stream_options options;
        options.include_usage = true;
        const auto r = transcode(
            events({done_chunk,
                    std::string("{") + std::string(head) +
                        R"(,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})",
                    "[DONE]"}),
            options);
        CHECK(r.out ==
              events({chunk(R"({"index":0,"delta":{"content":"x","role":"assistant"},"finish_reason":"stop"})"),
                      std::string("{") + std::string(head) +
                          R"(,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})",
                      "[DONE]"}));
    }
}

TEST_CASE("stream: a custom finish_reason table") {
    response_rules rules;
    rules.finish_reasons = {{"model_length", "length"}, {"stop", "end_turn"}};
    const auto r =
        transcode(events({chunk(R"({"index":0,"delta":{"content":"x"},"finish_reason":"stop"})")}), {}, true, rules);
    CHECK(r.out.find(R"("finish_reason":"end_turn")") != std::string::npos);
}

TEST_CASE("stream: legacy text_completion shape") {
    stream_options options;
    options.shape = stream_shape::text_completion;
    const std::string fim_head = R"("id":"f1","object":"chat.completion.chunk","created":9,"model":"codestral-latest")";
    auto fim = [&](std::string_view choice, std::string_view extra = "") {
        return "{" + std::string(fim_head) + R"(,"choices":[)" + std::string(choice) + "]" + std::string(extra) + "}";
    };
    auto text = [&](std::string_view choice, std::string_view extra = "") {
        return R"({"id":"f1","object":"text_completion","created":9,"model":"codestral-latest","choices":[)" +
               std::string(choice) + "]" + std::string(extra) + "}";
    };
    const std::string body = events({
        fim(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
        fim(R"({"index":0,"delta":{"content":"x = \"1\""},"finish_reason":null})"),
        fim(R"({"index":0,"delta":{"content":[{"type":"text","text":"+2"}]},"finish_reason":null})"),
        fim(R"({"index":0,"delta":{"content":""},"finish_reason":"model_length"})",
            R"(,"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7})"),
        "[DONE]",
    });
    SUBCASE("chunks") {
        const auto r = transcode(body, options);
        CHECK(r.out == events({
                           text(R"({"text":"","index":0,"logprobs":null,"finish_reason":null})"),
                           text(R"({"text":"x = \"1\"","index":0,"logprobs":null,"finish_reason":null})"),
                           text(R"({"text":"+2","index":0,"logprobs":null,"finish_reason":null})"),
                           text(R"({"text":"","index":0,"logprobs":null,"finish_reason":"length"})",
                                R"(,"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7})"),
                           "[DONE]",
                       }));
        CHECK(r.hits.has(response_rule::text_completion));
        CHECK(r.hits.has(response_rule::finish_reason));
    }
    SUBCASE("include_usage") {
        options.include_usage = true;
        const auto r = transcode(body, options);
        CHECK(r.out.ends_with(
            R"(data: {"id":"f1","object":"text_completion","created":9,"model":"codestral-latest","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})"
            "\n\ndata: [DONE]\n\n"));
    }
}

TEST_CASE("stream: output does not depend on how the body is split") {
    const std::string body =
        ": ping\r\n\r\n" +
        events({
            chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"),
            chunk(R"({"index":0,"delta":{"content":"Bonjour \u00e9"},"finish_reason":null})"),
            chunk(
                R"({"index":0,"delta":{"tool_calls":[{"id":"null","function":{"name":"f","arguments":{"k":[1,2]}}}]},"finish_reason":null})"),
            chunk(R"({"index":0,"delta":{"content":""},"finish_reason":"model_length"})",
                  R"(,"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5})"),
            "[DONE]",
        });
    stream_options options;
    options.include_usage = true;
    const std::string whole = transcode(body, options).out;
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
        CAPTURE(cut);
        stream_transcoder t(responses_test::shipped_rules(), options);
        std::string out;
        std::string a = body.substr(0, cut);
        std::string b = body.substr(cut);
        t.on_body(a, out);
        a.assign(a.size(), '#');
        t.on_body(b, out);
        t.on_end(out);
        REQUIRE(out == whole);
    }
}

TEST_CASE("stream: two streams whose events alternate on one thread each come out as alone") {
    // The streams of a thread share one parser (stream_transcoder.cpp): what
    // one keeps between events must not depend on the other's parse.
    const std::string first = events({
        chunk(R"({"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null})"),
        chunk(
            R"({"index":0,"delta":{"tool_calls":[{"id":"null","index":0,"function":{"name":"f","arguments":"{}"}}]},"finish_reason":null})"),
        chunk(R"({"index":0,"delta":{"content":"lo"},"finish_reason":"tool_calls"})",
              R"(,"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5})"),
        "[DONE]",
    });
    std::string second_body = first;
    for (std::size_t at = second_body.find("\"c1\""); at != std::string::npos; at = second_body.find("\"c1\"", at)) {
        second_body.replace(at, 4, "\"c2\"");
    }
    const std::string second = second_body;
    const auto alone_first = transcode(first);
    const auto alone_second = transcode(second);
    REQUIRE(alone_first.out != alone_second.out);

    stream_transcoder a(responses_test::shipped_rules(), {});
    stream_transcoder b(responses_test::shipped_rules(), {});
    std::string out_a;
    std::string out_b;
    // Event by event, in turn (each "data: ...\n\n" fed whole).
    std::size_t at_a = 0;
    std::size_t at_b = 0;
    while (at_a < first.size() || at_b < second.size()) {
        const std::size_t end_a = std::min(first.find("\n\n", at_a), first.size() - 2) + 2;
        a.on_body(std::string_view(first).substr(at_a, end_a - at_a), out_a);
        at_a = end_a;
        const std::size_t end_b = std::min(second.find("\n\n", at_b), second.size() - 2) + 2;
        b.on_body(std::string_view(second).substr(at_b, end_b - at_b), out_b);
        at_b = end_b;
    }
    a.on_end(out_a);
    b.on_end(out_b);
    CHECK(out_a == alone_first.out);
    CHECK(out_b == alone_second.out);
}
