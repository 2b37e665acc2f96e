#pragma once
// A continuous-refill token bucket kept as GCRA state (one "theoretical arrival
// time"), which makes it a reservation ledger as well: taking tokens at a future
// instant is allowed and pushes the bucket into debt, so whoever reserves next
// is scheduled behind it. No lock inside; the owner (limiter) serialises.
// Time arithmetic saturates at the clock's range: any cost, even 2^64 tokens,
// leaves a bucket in (very long) debt, never wrapped around to "full".
#include <cstdint>

#include "limits/clock.hpp"

namespace mistral_proxy::limits {

class token_bucket {
public:
    // Unlimited: every query answers "now", take() does nothing.
    token_bucket() = default;

    // `rate_per_second` > 0 refills continuously; `capacity` >= 1 is the most the
    // bucket holds (the largest burst). A bucket starts full.
    token_bucket(double rate_per_second, double capacity) noexcept;

    bool unlimited() const noexcept { return rate_ <= 0; }
    double rate_per_second() const noexcept { return rate_; }
    double capacity() const noexcept { return capacity_; }

    // Earliest instant >= now at which `cost` tokens are there, counting every
    // earlier take(). A cost above capacity is served once the bucket is full
    // (then the bucket goes into debt) so a large request is slow, never stuck.
    time_point earliest(time_point now, double cost) const noexcept;

    // Takes `cost` tokens at `at`, which must be >= earliest(now, cost) for the
    // limit to hold. `at` may lie in the future (a reservation).
    void take(time_point at, double cost) noexcept;

    // Returns `cost` tokens (a cancelled reservation, an estimate that was too
    // high); a negative cost takes more (an estimate that was too low).
    void give_back(double cost) noexcept;

    // Tokens there at `now`, never below 0 (for rate-limit headers).
    double available(time_point now) const noexcept;

    // When the bucket is full again (now or later).
    time_point full_at(time_point now) const noexcept;

    // Changes rate and capacity keeping the debt in tokens (used when the
    // upstream reports a lower limit than configured). rate <= 0 = unlimited.
    void reconfigure(time_point now, double rate_per_second, double capacity) noexcept;

private:
    clock::duration tokens_to_time(double tokens) const noexcept;

    double rate_ = 0;
    double capacity_ = 0;
    // The instant the bucket would be full if nothing more were taken. Before
    // `now` means full; after it means (tat - now) * rate tokens are missing.
    time_point tat_{};
};

}  // namespace mistral_proxy::limits
