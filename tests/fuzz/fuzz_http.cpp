// libFuzzer target: the HTTP front end of a passthrough request, without
// sockets. The client's bytes go through the same steps as in the session
// (proxy/http/downstream_session.cpp, proxy_streamed): the session's request parser,
// framing_error, canonical_path, then make_passthrough_head and
// offer_body_piece feeding a request_serializer, whose output is what the
// upstream would receive.
//
// Input: byte 0 sets how many bytes arrive at a time (1 to 64), so that split
// points vary; the rest is what a client sends (request head + body).
//
// Invariant: either the client is refused (the parser, the framing check or
// the path policy says no: a 4xx), or the bytes sent upstream parse, with a
// strict parser of their own, as exactly one complete request — nothing before
// it, nothing after it — whose body is the client's body and whose target is
// the canonical path.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../head_reading.hpp"
#include "fuzz_support.hpp"
#include "http/http_util.hpp"
#include "routing/endpoints.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::http;

namespace {

// Everything the serializer produces, appended to `out` (no stream: next/consume by hand).
bool drain(bhttp::request_serializer<bhttp::buffer_body>& serializer, std::string& out) {
    for (;;) {
        boost::system::error_code ec;
        bool wrote = false;
        serializer.next(ec, [&](boost::system::error_code&, const auto& buffers) {
            std::size_t n = 0;
            for (const auto buffer : beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(buffer.data()), buffer.size());
                n += buffer.size();
            }
            serializer.consume(n);
            wrote = true;
        });
        if (ec == bhttp::error::need_buffer) {
            return true;  // waits for the next body piece
        }
        if (ec) {
            return false;
        }
        if (serializer.is_done() || !wrote) {
            return true;
        }
    }
}

// The session's parsers read a head (a request's, an answer's) in the
// strict form themselves and leave any other to Beast's
// (http/head_parser.hpp): given the same bytes at once, their verdict, head
// and framing are those of Beast's own parser.
template <class Ours, class Beasts>
void check_reads_as_beast(std::string_view input) {
    Ours ours;
    Beasts beasts;
    const auto expected = head_reading::reading_of(beasts, input, 16 * 1024);
    const auto got = head_reading::reading_of(ours, input, 16 * 1024);
    fuzz::check(got == expected, "the session's parser reads a head as Beast's does", got + " / Beast: " + expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    // 1 to 64 bytes arrive at a time. (Beast 1.81 wrongly asserts that the
    // bytes after a final chunk's line come 5 or more at a time; the assertion
    // handler in proxy/http/asio_impl.cpp excuses that one.)
    const std::size_t piece = 1 + data[0] % 64;
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    check_reads_as_beast<request_parser, bhttp::request_parser<bhttp::empty_body>>(input);
    check_reads_as_beast<response_parser, bhttp::response_parser<bhttp::empty_body>>(input);

    request_parser parser;  // the session's (http/asio_fwd.hpp)
    parser.header_limit(16 * 1024);
    parser.body_limit(boost::none);
    parser.eager(false);

    // Bytes arrive `piece` at a time; what the parser has not consumed stays
    // in front of the next ones, as in the session's read buffer.
    std::size_t at = 0;     // consumed by the parser
    std::size_t avail = 0;  // arrived so far
    auto arrive = [&] {
        const bool more = avail < input.size();
        avail = std::min(input.size(), avail + piece);
        return more;
    };
    while (!parser.is_header_done()) {
        if (avail == at && !arrive()) {
            return 0;  // the head never ends: the session times out
        }
        boost::system::error_code ec;
        at += parser.put(asio::buffer(input.data() + at, avail - at), ec);
        if (ec == bhttp::error::need_more) {
            if (!arrive()) {
                return 0;
            }
            continue;
        }
        if (ec) {
            return 0;  // 400 or 431 from the session
        }
    }
    if (!framing_error(parser.get().base()).empty()) {
        return 0;  // 400 and close
    }
    const auto raw_target = std::string_view(parser.get().target());
    const auto canonical = routing::canonical_path(raw_target.substr(0, raw_target.find('?')));
    if (!canonical.error.empty()) {
        return 0;  // 400
    }
    fuzz::check(canonical.path.find("//") == std::string::npos, "no empty segment in a canonical path", canonical.path);
    fuzz::check(canonical.path.find("/./") == std::string::npos && canonical.path.find("/../") == std::string::npos,
                "no dot segment in a canonical path", canonical.path);

    bhttp::request<bhttp::buffer_body> upstream;
    make_passthrough_head(parser, canonical.path, "upstream.test", "Bearer k", upstream);
    bhttp::request_serializer<bhttp::buffer_body> serializer{upstream};
    std::string sent;
    std::string client_body;
    const bool has_body = !parser.is_done();
    fuzz::check(drain(serializer, sent), "the head serializes");

    char relay[97];
    while (has_body && !parser.is_done()) {
        if (avail == at && !arrive()) {
            return 0;  // the body never ends: the session times out and abandons the upstream request
        }
        parser.get().body().data = relay;
        parser.get().body().size = sizeof relay;
        boost::system::error_code ec;
        const std::size_t used = parser.put(asio::buffer(input.data() + at, avail - at), ec);
        at += used;
        const std::size_t got = sizeof relay - parser.get().body().size;
        if ((ec == bhttp::error::need_more || (!ec && used == 0)) && got == 0) {
            if (!arrive()) {
                return 0;
            }
            continue;
        }
        if (ec && ec != bhttp::error::need_buffer && ec != bhttp::error::need_more) {
            return 0;  // malformed body: 400, and the half-sent upstream request is abandoned with its connection
        }
        if (got == 0 && !parser.is_done()) {
            continue;
        }
        client_body.append(relay, got);
        offer_body_piece(upstream.body(), relay, got, parser.is_done());
        fuzz::check(drain(serializer, sent), "a body piece serializes", sent);
    }
    fuzz::check(serializer.is_done(), "the request is complete once the client's body ended", sent);

    // What the upstream sees: exactly one request.
    bhttp::request_parser<bhttp::string_body> check;
    check.header_limit(64 * 1024);
    check.body_limit(boost::none);
    check.eager(true);
    boost::system::error_code ec;
    const std::size_t consumed = check.put(asio::buffer(sent.data(), sent.size()), ec);
    fuzz::check(!ec && check.is_done(), "the upstream bytes are one complete request", sent);
    fuzz::check(consumed == sent.size(), "nothing follows the request upstream", sent);
    fuzz::check(check.get().body() == client_body, "the upstream body is the client's body", sent);
    fuzz::check(std::string_view(check.get().target()) == canonical.path, "the canonical path goes upstream", sent);
    return 0;
}
