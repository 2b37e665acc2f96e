#pragma once
// Keep-alive connections to the three Mistral upstreams, one pool per worker
// thread (so no locking): a request takes an idle connection that is still
// open, or opens a new one (connect to the kept endpoints, TLS with SNI and
// host name verification), and gives it back when the answer was read to its
// end with nothing left over: a connection carrying one stray byte would hand
// it to the next client.
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <tuple>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "http/asio_fwd.hpp"
#include "http/tls_stream.hpp"
#include "http/wait_deadline.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

// Upstream sockets open at once, per upstream, across every worker: what
// `upstreams.NAME.max_connections` caps.
struct upstream_socket_counts {
    std::array<std::atomic<std::size_t>, routing::upstream_count> open{};
};

class upstream_connection {
public:
    using plain_stream = tcp_stream;
    using tls_stream = http::tls_stream;

    // Reads go through read_buffer_: sized up front, since Beast's first read
    // into an empty flat_buffer is only 512 bytes and an answer then takes many.
    explicit upstream_connection(plain_stream stream) : stream_(std::move(stream)) { read_buffer_.reserve(16 * 1024); }
    explicit upstream_connection(tls_stream stream) : stream_(std::move(stream)) { read_buffer_.reserve(16 * 1024); }
    ~upstream_connection();
    upstream_connection(const upstream_connection&) = delete;
    upstream_connection& operator=(const upstream_connection&) = delete;

    // Plain TCP, its socket made ready for write_at_once (http_util.hpp).
    bool plain() const noexcept { return std::holds_alternative<plain_stream>(stream_); }
    // The TLS stream, or null on a plain connection.
    tls_stream* tls() noexcept { return std::get_if<tls_stream>(&stream_); }
    tcp_stream& tcp() noexcept {
        return std::visit([](auto& s) -> tcp_stream& { return beast::get_lowest_layer(s); }, stream_);
    }
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), stream_);
    }
    // One read of what the upstream sent, into `buffers`. On plain TCP, from
    // the socket itself: the connection's waits are bounded by deadline(), so
    // Beast's stream layer (its per-operation timer, its rate policy) would
    // only wrap each read in one more operation.
    template <class MutableBufferSequence>
    awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(const MutableBufferSequence& buffers) {
        if (auto* plain_one = std::get_if<plain_stream>(&stream_)) {
            return plain_one->socket().async_read_some(buffers, as_result);
        }
        return std::get<tls_stream>(stream_).async_read_some(buffers, as_result);
    }
    // Closes the socket at once, which also ends any operation pending on it.
    void abort() noexcept;

    beast::flat_buffer& read_buffer() noexcept { return read_buffer_; }
    // True when it served an earlier request: the server may have closed it meanwhile.
    bool reused() const noexcept { return reused_; }
    void mark_reused() noexcept { reused_ = true; }

    // Counted in `counter` until destroyed.
    void count_in(std::atomic<std::size_t>* counter) noexcept { counter_ = counter; }

    // The upstream's read_timeout: the longest wait for each read of an answer.
    config::duration read_timeout() const noexcept { return read_timeout_; }
    void set_read_timeout(config::duration timeout) noexcept { read_timeout_ = timeout; }

    // What bounds each wait on the upstream (a TLS handshake, the write of a
    // request or its rest, a read of an answer; wait_deadline.hpp: one timer for the
    // connection's life, which closes it), made at the first wait that needs
    // it. The stream's own per-operation timeout bounds the connect only
    // (TLS waits on the socket directly, where it does not reach).
    wait_deadline& deadline() {
        if (!deadline_) {
            deadline_ = std::make_shared<wait_deadline>(
                tcp().get_executor(), [](void* owner) { static_cast<upstream_connection*>(owner)->abort(); }, this);
        }
        return *deadline_;
    }
    // Around a read or a write: begin_wait before it (a zero timeout bounds
    // nothing), end_wait after it, which turns the result of one the deadline
    // ended into beast::error::timeout.
    void begin_wait(std::chrono::steady_clock::duration timeout) {
        if (timeout > std::chrono::steady_clock::duration::zero()) {
            deadline().begin(timeout);
        }
    }
    void end_wait(boost::system::error_code& ec) noexcept {
        if (deadline_) {
            deadline_->end();
            if (deadline_->expired()) {
                ec = beast::error::timeout;  // it closed the connection: whatever the read got, it is over
            }
        }
    }

