// Upstream connections per worker: connect, TLS with session resumption,
// keep-alive reuse of clean connections only (see upstream_pool.hpp).
#include "http/upstream_pool.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

#include "config/duration.hpp"
#include "http/socket_readiness.hpp"
#include "http/system_cas.hpp"

namespace mistral_proxy::http {

namespace {

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

// An idle keep-alive connection is only worth reusing if the server has not
// closed it meanwhile: a readable socket at rest means EOF, a reset or stray
// bytes, and each of those makes it unusable; so do bytes already read past
// the last answer. When the reactor has seen nothing arrive since the last
// answer's read emptied the socket, the kernel is not asked again; what
// arrived since its last poll is the race a closed kept-alive connection's
// free retry covers (upstream_exchange.cpp), as it covers a close in flight.
bool still_open(upstream_connection& connection) {
    auto& socket = connection.tcp().socket();
    if (!socket.is_open() || connection.read_buffer().size() != 0) {
        return false;
    }
    if (!may_have_arrivals(socket)) {
        return true;
    }
    char byte = 0;
    const auto received = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string tls_failure_detail(const boost::system::error_code& ec, SSL* ssl) {
    std::string text = ec.message();
    const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        text += " (";
        text += X509_verify_cert_error_string(verify);
        text += ")";
    }
    return text;
}

}  // namespace

upstream_connection::~upstream_connection() {
    if (deadline_) {
        deadline_->stop();
    }
    if (counter_ != nullptr) {
        counter_->fetch_sub(1, std::memory_order_relaxed);
    }
}

void upstream_connection::abort() noexcept {
    boost::system::error_code ignored;
    tcp().socket().shutdown(tcp_socket::shutdown_both, ignored);
    tcp().socket().close(ignored);
}

tls_contexts::tls_contexts(const config::proxy_config& config) {
    std::array<const std::string*, routing::upstream_count> ca_of{};  // the ca_file each context was built with
    for (std::size_t i = 0; i < routing::upstream_count; ++i) {
        const auto name = routing::upstream_name(static_cast<routing::upstream_id>(i));
        const auto& settings = config.upstreams.at(std::string(name));
        if (!settings.tls) {
            continue;
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (contexts_[j] != nullptr && *ca_of[j] == settings.ca_file) {
                contexts_[i] = contexts_[j];
                ca_of[i] = ca_of[j];
                break;
            }
        }
        if (contexts_[i] != nullptr) {
            continue;
        }
        auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
        context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        context->set_verify_mode(ssl::verify_peer);
        // OpenSSL's read and write buffers (about 34 KB a connection) go back
        // to the heap while a connection waits, as nginx does: a stream's
        // connection waits between events, a pooled one between requests.
        SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
        boost::system::error_code ec;
        if (settings.ca_file.empty()) {
            system_cas_source source{};
            if (!load_system_cas(context->native_handle(), source)) {
                ec.assign(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
            }
        } else {
            context->load_verify_file(settings.ca_file, ec);
        }
        if (ec) {
            throw std::runtime_error("upstream " + std::string(name) + ": cannot load CA certificates" +
                                     (settings.ca_file.empty() ? std::string(" from the system store")
                                                               : " from " + settings.ca_file) +
                                     ": " + ec.message());
        }
        contexts_[i] = context.get();
        ca_of[i] = &settings.ca_file;
        owned_.push_back(std::move(context));
    }
}

upstream_pool::upstream_pool(asio::io_context& io, const config::proxy_config& config, const tls_contexts& tls,
                             upstream_socket_counts& counts)
    : io_(io), tls_(&tls), counts_(&counts) {
    for (std::size_t i = 0; i < routing::upstream_count; ++i) {
        settings_[i] = &config.upstreams.at(std::string(routing::upstream_name(static_cast<routing::upstream_id>(i))));
    }
}

void upstream_pool::rebind(const config::proxy_config& config, const tls_contexts& tls) {
    tls_ = &tls;
    for (std::size_t i = 0; i < routing::upstream_count; ++i) {
        const auto* next = &config.upstreams.at(std::string(routing::upstream_name(static_cast<routing::upstream_id>(i))));
        const auto* previous = settings_[i];
        // TLS contexts are rebuilt on every reload, so kept TLS connections go too.
        if (next->base_url != previous->base_url || next->ca_file != previous->ca_file || next->tls) {
            idle_[i].clear();
            tls_sessions_[i].reset();
        }
        resolved_[i] = {};  // a reload resolves again
        settings_[i] = next;
    }
}

std::string upstream_pool::endpoint_text(routing::upstream_id id) const {
    const auto& s = settings(id);
    return (s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port);
}

errors::openai_error upstream_failure(std::string_view upstream, const std::string& endpoint, std::string_view what,
                                      const boost::system::error_code& ec) {
    const bool timed_out = ec == beast::error::timeout;
    std::string message = "upstream ";
    message += upstream;
    message += " (";
    message += endpoint;
    message += "): ";
    message += what;
    if (ec && !timed_out) {
        message += ": ";
        message += ec.message();
    }
    return errors::make_error(timed_out ? 504 : 502, std::move(message),
                              timed_out ? "upstream_timeout" : "upstream_unreachable");
}

awaitable<boost::system::error_code> upstream_pool::endpoints_of(routing::upstream_id id,
                                                                 std::vector<tcp::endpoint>& out) {
    const auto index = static_cast<std::size_t>(id);
    auto& cached = resolved_[index];
    const auto now = std::chrono::steady_clock::now();
    if (!cached.endpoints.empty() && now < cached.until) {
        out = cached.endpoints;
        co_return boost::system::error_code{};
    }
    const auto& s = settings(id);
    boost::system::error_code ec;
    const auto literal = asio::ip::make_address(s.host, ec);
    if (!ec) {
        cached.endpoints = {tcp::endpoint(literal, s.port)};
        cached.until = std::chrono::steady_clock::time_point::max();
        out = cached.endpoints;
        co_return boost::system::error_code{};
    }
    tcp_resolver resolver(io_);
    auto [resolve_ec, results] =
        co_await resolver.async_resolve(s.host, std::to_string(s.port), tcp_resolver::numeric_service, as_result);
    if (resolve_ec) {
        co_return resolve_ec;
    }
    cached.endpoints.clear();
    for (const auto& entry : results) {
        cached.endpoints.push_back(entry.endpoint());
    }
    cached.until = now + resolve_ttl;
    out = cached.endpoints;
    co_return boost::system::error_code{};
}

connection_ptr upstream_pool::take_idle(routing::upstream_id id, bool fresh) {
    auto& idle = idle_[static_cast<std::size_t>(id)];
    while (!fresh && !idle.empty()) {
        connection_ptr candidate = std::move(idle.back());
        idle.pop_back();
        if (still_open(*candidate)) {
            candidate->mark_reused();
            candidate->set_read_timeout(settings(id).read_timeout);
            return candidate;
        }
    }
    return nullptr;
}

awaitable<upstream_pool::acquired> upstream_pool::connect(routing::upstream_id id) {
    const auto index = static_cast<std::size_t>(id);
    auto& idle = idle_[index];

    const auto& s = settings(id);
    const auto name = routing::upstream_name(id);
    const auto endpoint = endpoint_text(id);

    // The cap counts every socket to this upstream, busy or idle, on every worker.
    // At the cap, this worker's own idle ones are closed first to make room.
    auto& open = counts_->open[index];
    if (open.fetch_add(1, std::memory_order_relaxed) >= s.max_connections) {
        open.fetch_sub(1, std::memory_order_relaxed);
        idle.clear();
        if (open.fetch_add(1, std::memory_order_relaxed) >= s.max_connections) {
            open.fetch_sub(1, std::memory_order_relaxed);
            co_return acquired{nullptr,
                               errors::make_error(503,
                                                  "upstream " + std::string(name) + " (" + endpoint + "): " +
                                                      std::to_string(s.max_connections) +
                                                      " connections already open, the most allowed (upstreams." +
                                                      std::string(name) + ".max_connections); retry shortly",
                                                  "upstream_connections_exhausted")};
        }
    }
    // Counted from here: every early return below destroys `counted`, which gives the slot back.
    struct slot_guard {
        std::atomic<std::size_t>* counter;
        ~slot_guard() {
            if (counter != nullptr) {
                counter->fetch_sub(1, std::memory_order_relaxed);
            }
        }
    } counted{&open};

    std::vector<tcp::endpoint> endpoints;
    if (const auto resolve_ec = co_await endpoints_of(id, endpoints)) {
        co_return acquired{nullptr, upstream_failure(name, endpoint, "cannot resolve host " + s.host, resolve_ec)};
    }

    const auto deadline = std::chrono::steady_clock::now() + s.connect_timeout;
    tcp_stream stream(io_);
    stream.expires_at(deadline);
    auto [connect_ec, connected] = co_await stream.async_connect(endpoints, as_result);
    if (connect_ec) {
        resolved_[index] = {};  // the host may have moved: resolve again next time
        const std::string what = connect_ec == beast::error::timeout
                                      ? "connect timed out after " + config::format_duration(s.connect_timeout)
                                      : "connect failed";
        co_return acquired{nullptr, upstream_failure(name, endpoint, what, connect_ec)};
    }
    stream.socket().set_option(tcp::no_delay(true));

    if (!s.tls) {
        stream.expires_never();
        // Synchronous writes return at once (upstream_exchange writes a request
        // with write_at_once, http_util.hpp); asynchronous ones are unchanged.
        boost::system::error_code ignored;
        stream.socket().non_blocking(true, ignored);
        auto connection = std::make_unique<upstream_connection>(std::move(stream));
        connection->set_read_timeout(s.read_timeout);
        connection->count_in(std::exchange(counted.counter, nullptr));
        co_return acquired{std::move(connection), std::nullopt};
    }

    // The handshake is bounded by what is left of connect_timeout, through
    // the connection's deadline (it closes the socket when it passes).
    stream.expires_never();
    auto connection = std::make_unique<upstream_connection>(
        upstream_connection::tls_stream(std::move(stream), tls_->get(id)->native_handle()));
    connection->count_in(std::exchange(counted.counter, nullptr));
    auto& tls = *connection->tls();
    const bool host_set = tls.expect_host(s.host, is_ip_literal(s.host));
    if (const auto& session = tls_sessions_[index]; session && host_set) {
        // Resumed: one round trip and no certificate chain to verify again.
        SSL_set_session(tls.native_handle(), session.get());
    }
    boost::system::error_code handshake_ec = asio::error::no_memory;  // no session, or the host not taken
    if (host_set) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
            handshake_ec = beast::error::timeout;
        } else {
            connection->begin_wait(left);
            std::tie(handshake_ec, std::ignore) = co_await tls.async_handshake(as_result);
            connection->end_wait(handshake_ec);
        }
    }
    if (handshake_ec) {
        tls_sessions_[index].reset();
        if (handshake_ec == beast::error::timeout) {
            co_return acquired{nullptr,
                               upstream_failure(name, endpoint,
                                                "TLS handshake timed out after " + config::format_duration(s.connect_timeout),
                                                handshake_ec)};
        }
        auto failure = upstream_failure(name, endpoint, "TLS handshake failed", {});
        failure.message += ": " + tls_failure_detail(handshake_ec, tls.native_handle()) + " (expected host " + s.host + ")";
        failure.code = "upstream_tls_error";
        co_return acquired{nullptr, std::move(failure)};
    }
    // Written by this worker only (as the metrics shards are).
    if (handshakes_ != nullptr) {
        handshakes_->store(handshakes_->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    if (resumed_ != nullptr && SSL_session_reused(tls.native_handle()) == 1) {
        resumed_->store(resumed_->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    connection->set_read_timeout(s.read_timeout);
    co_return acquired{std::move(connection), std::nullopt};
}

void upstream_pool::release(routing::upstream_id id, connection_ptr connection, bool answer_complete) {
    const auto index = static_cast<std::size_t>(id);
    auto& idle = idle_[index];
    if (!connection || !answer_complete || connection->read_buffer().size() != 0 ||
        !connection->tcp().socket().is_open() || idle.size() >= settings(id).max_idle_connections) {
        if (connection) {
            connection->abort();
        }
        return;  // unique_ptr closes it
    }
    if (auto* tls = connection->tls()) {
        if (tls->has_buffered()) {
            connection->abort();  // a record (or part of one) past the answer: not clean
            return;
        }
        // Read by now, so a TLS 1.3 ticket sent after the handshake is in it.
        if (SSL_SESSION* session = SSL_get1_session(tls->native_handle())) {
            if (SSL_SESSION_is_resumable(session) == 1) {
                tls_sessions_[index] = std::shared_ptr<SSL_SESSION>(session, SSL_SESSION_free);
            } else {
                SSL_SESSION_free(session);
            }
        }
    }
    idle.push_back(std::move(connection));
}

}  // namespace mistral_proxy::http
