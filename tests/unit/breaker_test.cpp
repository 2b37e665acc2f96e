// Circuit breaker state machine (closed -> open -> half-open -> closed/open)
// and the per-worker board, driven by an injected clock.
#include <doctest/doctest.h>

#include <string>

#include "config/config.hpp"
#include "limits/breaker.hpp"

using namespace mistral_proxy::limits;
using namespace std::chrono_literals;

namespace {

const time_point t0 = time_point{} + 1000h;

mistral_proxy::config::breaker_settings settings(unsigned failures, std::chrono::milliseconds cooldown) {
    mistral_proxy::config::breaker_settings s;
    s.failures = failures;
    s.cooldown = cooldown;
    return s;
}

}  // namespace

TEST_CASE("breaker: closed stays closed below the threshold, and a success resets the count") {
    breaker b(settings(3, 30s));
    CHECK(b.state(t0) == breaker_state::closed);
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK(b.consecutive_failures() == 2);
    CHECK(b.admit(t0).allowed);
    b.on_success(t0);
    CHECK(b.consecutive_failures() == 0);
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK(b.state(t0) == breaker_state::closed);  // 2 consecutive, not 4
    const auto a = b.admit(t0);
    CHECK(a.allowed);
    CHECK_FALSE(a.probe);
}

TEST_CASE("breaker: N consecutive failures open it; open refuses until the cooldown is over") {
    breaker b(settings(3, 30s));
    CHECK_FALSE(b.on_failure(t0));
    CHECK_FALSE(b.on_failure(t0));
    CHECK(b.on_failure(t0));  // this one opened it
    CHECK(b.state(t0) == breaker_state::open);
    CHECK(b.open_until() == t0 + 30s);
    const auto a = b.admit(t0 + 10s);
    CHECK_FALSE(a.allowed);
    CHECK(a.retry_at == t0 + 30s);
    CHECK_FALSE(b.admit(t0 + 30s - 1ms).allowed);
    CHECK(b.state(t0 + 30s - 1ms) == breaker_state::open);
    CHECK(b.state(t0 + 30s) == breaker_state::half_open);  // reported, not stored
    CHECK(b.stored_state() == breaker_state::open);
    const auto look = b.check(t0 + 30s);  // a look takes no probe
    CHECK(look.allowed);
    CHECK(look.probe);
    CHECK(b.stored_state() == breaker_state::open);
    CHECK(b.admit(t0 + 30s).probe);
    CHECK_FALSE(b.check(t0 + 30s).allowed);  // the probe is taken
}

TEST_CASE("breaker: the default settings are 5 failures and 30s") {
    breaker b(mistral_proxy::config::breaker_settings{});
    for (int i = 0; i < 4; ++i) {
        b.on_failure(t0);
    }
    CHECK(b.state(t0) == breaker_state::closed);
    b.on_failure(t0);
    CHECK(b.state(t0) == breaker_state::open);
    CHECK(b.open_until() == t0 + 30s);
}

TEST_CASE("breaker: half-open lets exactly one probe through; its success closes") {
    breaker b(settings(1, 300ms));
    b.on_failure(t0);
    REQUIRE(b.state(t0) == breaker_state::open);
    const auto probe = b.admit(t0 + 300ms);
    CHECK(probe.allowed);
    CHECK(probe.probe);
    CHECK(b.stored_state() == breaker_state::half_open);
    const auto second = b.admit(t0 + 301ms);
    CHECK_FALSE(second.allowed);
    CHECK(second.retry_at == t0 + 600ms);
    b.on_success(t0 + 350ms);
    CHECK(b.state(t0 + 350ms) == breaker_state::closed);
    CHECK(b.consecutive_failures() == 0);
    const auto after = b.admit(t0 + 351ms);
    CHECK(after.allowed);
    CHECK_FALSE(after.probe);
}

TEST_CASE("breaker: a failed probe opens it for another cooldown") {
    breaker b(settings(2, 1s));
    b.on_failure(t0);
    b.on_failure(t0);
    REQUIRE(b.admit(t0 + 1s).probe);
    CHECK(b.on_failure(t0 + 1500ms));
    CHECK(b.state(t0 + 1500ms) == breaker_state::open);
    CHECK(b.open_until() == t0 + 2500ms);
    CHECK_FALSE(b.admit(t0 + 2s).allowed);
    CHECK(b.admit(t0 + 2500ms).probe);
}

TEST_CASE("breaker: a probe that never reports is given up after one cooldown; an abandoned one at once") {
    breaker b(settings(1, 1s));
    b.on_failure(t0);
    REQUIRE(b.admit(t0 + 1s).probe);
    CHECK_FALSE(b.admit(t0 + 1999ms).allowed);
    CHECK(b.admit(t0 + 2s).probe);  // the first probe is presumed lost
    b.on_abandoned();
    CHECK(b.admit(t0 + 2001ms).probe);
}

TEST_CASE("breaker: failures of tries admitted before it opened do not extend the cooldown") {
    breaker b(settings(2, 1s));
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK_FALSE(b.on_failure(t0 + 500ms));  // a try in flight when it opened
    CHECK(b.open_until() == t0 + 1s);
}

TEST_CASE("breaker_board: per upstream and model, forgotten once healthy, bounded") {
    breaker_board board(settings(2, 1s), 3);
    CHECK(board.admit(0, "m", t0).allowed);
    CHECK_FALSE(board.on_failure(0, "m", t0));
    CHECK(board.on_failure(0, "m", t0));
    CHECK_FALSE(board.check(0, "m", t0).allowed);
    CHECK(board.check(0, "x", t0).allowed);
    CHECK_FALSE(board.admit(0, "m", t0).allowed);
    CHECK(board.admit(0, "other", t0).allowed);  // another model
    CHECK(board.admit(2, "m", t0).allowed);      // another upstream
    CHECK(board.tripped(0) == 1);
    CHECK(board.tripped(2) == 0);

    board.on_failure(1, "a", t0);
    board.on_failure(1, "b", t0);
    CHECK(board.size() == 3);
    board.on_failure(1, "c", t0);  // full: the closed ones make room
    CHECK(board.size() == 2);
    breaker_board tiny(settings(1, 1s), 1);
    CHECK(tiny.on_failure(0, "a", t0));
    CHECK_FALSE(tiny.on_failure(0, "b", t0));  // full of open ones: not tracked
    CHECK(tiny.admit(0, "b", t0).allowed);
    CHECK(board.tripped(0) == 1);

    const auto probe = board.admit(0, "m", t0 + 1s);
    CHECK(probe.probe);
    CHECK(board.tripped(0) == 1);
    board.on_success(0, "m", t0 + 1s);
    CHECK(board.tripped(0) == 0);
    CHECK(board.admit(0, "m", t0 + 1s).allowed);
    CHECK(board.size() == 1);

    board.reset(settings(5, 2s));
    CHECK(board.size() == 0);
    CHECK(board.settings().failures == 5);
}