private:
    std::variant<plain_stream, tls_stream> stream_;
    beast::flat_buffer read_buffer_;
    bool reused_ = false;
    std::atomic<std::size_t>* counter_ = nullptr;
    config::duration read_timeout_{std::chrono::seconds(120)};
    std::shared_ptr<wait_deadline> deadline_;  // shared with its timer's pending handler
};

using connection_ptr = std::unique_ptr<upstream_connection>;

// TLS client contexts, built once and shared by all workers (an SSL_CTX is
// safe to share once configured): one per set of CA certificates, shared by
// the upstreams that trust the same ones. The system store alone is ~0.8 MB
// a context, and the shipped config has three TLS upstreams.
class tls_contexts {
public:
    // Throws std::runtime_error when a ca_file cannot be loaded.
    explicit tls_contexts(const config::proxy_config& config);
    ssl::context* get(routing::upstream_id id) const noexcept { return contexts_[static_cast<std::size_t>(id)]; }

private:
    std::vector<std::unique_ptr<ssl::context>> owned_;
    std::array<ssl::context*, routing::upstream_count> contexts_{};
};

class upstream_pool {
public:
    upstream_pool(asio::io_context& io, const config::proxy_config& config, const tls_contexts& tls,
                  upstream_socket_counts& counts);

    // After a reload: idle connections to an upstream whose settings changed are dropped.
    void rebind(const config::proxy_config& config, const tls_contexts& tls);

    struct acquired {
        connection_ptr connection;  // set on success
        std::optional<errors::openai_error> error;  // 502/504 saying what failed and where
    };
    // An idle connection the server has not closed, or null. `fresh` skips
    // idle connections (used to retry once after a stale one failed). Not a
    // coroutine: most requests find one, and then nothing suspends.
    connection_ptr take_idle(routing::upstream_id id, bool fresh = false);
    // A new connection (resolve if due, connect, TLS handshake), or the error.
    awaitable<acquired> connect(routing::upstream_id id);

    // Keeps the connection for reuse when the answer just read on it was whole
    // (`answer_complete`: its parser is done and allows keep-alive), nothing
    // past that answer sits in its buffer, and the pool is not full; else
    // closes it.
    void release(routing::upstream_id id, connection_ptr connection, bool answer_complete);
    // Closes every idle connection (at stop: nothing of theirs keeps the worker running).
    void close_idle() noexcept {
        for (auto& idle : idle_) {
            idle.clear();
        }
    }

    const config::upstream_settings& settings(routing::upstream_id id) const noexcept {
        return *settings_[static_cast<std::size_t>(id)];
    }
    // "api.mistral.ai:443" — where, for error messages.
    std::string endpoint_text(routing::upstream_id id) const;

    // Where the pool counts its TLS handshakes (the worker's metrics shard).
    void count_handshakes_in(std::atomic<std::uint64_t>* handshakes, std::atomic<std::uint64_t>* resumed) noexcept {
        handshakes_ = handshakes;
        resumed_ = resumed;
    }

private:
    // Where an upstream is: resolved once (a literal IP never), kept for
    // `resolve_ttl`, and again after a connect failure or a reload, so that no
    // request waits on the resolver thread.
    struct resolved_endpoints {
        std::vector<tcp::endpoint> endpoints;
        std::chrono::steady_clock::time_point until{};
    };
    static constexpr auto resolve_ttl = std::chrono::seconds(60);
    awaitable<boost::system::error_code> endpoints_of(routing::upstream_id id, std::vector<tcp::endpoint>& out);

    asio::io_context& io_;
    const tls_contexts* tls_;
    upstream_socket_counts* counts_;
    std::array<const config::upstream_settings*, routing::upstream_count> settings_{};
    std::array<std::vector<connection_ptr>, routing::upstream_count> idle_;
    std::array<resolved_endpoints, routing::upstream_count> resolved_;
    // TLS sessions to resume on new connections (one per upstream, refreshed by each full handshake).
    std::array<std::shared_ptr<SSL_SESSION>, routing::upstream_count> tls_sessions_;
    std::atomic<std::uint64_t>* handshakes_ = nullptr;
    std::atomic<std::uint64_t>* resumed_ = nullptr;
};

// Formats the ways a connection can fail into one message naming the upstream.
errors::openai_error upstream_failure(std::string_view upstream, const std::string& endpoint, std::string_view what,
                                      const boost::system::error_code& ec);

}  // namespace mistral_proxy::http
