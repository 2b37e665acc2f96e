// http::head_parser and wire_fields: the heads the proxy reads keep every
// field as the wire had it (order, spelling, repeats), whatever the pieces
// the bytes arrive in, and bodies go into the caller's buffer as Beast's
// buffer_body does.
#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "http/head_parser.hpp"
#include "http/http_util.hpp"
#include "../head_reading.hpp"

using namespace mistral_proxy::http;
namespace bhttp = boost::beast::http;

namespace {

// The head the openai npm SDK (6.x, Node 20) sends for a chat completion.
const std::string sdk_head =
    "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
    "host: 127.0.0.1:8080\r\n"
    "connection: keep-alive\r\n"
    "accept: application/json\r\n"
    "user-agent: OpenAI/JS 6.49.0\r\n"
    "x-stainless-retry-count: 0\r\n"
    "x-stainless-lang: js\r\n"
    "x-stainless-package-version: 6.49.0\r\n"
    "x-stainless-os: Linux\r\n"
    "x-stainless-arch: x64\r\n"
    "x-stainless-runtime: node\r\n"
    "x-stainless-runtime-version: v20.20.2\r\n"
    "authorization: Bearer sk-test\r\n"
    "content-type: application/json\r\n"
    "accept-language: *\r\n"
    "sec-fetch-mode: cors\r\n"
    "accept-encoding: gzip, deflate\r\n"
    "content-length: 11\r\n"
    "\r\n";

// Feeds `input` to the parser `piece` bytes at a time, as reads would hand
// it over (what the parser leaves unconsumed stays in front of the next
// bytes), until the head is done. The bytes consumed.
template <bool isRequest>
std::size_t parse_head(head_parser<isRequest>& parser, std::string_view input, std::size_t piece) {
    std::size_t at = 0;
    std::size_t avail = 0;
    while (!parser.is_header_done()) {
        avail = std::min(input.size(), avail + piece);
        boost::system::error_code ec;
        at += parser.put(boost::asio::buffer(input.data() + at, avail - at), ec);
        if (ec == bhttp::error::need_more) {
            REQUIRE(avail < input.size());
            continue;
        }
        REQUIRE_FALSE(ec);
    }
    return at;
}

std::vector<std::string> listed(const wire_fields& fields) {
    std::vector<std::string> out;
    for (const auto& field : fields) {
        out.push_back(std::string(field.name_string()) + "=" + std::string(field.value()));
    }
    return out;
}

}  // namespace

TEST_CASE("head_parser: the SDK's request head, whole or a byte at a time, keeps every field in order") {
    for (const std::size_t piece : {sdk_head.size(), std::size_t{1}, std::size_t{7}}) {
        CAPTURE(piece);
        request_parser parser;
        parser.eager(false);
        CHECK(parse_head(parser, sdk_head + "hello world", piece) == sdk_head.size());
        const auto& request = parser.get();
        CHECK(request.method() == bhttp::verb::post);
        CHECK(request.method_string() == "POST");
        CHECK(request.target() == "/v1/chat/completions?x=1");
        CHECK(request.version() == 11);
        CHECK(parser.keep_alive());
        const auto& fields = request.base();
        REQUIRE(fields.size() == 17);
        CHECK(listed(fields).front() == "host=127.0.0.1:8080");
        CHECK(listed(fields)[10] == "x-stainless-runtime-version=v20.20.2");
        CHECK(listed(fields).back() == "content-length=11");
        // Known names by Beast's enum, any name in any case.
        CHECK(request[bhttp::field::authorization] == "Bearer sk-test");
        CHECK(fields[bhttp::field::user_agent] == "OpenAI/JS 6.49.0");
        CHECK(fields["X-Stainless-OS"] == "Linux");
        CHECK(fields["x-stainless-os"] == "Linux");
        CHECK(fields["x-stainless"].empty());
        CHECK(fields[bhttp::field::expect].empty());
        CHECK(fields.count(bhttp::field::content_type) == 1);
        CHECK(fields.count("SEC-FETCH-MODE") == 1);
        CHECK(fields.count("x-absent") == 0);
        for (const auto& field : fields) {
            if (field.name_string() == "x-stainless-arch") {
                CHECK(field.name() == bhttp::field::unknown);
            }
            if (field.name_string() == "accept-encoding") {
                CHECK(field.name() == bhttp::field::accept_encoding);
            }
        }
    }
}

