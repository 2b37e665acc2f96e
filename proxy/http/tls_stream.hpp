#pragma once
// The client side of TLS on an upstream socket, in place of Asio's
// ssl::stream. OpenSSL reads and writes the socket itself, through a BIO of
// the proxy's own, and the stream waits on the worker's reactor only when
// OpenSSL says it needs the socket readable or writable; that is how nginx
// drives OpenSSL.
//
// Why not Asio's stream: it puts a BIO pair (two 17 KB buffers) and two 17
// KB record buffers of its own between the socket and OpenSSL, copies every
// record through them, and runs each operation as a composed one over the
// socket's. Here an answer's bytes go from the kernel into OpenSSL's own
// buffer (read ahead: one recv for all that has arrived) and from there,
// decrypted, into the connection's read buffer. Measured with chat
// requests at c=32 over a TLS upstream: 74.2k instructions a request instead
// of 82.2k to 82.8k (bench/instructions --tls; nginx: 38.5k, and 20.2k over
// plain HTTP), and a heap of 2.1 to 2.9 MB instead of 3.4 MB after 20,000
// requests (/proc/PID/smaps).
//
// The reads keep the reactor's "may have arrivals" flag as Asio's own do
// (socket_readiness.hpp): a read that finds the queue empty, or gets less
// than it asked for with no end of stream seen, marks it, and the reads
// after it wait for epoll's edge (a wait the reactor does not re-arm)
// instead of asking the kernel for the EAGAIN it would give. A kept-alive
// request over TLS then costs the system calls it costs over plain TCP: the
// request's send, one wait, the answer's recv.
//
// One read and one write may be pending at once, as on a socket. Errors are
// Asio's for the same events: asio::error::eof for the peer's close_notify,
// ssl::error::stream_truncated for a close without one, OpenSSL's error
// (asio's ssl category) for a failed handshake or a bad record.
#include <openssl/ssl.h>

#include <cstddef>
#include <utility>

#include "http/asio_fwd.hpp"

namespace mistral_proxy::http {

class tls_stream {
public:
    using executor_type = tcp_stream::executor_type;
    using next_layer_type = tcp_stream;

    // What one call into OpenSSL came to: done (with its bytes or error), or
    // a wait for the socket before calling again.
    struct step {
        enum class then_kind : unsigned char { done, wait_read, wait_write };
        then_kind then = then_kind::done;
        std::size_t bytes = 0;
        boost::system::error_code ec;
    };

    // A connected socket and the context to verify the server with. The
    // session is made at once; if OpenSSL cannot make one (out of memory),
    // valid() is false and the handshake fails.
    tls_stream(tcp_stream next, SSL_CTX* context);
    ~tls_stream();
    tls_stream(tls_stream&& other) noexcept;
    tls_stream& operator=(tls_stream&&) = delete;
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    bool valid() const noexcept { return ssl_ != nullptr; }
    SSL* native_handle() noexcept { return ssl_; }
    executor_type get_executor() noexcept { return next_.get_executor(); }
    tcp_stream& next_layer() noexcept { return next_; }

    // Verifies the server's certificate for `host` (a name, or a literal IP
    // address) and, for a name, sends it as SNI. False if OpenSSL refused it.
    bool expect_host(const std::string& host, bool is_ip_literal);

    // Bytes OpenSSL has read from the socket and not given out yet (a record
    // or part of one): a connection holding any is not clean for reuse.
    bool has_buffered() const noexcept { return ssl_ != nullptr && SSL_has_pending(ssl_) == 1; }

    // Writes what the socket takes now, without an asynchronous operation
    // (what write_at_once is to a plain socket, http_util.hpp): the bytes
    // OpenSSL accepted, up to all of them. What is left, if anything, goes
    // with async_write from there: a record OpenSSL could not send whole is
    // gathered again from the same bytes. An error is in `ec`.
    template <class ConstBufferSequence>
    std::size_t write_at_once(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
        beast::buffers_suffix<ConstBufferSequence> rest(buffers);
        std::size_t sent = 0;
        for (;;) {
            const asio::const_buffer piece = gather(rest);
            if (piece.size() == 0) {
                return sent;
            }
            const step result = write_step(piece);
            if (result.then != step::then_kind::done) {
                return sent;  // waits for the socket
            }
            if (result.ec) {
                ec = result.ec;
                return sent;
            }
            sent += result.bytes;
            rest.consume(result.bytes);
        }
    }

