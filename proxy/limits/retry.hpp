#pragma once
// When and how long to retry an upstream call (SPEC §8), and the retry hints
// the client gets on the final answer. Pure.
//
// Retried: 429, 502, 503, 504 and connection failures (no answer at all),
// and only while no byte of the answer has reached the client (the caller
// checks that). A retry takes a request token again (limiter::reserve_retry).
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "limits/clock.hpp"
#include "limits/ratelimit_headers.hpp"

namespace mistral_proxy::limits {

bool is_retryable_status(unsigned status) noexcept;

// Retry-After as RFC 9110 writes it: delay-seconds ("120", decimals accepted)
// or an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT"; RFC 850 and asctime forms
// too). A date in the past is 0. nullopt for anything else.
std::optional<milliseconds> parse_retry_after(std::string_view value, time_point now);

// The upstream's wish from its headers: retry-after-ms (OpenAI's, milliseconds)
// when present and valid, else Retry-After.
std::optional<milliseconds> upstream_retry_after(const header_list& headers, time_point now);

class retry_schedule {
public:
    explicit retry_schedule(config::retry_settings settings);

    struct decision {
        bool retry = false;
        milliseconds delay{0};  // wait this long, then reserve_retry() and send again
    };

    // After try number `tries_done` (1 = the first try) failed. `retryable`:
    // is_retryable_status(status) or a connection failure. Delay of retry n is
    // backoff[n-1] (the last entry repeated), or the upstream's Retry-After when
    // that is longer, capped at max_retry_after. No retry once max_retries
    // retries were made.
    decision after_failure(unsigned tries_done, bool retryable,
                           std::optional<milliseconds> upstream_retry_after) const noexcept;

    // Retry-After for the client's final 429/5xx: the upstream's capped at
    // max_retry_after, else the last backoff step (capped too).
    milliseconds client_retry_after(std::optional<milliseconds> upstream_retry_after) const noexcept;

    const config::retry_settings& settings() const noexcept { return settings_; }

private:
    config::retry_settings settings_;
};

// The hints the OpenAI SDK reads: Retry-After (whole seconds, rounded up),
// retry-after-ms and x-should-retry ("true"/"false"). The SDK waits as long as
// it is told (when <= 60 s), so callers pass a capped value; should_retry is
// false when retrying cannot help soon (e.g. the monthly budget is spent).
header_list client_retry_headers(milliseconds retry_after, bool should_retry);

}  // namespace mistral_proxy::limits
