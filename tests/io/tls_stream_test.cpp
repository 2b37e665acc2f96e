// The upstream TLS stream (http/tls_stream.hpp) on real loopback sockets,
// against a server that is OpenSSL itself on a blocking socket in a thread
// of its own, with a certificate made here. What crosses the wire is read at
// the server: the records it received (OpenSSL's message callback), the
// exact bytes. Every wait is on a socket, a future or the io_context, never
// on a clock.
#include <doctest/doctest.h>

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/version.hpp>

#include "http/asio_fwd.hpp"
#include "http/system_cas.hpp"
#include "http/tls_stream.hpp"
#include "syscall_counts.hpp"

namespace {

using namespace mistral_proxy::http;

// A self-signed certificate for "localhost" and 127.0.0.1, with its key.
struct identity {
    EVP_PKEY* key = nullptr;
    X509* certificate = nullptr;

    identity() {
        key = EVP_EC_gen("P-256");
        REQUIRE(key != nullptr);
        certificate = X509_new();
        X509_set_version(certificate, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
        X509_gmtime_adj(X509_getm_notBefore(certificate), -3600);
        X509_gmtime_adj(X509_getm_notAfter(certificate), 3600);
        X509_set_pubkey(certificate, key);
        X509_NAME* name = X509_get_subject_name(certificate);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                                   -1, 0);
        X509_set_issuer_name(certificate, name);
        X509V3_CTX context;
        X509V3_set_ctx_nodb(&context);
        X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
        X509_EXTENSION* names =
            X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        REQUIRE(names != nullptr);
        X509_add_ext(certificate, names, -1);
        X509_EXTENSION_free(names);
        REQUIRE(X509_sign(certificate, key, EVP_sha256()) > 0);
    }
    ~identity() {
        X509_free(certificate);
        EVP_PKEY_free(key);
    }
    identity(const identity&) = delete;
    identity& operator=(const identity&) = delete;
};

identity& test_identity() {
    static identity made;
    return made;
}

// The server: accepts one connection and runs `script` on its TLS session
// in a thread, with OpenSSL's own socket BIO on a blocking socket. It counts
// the application-data records it receives after the handshake.
struct tls_server {
    asio::io_context io{1};
    tcp_acceptor acceptor{io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
    SSL_CTX* context = SSL_CTX_new(TLS_server_method());
    std::thread thread;
    int application_records = 0;  // read by the test once `finished` is ready
    std::promise<void> done;
    std::future<void> finished = done.get_future();

    explicit tls_server(std::function<void(SSL*, int fd)> script, int receive_buffer = 0) {
        REQUIRE(SSL_CTX_use_certificate(context, test_identity().certificate) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(context, test_identity().key) == 1);
        if (receive_buffer > 0) {
            acceptor.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
        }
        thread = std::thread([this, script = std::move(script)] {
            tcp_socket accepted(io.get_executor());
            acceptor.accept(accepted);
            const int fd = accepted.native_handle();
            SSL* ssl = SSL_new(context);
            SSL_set_fd(ssl, fd);
            SSL_set_app_data(ssl, this);
            SSL_set_msg_callback(ssl, [](int write_p, int, int content_type, const void* buffer, std::size_t length,
                                         SSL* session, void*) {
                // Each record's header as it comes in: type 23 is application data.
                if (write_p == 0 && content_type == SSL3_RT_HEADER && length >= 1 &&
                    static_cast<const unsigned char*>(buffer)[0] == SSL3_RT_APPLICATION_DATA &&
                    SSL_is_init_finished(session) == 1) {
                    ++static_cast<tls_server*>(SSL_get_app_data(session))->application_records;
                }
            });
            if (SSL_accept(ssl) == 1) {
                script(ssl, fd);
            }
            SSL_free(ssl);
            done.set_value();
        });
    }
    ~tls_server() {
        thread.join();
        SSL_CTX_free(context);
    }
    tls_server(const tls_server&) = delete;
    tls_server& operator=(const tls_server&) = delete;

    unsigned short port() const { return acceptor.local_endpoint().port(); }
};

// Reads exactly `size` bytes on the server's session.
std::string server_read(SSL* ssl, std::size_t size) {
    std::string got(size, '\0');
    std::size_t have = 0;
    while (have < size) {
        std::size_t n = 0;
        if (SSL_read_ex(ssl, got.data() + have, size - have, &n) != 1) {
            break;
        }
        have += n;
    }
    got.resize(have);
    return got;
}

void server_write(SSL* ssl, const std::string& bytes) {
    std::size_t written = 0;
    REQUIRE(SSL_write_ex(ssl, bytes.data(), bytes.size(), &written) == 1);
    REQUIRE(written == bytes.size());
}

// The client: the proxy's stream, connected to the server, trusting its certificate.
struct tls_client {
    asio::io_context io{1};
    // Never out of work between operations (a run out of work would stop the io_context).
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    std::unique_ptr<tls_stream> stream;

