#pragma once
// The recv() and recvmsg() calls this executable made, counted by the
// wrappers in socket_reads_test.cpp (they replace the C library's for all of
// io_tests, so the Asio and OpenSSL code linked in is counted too).
#include <atomic>

namespace io_test {
extern std::atomic<int> recv_calls;
}
