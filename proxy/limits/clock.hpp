#pragma once
// The time types every limits component takes. Time is always passed in (an
// injected clock), so tests drive it by hand and nothing here ever sleeps.
//
// The wall clock (system_clock) is used, not steady_clock: the month budget is
// a calendar month in UTC, and the shared Redis limiter measures with the Redis
// server's TIME, which is wall-clock too. Components tolerate a clock that steps
// backwards (a bucket never refills twice for the same instant).
#include <chrono>
#include <compare>
#include <string>

namespace mistral_proxy::limits {

using clock = std::chrono::system_clock;
using time_point = clock::time_point;
using milliseconds = std::chrono::milliseconds;

// A calendar month in UTC, e.g. {2025, 3} for March 2025.
struct month_id {
    int year = 1970;
    unsigned month = 1;  // 1..12
    auto operator<=>(const month_id&) const = default;
};

// The UTC month `t` falls in.
month_id month_of(time_point t) noexcept;

// First instant of the month after `m` (where a monthly budget resets).
time_point next_month_start(month_id m) noexcept;

// "2025-03", the form used in messages, ledger keys and Redis keys.
std::string to_string(month_id m);

// "2025-04-01T00:00:00Z": RFC 3339 UTC, whole seconds.
std::string format_utc(time_point t);

// Rounds a wait up to whole milliseconds, never negative (Retry-After math).
milliseconds ceil_ms(clock::duration d) noexcept;

}  // namespace mistral_proxy::limits