    // `trust` loads the CAs the client trusts: by default the test's certificate itself.
    explicit tls_client(unsigned short port, int send_buffer = 0,
                        const std::function<void(SSL_CTX*)>& trust = {}) {
        if (trust) {
            trust(context);
        } else {
            X509_STORE_add_cert(SSL_CTX_get_cert_store(context), test_identity().certificate);
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
        tcp_stream tcp(io.get_executor());
        if (send_buffer > 0) {
            tcp.socket().open(tcp::v4());
            tcp.socket().set_option(asio::socket_base::send_buffer_size(send_buffer));
        }
        tcp.socket().connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
        stream = std::make_unique<tls_stream>(std::move(tcp), context);
    }
    ~tls_client() {
        stream.reset();
        SSL_CTX_free(context);
    }
    tls_client(const tls_client&) = delete;
    tls_client& operator=(const tls_client&) = delete;

    boost::system::error_code handshake(const std::string& host, bool ip = false) {
        REQUIRE(stream->expect_host(host, ip));
        boost::system::error_code result;
        bool finished = false;
        stream->async_handshake([&](const boost::system::error_code& ec, std::size_t) {
            result = ec;
            finished = true;
        });
        run_until(finished);
        return result;
    }

    void run_until(const bool& flag) {
        while (!flag) {
            REQUIRE(io.run_one() == 1);
        }
    }

    struct read_result {
        bool done = false;
        std::size_t bytes = 0;
        boost::system::error_code ec;
    };
    void start_read(asio::mutable_buffer into, read_result& result) {
        result = {};
        stream->async_read_some(into, [&result](const boost::system::error_code& ec, std::size_t n) {
            result = {true, n, ec};
        });
    }
    // Reads until `size` bytes or an error.
    std::string read(std::size_t size, boost::system::error_code& ec) {
        std::string got(size, '\0');
        std::size_t have = 0;
        while (have < size) {
            read_result result;
            start_read(asio::buffer(got.data() + have, size - have), result);
            run_until(result.done);
            if (result.ec) {
                ec = result.ec;
                break;
            }
            have += result.bytes;
        }
        got.resize(have);
        return got;
    }
};

std::string pattern(std::size_t size) {
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    }
    return bytes;
}

// A handshake expecting a host the certificate is not for: refused with the verifier's reason.
void check_refused(const std::string& host, bool is_ip, long reason) {
    tls_server server([](SSL*, int) {});
    tls_client client(server.port());
    const auto ec = client.handshake(host, is_ip);
    CHECK(ec.category() == asio::error::get_ssl_category());
    CHECK(SSL_get_verify_result(client.stream->native_handle()) == reason);
    client.stream.reset();  // closes the socket: the server's accept ends
    server.finished.wait();
}

}  // namespace

TEST_CASE("tls_stream: a head and a body written as two buffers cross as one record, and an answer is read whole") {
    const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n";
    const std::string body = "{\"a\":\"bcd\"}";
    std::string received;
    tls_server server([&](SSL* ssl, int) {
        received = server_read(ssl, head.size() + body.size());
        server_write(ssl, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    tls_client client(server.port());
    REQUIRE_FALSE(client.handshake("localhost"));

    std::array<asio::const_buffer, 2> pieces{asio::buffer(head), asio::buffer(body)};
    bool written = false;
    boost::system::error_code write_ec;
    std::size_t write_bytes = 0;
    asio::async_write(*client.stream, pieces, [&](const boost::system::error_code& ec, std::size_t n) {
        write_ec = ec;
        write_bytes = n;
        written = true;
    });
    client.run_until(written);
    CHECK_FALSE(write_ec);
    CHECK(write_bytes == head.size() + body.size());

    boost::system::error_code read_ec;
    const std::string answer = client.read(40, read_ec);
    CHECK_FALSE(read_ec);
    CHECK(answer == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    server.finished.wait();
    CHECK(received == head + body);
    CHECK(server.application_records == 1);
    CHECK_FALSE(client.stream->has_buffered());
}

TEST_CASE("tls_stream: a read waits on the reactor, and costs one recv when its record comes") {
    std::promise<void> go;
    auto go_signal = go.get_future();
    std::promise<void> close;
    auto close_signal = close.get_future();
    tls_server server([&](SSL* ssl, int) {
        CHECK(server_read(ssl, 4) == "ping");
        server_write(ssl, "pong");
        go_signal.wait();  // the client's next read is waiting
        server_write(ssl, "more");
        close_signal.wait();
        SSL_shutdown(ssl);
    });
    tls_client client(server.port());
    REQUIRE_FALSE(client.handshake("localhost"));
    bool written = false;
    asio::async_write(*client.stream, asio::buffer(std::string_view("ping")),
                      [&](const boost::system::error_code& ec, std::size_t) {
                          CHECK_FALSE(ec);
                          written = true;
                      });
    client.run_until(written);
    boost::system::error_code ec;
    CHECK(client.read(4, ec) == "pong");  // the session tickets come before it, or with it
    REQUIRE_FALSE(ec);

    std::array<char, 64> buffer{};
    tls_client::read_result next;
    client.start_read(asio::buffer(buffer), next);
    client.io.poll();
    CHECK_FALSE(next.done);
    const int calls_before = io_test::recv_calls.load();
    go.set_value();
    client.run_until(next.done);
    CHECK_FALSE(next.ec);
    CHECK(std::string(buffer.data(), next.bytes) == "more");
    // The record, read on the reactor's edge: no EAGAIN before it, no spin.
    CHECK(io_test::recv_calls.load() == calls_before + 1);

    // Nothing more comes: the record's recv was short, so the next read
    // waits for the edge without asking the kernel, however often the worker
    // turns (and its wait is not re-armed either).
    io_test::epoll_ctl_calls = 0;
    client.start_read(asio::buffer(buffer), next);
    const int calls_waiting = io_test::recv_calls.load();
#if BOOST_VERSION == 108100
    CHECK(calls_waiting == calls_before + 1);
    CHECK(io_test::epoll_ctl_calls.load() == 0);
#endif
    client.io.poll();
    client.io.poll();
    CHECK_FALSE(next.done);
    CHECK(io_test::recv_calls.load() == calls_waiting);
    close.set_value();
    client.run_until(next.done);
    CHECK(next.ec == asio::error::eof);
    server.finished.wait();
}

TEST_CASE("tls_stream: a megabyte each way through small socket buffers arrives whole and in order") {
    const std::string upload = pattern(1024 * 1024);
    const std::string download = pattern(1024 * 1024 + 17);
    std::promise<void> go;
    auto go_signal = go.get_future();
    std::string received;
    tls_server server(
        [&](SSL* ssl, int) {
            go_signal.wait();  // the client's write is waiting for room
            received = server_read(ssl, upload.size());
            server_write(ssl, download);
        },
        16 * 1024);
    tls_client client(server.port(), 16 * 1024);
    REQUIRE_FALSE(client.handshake("localhost"));

    bool written = false;
    boost::system::error_code write_ec;
    std::size_t write_bytes = 0;
    asio::async_write(*client.stream, asio::buffer(upload), [&](const boost::system::error_code& ec, std::size_t n) {
        write_ec = ec;
        write_bytes = n;
        written = true;
    });
    client.io.poll();  // writes until the socket is full, then waits for it
    CHECK_FALSE(written);
    go.set_value();
    client.run_until(written);
    CHECK_FALSE(write_ec);
    CHECK(write_bytes == upload.size());

    boost::system::error_code read_ec;
    const std::string answer = client.read(download.size(), read_ec);
    CHECK_FALSE(read_ec);
    CHECK(answer.size() == download.size());
    CHECK(answer == download);
    server.finished.wait();
    CHECK(received.size() == upload.size());
    CHECK(received == upload);
}

TEST_CASE("tls_stream: the peer's close_notify reads as eof, a close without it as stream_truncated") {
    for (const bool notify : {true, false}) {
        CAPTURE(notify);
        tls_server server([notify](SSL* ssl, int fd) {
            server_write(ssl, "last");
            if (notify) {
                SSL_shutdown(ssl);
            } else {
                ::shutdown(fd, SHUT_WR);  // the FIN right behind the record, no close_notify
            }
        });
        tls_client client(server.port());
        REQUIRE_FALSE(client.handshake("localhost"));
        boost::system::error_code ec;
        CHECK(client.read(4, ec) == "last");
        CHECK_FALSE(ec);
        client.read(1, ec);
        CHECK(ec == (notify ? boost::system::error_code(asio::error::eof)
                            : boost::system::error_code(ssl::error::stream_truncated)));
        server.finished.wait();
    }
}

TEST_CASE("tls_stream: an end of stream the reactor saw before a short read is still returned") {
    // The record and the FIN behind it both arrive, and the reactor takes
    // their edge before any read waits: the read that gets the record is
    // short, and no edge will come for the end. The next read must ask the
    // kernel and get it, not wait.
    tls_server server([](SSL* ssl, int fd) {
        server_write(ssl, "last");
        ::shutdown(fd, SHUT_WR);
    });
    tls_client client(server.port());
    REQUIRE_FALSE(client.handshake("localhost"));
    server.finished.wait();  // both sent
    tcp_socket& socket = client.stream->next_layer().socket();
    pollfd entry{socket.native_handle(), POLLIN | POLLRDHUP, 0};
    while ((entry.revents & POLLRDHUP) == 0) {
        REQUIRE(::poll(&entry, 1, -1) == 1);
    }
    client.io.poll();  // the edge, with no read waiting
    boost::system::error_code ec;
    CHECK(client.read(4, ec) == "last");
    CHECK_FALSE(ec);
    client.read(1, ec);
    CHECK(ec == ssl::error::stream_truncated);
}

TEST_CASE("tls_stream: the server's certificate is checked against the expected host, name or address") {
    for (const auto& [host, is_ip] : {std::pair<std::string, bool>{"localhost", false}, {"127.0.0.1", true}}) {
        CAPTURE(host);
        tls_server server([](SSL* ssl, int) { server_write(ssl, "x"); });
        tls_client client(server.port());
        CHECK_FALSE(client.handshake(host, is_ip));
        CHECK(SSL_get_verify_result(client.stream->native_handle()) == X509_V_OK);
        boost::system::error_code ec;
        CHECK(client.read(1, ec) == "x");
        server.finished.wait();
    }
    SUBCASE("another name") { check_refused("api.example.com", false, X509_V_ERR_HOSTNAME_MISMATCH); }
    SUBCASE("another address") { check_refused("127.0.0.2", true, X509_V_ERR_IP_ADDRESS_MISMATCH); }
}

namespace {

// A folder of its own under the system's temporary folder, removed at the end.
struct scratch_folder {
    std::filesystem::path path;
    scratch_folder() {
        std::string pattern = (std::filesystem::temp_directory_path() / "mistral-proxy-cas-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~scratch_folder() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    scratch_folder(const scratch_folder&) = delete;
    scratch_folder& operator=(const scratch_folder&) = delete;
};

void write_certificate(const std::filesystem::path& file) {
    BIO* out = BIO_new_file(file.c_str(), "w");
    REQUIRE(out != nullptr);
    REQUIRE(PEM_write_bio_X509(out, test_identity().certificate) == 1);
    BIO_free(out);
}

// The name `openssl rehash` gives a CA: its subject's hash, ".0".
std::string hashed_name(X509* certificate) {
    char name[32];
    std::snprintf(name, sizeof name, "%08lx.0", X509_subject_name_hash(certificate));
    return name;
}

// SSL_CERT_FILE and SSL_CERT_DIR unset while it lives (some systems set them
// for every process), restored after.
struct without_cert_variables {
    std::vector<std::pair<std::string, std::string>> saved;
    without_cert_variables() {
        for (const char* name : {X509_get_default_cert_file_env(), X509_get_default_cert_dir_env()}) {
            if (const char* value = getenv(name)) {
                saved.emplace_back(name, value);
                unsetenv(name);
            }
        }
    }
    ~without_cert_variables() {
        for (const auto& [name, value] : saved) {
            setenv(name.c_str(), value.c_str(), 1);
        }
    }
    without_cert_variables(const without_cert_variables&) = delete;
    without_cert_variables& operator=(const without_cert_variables&) = delete;
};

int store_size(SSL_CTX* context) {
    return sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(context)));
}

// A handshake with "localhost" by a client whose CAs load_system_cas loaded
// from `directory` and `bundle`: what it loaded, and how the handshake went.
struct system_cas_handshake {
    bool loaded = false;
    system_cas_source source{};
    int loaded_at_start = -1;  // certificates in the client's store before the handshake
    bool completed = false;
    long verified = -1;
};

system_cas_handshake handshake_with_system_cas(const std::filesystem::path& directory,
                                               const std::filesystem::path& bundle) {
    system_cas_handshake result;
    tls_server server([](SSL* ssl, int) { server_write(ssl, "x"); });
    tls_client client(server.port(), 0, [&](SSL_CTX* context) {
        result.loaded = load_system_cas(context, directory.string(), bundle.string(), result.source);
        result.loaded_at_start = store_size(context);
    });
    result.completed = !client.handshake("localhost");
    result.verified = SSL_get_verify_result(client.stream->native_handle());
    if (result.completed) {
        boost::system::error_code ec;
        CHECK(client.read(1, ec) == "x");
    }
    client.stream.reset();  // a refused handshake: the server's accept ends too
    server.finished.wait();
    return result;
}

}  // namespace

TEST_CASE("system CAs: the hashed folder alone when it has hashed names, read when a chain needs it") {
    const without_cert_variables unset;
    scratch_folder hashed;
    write_certificate(hashed.path / hashed_name(test_identity().certificate));
    const auto result = handshake_with_system_cas(hashed.path, hashed.path / "no-bundle.pem");
    CHECK(result.loaded);
    CHECK(result.source == system_cas_source::directory);
    CHECK(result.loaded_at_start == 0);  // nothing parsed at start
    CHECK(result.completed);
    CHECK(result.verified == X509_V_OK);
}

TEST_CASE("system CAs: a folder without hashed names falls back to the bundle, parsed at start") {
    const without_cert_variables unset;
    scratch_folder folder;
    write_certificate(folder.path / "not-hashed.pem");
    write_certificate(folder.path / "bundle.pem");
    const auto result = handshake_with_system_cas(folder.path, folder.path / "bundle.pem");
    CHECK(result.loaded);
    CHECK(result.source == system_cas_source::bundle);
    CHECK(result.loaded_at_start == 1);
    CHECK(result.completed);
    CHECK(result.verified == X509_V_OK);
    CHECK(ERR_peek_error() == 0);
}

TEST_CASE("system CAs: a certificate no system CA vouches for is refused") {
    const without_cert_variables unset;
    scratch_folder folder;
    const auto result = handshake_with_system_cas(folder.path, folder.path / "no-bundle.pem");
    CHECK(result.loaded);  // an empty folder is no error, as with OpenSSL's defaults
    CHECK(result.source == system_cas_source::bundle);
    CHECK_FALSE(result.completed);
    CHECK(result.verified == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
}

TEST_CASE("system CAs: SSL_CERT_FILE set wins, through OpenSSL's defaults") {
    const without_cert_variables unset;
    scratch_folder folder;
    write_certificate(folder.path / "bundle.pem");
    const char* variable = X509_get_default_cert_file_env();
    REQUIRE(setenv(variable, (folder.path / "bundle.pem").c_str(), 1) == 0);
    // The folders named here have nothing: what is trusted comes from the variable.
    const auto result = handshake_with_system_cas(folder.path / "none", folder.path / "none.pem");
    unsetenv(variable);
    CHECK(result.loaded);
    CHECK(result.source == system_cas_source::environment);
    CHECK(result.completed);
    CHECK(result.verified == X509_V_OK);
}
