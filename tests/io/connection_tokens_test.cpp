// Fields the client's Connection header names are hop-by-hop (RFC 9110
// §7.6.1): never forwarded upstream, however the names are cased and however
// many the header lists.
#include <doctest/doctest.h>

#include <string>

#include "http/http_util.hpp"

using namespace mistral_proxy::http;
namespace bhttp = boost::beast::http;

TEST_CASE("connection_tokens: the fields the Connection header names, any case, beyond the tokens kept inline") {
    wire_fields fields;
    CHECK_FALSE(connection_tokens(fields).names("keep-alive"));

    fields.insert(bhttp::field::connection, "keep-alive, X-Secret ,Upgrade");
    const connection_tokens few(fields);
    CHECK(few.names("x-secret"));
    CHECK(few.names("X-SECRET"));
    CHECK(few.names("keep-alive"));
    CHECK(few.names("upgrade"));
    CHECK_FALSE(few.names("x-secre"));
    CHECK_FALSE(few.names("x-secrets"));
    CHECK_FALSE(few.names("x-other"));

    std::string many;
    for (int i = 0; i < 12; ++i) {
        many += (i == 0 ? "" : ", ") + std::string("x-h") + std::to_string(i);
    }
    fields.clear();
    fields.insert(bhttp::field::connection, many);
    const connection_tokens long_list(fields);
    CHECK(long_list.names("x-h0"));
    CHECK(long_list.names("X-H11"));  // past the tokens kept inline
    CHECK_FALSE(long_list.names("x-h12"));
}

TEST_CASE("format_upstream_start drops the fields the client's Connection header names, and keeps the others") {
    wire_fields client;
    client.insert(bhttp::field::connection, "keep-alive, x-secret");
    client.insert("X-Secret", "do not forward");
    client.insert("X-Other", "forward");
    client.insert(bhttp::field::user_agent, "OpenAI/JS 4.104.0");
    std::string head;
    format_upstream_start(head, "/v1", "/chat/completions", "", client, "api.mistral.ai");
    CHECK(head.find("X-Secret") == std::string::npos);
    CHECK(head.find("do not forward") == std::string::npos);
    CHECK(head.find("Connection") == std::string::npos);
    CHECK(head.find("X-Other: forward\r\n") != std::string::npos);
    CHECK(head.find("User-Agent: OpenAI/JS 4.104.0\r\n") != std::string::npos);
    CHECK(head.rfind("POST /v1/chat/completions HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("an answer's fields its Connection header names are not passed on to the client") {
    wire_fields upstream;
    upstream.insert(bhttp::field::connection, "keep-alive, X-Trace");
    upstream.insert("X-Trace", "upstream-internal");
    upstream.insert(bhttp::field::content_type, "application/json");
    upstream.insert(bhttp::field::content_length, "5");
    upstream.insert("X-Other", "kept");
    head_fields to;
    copy_end_to_end_response_fields(upstream, to);
    std::string text;
    to.append_to(text);
    CHECK(text == "Content-Type: application/json\r\nX-Other: kept\r\n");
}
