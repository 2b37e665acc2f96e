// Key pools: the round-robin turn and the keys out of rotation (see key_pool.hpp).
#include "limits/key_pool.hpp"

namespace mistral_proxy::limits {

key_pools::key_state& key_pools::state_for(const std::string& bucket) {
    const auto found = keys_.find(bucket);
    if (found != keys_.end()) {
        return found->second;
    }
    return keys_.emplace(bucket, key_state{}).first->second;
}

std::vector<std::size_t> key_pools::turn_order(std::span<const std::string> buckets, time_point now, bool rotate) {
    std::vector<std::size_t> order;
    if (buckets.empty()) {
        return order;
    }
    order.reserve(buckets.size());
    const std::lock_guard lock(mutex_);
    std::size_t first = 0;
    if (rotate) {
        auto& turn = turns_[buckets.front()];
        first = static_cast<std::size_t>(turn++ % buckets.size());
    }
    for (std::size_t n = 0; n < buckets.size(); ++n) {
        const std::size_t i = (first + n) % buckets.size();
        if (state_for(buckets[i]).revoked_until <= now) {
            order.push_back(i);
        }
    }
    return order;
}

bool key_pools::revoke(const std::string& bucket, time_point now) {
    const std::lock_guard lock(mutex_);
    auto& s = state_for(bucket);
    const bool was_in_rotation = s.revoked_until <= now;
    s.revoked_until = now + revoked_key_pause;
    if (was_in_rotation) {
        ++s.revocations;
    }
    return was_in_rotation;
}

void key_pools::count_request(const std::string& bucket) {
    const std::lock_guard lock(mutex_);
    ++state_for(bucket).requests;
}

std::string key_pools::render_metrics(time_point now) const {
    const std::lock_guard lock(mutex_);
    if (keys_.empty()) {
        return {};
    }
    std::string requests =
        "# HELP mistral_proxy_pool_key_requests_total Requests sent upstream with each key of a key pool.\n"
        "# TYPE mistral_proxy_pool_key_requests_total counter\n";
    std::string revocations =
        "# HELP mistral_proxy_pool_key_revocations_total Times Mistral answered 401 for a pool's key and it left "
        "the rotation.\n"
        "# TYPE mistral_proxy_pool_key_revocations_total counter\n";
    std::string in_rotation =
        "# HELP mistral_proxy_pool_key_in_rotation 1 while a pool's key is in rotation, 0 while it is out after a "
        "401.\n"
        "# TYPE mistral_proxy_pool_key_in_rotation gauge\n";
    for (const auto& [bucket, s] : keys_) {
        const auto slash = bucket.find('/');
        const std::string labels = "{pool=\"" + bucket.substr(0, slash) + "\",key_env=\"" +
                                   (slash == std::string::npos ? std::string() : bucket.substr(slash + 1)) + "\"} ";
        requests += "mistral_proxy_pool_key_requests_total" + labels + std::to_string(s.requests) + "\n";
        revocations += "mistral_proxy_pool_key_revocations_total" + labels + std::to_string(s.revocations) + "\n";
        in_rotation += "mistral_proxy_pool_key_in_rotation" + labels + (s.revoked_until <= now ? "1" : "0") + "\n";
    }
    return requests + revocations + in_rotation;
}

}  // namespace mistral_proxy::limits
