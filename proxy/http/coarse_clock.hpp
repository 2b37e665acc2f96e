#pragma once
// The time for deadlines, read cheaply. A precise reading (CLOCK_MONOTONIC,
// what std::chrono::steady_clock::now() reads) costs about 25 ns on a KVM
// guest (kvm-clock: a TSC read and the paravirtual clock's arithmetic); the
// coarse clocks the kernel keeps (CLOCK_MONOTONIC_COARSE, _REALTIME_COARSE)
// are a read of the vDSO page, about 5 ns, and lag the precise time by at most
// one scheduler tick (1 to 10 ms). A request read the time 17 times, most of
// them to set a deadline of seconds or to date a breaker's failure: those read
// the coarse clocks, and only what is measured (the latency histograms) reads
// the precise one: 0.25 µs less a request, 1% of its CPU at c=32.
//
// A deadline set from the coarse time ends at most one tick early; Asio's
// timers still compare with the precise time. What must never fire early
// (wait_deadline's check that its wait is really over) reads the precise
// clock, or a timer set for a coarse time just past would fire again at once
// until the coarse clock caught up.
#include <chrono>
#include <ctime>

namespace mistral_proxy::http {

// steady_clock's now, up to a tick behind: the same epoch (CLOCK_MONOTONIC
// and its coarse variant count from the same boot), so the two mix.
inline std::chrono::steady_clock::time_point coarse_steady_now() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return std::chrono::steady_clock::time_point(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec)));
}

// system_clock's now, up to a tick behind.
inline std::chrono::system_clock::time_point coarse_system_now() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec)));
}

// A stream's deadline (Beast's tcp_stream, or anything with expires_at)
// `timeout` from now, without the precise reading expires_after makes.
template <class Stream, class Duration>
void expire_in(Stream& stream, Duration timeout) {
    stream.expires_at(coarse_steady_now() + timeout);
}

}  // namespace mistral_proxy::http
