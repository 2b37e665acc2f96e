// One token bucket with FIFO reservations (see token_bucket.hpp).
#include "limits/token_bucket.hpp"

#include <algorithm>
#include <cmath>

namespace mistral_proxy::limits {

namespace chr = std::chrono;

namespace {

// t + d without overflow: the bucket's tat is clock time plus up to ~292 years
// of debt (tokens_to_time's cap), which an int64 of nanoseconds cannot always
// hold on top of today's date. Saturates at the ends of the clock's range.
time_point add_saturating(time_point t, clock::duration d) noexcept {
    const clock::rep base = t.time_since_epoch().count();
    clock::rep sum = 0;
    if (__builtin_add_overflow(base, d.count(), &sum)) {
        return d.count() > 0 ? time_point::max() : time_point::min();
    }
    return time_point{clock::duration{sum}};
}

// later - earlier in seconds; a saturated tat cannot overflow it.
double seconds_between(time_point earlier, time_point later) noexcept {
    clock::rep diff = 0;
    if (!__builtin_sub_overflow(later.time_since_epoch().count(), earlier.time_since_epoch().count(), &diff)) {
        return chr::duration<double>(clock::duration{diff}).count();
    }
    return chr::duration<double>(later.time_since_epoch()).count() -
           chr::duration<double>(earlier.time_since_epoch()).count();
}

}  // namespace

token_bucket::token_bucket(double rate_per_second, double capacity) noexcept
    : rate_(rate_per_second > 0 ? rate_per_second : 0), capacity_(std::max(capacity, 1.0)) {}

clock::duration token_bucket::tokens_to_time(double tokens) const noexcept {
    // Rounded up so the limit is never exceeded by a rounding error.
    const double ticks = std::ceil(tokens / rate_ * static_cast<double>(clock::period::den) /
                                   static_cast<double>(clock::period::num));
    // About 292 years of nanoseconds: far beyond any wait, and no overflow.
    constexpr double max_ticks = 9.0e18;
    return clock::duration{static_cast<clock::rep>(std::clamp(ticks, -max_ticks, max_ticks))};
}

time_point token_bucket::earliest(time_point now, double cost) const noexcept {
    if (unlimited()) {
        return now;
    }
    const double needed = std::min(cost, capacity_);
    return std::max(now, add_saturating(tat_, -tokens_to_time(capacity_ - needed)));
}

void token_bucket::take(time_point at, double cost) noexcept {
    if (unlimited()) {
        return;
    }
    tat_ = add_saturating(std::max(tat_, at), tokens_to_time(cost));
}

void token_bucket::give_back(double cost) noexcept {
    if (unlimited()) {
        return;
    }
    // A tat far in the past means "full" just as one at `now` does; only the
    // clock's range needs guarding.
    tat_ = add_saturating(tat_, -tokens_to_time(cost));
}

double token_bucket::available(time_point now) const noexcept {
    if (unlimited()) {
        return 0;
    }
    if (tat_ <= now) {
        return capacity_;
    }
    const double missing = seconds_between(now, tat_) * rate_;
    return std::max(0.0, capacity_ - missing);
}

time_point token_bucket::full_at(time_point now) const noexcept {
    return unlimited() ? now : std::max(now, tat_);
}

void token_bucket::reconfigure(time_point now, double rate_per_second, double capacity) noexcept {
    const double debt = unlimited() || tat_ <= now ? 0.0 : seconds_between(now, tat_) * rate_;
    rate_ = rate_per_second > 0 ? rate_per_second : 0;
    capacity_ = std::max(capacity, 1.0);
    tat_ = now;
    if (!unlimited()) {
        tat_ = add_saturating(tat_, tokens_to_time(debt));
    }
}

}  // namespace mistral_proxy::limits
