// bench_fake_upstream: a fast fake Mistral for the benchmark (never the
// bottleneck: answers are built once at start-up, requests are parsed only as
// far as routing needs, one coroutine per keep-alive connection).
//
//   POST .../chat/completions   fixed Mistral-shaped answer (a tool call), any model
//     with "stream": true       SSE: --chunks events, one every --interval-us
//                               (per request: headers x-fake-chunks, x-fake-interval-us)
//   POST .../embeddings         fixed answer, --embedding-dims floats
//   GET  /healthz               200
//   anything else               404 in Mistral's error shape
//
// --tls-cert FILE --tls-key FILE: the same answers over HTTPS (TLS 1.2/1.3,
// session tickets and a server session cache, so clients can resume). The
// connection handler is a template over the stream type: the plain path is
// the same code as without TLS. With TLS, SIGINT/SIGTERM print the count of
// handshakes and of resumed sessions on stderr before exiting.
//
// Prints "bench_fake_upstream listening on 127.0.0.1:PORT" on stderr once ready.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_lite.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

struct settings {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    unsigned threads = 1;
    std::uint64_t chunks = 64;
    std::uint64_t interval_us = 20000;
    unsigned embedding_dims = 1024;
    std::size_t max_request_bytes = 64 * 1024 * 1024;
    std::string tls_cert;  // PEM chain; with tls_key: serve HTTPS
    std::string tls_key;
};

// TLS handshakes done, and how many of them resumed a session.
std::atomic<std::uint64_t> tls_handshakes{0};
std::atomic<std::uint64_t> tls_resumed{0};

// Prebuilt answers, shared read-only by every connection.
struct answers {
    std::string chat;        // whole HTTP response
    std::string embeddings;  // whole HTTP response
    std::string healthz;
    std::string not_found;
    std::string bad_request;
    std::string stream_head;    // status line and headers of an SSE answer
    std::string first_event;    // HTTP chunk: role + first token
    std::string middle_event;   // HTTP chunk: one token
    std::string last_event;     // HTTP chunk: finish_reason + usage, then [DONE] and the last chunk
};

std::string http_response(int status, std::string_view reason, std::string_view content_type, std::string_view body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    out += "Content-Type: ";
    out += content_type;
    out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out += body;
    return out;
}

std::string http_chunk(std::string_view data) {
    char size[24];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    std::string out(size, static_cast<std::size_t>(n));
    out += data;
    out += "\r\n";
    return out;
}

answers build_answers(const settings& s) {
    answers a;
    constexpr std::string_view chat_body =
        R"({"id":"0a8f1e2b6d7c4e5f9a0b1c2d3e4f5a6b","object":"chat.completion","created":1732550400,)"
        R"("model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"",)"
        R"("tool_calls":[{"id":"D681PevKs","type":"function","function":{"name":"get_weather",)"
        R"("arguments":"{\"city\": \"Paris\", \"unit\": \"celsius\"}"},"index":0}],"prefix":false},)"
        R"("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":94,"total_tokens":117,"completion_tokens":23}})";
    a.chat = http_response(200, "OK", "application/json", chat_body);

    std::string embed = R"({"id":"5b0a7e3c9d1f4a2b8c6e0d4f2a1b3c5d","object":"list","data":[{"object":"embedding","embedding":[)";
    // Numbers written the way Mistral writes them (its API reference shows
    // -0.016632080078125 and 0.01309967041015625): half-precision values
    // printed exactly, 15 to 23 characters each. xorshift: the same every run.
    std::uint32_t x = 2463534242u;
    for (unsigned i = 0; i < s.embedding_dims; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        char number[40];
        const double mantissa = 1024.0 + static_cast<double>(x % 1024u);  // 11 bits, as in binary16
        const double v = ((x & 0x400000u) != 0 ? -mantissa : mantissa) / static_cast<double>(1u << (15 + (x >> 10) % 7));
        const int n = std::snprintf(number, sizeof number, "%s%.17g", i == 0 ? "" : ",", v);
        embed.append(number, static_cast<std::size_t>(n));
    }
    embed += R"(],"index":0}],"model":"mistral-embed","usage":{"prompt_tokens":6,"total_tokens":6,"completion_tokens":0}})";
    a.embeddings = http_response(200, "OK", "application/json", embed);

    a.healthz = http_response(200, "OK", "application/json", R"({"status":"ok"})");
    a.not_found = http_response(404, "Not Found", "application/json", R"({"detail":"Not Found"})");
    a.bad_request = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    a.stream_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";
    constexpr std::string_view prefix =
        R"(data: {"id":"7c1e0f2a3b4d4c5e8f9a0b1c2d3e4f50","object":"chat.completion.chunk","created":1732550400,"model":"mistral-small-latest","choices":[{"index":0,"delta":)";
    a.first_event = http_chunk(std::string(prefix) + R"({"role":"assistant","content":"Bon"},"finish_reason":null}]})" + "\n\n");
    a.middle_event = http_chunk(std::string(prefix) + R"({"content":"jour"},"finish_reason":null}]})" + "\n\n");
    a.last_event = http_chunk(std::string(prefix) +
                              R"({"content":"."},"finish_reason":"stop"}],"usage":{"prompt_tokens":94,"total_tokens":158,"completion_tokens":64}})" +
                              "\n\n") +
                   http_chunk("data: [DONE]\n\n") + "0\r\n\r\n";
    return a;
}

