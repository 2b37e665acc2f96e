// Reads on real loopback sockets through the proxy's Asio build: a read that
// found the socket empty must spare the next read's recv() until epoll
// reports an arrival (third_party/asio-short-read), a read that filled its
// buffer must not, and may_have_arrivals (http/socket_readiness.hpp) must say
// what the reactor saw, and a wait for input must be re-armed with
// epoll_ctl() only when an edge may have been missed. The recv() and
// epoll_ctl() calls are counted by wrapping the C library's functions in
// this executable (Asio calls them by name);
// every wait is on the sockets themselves (poll(2), io_context::run_one),
// never on a clock.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <string_view>

#include "http/asio_fwd.hpp"
#include "http/socket_readiness.hpp"

#include "syscall_counts.hpp"

namespace io_test {
std::atomic<int> recv_calls{0};
std::atomic<int> epoll_ctl_calls{0};
}
using io_test::epoll_ctl_calls;
using io_test::recv_calls;

// The C library's recv and recvmsg, counted. Defined in the executable, they
// are the ones the Asio code linked into it calls.
extern "C" ssize_t recv(int fd, void* buffer, size_t size, int flags) {
    recv_calls.fetch_add(1, std::memory_order_relaxed);
    return static_cast<ssize_t>(::syscall(SYS_recvfrom, fd, buffer, size, flags, nullptr, nullptr));
}
extern "C" ssize_t recvmsg(int fd, struct msghdr* message, int flags) {
    recv_calls.fetch_add(1, std::memory_order_relaxed);
    return static_cast<ssize_t>(::syscall(SYS_recvmsg, fd, message, flags));
}
extern "C" int epoll_ctl(int epoll_fd, int operation, int fd, struct epoll_event* event) {
    epoll_ctl_calls.fetch_add(1, std::memory_order_relaxed);
    return static_cast<int>(::syscall(SYS_epoll_ctl, epoll_fd, operation, fd, event));
}

namespace {

using namespace mistral_proxy::http;

// A connected loopback pair: `socket` on the io_context, `peer` a plain
// blocking descriptor the test writes with.
struct socket_pair {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    tcp_socket socket{io.get_executor()};
    tcp_socket peer{io.get_executor()};

    socket_pair() {
        tcp_acceptor acceptor(io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        peer.connect(acceptor.local_endpoint());
        acceptor.accept(socket);
        socket.non_blocking(true);
    }

    void send(std::string_view bytes) {
        REQUIRE(::send(peer.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(bytes.size()));
    }

    // Until the kernel holds bytes (or an end) for `socket` to read.
    void wait_readable() {
        pollfd entry{socket.native_handle(), POLLIN, 0};
        REQUIRE(::poll(&entry, 1, -1) == 1);
    }
};

struct read_result {
    bool done = false;
    std::size_t bytes = 0;
    boost::system::error_code ec;
};

void start_read(socket_pair& pair, std::array<char, 64>& buffer, read_result& result) {
    result = {};
    pair.socket.async_read_some(asio::buffer(buffer), [&result](const boost::system::error_code& ec, std::size_t n) {
        result.done = true;
        result.bytes = n;
        result.ec = ec;
    });
}

// A read started and given one non-blocking turn of the io_context: done if
// it found something at once or on an edge the reactor already had.
void read_at_once(socket_pair& pair, std::array<char, 64>& buffer, read_result& result) {
    start_read(pair, buffer, result);
    pair.io.poll();
}

// A read that must find `bytes` bytes at once.
void read_now(socket_pair& pair, std::array<char, 64>& buffer, std::size_t bytes) {
    read_result result;
    read_at_once(pair, buffer, result);
    REQUIRE(result.done);
    CHECK(result.bytes == bytes);
}

void finish(socket_pair& pair, read_result& result) {
    while (!result.done) {
        pair.io.run_one();
    }
}

// One read of what the peer sent, completed by the reactor's epoll edge.
void read_once(socket_pair& pair, std::array<char, 64>& buffer, std::string_view bytes) {
    read_result result;
    read_at_once(pair, buffer, result);
    REQUIRE_FALSE(result.done);
    pair.send(bytes);
    finish(pair, result);
    REQUIRE_FALSE(result.ec);
    REQUIRE(result.bytes == bytes.size());
}

// One read of `first`, then `then` arrives and the reactor takes its edge
// with no read waiting for it: no new edge will come for those bytes.
void arrive_unseen(socket_pair& pair, std::array<char, 64>& buffer, std::string_view first, std::string_view then) {
    read_once(pair, buffer, first);
    pair.send(then);
    pair.wait_readable();
    pair.io.poll();
}

}  // namespace

TEST_CASE("a read that found the socket empty spares the next read's recv until data arrives") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    read_once(pair, buffer, "hello");  // 5 bytes into room for 64: the queue was emptied

