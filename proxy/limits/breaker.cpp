// Circuit breaker state machine and the per-worker board of breakers (see breaker.hpp).
#include "limits/breaker.hpp"

#include <algorithm>

namespace mistral_proxy::limits {

std::string_view name(breaker_state state) noexcept {
    switch (state) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "closed";
}

breaker::admission breaker::check(time_point now) const noexcept {
    switch (state_) {
        case breaker_state::closed:
            return {true, false, {}};
        case breaker_state::open:
            if (now < open_until_) {
                return {false, false, open_until_};
            }
            return {true, true, {}};
        case breaker_state::half_open:
            if (probe_in_flight_ && now < probe_started_ + settings_.cooldown) {
                return {false, false, probe_started_ + settings_.cooldown};
            }
            return {true, true, {}};
    }
    return {true, false, {}};
}

breaker::admission breaker::admit(time_point now) noexcept {
    const auto answer = check(now);
    if (answer.probe) {
        state_ = breaker_state::half_open;
        probe_in_flight_ = true;
        probe_started_ = now;
    }
    return answer;
}

void breaker::on_success(time_point) noexcept {
    state_ = breaker_state::closed;
    failures_ = 0;
    probe_in_flight_ = false;
}

bool breaker::on_failure(time_point now) noexcept {
    if (state_ == breaker_state::half_open) {
        trip(now);
        return true;
    }
    if (state_ == breaker_state::open) {
        return false;  // a try admitted before the breaker opened: already counted as open
    }
    if (++failures_ >= settings_.failures) {
        trip(now);
        return true;
    }
    return false;
}

void breaker::on_abandoned() noexcept {
    probe_in_flight_ = false;
}

void breaker::trip(time_point now) noexcept {
    state_ = breaker_state::open;
    open_until_ = now + settings_.cooldown;
    probe_in_flight_ = false;
    failures_ = std::max(failures_, settings_.failures);
}

breaker_state breaker::state(time_point now) const noexcept {
    if (state_ == breaker_state::open && now >= open_until_) {
        return breaker_state::half_open;
    }
    return state_;
}

void breaker_board::reset(config::breaker_settings settings) {
    settings_ = settings;
    breakers_.clear();
}

breaker* breaker_board::find(std::size_t upstream, std::string_view model) {
    const auto it = breakers_.find(key_view(upstream, model));
    return it == breakers_.end() ? nullptr : &it->second;
}

breaker::admission breaker_board::admit(std::size_t upstream, std::string_view model, time_point now) {
    breaker* b = find(upstream, model);
    return b == nullptr ? breaker::admission{} : b->admit(now);
}

breaker::admission breaker_board::check(std::size_t upstream, std::string_view model, time_point now) const {
    const auto it = breakers_.find(key_view(upstream, model));
    return it == breakers_.end() ? breaker::admission{} : it->second.check(now);
}

void breaker_board::on_success(std::size_t upstream, std::string_view model, time_point now) {
    // A closed breaker with no failure left is the same as none: forget it.
    const auto it = breakers_.find(key_view(upstream, model));
    if (it != breakers_.end()) {
        it->second.on_success(now);
        breakers_.erase(it);
    }
}

bool breaker_board::on_failure(std::size_t upstream, std::string_view model, time_point now) {
    breaker* b = find(upstream, model);
    if (b == nullptr) {
        if (breakers_.size() >= max_entries_) {
            // Make room: drop the closed ones (they only hold a failure count).
            std::erase_if(breakers_, [](const auto& entry) { return entry.second.stored_state() == breaker_state::closed; });
            if (breakers_.size() >= max_entries_) {
                return false;
            }
        }
        b = &breakers_.emplace(key{upstream, std::string(model)}, breaker(settings_)).first->second;
    }
    return b->on_failure(now);
}

void breaker_board::on_abandoned(std::size_t upstream, std::string_view model) {
    if (breaker* b = find(upstream, model)) {
        b->on_abandoned();
    }
}

std::size_t breaker_board::tripped(std::size_t upstream) const noexcept {
    std::size_t n = 0;
    for (const auto& [k, b] : breakers_) {
        if (k.first == upstream && b.stored_state() != breaker_state::closed) {
            ++n;
        }
    }
    return n;
}

}  // namespace mistral_proxy::limits
