// TLS on an upstream socket with OpenSSL reading and writing the socket
// through a BIO of the proxy's own (tls_stream.hpp says why).
#include "http/tls_stream.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "http/socket_readiness.hpp"

namespace mistral_proxy::http {

namespace {

tcp_socket& socket_of(BIO* bio) noexcept { return *static_cast<tcp_socket*>(BIO_get_data(bio)); }

// OpenSSL asks for what it needs; with read-ahead, as much as its buffer
// holds. A read that finds the kernel's queue empty (EAGAIN), or gets less
// than it asked for, says so in the reactor's flag until the next edge, and
// OpenSSL's reads until then return "retry" here without a system call. A
// short read does not when the reactor has seen the peer's end or an error
// (mark_read_short): that end may be queued behind the bytes just read,
// with no edge left to announce it, and only a next read returns it.
int socket_read(BIO* bio, char* out, int size) {
    BIO_clear_retry_flags(bio);
    tcp_socket& socket = socket_of(bio);
    if (size <= 0) {
        return 0;
    }
    if (!may_have_arrivals(socket)) {
        BIO_set_retry_read(bio);
        return -1;
    }
    for (;;) {
        const ssize_t got = ::recv(socket.native_handle(), out, static_cast<std::size_t>(size), 0);
        if (got >= 0) {
            if (got > 0 && got < size) {
                mark_read_short(socket);
            }
            return static_cast<int>(got);  // 0: the peer's end of stream
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            mark_emptied(socket);
            BIO_set_retry_read(bio);
        }
        return -1;  // any other error stays in errno for the stream's step
    }
}

int socket_write(BIO* bio, const char* in, int size) {
    BIO_clear_retry_flags(bio);
    if (size <= 0) {
        return 0;
    }
    for (;;) {
        // MSG_NOSIGNAL: a peer that went away is an EPIPE, not a SIGPIPE.
        const ssize_t sent =
            ::send(socket_of(bio).native_handle(), in, static_cast<std::size_t>(size), MSG_NOSIGNAL);
        if (sent >= 0) {
            return static_cast<int>(sent);
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(bio);
        }
        return -1;
    }
}

long socket_control(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH ? 1 : 0;  // writes go straight to the socket: nothing to flush
}

int socket_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

int socket_destroy(BIO*) { return 1; }  // the socket is the stream's, closed with it

BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mistral-proxy upstream socket");
        if (made != nullptr) {
            BIO_meth_set_write(made, socket_write);
            BIO_meth_set_read(made, socket_read);
            BIO_meth_set_ctrl(made, socket_control);
            BIO_meth_set_create(made, socket_create);
            BIO_meth_set_destroy(made, socket_destroy);
        }
        return made;
    }();
    return method;
}

using step = tls_stream::step;

step done(std::size_t bytes) { return {step::then_kind::done, bytes, {}}; }
step failed(boost::system::error_code ec) { return {step::then_kind::done, 0, ec}; }

// What an OpenSSL call that did not succeed means, as Asio's stream says it
// (its engine's map_error_code): a wait, the end of the stream, or an error.
step after_failure(SSL* ssl, int result, int saved_errno) {
    switch (SSL_get_error(ssl, result)) {
        case SSL_ERROR_WANT_READ:
            return {step::then_kind::wait_read, 0, {}};
        case SSL_ERROR_WANT_WRITE:
            return {step::then_kind::wait_write, 0, {}};
        case SSL_ERROR_ZERO_RETURN:
            return failed(asio::error::eof);  // the peer's close_notify
        case SSL_ERROR_SYSCALL:
            if (const unsigned long error = ERR_get_error(); error != 0) {
                return failed({static_cast<int>(error), asio::error::get_ssl_category()});
            }
            if (saved_errno != 0) {
                return failed({saved_errno, boost::system::system_category()});
            }
            return failed(ssl::error::stream_truncated);
        default: {
            const unsigned long error = ERR_get_error();
            if (ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                return failed(ssl::error::stream_truncated);  // closed without close_notify
            }
            return failed({static_cast<int>(error), asio::error::get_ssl_category()});
        }
    }
}

}  // namespace