TEST_CASE("head_parser: a head larger than the first text block, repeated names kept apart") {
    std::string head = "GET /v1/models HTTP/1.0\r\nHost: h\r\n";
    const std::string long_value(3000, 'v');  // past the 1 KB the text starts with, and past 2 KB
    head += "X-Long: " + long_value + "\r\n";
    head += "Cookie: a=1\r\nCookie: b=2\r\nX-After: after\r\n\r\n";
    request_parser parser;
    CHECK(parse_head(parser, head, 5) == head.size());
    const auto& fields = parser.get().base();
    CHECK(parser.get().target() == "/v1/models");
    CHECK(parser.get().method_string() == "GET");
    CHECK(parser.get().version() == 10);
    CHECK_FALSE(parser.keep_alive());  // HTTP/1.0 without keep-alive
    CHECK(fields["x-long"] == long_value);
    CHECK(fields.count(bhttp::field::cookie) == 2);
    CHECK(fields[bhttp::field::cookie] == "a=1");  // the first
    CHECK(fields["X-AFTER"] == "after");
    CHECK(listed(fields) == std::vector<std::string>{"Host=h", "X-Long=" + long_value, "Cookie=a=1", "Cookie=b=2",
                                                     "X-After=after"});
}

TEST_CASE("head_parser: fields keep the wire's order, a repeated name too") {
    const std::string head = "GET /x HTTP/1.1\r\nCookie: a\r\nHost: h\r\ncookie: b\r\n\r\n";
    request_parser parser;
    CHECK(parse_head(parser, head, head.size()) == head.size());
    CHECK(listed(parser.get().base()) == std::vector<std::string>{"Cookie=a", "Host=h", "cookie=b"});
}

TEST_CASE("head_parser: an unknown method keeps its spelling") {
    const std::string head = "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n";
    request_parser parser;
    CHECK(parse_head(parser, head, head.size()) == head.size());
    CHECK(parser.get().method() == bhttp::verb::unknown);
    CHECK(parser.get().method_string() == "BREW");
}

TEST_CASE("head_parser: a chunked body goes into the caller's buffer, need_buffer when it is full") {
    const std::string head = "POST /v1/files HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const std::string input = head + body;
    request_parser parser;
    std::size_t at = parse_head(parser, input, input.size());
    parser.eager(true);  // the body's chunks one after another, as the session reads them
    std::string got;
    char room[4];
    int full = 0;
    while (!parser.is_done()) {
        parser.get().body().data = room;
        parser.get().body().size = sizeof room;
        boost::system::error_code ec;
        at += parser.put(boost::asio::buffer(input.data() + at, input.size() - at), ec);
        got.append(room, sizeof room - parser.get().body().size);
        if (ec == bhttp::error::need_buffer) {
            ++full;
            continue;
        }
        REQUIRE_FALSE(ec);
    }
    CHECK(got == "hello world");
    CHECK(at == input.size());
    CHECK(full >= 2);  // 11 bytes through 4 at a time
}

TEST_CASE("head_parser: without a buffer the body is not taken") {
    const std::string input = "POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    request_parser parser;
    std::size_t at = parse_head(parser, input, input.size());
    boost::system::error_code ec;
    at += parser.put(boost::asio::buffer(input.data() + at, input.size() - at), ec);
    CHECK(ec == bhttp::error::need_buffer);
    CHECK_FALSE(parser.is_done());
    char room[8];
    parser.get().body().data = room;
    parser.get().body().size = sizeof room;
    at += parser.put(boost::asio::buffer(input.data() + at, input.size() - at), ec);
    CHECK_FALSE(ec);
    CHECK(parser.is_done());
    CHECK(std::string_view(room, sizeof room - parser.get().body().size) == "abc");
}

TEST_CASE("head_parser: an answer's status line and fields") {
    const std::string input =
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-ratelimit-remaining-tokens-minute: 0\r\n"
        "Retry-After: 2\r\nContent-Length: 2\r\n\r\n{}";
    response_parser parser;
    CHECK(parse_head(parser, input, 3) == input.size() - 2);
    CHECK(parser.get().result_int() == 429);
    CHECK(parser.get().result() == bhttp::status::too_many_requests);
    CHECK(parser.get().reason() == "Too Many Requests");
    CHECK(parser.get()[bhttp::field::retry_after] == "2");
    CHECK(parser.get()["X-RateLimit-Remaining-Tokens-Minute"] == "0");
    CHECK(parser.get().base().size() == 4);
}

TEST_CASE("wire_fields: cleared and refilled, a head made by hand") {
    wire_fields fields;
    fields.insert(bhttp::field::content_type, "text/plain");
    fields.insert("x-custom", "1");
    CHECK(listed(fields) == std::vector<std::string>{"Content-Type=text/plain", "x-custom=1"});
    CHECK((*fields.begin()).name() == bhttp::field::content_type);
    fields.clear();
    CHECK(fields.empty());
    CHECK(fields.begin() == fields.end());
    fields.insert("Content-Length", "5");
    CHECK(fields[bhttp::field::content_length] == "5");
    CHECK(field_value(fields, bhttp::field::content_length) == "5");
}


