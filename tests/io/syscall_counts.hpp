#pragma once
// System calls this executable made, counted by the wrappers in
// socket_reads_test.cpp: they replace the C library's recv(), recvmsg() and
// epoll_ctl() for all of io_tests, so the Asio and OpenSSL code linked in is
// counted too (OpenSSL's own socket BIO reads with read(), not counted).
#include <atomic>

namespace io_test {
extern std::atomic<int> recv_calls;
extern std::atomic<int> epoll_ctl_calls;
}
