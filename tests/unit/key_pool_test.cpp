// Key pools: the keys from the environment, their selection by the limiter
// (least waiting, then round-robin), and keys out of rotation, on a hand-held clock.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/key_pool.hpp"
#include "limits/limiter.hpp"
#include "routing/keys.hpp"

using namespace mistral_proxy;
using namespace std::chrono_literals;
namespace chr = std::chrono;
using limits::time_point;
using routing::upstream_id;

namespace {

const time_point t0 = time_point{chr::sys_days{chr::year{2025} / chr::March / 10}.time_since_epoch()} + 12h;

routing::key_store store_of(const std::map<std::string, std::string>& env, std::string_view yaml) {
    const auto config = config::parse_config(yaml, "/tmp/c.yaml");
    return routing::key_store::from_environment(config, [&env](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

std::vector<std::string> buckets_of(const routing::key_store& store, upstream_id upstream) {
    std::vector<std::string> out;
    for (const auto& member : store.pool(upstream)) {
        out.push_back(member.bucket);
    }
    return out;
}

// What a session does: the turn order from the pools, then the limiter's choice.
std::string take(limits::key_pools& pools, limits::limiter& limiter, const std::vector<std::string>& buckets,
                 time_point now, time_point* ready = nullptr) {
    const auto order = pools.turn_order(buckets, now, true);
    std::vector<std::string> turn;
    for (const auto i : order) {
        turn.push_back(buckets[i]);
    }
    const auto r = limiter.reserve_any(turn, now, 10);
    REQUIRE(r.granted);
    if (ready != nullptr) {
        *ready = r.granted->ready_at;
    }
    CHECK(r.granted->key == turn[r.granted->pool_index]);
    return r.granted->key;
}

}  // namespace

TEST_CASE("key pool: members from the environment, each on its own bucket") {
    const auto store = store_of({{"KEY_A", "ka"}, {"KEY_C", "kc"}, {"MISTRAL_API_KEY", "mk"}},
                                "upstreams:\n  mistral: {api_key_env: [KEY_A, KEY_B, KEY_C]}\n"
                                "  mistral_eu: {api_key_env: [KEY_A, KEY_C]}\n");
    CHECK(store.is_pool(upstream_id::mistral));
    CHECK(buckets_of(store, upstream_id::mistral) == std::vector<std::string>{"mistral/KEY_A", "mistral/KEY_C"});
    // mistral_eu names the same keys: the same buckets (one key, one set of limits).
    CHECK(buckets_of(store, upstream_id::mistral_eu) == std::vector<std::string>{"mistral/KEY_A", "mistral/KEY_C"});
    CHECK(store.unset_pool_members() == std::vector<std::string>{"mistral: KEY_B"});
    CHECK(store.upstream_authorization(upstream_id::mistral, std::nullopt, 0).authorization == "Bearer ka");
    CHECK(store.upstream_authorization(upstream_id::mistral, std::nullopt, 1).authorization == "Bearer kc");
    std::string authorization;  // the request path's form: member by member into one string
    CHECK(store.authorization_into(upstream_id::mistral, std::nullopt, 1, authorization));
    CHECK(authorization == "Bearer kc");
    CHECK(store.authorization_into(upstream_id::mistral, std::nullopt, 0, authorization));
    CHECK(authorization == "Bearer ka");
    CHECK(store.secrets_for_leak_checks().size() == 4);  // ka and kc, for mistral and for mistral_eu
    // A single key keeps its upstream's bucket, as before pools existed.
    const auto single = store_of({{"MISTRAL_API_KEY", "mk"}}, "");
    CHECK_FALSE(single.is_pool(upstream_id::mistral_eu));
    CHECK(buckets_of(single, upstream_id::mistral_eu) == std::vector<std::string>{"mistral"});
}

TEST_CASE("key pool: a pool whose every env var is unset names them all in its 401") {
    const auto store = store_of({}, "upstreams: {codestral: {api_key_env: [CS_A, CS_B]}}");
    const auto choice = store.upstream_authorization(upstream_id::codestral, "client-bearer");
    REQUIRE(choice.error);
    CHECK(choice.error->message.find("CS_A or CS_B") != std::string::npos);
}

TEST_CASE("key pool under load: keys take turns, each paced by its own bucket, twice the rate together") {
    config::limits_settings settings;
    settings.buckets["mistral"] = {1, 0, 0};  // 1 request per second per key
    limits::limiter limiter(settings);
    limits::key_pools pools;
    const std::vector<std::string> buckets{"mistral/A", "mistral/B"};
    // Ten requests at the same instant: two go at once (one per key), then two per second.
    std::map<std::string, std::vector<time_point>> sent;
    for (int i = 0; i < 10; ++i) {
        time_point ready{};
        const auto key = take(pools, limiter, buckets, t0, &ready);
        sent[key].push_back(ready);
    }
    REQUIRE(sent["mistral/A"].size() == 5);
    REQUIRE(sent["mistral/B"].size() == 5);
    for (const auto& entry : sent) {  // no structured binding: clang 14 cannot capture one in CAPTURE
        const auto& key = entry.first;
        const auto& times = entry.second;
        CAPTURE(key);
        for (std::size_t i = 0; i < times.size(); ++i) {
            CHECK(times[i] == t0 + chr::seconds(i));  // each key's bucket: one per second
        }
    }
    // A single key would have needed 9 s for the same ten; the pool needs 4 s.
    limits::limiter one(settings);
    time_point last{};
    for (int i = 0; i < 10; ++i) {
        last = one.reserve("mistral", t0, 10).granted->ready_at;
    }
    CHECK(last == t0 + 9s);
}

TEST_CASE("key pool: the key with room goes first, whatever the turn") {
    config::limits_settings settings;
    settings.buckets["mistral"] = {1, 0, 0};
    limits::limiter limiter(settings);
    // Someone else's traffic filled A's queue: B is taken until it is as busy.
    for (int i = 0; i < 3; ++i) {
        REQUIRE(limiter.reserve("mistral/A", t0, 1).granted);
    }
    const std::vector<std::string> a_first{"mistral/A", "mistral/B"};
    const auto r1 = limiter.reserve_any(a_first, t0, 1);
    REQUIRE(r1.granted);
    CHECK(r1.granted->key == "mistral/B");
    CHECK(r1.granted->pool_index == 1);
    CHECK(r1.granted->ready_at == t0);
}

TEST_CASE("key pool: refused only when every key refuses, with the soonest retry") {
    config::limits_settings settings;
    settings.buckets["mistral"] = {1, 0, 0};
    settings.max_queue_wait = 1500ms;
    limits::limiter limiter(settings);
    const std::vector<std::string> pool{"mistral/A", "mistral/B"};
    int granted = 0;
    for (int i = 0; i < 4; ++i) {
        granted += limiter.reserve_any(pool, t0, 1).granted ? 1 : 0;
    }
    CHECK(granted == 4);  // A and B at t0 and t0 + 1 s
    const auto refused = limiter.reserve_any(pool, t0, 1);
    REQUIRE(refused.refused);
    CHECK(refused.refused->limit == limits::limit_kind::requests_per_second);
    CHECK(refused.refused->retry_after == 2000ms);
    CHECK(refused.refused->message.find("Every key of the pool (2) is limited") != std::string::npos);
}

TEST_CASE("key pool: a revoked key leaves the rotation for an hour, then comes back") {
    limits::key_pools pools;
    const std::vector<std::string> buckets{"codestral/A", "codestral/B", "codestral/C"};
    CHECK(pools.turn_order(buckets, t0, true) == std::vector<std::size_t>{0, 1, 2});
    CHECK(pools.turn_order(buckets, t0, true) == std::vector<std::size_t>{1, 2, 0});
    CHECK(pools.revoke("codestral/B", t0));
    CHECK_FALSE(pools.revoke("codestral/B", t0 + 1s));  // reported once
    CHECK(pools.turn_order(buckets, t0, true) == std::vector<std::size_t>{2, 0});
    CHECK(pools.turn_order(buckets, t0, true) == std::vector<std::size_t>{0, 2});
    // Without rotation (Mistral-side state): the first key in rotation.
    CHECK(pools.turn_order(buckets, t0, false) == std::vector<std::size_t>{0, 2});
    CHECK(pools.turn_order(buckets, t0 + 1s + limits::revoked_key_pause, false) ==
          std::vector<std::size_t>{0, 1, 2});
    pools.count_request("codestral/A");
    const auto text = pools.render_metrics(t0 + 2s);
    CHECK(text.find("mistral_proxy_pool_key_requests_total{pool=\"codestral\",key_env=\"A\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("mistral_proxy_pool_key_revocations_total{pool=\"codestral\",key_env=\"B\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("mistral_proxy_pool_key_in_rotation{pool=\"codestral\",key_env=\"B\"} 0\n") != std::string::npos);
    CHECK(text.find("mistral_proxy_pool_key_in_rotation{pool=\"codestral\",key_env=\"C\"} 1\n") != std::string::npos);
    // Every key out: nothing to take.
    pools.revoke("codestral/A", t0);
    pools.revoke("codestral/C", t0);
    CHECK(pools.turn_order(buckets, t0 + 2s, true).empty());
}