// Each head, whole (with bytes after it) and at every prefix, reads the same
// through the session's parser as through Beast's: faults Beast's parser
// answers before a head ends are answered as early.
template <class Ours, class Beasts>
void reads_as_beast(const std::vector<std::string>& heads) {
    for (const auto& head : heads) {
        std::vector<std::string> inputs = {head + "hello"};
        for (std::size_t size = 1; size <= head.size(); ++size) {
            inputs.push_back(head.substr(0, size));
        }
        for (const std::string& input : inputs) {
            CAPTURE(input);
            Ours ours;
            Beasts beasts;
            const auto expected = head_reading::reading_of(beasts, input, 1024);
            CHECK(head_reading::reading_of(ours, input, 1024) == expected);
        }
    }
}

TEST_CASE("head_parser: a request head reads as Beast's own parser reads it, in the strict form or not") {
    // The strict form is read by head_parser itself, the rest by Beast's
    // parser: either way the verdict, the fields and the framing are Beast's.
    const std::vector<std::string> heads = {
        sdk_head,
        "GET / HTTP/1.1\r\n\r\n",
        "GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",   // repeated
        "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",   // conflicting
        "POST /x HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",                       // bad length
        "POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",  // smuggling shape
        "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",              // obs-fold: Beast joins the lines
        "GET /x HTTP/1.1\r\nX-Empty:\r\nX-Spaces: \t v \t\r\n\r\n",  // empty value, whitespace around one
        "GET /x HTTP/1.1\r\nCookie: a\r\nHost: h\r\ncookie: b\r\nCOOKIE: c\r\n\r\n",  // a name repeated apart
        "GET /x HTTP/1.1\r\nX-Bad : v\r\n\r\n",                       // space before the colon
        "GET /x HTTP/1.1\r\nX-Ctl: a\x01b\r\n\r\n",                   // a control byte in a value
        "GET /x HTTP/1.1\r\nX-Cr: a\rb\r\n\r\n",                      // a bare CR
        "GET /x HTTP/1.1\nHost: h\n\n",                               // bare LF line ends
        "GET /x HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
        "GET /x HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n",              // obs-text
        "GET /x HTTP/1.1\r\nX-Del: a\x7f\r\n\r\n",
        "GET /x HTTP/1.2\r\n\r\n",
        "GET /x HTTP/2.0\r\n\r\n",
        "GET /x HTTP/1.1 \r\n\r\n",
        "GET  /x HTTP/1.1\r\n\r\n",
        "G(T /x HTTP/1.1\r\n\r\n",
        "BREW /pot HTTP/1.1\r\n\r\n",
        "GET /x\x7f HTTP/1.1\r\n\r\n",
        "\r\nGET /x HTTP/1.1\r\n\r\n",
        ": v\r\n\r\n",
        "GET /x HTTP/1.1\r\n: v\r\n\r\n",
        "GET /x HTTP/1.1\r\nX: " + std::string(1100, 'v') + "\r\n\r\n",  // over the 1 KB limit
        "GET /x HTTP/1.1\r\nX: " + std::string(980, 'v') + "\r\n\r\n",   // just under it
    };
    reads_as_beast<request_parser, bhttp::request_parser<bhttp::empty_body>>(heads);
}

TEST_CASE("head_parser: a head cut short at the end of the input is a partial message, none at all the end of stream") {
    request_parser parser;
    boost::system::error_code ec;
    const std::string part = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n";
    CHECK(parser.put(boost::asio::buffer(part), ec) == 0);
    CHECK(ec == bhttp::error::need_more);
    CHECK(parser.got_some());
    parser.put_eof(ec);
    CHECK(ec == bhttp::error::partial_message);

    request_parser fresh;
    CHECK_FALSE(fresh.got_some());
}

TEST_CASE("head_parser: an answer's head reads as Beast's own parser reads it, in the strict form or not") {
    const std::vector<std::string> heads = {
        "HTTP/1.1 200 OK\r\ndate: Sat, 05 Dec 2026 05:00:00 GMT\r\ncontent-type: application/json\r\n"
        "content-length: 12\r\nconnection: keep-alive\r\nx-ratelimit-remaining-tokens-minute: 49000\r\n"
        "cf-ray: 8f1e2d3c4b5a6978-CDG\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n",  // to the close
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 \r\n\r\n",                  // empty reason
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests  \r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",  // reason kept as sent
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\n\r\n",
        "HTTP/1.1 200\r\n\r\n",                    // no SP after the status
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "http/1.1 200 OK\r\n\r\n",
    };
    reads_as_beast<response_parser, bhttp::response_parser<bhttp::empty_body>>(heads);
}
