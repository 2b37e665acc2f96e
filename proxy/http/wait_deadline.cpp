// One lazily moved timer per socket (wait_deadline.hpp).
#include "http/wait_deadline.hpp"

#include "http/coarse_clock.hpp"

namespace mistral_proxy::http {

void wait_deadline::begin(clock::duration timeout) {
    // Coarse: a deadline may end a tick early; on_timer's check is precise.
    wait_started_ = coarse_steady_now();
    timeout_ = timeout;
    waiting_ = true;
    expired_ = false;
    const auto due = wait_started_ + timeout;
    // Armed for later than this wait's end (an earlier one had a longer
    // timeout): moved earlier, the one case that cancels a wait.
    if (armed_for_ > due) {
        arm(due);
    }
}

void wait_deadline::arm(clock::time_point at) {
    armed_for_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) { self->on_timer(ec); });
}

void wait_deadline::on_timer(const boost::system::error_code& ec) {
    if (ec || owner_ == nullptr) {
        return;  // moved (a new wait is pending) or stopped
    }
    armed_for_ = clock::time_point::max();
    if (!waiting_) {
        return;  // the next wait arms it
    }
    const auto due = wait_started_ + timeout_;
    if (clock::now() < due) {
        arm(due);
        return;
    }
    expired_ = true;
    on_expiry_(owner_);
}

void wait_deadline::stop() noexcept {
    owner_ = nullptr;
    if (armed_for_ != clock::time_point::max()) {
        armed_for_ = clock::time_point::max();
        timer_.cancel();
    }
}

}  // namespace mistral_proxy::http