tls_stream::tls_stream(tcp_stream next, SSL_CTX* context) : next_(std::move(next)), ssl_(SSL_new(context)) {
    BIO_METHOD* const method = socket_method();
    BIO* const bio = method != nullptr && ssl_ != nullptr ? BIO_new(method) : nullptr;
    if (bio == nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
        return;
    }
    BIO_set_data(bio, &next_.socket());
    SSL_set_bio(ssl_, bio, bio);  // the session owns it
    // Partial writes and a moving buffer: async_write_some's contract, and a
    // retried write gathers its bytes again (tls_stream.hpp).
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_connect_state(ssl_);
    boost::system::error_code ignored;
    next_.socket().non_blocking(true, ignored);  // OpenSSL's recv and send must never block the worker
}

tls_stream::~tls_stream() { SSL_free(ssl_); }

tls_stream::tls_stream(tls_stream&& other) noexcept
    : next_(std::move(other.next_)), ssl_(std::exchange(other.ssl_, nullptr)) {
    // Beast's stream moves its socket into a new place (its moved-from
    // stream keeps a closed one): the BIO follows it.
    if (ssl_ != nullptr) {
        BIO_set_data(SSL_get_rbio(ssl_), &next_.socket());
    }
}

bool tls_stream::expect_host(const std::string& host, bool is_ip_literal) {
    if (ssl_ == nullptr) {
        return false;
    }
    if (is_ip_literal) {
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
    }
    // SNI: without it many TLS front ends (Mistral's included) answer with a default certificate.
    return SSL_set_tlsext_host_name(ssl_, host.c_str()) == 1 && SSL_set1_host(ssl_, host.c_str()) == 1;
}

asio::mutable_buffer tls_stream::scratch() noexcept {
    // One TLS record's plaintext: OpenSSL writes at most that in a record.
    thread_local std::array<char, 16 * 1024> buffer;
    return {buffer.data(), buffer.size()};
}

tls_stream::step tls_stream::handshake_step() {
    if (ssl_ == nullptr) {
        return failed(asio::error::no_memory);
    }
    ERR_clear_error();
    errno = 0;
    const int result = SSL_do_handshake(ssl_);
    const int saved_errno = errno;
    return result == 1 ? done(0) : after_failure(ssl_, result, saved_errno);
}

tls_stream::step tls_stream::read_step(void* data, std::size_t size) {
    if (size == 0) {
        return done(0);
    }
    // Nothing in OpenSSL's buffer, no write it is waiting to finish, and the
    // socket known emptied: SSL_read could only come back asking to wait
    // (its read would get "retry" from the BIO), so it is not called. A read
    // of an answer right after its request is sent starts so.
    if (SSL_has_pending(ssl_) == 0 && SSL_want(ssl_) != SSL_WRITING && !may_have_arrivals(next_.socket())) {
        return {step::then_kind::wait_read, 0, {}};
    }
    ERR_clear_error();
    errno = 0;
    std::size_t got = 0;
    const int result = SSL_read_ex(ssl_, data, size, &got);
    const int saved_errno = errno;
    return result == 1 ? done(got) : after_failure(ssl_, result, saved_errno);
}

tls_stream::step tls_stream::write_step(asio::const_buffer data) {
    if (data.size() == 0) {
        return done(0);
    }
    ERR_clear_error();
    errno = 0;
    std::size_t sent = 0;
    const int result = SSL_write_ex(ssl_, data.data(), data.size(), &sent);
    const int saved_errno = errno;
    return result == 1 ? done(sent) : after_failure(ssl_, result, saved_errno);
}

}  // namespace mistral_proxy::http
