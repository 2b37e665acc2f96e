#pragma once
// Circuit breakers per upstream and model (SPEC §2 `breaker:`). Pure:
// time is passed in (limits/clock.hpp), nothing here sleeps or does I/O.
//
// closed --(breaker.failures consecutive failures)--> open
// open   --(breaker.cooldown elapsed, next admit)----> half-open: exactly one probe let through
// half-open --(probe succeeds)--> closed;  --(probe fails)--> open for another cooldown
//
// A failure is what the session counts as one: connect error, timeout, 5xx or
// an upstream 429. Any other answer from the upstream is a success.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.hpp"
#include "limits/clock.hpp"

namespace mistral_proxy::limits {

enum class breaker_state { closed, open, half_open };
std::string_view name(breaker_state state) noexcept;

class breaker {
public:
    explicit breaker(config::breaker_settings settings) noexcept : settings_(settings) {}

    struct admission {
        bool allowed = true;
        bool probe = false;       // this try is the half-open probe: report its outcome
        time_point retry_at{};    // when refused: when a request will be let through again
    };

    // May a try go upstream now? Moves open -> half-open once the cooldown is over
    // and lets exactly one probe through; others are refused until it reports.
    // A probe that never reports (its client went away) is given up after one
    // cooldown, and another probe is let through.
    admission admit(time_point now) noexcept;
    // What admit(now) would answer, without moving the state (a look before
    // taking a rate-limit token; a probe is only taken by admit()).
    admission check(time_point now) const noexcept;

    // Outcome of a try that was admitted. on_failure returns true when this
    // failure opened the breaker.
    void on_success(time_point now) noexcept;
    bool on_failure(time_point now) noexcept;
    // An admitted probe ended without an outcome (cancelled): let the next request probe.
    void on_abandoned() noexcept;

    // The state as of `now`, without moving it (an open breaker past its
    // cooldown reports half_open: the next request will probe).
    breaker_state state(time_point now) const noexcept;
    breaker_state stored_state() const noexcept { return state_; }
    unsigned consecutive_failures() const noexcept { return failures_; }
    time_point open_until() const noexcept { return open_until_; }

private:
    void trip(time_point now) noexcept;

    config::breaker_settings settings_;
    breaker_state state_ = breaker_state::closed;
    unsigned failures_ = 0;
    time_point open_until_{};
    bool probe_in_flight_ = false;
    time_point probe_started_{};
};

// The breakers of one worker thread, keyed by (upstream index, model). Only
// pairs with a failure since their last success are kept, and at most
// `max_entries` of them (past that, closed ones are dropped first, and a new
// pair is not tracked), so client-chosen model names cannot grow it unbounded.
class breaker_board {
public:
    explicit breaker_board(config::breaker_settings settings, std::size_t max_entries = 1024)
        : settings_(settings), max_entries_(max_entries) {}

    void reset(config::breaker_settings settings);  // a reload: every breaker closed

    breaker::admission admit(std::size_t upstream, std::string_view model, time_point now);
    breaker::admission check(std::size_t upstream, std::string_view model, time_point now) const;
    void on_success(std::size_t upstream, std::string_view model, time_point now);
    bool on_failure(std::size_t upstream, std::string_view model, time_point now);  // true: it opened
    void on_abandoned(std::size_t upstream, std::string_view model);

    // Breakers of `upstream` that are not closed (open, or half-open awaiting a probe).
    std::size_t tripped(std::size_t upstream) const noexcept;
    std::size_t size() const noexcept { return breakers_.size(); }
    const config::breaker_settings& settings() const noexcept { return settings_; }

private:
    using key = std::pair<std::size_t, std::string>;
    using key_view = std::pair<std::size_t, std::string_view>;
    struct key_less {
        using is_transparent = void;
        static key_view view(const key& k) noexcept { return {k.first, k.second}; }
        static key_view view(const key_view& k) noexcept { return k; }
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            return view(a) < view(b);
        }
    };
    breaker* find(std::size_t upstream, std::string_view model);

    config::breaker_settings settings_;
    std::size_t max_entries_;
    std::map<key, breaker, key_less> breakers_;
};

}  // namespace mistral_proxy::limits