// Cheap check for "stream": true anywhere in the body (whitespace tolerant).
bool wants_stream(std::string_view body) noexcept {
    constexpr std::string_view key = "\"stream\"";
    for (auto pos = body.find(key); pos != std::string_view::npos; pos = body.find(key, pos + 1)) {
        auto i = pos + key.size();
        while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) {
            ++i;
        }
        if (i >= body.size() || body[i] != ':') {
            continue;
        }
        ++i;
        while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) {
            ++i;
        }
        return body.substr(i).starts_with("true");
    }
    return false;
}

template <class Stream>
asio::awaitable<bool> write_all(Stream& socket, std::string_view data) {
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(data.data(), data.size()), as_result);
    (void)n;
    co_return !ec;
}

template <class Stream>
asio::awaitable<bool> send_stream(Stream& socket, const answers& a, std::uint64_t chunks, std::uint64_t interval_us) {
    chunks = std::max<std::uint64_t>(chunks, 1);
    if (interval_us == 0) {
        std::string whole = a.stream_head;
        whole.reserve(whole.size() + a.middle_event.size() * chunks + a.last_event.size());
        whole += chunks == 1 ? std::string_view{} : std::string_view{a.first_event};
        for (std::uint64_t i = 2; i < chunks; ++i) {
            whole += a.middle_event;
        }
        whole += a.last_event;
        co_return co_await write_all(socket, whole);
    }
    // Head and first event leave together, then one event per interval on a
    // fixed schedule (a late wake-up does not shift the events after it).
    asio::steady_timer timer(socket.get_executor());
    const auto start = std::chrono::steady_clock::now();
    std::string first = a.stream_head + (chunks == 1 ? a.last_event : a.first_event);
    if (!co_await write_all(socket, first)) {
        co_return false;
    }
    for (std::uint64_t i = 1; i < chunks; ++i) {
        timer.expires_at(start + std::chrono::microseconds(interval_us * i));
        auto [ec] = co_await timer.async_wait(as_result);
        if (ec) {
            co_return false;
        }
        if (!co_await write_all(socket, i + 1 == chunks ? a.last_event : a.middle_event)) {
            co_return false;
        }
    }
    co_return true;
}