    template <class Token>
    auto async_handshake(Token&& token) {
        return start([](tls_stream& s) { return s.handshake_step(); }, std::forward<Token>(token));
    }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        // Into the first buffer with room, as Asio's stream reads: one record
        // is at most 16 KB, and Beast always reads into one buffer.
        asio::mutable_buffer into;
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            if (asio::mutable_buffer piece(*it); piece.size() != 0) {
                into = piece;
                break;
            }
        }
        return start([into](tls_stream& s) { return s.read_step(into.data(), into.size()); },
                     std::forward<Token>(token));
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        // A head and its body go as one record (one send), as
        // write_at_once sends them on a plain connection: a sequence of
        // several buffers is gathered into the worker's scratch first, again
        // from the caller's buffers for each try (OpenSSL wants the same bytes
        // again after a write that had to wait).
        return start([buffers](tls_stream& s) { return s.write_step(gather(buffers)); },
                     std::forward<Token>(token));
    }

private:
    step handshake_step();
    step read_step(void* data, std::size_t size);
    step write_step(asio::const_buffer data);

    // The worker thread's gathering buffer (one record's worth).
    static asio::mutable_buffer scratch() noexcept;

    template <class ConstBufferSequence>
    static asio::const_buffer gather(const ConstBufferSequence& buffers) {
        auto it = asio::buffer_sequence_begin(buffers);
        const auto end = asio::buffer_sequence_end(buffers);
        while (it != end && asio::const_buffer(*it).size() == 0) {
            ++it;
        }
        if (it == end) {
            return {};
        }
        const asio::const_buffer first(*it);
        auto next = it;
        ++next;
        while (next != end && asio::const_buffer(*next).size() == 0) {
            ++next;
        }
        if (next == end) {
            return first;  // one buffer: written from where it is
        }
        const asio::mutable_buffer room = scratch();
        const std::size_t gathered = asio::buffer_copy(room, buffers);
        return {room.data(), gathered};
    }

    // Calls `step_of` until it is done, waiting on the socket in between; a
    // step done at once completes through a post, never inside the
    // initiating call (Asio's rule for asynchronous operations).
    template <class StepOf>
    struct operation {
        tls_stream& stream;
        StepOf step_of;
        bool waited = false;
        bool posted = false;
        step result{};

        template <class Self>
        void operator()(Self& self, boost::system::error_code wait_ec = {}) {
            if (posted) {
                self.complete(result.ec, result.bytes);
                return;
            }
            if (wait_ec) {
                self.complete(wait_ec, std::size_t{0});  // closed meanwhile (aborted, or its deadline passed)
                return;
            }
            result = step_of(stream);
            switch (result.then) {
                case step::then_kind::wait_read:
                    waited = true;
                    stream.next_.socket().async_wait(tcp_socket::wait_read, std::move(self));
                    return;
                case step::then_kind::wait_write:
                    waited = true;
                    stream.next_.socket().async_wait(tcp_socket::wait_write, std::move(self));
                    return;
                case step::then_kind::done:
                    break;
            }
            if (waited) {
                self.complete(result.ec, result.bytes);
                return;
            }
            posted = true;
            asio::post(std::move(self));
        }
    };

    template <class StepOf, class Token>
    auto start(StepOf step_of, Token&& token) {
        return asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            operation<StepOf>{*this, std::move(step_of)}, token, next_.socket());
    }

    // The BIO (tls_stream.cpp) points at next_'s socket, and is pointed
    // again when the stream moves.
    tcp_stream next_;
    SSL* ssl_ = nullptr;
};

}  // namespace mistral_proxy::http
