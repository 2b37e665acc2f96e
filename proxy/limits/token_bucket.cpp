#include "limits/token_bucket.hpp"

#include <algorithm>
#include <cmath>

namespace mistral_proxy::limits {

namespace chr = std::chrono;

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
    return std::max(now, tat_ - tokens_to_time(capacity_ - needed));
}

void token_bucket::take(time_point at, double cost) noexcept {
    if (unlimited()) {
        return;
    }
    tat_ = std::max(tat_, at) + tokens_to_time(cost);
}

void token_bucket::give_back(double cost) noexcept {
    if (unlimited()) {
        return;
    }
    // A tat far in the past means "full" just as one at `now` does, so there
    // is no need to clamp here.
    tat_ -= tokens_to_time(cost);
}

double token_bucket::available(time_point now) const noexcept {
    if (unlimited()) {
        return 0;
    }
    if (tat_ <= now) {
        return capacity_;
    }
    const double missing = chr::duration<double>(tat_ - now).count() * rate_;
    return std::max(0.0, capacity_ - missing);
}

time_point token_bucket::full_at(time_point now) const noexcept {
    return unlimited() ? now : std::max(now, tat_);
}

void token_bucket::reconfigure(time_point now, double rate_per_second, double capacity) noexcept {
    const double debt = unlimited() || tat_ <= now ? 0.0 : chr::duration<double>(tat_ - now).count() * rate_;
    rate_ = rate_per_second > 0 ? rate_per_second : 0;
    capacity_ = std::max(capacity, 1.0);
    tat_ = now;
    if (!unlimited()) {
        tat_ += tokens_to_time(debt);
    }
}

}  // namespace mistral_proxy::limits
