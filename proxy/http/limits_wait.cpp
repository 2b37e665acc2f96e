// The rate limiter seen from a session (SPEC §8): waiting for a request's
// tokens in FIFO order while watching the client, the local 429, and the
// calls to the embedded limiter or to this worker's Redis client.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/session.hpp"
#include "limits/retry.hpp"
#include "log/log.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

namespace {

errors::openai_error local_rate_limit_error(const limits::refusal& refusal) {
    return errors::make_error(429, refusal.message, std::string(limits::to_string(refusal.limit)));
}

metrics::local_limit metric_of(limits::limit_kind kind) {
    switch (kind) {
        case limits::limit_kind::requests_per_second:
            return metrics::local_limit::requests_per_second;
        case limits::limit_kind::tokens_per_minute:
            return metrics::local_limit::tokens_per_minute;
        case limits::limit_kind::tokens_per_month:
            return metrics::local_limit::tokens_per_month;
    }
    return metrics::local_limit::requests_per_second;
}

// Every key of the pool is out of rotation: Mistral answered 401 for each.
errors::openai_error every_key_refused(std::string_view upstream) {
    return errors::make_error(401,
                              "every key of upstream " + std::string(upstream) +
                                  "'s key pool was refused by Mistral (401) and is out of rotation for " +
                                  config::format_duration(limits::revoked_key_pause) +
                                  " after its 401; check the keys its api_key_env names",
                              "invalid_api_key");
}

}  // namespace

const std::string& downstream_session::authorization_for(const request_context& context,
                                                         routing::upstream_id upstream) {
    state_->keys.authorization_into(upstream, context.client_bearer, context.key_member, upstream_authorization_);
    return upstream_authorization_;
}

bool downstream_session::take_key_at_once(request_context& context, routing::upstream_id upstream) const {
    const auto& pool = state_->keys.pool(upstream);
    if (pool.size() > 1 || worker_.limits.active()) {
        return false;
    }
    context.key_member = 0;
    context.key_bucket = pool.empty() ? limits::bucket_key(routing::upstream_name(upstream)) : pool.front().bucket;
    return true;
}

awaitable<bool> downstream_session::wait_for_limits(request_context& context, routing::upstream_id upstream,
                                                    std::uint64_t tokens, bool& keep_alive, bool rotate) {
    const auto name = routing::upstream_name(upstream);
    const auto& pool = state_->keys.pool(upstream);
    // A single key (or the client's bearer) has the upstream's bucket.
    context.key_member = 0;
    context.key_bucket = pool.empty() ? limits::bucket_key(name) : pool.front().bucket;
    std::vector<std::string> turn;  // a pool's buckets, in the order to try them
    std::vector<std::size_t> order;
    if (pool.size() > 1) {
        std::vector<std::string> buckets;
        buckets.reserve(pool.size());
        for (const auto& member : pool) {
            buckets.push_back(member.bucket);
        }
        order = worker_.limits.key_pools.turn_order(buckets, limits::clock::now(), rotate);
        if (order.empty()) {
            keep_alive = co_await send_error(context, every_key_refused(name), keep_alive);
            co_return false;
        }
        for (const auto i : order) {
            turn.push_back(buckets[i]);
        }
        context.key_member = order.front();
        context.key_bucket = turn.front();
    }
    auto count_key = [&] {
        if (!turn.empty()) {
            worker_.limits.key_pools.count_request(context.key_bucket);
        }
    };
    if (!worker_.limits.active()) {
        count_key();
        co_return true;
    }
    context.estimated_tokens = tokens;
    // No co_await inside a conditional expression: GCC 12 destroys its
    // temporaries twice there.
    limits::io::shared_reserve_result shared;
    if (worker_.limiter_client) {
        const auto buckets =
            turn.empty() ? std::span<const std::string>(&context.key_bucket, 1) : std::span<const std::string>(turn);
        shared = co_await worker_.limiter_client->reserve(buckets, tokens);
    } else {
        shared.backend_error = "no client";
    }
    const auto& backend_error = shared.backend_error;
    auto& reserved = shared.result;
    if (!backend_error.empty()) {
        // Fail closed: without the shared budget nobody can tell whether the call is allowed.
        keep_alive = co_await send_error(
            context,
            errors::make_error(503, "rate limit backend unavailable, nothing was sent: " + backend_error,
                               "limits_backend_unavailable"),
            keep_alive);
        co_return false;
    }
    if (shared.all_revoked) {  // another proxy took them out (shared through Redis)
        keep_alive = co_await send_error(context, every_key_refused(name), keep_alive);
        co_return false;
    }
    if (reserved.refused) {
        const auto& refusal = *reserved.refused;
        metrics::shard::add(worker_.metrics.local_rate_limited[static_cast<std::size_t>(metric_of(refusal.limit))]);
        const bool month = refusal.limit == limits::limit_kind::tokens_per_month;
        auto headers = limits::client_retry_headers(refusal.retry_after, !month);
        for (auto& header : limits::openai_ratelimit_headers({}, worker_.limiter_client->snapshot(context.key_bucket))) {
            headers.push_back(std::move(header));
        }
        keep_alive = co_await send_error(context, local_rate_limit_error(refusal), keep_alive, &headers);
        co_return false;
    }
    context.reservation = std::move(reserved.granted);
    if (!turn.empty()) {
        const auto taken = std::min(context.reservation->pool_index, turn.size() - 1);
        context.key_member = order[taken];
        context.key_bucket = turn[taken];
    }
    count_key();
    const auto waited_from = std::chrono::steady_clock::now();
    if (!co_await wait_watching_client(context.reservation->ready_at)) {
        co_await limits_cancel(*context.reservation);
        context.reservation.reset();
        keep_alive = false;
        co_return false;
    }
    worker_.metrics.queue_wait.observe(std::chrono::steady_clock::now() - waited_from);
    co_return true;
}

