#include <doctest/doctest.h>

#include <simdjson.h>

#include <string>
#include <vector>

#include "json/writer.hpp"
#include "errors/openai_error.hpp"

using namespace mistral_proxy::errors;
using mistral_proxy::json::append_json_string;
using mistral_proxy::json::json_string;

namespace {

struct parsed_error {
    std::string message;
    std::string type;
    std::optional<std::string> param;
    std::optional<std::string> code;
};

// Parses to_json() output and checks it is exactly {"error":{message,type,param,code}}.
parsed_error parse_output(const std::string& json) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE_MESSAGE(parser.parse(json).get(root) == simdjson::SUCCESS, json);
    simdjson::dom::object outer;
    REQUIRE(root.get(outer) == simdjson::SUCCESS);
    REQUIRE(outer.size() == 1);
    simdjson::dom::object error;
    REQUIRE(outer["error"].get(error) == simdjson::SUCCESS);
    REQUIRE(error.size() == 4);
    parsed_error out;
    std::string_view s;
    REQUIRE(error["message"].get(s) == simdjson::SUCCESS);
    out.message = std::string(s);
    REQUIRE(error["type"].get(s) == simdjson::SUCCESS);
    out.type = std::string(s);
    for (auto [name, slot] : {std::pair{"param", &out.param}, std::pair{"code", &out.code}}) {
        simdjson::dom::element value;
        REQUIRE(error[name].get(value) == simdjson::SUCCESS);
        if (!value.is_null()) {
            REQUIRE(value.get(s) == simdjson::SUCCESS);
            *slot = std::string(s);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("json_string escapes what RFC 8259 requires and repairs bad UTF-8") {
    struct row {
        std::string_view in;
        std::string_view out;
    };
    const row rows[] = {
        {"", R"("")"},
        {"plain", R"("plain")"},
        {"a\"b\\c", R"("a\"b\\c")"},
        {"\n\r\t\b\f", R"("\n\r\t\b\f")"},
        {std::string_view("\x00\x01\x1f", 3), R"("\u0000\u0001\u001f")"},
        {"/ and \x7f", "\"/ and \x7f\""},
        {"caf\xC3\xA9 \xF0\x9F\x98\x80", "\"caf\xC3\xA9 \xF0\x9F\x98\x80\""},
        {"\xFF", "\"\xEF\xBF\xBD\""},
        {"a\xC3", "\"a\xEF\xBF\xBD\""},                                                // truncated sequence
        {"\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},                                  // overlong
        {"\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},                  // surrogate
        {"\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},  // > U+10FFFF
    };
    for (const auto& r : rows) {
        CAPTURE(r.in);
        CHECK(json_string(r.in) == r.out);
    }
    std::string out = "x";
    append_json_string(out, "y");
    CHECK(out == R"(x"y")");
}

TEST_CASE("type_for_status") {
    const std::pair<unsigned, std::string_view> rows[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {409, "conflict_error"},
        {413, "invalid_request_error"},
        {415, "invalid_request_error"},
        {422, "invalid_request_error"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "api_error"},
        {504, "api_error"},
        {418, "invalid_request_error"},
        {405, "invalid_request_error"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.first);  // not a structured binding: clang 14 cannot capture one in CAPTURE's lambda
        CHECK(type_for_status(r.first) == r.second);
    }
}

TEST_CASE("make_error, to_json and to_sse_event") {
    const auto e = make_error(429, "slow \"down\"", "rate_limited", "model");
    CHECK(e.status == 429);
    CHECK(e.type == "rate_limit_error");
    CHECK(to_json(e) ==
          R"({"error":{"message":"slow \"down\"","type":"rate_limit_error","param":"model","code":"rate_limited"}})");
    CHECK(to_sse_event(e) == "data: " + to_json(e) + "\n\n");
    const auto plain = make_error(400, "bad");
    CHECK(to_json(plain) == R"({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}})");
}

TEST_CASE("translate_upstream_error: every Mistral shape") {
    struct row {
        std::string name;
        unsigned status;
        std::string body;
        std::string message;
        std::string type;
        std::optional<std::string> param;
        std::optional<std::string> code;
    };
    const row rows[] = {
        {"object error with string code", 400,
         R"({"object":"error","message":"Invalid model: mistral-tiny","type":"invalid_model","param":null,"code":"1500"})",
         "Invalid model: mistral-tiny", "invalid_request_error", std::nullopt, "1500"},
        {"object error with numeric code", 404,
         R"({"object":"error","message":"Model not found","type":"invalid_request_error","param":"model","code":3051})",
         "Model not found", "invalid_request_error", "model", "3051"},
        {"object error, unknown type goes to code", 400,
         R"({"object":"error","message":"Bad","type":"invalid_request_message_order","param":null,"code":null})", "Bad",
         "invalid_request_error", std::nullopt, "invalid_request_message_order"},
        {"object error, message is an object with detail", 422,
         R"({"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","user"],"msg":"Extra inputs are not permitted","input":"u"}]},"type":"invalid_request_error","param":null,"code":null})",
         "body.user: Extra inputs are not permitted (type=extra_forbidden)", "invalid_request_error", "user",
         std::nullopt},
        {"FastAPI 422, several entries", 422,
         R"({"detail":[{"type":"literal_error","loc":["body","messages",0,"role"],"msg":"Input should be 'user'","input":"bot","ctx":{"expected":"'user'"}},{"type":"missing","loc":["body","model"],"msg":"Field required"}]})",
         "body.messages.0.role: Input should be 'user' (type=literal_error); body.model: Field required (type=missing)",
         "invalid_request_error", "messages.0.role", std::nullopt},
        {"FastAPI entry without loc", 422, R"({"detail":[{"msg":"Something off"}]})", "Something off",
         "invalid_request_error", std::nullopt, std::nullopt},
        {"FastAPI loc only body", 422, R"({"detail":[{"loc":["body"],"msg":"Invalid JSON","type":"json_invalid"}]})",
         "body: Invalid JSON (type=json_invalid)", "invalid_request_error", std::nullopt, std::nullopt},
        {"detail string", 404, R"({"detail":"Not Found"})", "Not Found", "not_found_error", std::nullopt, std::nullopt},
        {"message and request_id", 401, R"({"message":"Unauthorized","request_id":"abc123"})", "Unauthorized",
         "authentication_error", std::nullopt, std::nullopt},
        {"rate limit message", 429, R"({"message":"Requests rate limit exceeded"})", "Requests rate limit exceeded",
         "rate_limit_error", std::nullopt, std::nullopt},
        {"already OpenAI shaped", 400,
         R"({"error":{"message":"bad thing","type":"invalid_request_error","param":"temperature","code":"bad_range"}})",
         "bad thing", "invalid_request_error", "temperature", "bad_range"},
        {"OpenAI shaped, members missing", 500, R"({"error":{"message":"boom"}})", "boom", "api_error", std::nullopt,
         std::nullopt},
        {"error as a string", 403, R"({"error":"Forbidden here"})", "Forbidden here", "permission_error", std::nullopt,
         std::nullopt},
        {"unknown JSON object", 500, R"({"foo":1})", R"({"foo":1})", "api_error", std::nullopt, std::nullopt},
        {"JSON array", 500, R"([1,2])", "[1,2]", "api_error", std::nullopt, std::nullopt},
        {"plain text", 502, "Bad gateway from nginx\n", "Bad gateway from nginx", "api_error", std::nullopt,
         std::nullopt},
        {"html", 503, "<html><body>down</body></html>", "<html><body>down</body></html>", "api_error", std::nullopt,
         std::nullopt},
        {"broken JSON kept as text", 500, R"({"message":)", R"({"message":)", "api_error", std::nullopt, std::nullopt},
        {"empty", 503, "", "upstream mistral answered 503 Service Unavailable with no body", "api_error", std::nullopt,
         std::nullopt},
        {"whitespace only", 429, " \r\n", "upstream mistral answered 429 Too Many Requests with no body",
         "rate_limit_error", std::nullopt, std::nullopt},
        {"JSON without text", 400, R"({"error":{"type":"x"}})",
         "upstream mistral answered 400 Bad Request without an error message", "invalid_request_error", std::nullopt,
         "x"},
        {"message null", 400, R"({"object":"error","message":null})",
         "upstream mistral answered 400 Bad Request without an error message", "invalid_request_error", std::nullopt,
         std::nullopt},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const auto e = translate_upstream_error(r.status, r.body, "mistral");
        CHECK(e.status == r.status);
        CHECK(e.message == r.message);
        CHECK(e.type == r.type);
        CHECK(e.param == r.param);
        CHECK(e.code == r.code);
        const auto parsed = parse_output(to_json(e));
        CHECK(parsed.message == r.message);
        CHECK(parsed.type == r.type);
        CHECK(parsed.param == r.param);
        CHECK(parsed.code == r.code);
    }
}

TEST_CASE("translate_upstream_error: hostile bodies still give valid, bounded JSON") {
    const std::string huge_text(100000, 'x');
    const std::string huge_json = R"({"message":")" + std::string(100000, 'y') + R"("})";
    std::string long_detail = R"({"detail":[)";
    for (int i = 0; i < 2000; ++i) {
        long_detail += R"({"loc":["body","messages",)" + std::to_string(i) + R"(],"msg":"bad","type":"t"},)";
    }
    long_detail += R"({"msg":"end"}]})";
    std::string utf8_cut(1023, 'a');
    utf8_cut += "\xE2\x82\xAC\xE2\x82\xAC";  // a 3-byte character straddles the 1 KB cut
    const std::string bodies[] = {
        huge_text,
        huge_json,
        long_detail,
        utf8_cut,
        "invalid \xFF\xFE utf-8 \xC3",
        std::string("nul\0inside", 10),
        "\"just a JSON string\"",
        "{\"message\":\"ok\"} trailing",
        R"({"message":"\u0000 control"})",
        std::string(5000, '{'),
    };
    for (const auto& body : bodies) {
        CAPTURE(body.substr(0, 40));
        const auto e = translate_upstream_error(500, body, "codestral");
        const auto parsed = parse_output(to_json(e));
        CHECK_FALSE(parsed.message.empty());
        CHECK(parsed.message.size() <= 8 * 1024 + 3);
        CHECK(parsed.type == "api_error");
    }
    // Plain text is cut at ~1 KB on a character boundary and marked.
    const auto cut = translate_upstream_error(500, huge_text, "mistral");
    CHECK(cut.message == std::string(1024, 'x') + "\xE2\x80\xA6");
    const auto boundary = translate_upstream_error(500, utf8_cut, "mistral");
    CHECK(boundary.message == std::string(1023, 'a') + "\xE2\x80\xA6");
    // Invalid UTF-8 is repaired on output, not dropped.
    const auto bad = parse_output(to_json(translate_upstream_error(502,
                                                                   "a\xFF"
                                                                   "b",
                                                                   "mistral")));
    CHECK(bad.message ==
          "a\xEF\xBF\xBD"
          "b");
    // Mistral's message text is kept verbatim, even when JSON-escaped on input.
    CHECK(translate_upstream_error(400, R"({"message":"line1\nline2 \"q\""})", "mistral").message ==
          "line1\nline2 \"q\"");
}

TEST_CASE("redact: every occurrence of every secret, overlapping runs as one") {
    const std::vector<std::string> secrets{"sk-abc123", "abc", "zz"};
    struct row {
        std::string_view name;
        std::string_view text;
        std::string_view extra;
        std::string_view expected;
    };
    const row rows[] = {
        {"nothing to hide", "all fine", "", "all fine"},
        {"one key", "bad key Bearer sk-abc123 sent", "", "bad key Bearer [redacted] sent"},
        {"twice, and a shorter secret elsewhere", "sk-abc123/sk-abc123 abc", "", "[redacted]/[redacted] [redacted]"},
        {"a secret inside another: the longer run wins", "xsk-abc123x", "", "x[redacted]x"},
        {"overlapping occurrences of one secret", "zzz", "", "[redacted]"},
        {"touching runs merge", "abczz", "", "[redacted]"},
        {"the request's extra secret", "token client-bearer-9 echoed", "client-bearer-9", "token [redacted] echoed"},
        {"empty text", "", "x", ""},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        CHECK(redact(r.text, secrets, r.extra) == r.expected);
    }
    CHECK(redact("abc", {}, "") == "abc");
    CHECK(redact("a", std::vector<std::string>{""}, "") == "a");  // an empty secret hides nothing

    openai_error error = make_error(400, "got sk-abc123", "sk-abc123", "p-abc");
    error.type = "abc";
    redactor(secrets).apply(error);
    CHECK(error.message == "got [redacted]");
    CHECK(error.code == "[redacted]");
    CHECK(error.param == "p-[redacted]");
    CHECK(error.type == "[redacted]");
    CHECK(redactor().empty());
    CHECK(redactor()("sk-abc123") == "sk-abc123");
}

TEST_CASE("translate_upstream_error: keys an upstream echoes never reach the message") {
    const std::vector<std::string> secrets{"mk-secret-7f3a9c"};
    const redactor hide(secrets, "client-bearer-51be");
    const std::string long_text = std::string(1020, 'x') + "mk-secret-7f3a9c and more";  // the key straddles the cut
    struct row {
        std::string_view name;
        unsigned status;
        std::string body;
        std::string_view expected_message;
    };
    const row rows[] = {
        {"Mistral's object error", 401,
         R"({"object":"error","message":"key Bearer mk-secret-7f3a9c is not valid","type":"invalid_request_error","param":null,"code":"mk-secret-7f3a9c"})",
         "key Bearer [redacted] is not valid"},
        {"FastAPI detail echoing the header", 422,
         R"({"detail":[{"loc":["header","authorization"],"msg":"bad value Bearer client-bearer-51be","type":"value_error"}]})",
         "header.authorization: bad value Bearer [redacted] (type=value_error)"},
        {"escaped in JSON", 400, R"({"message":"Bearer mk\u002dsecret\u002d7f3a9c"})", "Bearer [redacted]"},
        {"plain text", 500, "echo: Authorization: Bearer mk-secret-7f3a9c", "echo: Authorization: Bearer [redacted]"},
        {"cut to length after redaction", 502, long_text, ""},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto error = translate_upstream_error(r.status, r.body, "mistral", hide);
        const std::string json = to_json(error);
        CHECK(json.find("mk-secret") == std::string::npos);
        CHECK(json.find("client-bearer") == std::string::npos);
        CHECK(json.find("7f3a9c") == std::string::npos);
        if (!r.expected_message.empty()) {
            CHECK(error.message == r.expected_message);
        }
    }
    const auto cut = translate_upstream_error(502, long_text, "mistral", hide);
    CHECK(cut.message.substr(1020, 4) == "[red");  // the marker is cut, not the key
    // Without a redactor the text is kept as it was (the default, for callers with no keys).
    CHECK(translate_upstream_error(500, "Bearer mk-secret-7f3a9c", "mistral").message == "Bearer mk-secret-7f3a9c");
}