template <class Stream>
asio::awaitable<void> serve_connection(Stream& socket, const settings& s, const answers& a) {
    std::vector<char> buf(16 * 1024);
    std::size_t begin = 0;  // unread data is buf[begin, end)
    std::size_t end = 0;
    std::string chunked_body;
    auto read_more = [&]() -> asio::awaitable<bool> {
        if (begin > 0 && begin == end) {
            begin = end = 0;
        }
        if (end == buf.size()) {
            if (begin > 0) {
                std::memmove(buf.data(), buf.data() + begin, end - begin);
                end -= begin;
                begin = 0;
            } else if (buf.size() < s.max_request_bytes) {
                buf.resize(buf.size() * 2);
            } else {
                co_return false;
            }
        }
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf.data() + end, buf.size() - end), as_result);
        if (ec) {
            co_return false;
        }
        end += n;
        co_return true;
    };

    for (;;) {
        std::size_t head_size = 0;
        while ((head_size = bench::find_head_end({buf.data() + begin, end - begin})) == 0) {
            if (!co_await read_more()) {
                co_return;
            }
        }
        bench::head_info head;
        if (!bench::parse_head({buf.data() + begin, head_size}, true, head)) {
            co_await write_all(socket, a.bad_request);
            co_return;
        }
        // Copy what routing needs out of the buffer: reading the body may move it.
        const auto target = std::string_view(head.target).substr(0, head.target.find('?'));
        const bool is_post = head.method == "POST";
        const bool chat = is_post && target.ends_with("/chat/completions");
        const bool embeddings = is_post && target.ends_with("/embeddings");
        const bool healthz = target == "/healthz";
        const bool close = head.close;
        auto chunks = s.chunks;
        auto interval_us = s.interval_us;
        if (const auto v = bench::parse_number<std::uint64_t>(head.field("x-fake-chunks")); v) {
            chunks = *v;
        }
        if (const auto v = bench::parse_number<std::uint64_t>(head.field("x-fake-interval-us")); v) {
            interval_us = *v;
        }
        const bool chunked = head.chunked;
        const auto content_length = head.content_length.value_or(0);
        begin += head_size;

        std::string_view body;
        if (chunked) {
            chunked_body.clear();
            bench::chunked_decoder decoder;
            for (;;) {
                const auto used = decoder.feed({buf.data() + begin, end - begin},
                                               [&](std::string_view part) { chunked_body.append(part); });
                if (!used || chunked_body.size() > s.max_request_bytes) {
                    co_await write_all(socket, a.bad_request);
                    co_return;
                }
                begin += *used;
                if (decoder.done()) {
                    break;
                }
                if (!co_await read_more()) {
                    co_return;
                }
            }
            body = chunked_body;
        } else {
            if (content_length > s.max_request_bytes) {
                co_await write_all(socket, a.bad_request);
                co_return;
            }
            while (end - begin < content_length) {
                if (!co_await read_more()) {
                    co_return;
                }
            }
            body = {buf.data() + begin, static_cast<std::size_t>(content_length)};
            begin += static_cast<std::size_t>(content_length);
        }

        bool ok = true;
        if (chat && wants_stream(body)) {
            ok = co_await send_stream(socket, a, chunks, interval_us);
        } else if (chat) {
            ok = co_await write_all(socket, a.chat);
        } else if (embeddings) {
            ok = co_await write_all(socket, a.embeddings);
        } else if (healthz) {
            ok = co_await write_all(socket, a.healthz);
        } else {
            ok = co_await write_all(socket, a.not_found);
        }
        if (!ok || close) {
            co_return;
        }
    }
}

asio::awaitable<void> serve_plain(tcp::socket socket, const settings& s, const answers& a) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    co_await serve_connection(socket, s, a);
}

asio::awaitable<void> serve_tls(tcp::socket socket, asio::ssl::context& context, const settings& s, const answers& a) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    asio::ssl::stream<tcp::socket> stream(std::move(socket), context);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, as_result);
    if (ec) {
        co_return;
    }
    tls_handshakes.fetch_add(1, std::memory_order_relaxed);
    if (SSL_session_reused(stream.native_handle()) == 1) {
        tls_resumed.fetch_add(1, std::memory_order_relaxed);
    }
    co_await serve_connection(stream, s, a);
    // No close_notify exchange: the peer may be gone, and the bench never waits for it.
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::ssl::context* tls, const settings& s,
                                  const answers& a) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(as_result);
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                co_return;
            }
            // Out of descriptors or similar: pause instead of spinning.
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(10));
            co_await pause.async_wait(as_result);
            continue;
        }
        if (tls != nullptr) {
            asio::co_spawn(acceptor.get_executor(), serve_tls(std::move(socket), *tls, s, a), asio::detached);
        } else {
            asio::co_spawn(acceptor.get_executor(), serve_plain(std::move(socket), s, a), asio::detached);
        }
    }
}

