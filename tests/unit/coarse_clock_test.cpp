// http::coarse_steady_now / coarse_system_now: the coarse clocks read on the
// same scale as the precise ones (a deadline set from one is compared by
// Asio with the other), never ahead of them and at most a tick behind.
#include <doctest/doctest.h>

#include <chrono>

#include "http/coarse_clock.hpp"

using namespace mistral_proxy::http;
using namespace std::chrono_literals;

namespace {

// A thousand readings of the coarse clock, each followed by the precise one.
template <class Coarse, class Precise>
void check_never_ahead_and_close(Coarse coarse_now, Precise precise_now) {
    for (int i = 0; i < 1000; ++i) {
        const auto coarse = coarse_now();
        const auto precise = precise_now();
        REQUIRE(coarse <= precise);
        // A tick is 1 to 10 ms; a second allows for the thread being descheduled
        // between the two readings, and still fails on another epoch (boot vs 1970).
        REQUIRE(precise - coarse < 1s);
    }
}

}  // namespace

TEST_CASE("coarse_steady_now: steady_clock's epoch, never ahead, a tick behind at most") {
    check_never_ahead_and_close(coarse_steady_now, [] { return std::chrono::steady_clock::now(); });
}

TEST_CASE("coarse_system_now: system_clock's epoch, never ahead, a tick behind at most") {
    check_never_ahead_and_close(coarse_system_now, [] { return std::chrono::system_clock::now(); });
}

TEST_CASE("expire_in: the deadline is the coarse now plus the timeout") {
    struct stream_stub {
        std::chrono::steady_clock::time_point at;
        void expires_at(std::chrono::steady_clock::time_point t) { at = t; }
    } stream;
    const auto before = coarse_steady_now();
    expire_in(stream, 30s);
    const auto after = coarse_steady_now();
    CHECK(stream.at >= before + 30s);
    CHECK(stream.at <= after + 30s);
}
