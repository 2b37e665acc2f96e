#pragma once
// A real redis-server for the tests in tests/redis/: started on a free loopback
// port for the run (--save '' --appendonly no), ready when it says so.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace redis_test {

// Set-up failures outside a test case (doctest's REQUIRE needs one).
inline void must(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "redis test: %s\n", what.c_str());
        std::exit(2);
    }
}

inline std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    must(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
    socklen_t len = sizeof addr;
    must(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
    ::close(fd);
    return ntohs(addr.sin_port);
}

// redis-server as a child process, stopped at the end of the run.
struct redis_server {
    pid_t pid = -1;
    std::uint16_t port = 0;

    void start() {
        port = free_port();
        int out[2];
        must(::pipe(out) == 0, "pipe");
        pid = ::fork();
        must(pid >= 0, "fork");
        if (pid == 0) {
            // Dies with the test, and holds none of the test's output streams.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            ::dup2(out[1], STDOUT_FILENO);
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, STDERR_FILENO);
            ::close(out[0]);
            const std::string p = std::to_string(port);
            ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--loglevel", "notice", static_cast<char*>(nullptr));
            std::_Exit(127);
        }
        ::close(out[1]);
        // Wait for the server to say it is ready (bounded by poll's timeout).
        std::string seen;
        char buf[512];
        while (seen.find("Ready to accept connections") == std::string::npos) {
            pollfd pfd{out[0], POLLIN, 0};
            must(::poll(&pfd, 1, 10'000) == 1, "redis-server did not start: " + seen);
            const ssize_t n = ::read(out[0], buf, sizeof buf);
            must(n > 0, "redis-server (on PATH?) exited: " + seen);
            seen.append(buf, static_cast<std::size_t>(n));
        }
        ::close(out[0]);  // later log lines go to a closed pipe; redis ignores SIGPIPE
    }

    void stop() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            int status = 0;
            ::waitpid(pid, &status, 0);
            pid = -1;
        }
    }
};

}  // namespace redis_test