[[noreturn]] void usage(const char* message) {
    std::cerr << "bench_fake_upstream: " << message << "\n"
              << "usage: bench_fake_upstream [--listen 127.0.0.1:PORT] [--threads N] [--chunks N]\n"
                 "                           [--interval-us US] [--embedding-dims N]\n"
                 "                           [--tls-cert FILE --tls-key FILE]\n";
    std::exit(2);
}

settings parse_args(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) {
                usage("missing value");
            }
            return argv[++i];
        };
        auto number = [&]() -> std::uint64_t {
            const auto v = bench::parse_number<std::uint64_t>(value());
            if (!v) {
                usage("bad number");
            }
            return *v;
        };
        if (arg == "--listen") {
            const auto v = value();
            const auto colon = v.rfind(':');
            if (colon == std::string_view::npos) {
                usage("--listen needs HOST:PORT");
            }
            s.host = std::string(v.substr(0, colon));
            const auto port = bench::parse_number<unsigned short>(v.substr(colon + 1));
            if (!port) {
                usage("bad port");
            }
            s.port = *port;
        } else if (arg == "--threads") {
            s.threads = static_cast<unsigned>(std::clamp<std::uint64_t>(number(), 1, 64));
        } else if (arg == "--chunks") {
            s.chunks = std::clamp<std::uint64_t>(number(), 1, 10'000'000);
        } else if (arg == "--interval-us") {
            s.interval_us = std::min<std::uint64_t>(number(), 60'000'000);
        } else if (arg == "--embedding-dims") {
            s.embedding_dims = static_cast<unsigned>(std::clamp<std::uint64_t>(number(), 1, 65536));
        } else if (arg == "--tls-cert") {
            s.tls_cert = std::string(value());
        } else if (arg == "--tls-key") {
            s.tls_key = std::string(value());
        } else {
            usage("unknown option");
        }
    }
    if (s.tls_cert.empty() != s.tls_key.empty()) {
        usage("--tls-cert and --tls-key go together");
    }
    if (!s.host.starts_with("127.")) {
        usage("loopback addresses only (127.x.x.x)");
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    const settings s = parse_args(argc, argv);
    const answers a = build_answers(s);
    std::optional<asio::ssl::context> tls;
    if (!s.tls_cert.empty()) {
        tls.emplace(asio::ssl::context::tls_server);
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
        boost::system::error_code ec;
        tls->use_certificate_chain_file(s.tls_cert, ec);
        if (!ec) {
            tls->use_private_key_file(s.tls_key, asio::ssl::context::pem, ec);
        }
        if (ec) {
            std::cerr << "bench_fake_upstream: cannot load " << s.tls_cert << " / " << s.tls_key << ": " << ec.message()
                      << "\n";
            return 1;
        }
        // Resumption as a real front end allows it: TLS 1.3 tickets (OpenSSL's
        // default) and, for TLS 1.2 session ids, the server-side cache.
        static constexpr unsigned char session_id_context[] = "bench_fake_upstream";
        SSL_CTX_set_session_id_context(tls->native_handle(), session_id_context, sizeof session_id_context - 1);
        SSL_CTX_set_session_cache_mode(tls->native_handle(), SSL_SESS_CACHE_SERVER);
    }
    asio::io_context io(static_cast<int>(s.threads));
    tcp::acceptor acceptor(io);
    const tcp::endpoint endpoint(asio::ip::make_address(s.host), s.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(4096);
    std::cerr << "bench_fake_upstream listening on " << s.host << ":" << acceptor.local_endpoint().port()
              << (tls ? " (TLS)" : "") << std::endl;

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
    asio::co_spawn(io, accept_loop(acceptor, tls ? &*tls : nullptr, s, a), asio::detached);

    std::vector<std::thread> extra;
    for (unsigned i = 1; i < s.threads; ++i) {
        extra.emplace_back([&io] { io.run(); });
    }
    io.run();
    for (auto& t : extra) {
        t.join();
    }
    if (tls) {
        std::cerr << "bench_fake_upstream: " << tls_handshakes.load() << " TLS handshakes, " << tls_resumed.load()
                  << " resumed" << std::endl;
    }
    return 0;
}
