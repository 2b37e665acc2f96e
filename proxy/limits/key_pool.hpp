#pragma once
// Key pools (SPEC §2: api_key_env as a list): which of an upstream's keys a
// request takes, and the keys Mistral refused. Each key has its own buckets
// in the limiter (bucket "mistral/ENV"); this class keeps what is not a
// bucket: the round-robin turn, and the keys out of rotation since Mistral
// answered 401 for them. Thread-safe (one mutex, taken only by pooled
// upstreams' requests); time is passed in, as everywhere in limits/.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "limits/clock.hpp"

namespace mistral_proxy::limits {

// How long a key Mistral answered 401 for stays out of rotation; then one
// request tries it again (a key fixed in the console comes back by itself).
inline constexpr std::chrono::minutes revoked_key_pause{60};

class key_pools {
public:
    // The keys of a pool (`buckets`, as api_key_env lists them) a request may
    // take, in the order to try them, as indexes into `buckets`: those in
    // rotation, starting one further at each call (round-robin) when `rotate`,
    // else as listed (calls on Mistral-side state, such as files and batches,
    // keep to one workspace: the first key in rotation). Empty when every key
    // is out of rotation.
    std::vector<std::size_t> turn_order(std::span<const std::string> buckets, time_point now, bool rotate);

    // Takes a key out of rotation until now + revoked_key_pause. True when it
    // was in rotation (the first to report it logs and counts it).
    bool revoke(const std::string& bucket, time_point now);

    // A request went upstream with this key.
    void count_request(const std::string& bucket);

    // Prometheus text for every pool key seen: requests sent, revocations and
    // whether it is in rotation now. Labels: upstream bucket and env var name
    // (never the key).
    std::string render_metrics(time_point now) const;

private:
    struct key_state {
        time_point revoked_until{};
        std::uint64_t requests = 0;
        std::uint64_t revocations = 0;
    };
    key_state& state_for(const std::string& bucket);

    mutable std::mutex mutex_;
    std::map<std::string, key_state, std::less<>> keys_;
    std::map<std::string, std::uint64_t, std::less<>> turns_;  // per pool (its first key's bucket)
};

}  // namespace mistral_proxy::limits