awaitable<bool> downstream_session::take_key_out(request_context& context, routing::upstream_id upstream) {
    const auto& pool = state_->keys.pool(upstream);
    if (pool.size() < 2 || context.key_member >= pool.size()) {
        co_return false;  // a single key (or the client's own): Mistral's 401 goes to the client as it is
    }
    const auto& member = pool[context.key_member];
    const auto now = limits::clock::now();
    if (worker_.limits.key_pools.revoke(member.bucket, now)) {
        log_line(log_level::warn, "upstream " + std::string(routing::upstream_name(upstream)) +
                                      ": Mistral refused the key in " + member.env +
                                      " (401); it is out of the key pool's rotation for " +
                                      config::format_duration(limits::revoked_key_pause) + " (request " + context.id +
                                      ")");
    }
    if (worker_.limiter_client) {
        if (auto error = co_await worker_.limiter_client->revoke(member.bucket, limits::revoked_key_pause);
            !error.empty()) {
            log_line(log_level::error, "rate limit backend: cannot share the revoked key: " + error);
        }
    }
    std::vector<std::string> buckets;
    for (const auto& m : pool) {
        buckets.push_back(m.bucket);
    }
    co_return !worker_.limits.key_pools.turn_order(buckets, now, false).empty();
}

awaitable<limits::time_point> downstream_session::limits_retry(limits::reservation& reservation,
                                                               limits::milliseconds delay) {
    if (!worker_.limiter_client) {
        co_return limits::clock::now() + delay;
    }
    const auto retry = co_await worker_.limiter_client->retry(reservation, delay);
    if (!retry.backend_error.empty()) {
        log_line(log_level::error, "rate limit backend: " + retry.backend_error);
    }
    co_return retry.ready_at;
}

awaitable<void> downstream_session::limits_cancel(const limits::reservation& reservation) {
    if (worker_.limiter_client) {
        if (const auto error = co_await worker_.limiter_client->cancel(reservation); !error.empty()) {
            log_line(log_level::error, "rate limit backend: " + error);
        }
    }
}

awaitable<void> downstream_session::limits_settle(request_context& context) {
    // Mistral's usage replaces the estimate; a refused call generated
    // nothing; a stream cut short books a bounded estimate (usage unknown).
    const std::uint64_t actual =
        limits::tokens_to_book(context.usage ? std::optional<std::uint64_t>(context.usage->total_tokens) : std::nullopt,
                               context.upstream_refused, context.estimated_tokens, context.unreported_tokens);
    const auto reservation = std::move(*context.reservation);
    context.reservation.reset();
    if (worker_.limiter_client) {
        if (const auto error = co_await worker_.limiter_client->settle(reservation, actual); !error.empty()) {
            log_line(log_level::error, "cannot record the usage of request " + context.id + ": " + error);
        }
    }
}

awaitable<std::string> downstream_session::month_usage_metrics() {
    if (!worker_.limits.active()) {
        co_return std::string{};
    }
    std::string extra =
        "# HELP mistral_proxy_month_tokens_used Tokens used this calendar month (UTC), by upstream key.\n"
        "# TYPE mistral_proxy_month_tokens_used gauge\n";
    // Every bucket: an upstream's, or each key's of a pool.
    std::vector<std::string> buckets;
    for (std::size_t i = 0; i < routing::upstream_count; ++i) {
        const auto upstream = static_cast<routing::upstream_id>(i);
        const auto& pool = state_->keys.pool(upstream);
        if (pool.empty()) {
            buckets.push_back(limits::bucket_key(routing::upstream_name(upstream)));
        }
        for (const auto& member : pool) {
            buckets.push_back(member.bucket);
        }
    }
    std::sort(buckets.begin(), buckets.end());
    buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
    for (const auto& key : buckets) {
        std::optional<std::uint64_t> used;
        if (worker_.limiter_client) {
            used = co_await worker_.limiter_client->month_used(key);
        }
        if (used) {
            extra += "mistral_proxy_month_tokens_used{key=\"" + key + "\"} " + std::to_string(*used) + "\n";
        }
    }
    co_return extra;
}

awaitable<bool> downstream_session::wait_watching_client(limits::time_point until) {
    const auto delay = until - limits::clock::now();
    if (delay <= limits::clock::duration::zero()) {
        co_return true;
    }
    steady_timer timer(co_await asio::this_coro::executor,
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
    // The watch wakes the sleep when its read completes: a hang-up ends the
    // wait; the client's next bytes (a pipelined request) do not.
    start_client_watch(nullptr);
    client_watch_->waiter = &timer;
    while (!client_watch_->gone) {
        auto [ec] = co_await timer.async_wait(as_result);
        if (!ec) {
            break;  // slept until `until`
        }
    }
    client_watch_->waiter = nullptr;
    stop_client_watch();
    co_return !client_watch_->gone;
}

}  // namespace mistral_proxy::http