    read_result next;
    recv_calls = 0;
    read_at_once(pair, buffer, next);
    CHECK(recv_calls.load() == 0);  // Boost 1.81 alone calls recv() here and gets EAGAIN
    CHECK_FALSE(next.done);

    pair.send("x");
    finish(pair, next);
    CHECK_FALSE(next.ec);
    CHECK(next.bytes == 1);
    CHECK(recv_calls.load() == 1);
}

TEST_CASE("a read that filled its buffer leaves the rest to be read at once") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    read_result first;
    read_at_once(pair, buffer, first);
    pair.send(std::string(100, 'a'));
    finish(pair, first);
    REQUIRE(first.bytes == 64);

    // No new edge will come for the 36 bytes left: the next read must try at once.
    read_now(pair, buffer, 36);
}

TEST_CASE("a read after an arrival the reactor saw with no read waiting still reads it") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    arrive_unseen(pair, buffer, "first", "second");
    read_now(pair, buffer, 6);
}

TEST_CASE("an end of stream that came with the last bytes is returned by the next read") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    read_once(pair, buffer, "first");  // the socket known empty: the next read waits for an edge

    read_result last;
    read_at_once(pair, buffer, last);
    REQUIRE_FALSE(last.done);
    pair.send("last");
    pair.peer.shutdown(tcp_socket::shutdown_send);
    pollfd entry{pair.socket.native_handle(), POLLIN | POLLRDHUP, 0};
    while ((entry.revents & POLLRDHUP) == 0) {  // both here before the reactor's next poll
        REQUIRE(::poll(&entry, 1, -1) == 1);
    }
    finish(pair, last);
    REQUIRE(last.bytes == 4);  // fewer than 64, and yet the socket is not empty: its end is left

    read_result end;
    read_at_once(pair, buffer, end);  // no edge will come for it: only a read now finds it
    REQUIRE(end.done);
    CHECK(end.ec == asio::error::eof);
}

TEST_CASE("an end of stream that comes after a read emptied the socket wakes the waiting read") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    read_once(pair, buffer, "all");
    read_result end;
    read_at_once(pair, buffer, end);
    REQUIRE_FALSE(end.done);
    pair.peer.shutdown(tcp_socket::shutdown_send);
    finish(pair, end);
    CHECK(end.ec == asio::error::eof);
}

TEST_CASE("may_have_arrivals: false after a read emptied the socket, true once the reactor sees more") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    CHECK(may_have_arrivals(pair.socket));  // never read: unknown
    read_once(pair, buffer, "answer");
#if BOOST_VERSION == 108100
    CHECK_FALSE(may_have_arrivals(pair.socket));
#endif

    SUBCASE("a byte") { pair.send("!"); }
    SUBCASE("the peer's end of stream") {
        pair.peer.shutdown(tcp_socket::shutdown_send);
    }
    pair.wait_readable();
    pair.io.poll();
    CHECK(may_have_arrivals(pair.socket));
}

TEST_CASE("a wait for input on a socket a read emptied is not re-armed, and wakes on the next arrival") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    read_once(pair, buffer, "answer");  // short: the socket is known empty

    bool woke = false;
    epoll_ctl_calls = 0;
    pair.socket.async_wait(tcp_socket::wait_read, [&woke](const boost::system::error_code& ec) {
        CHECK_FALSE(ec);
        woke = true;
    });
    pair.io.poll();
    CHECK_FALSE(woke);
#if BOOST_VERSION == 108100
    CHECK(epoll_ctl_calls.load() == 0);  // Boost 1.81 alone re-arms every wait (EPOLL_CTL_MOD)
#endif
    pair.send("next");
    while (!woke) {
        pair.io.run_one();
    }
    read_now(pair, buffer, 4);
}

TEST_CASE("a wait for input after an edge no read took is re-armed, and completes for the bytes already there") {
    socket_pair pair;
    std::array<char, 64> buffer{};
    arrive_unseen(pair, buffer, "answer", "late");  // no new edge will come for "late"

    bool woke = false;
    epoll_ctl_calls = 0;
    pair.socket.async_wait(tcp_socket::wait_read, [&woke](const boost::system::error_code& ec) {
        CHECK_FALSE(ec);
        woke = true;
    });
    while (!woke) {
        pair.io.run_one();  // the re-arm makes epoll report the bytes again
    }
    CHECK(epoll_ctl_calls.load() == 1);
    read_now(pair, buffer, 4);
}
