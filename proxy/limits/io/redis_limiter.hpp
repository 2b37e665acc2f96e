#pragma once
// The shared limiter (limits.backend: redis://HOST:PORT[/DB]): the same buckets,
// FIFO reservations and month budget as limits::limiter, kept in Redis so that
// several proxies on one API key never exceed its limits together.
//
// Every operation is one Lua script run with EVALSHA (atomic in Redis; EVAL
// when Redis lost the script, e.g. after a restart). The script's clock is the
// Redis server's TIME, so proxies whose clocks disagree still share one
// timeline: reserve() answers with a wait relative to Redis' now, and the
// caller's ready_at = its own now + that wait.
//
// State: one hash per bucket key, "mistral-proxy:{KEY}" ("mistral-proxy:{mistral}/ENV"
// for a key pool's member: one hash slot per pool), fields req_tat,
// tok_tat, floor (microseconds, Redis time), used:YYYY-MM and
// inflight:YYYY-MM (tokens, saturating at 2^53 as in token_count.hpp; what a
// reservation holds is clamped as in limiter::reserve and returned to it, so
// cancel and settle give back exactly that). The month ledger is the used:YYYY-MM field:
// make it durable on the Redis side (appendonly yes); state_dir is not used.
// Rates and budgets are arguments of each call (this proxy's config, lowered
// by adapt()), so proxies should share one config.
//
// Redis unreachable, or an error from it: the call returns backend_error and
// the caller answers 503 without sending upstream (fail closed: a shared
// budget that cannot be checked is not spent). The connection is re-made on
// the next call. Not thread-safe: one redis_limiter per worker executor.
#include "io_executor.hpp"
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "limits/clock.hpp"
#include "limits/limiter.hpp"
#include "limits/ratelimit_headers.hpp"

namespace mistral_proxy::limits::io {

class redis_connection;

struct shared_reserve_result {
    reserve_result result;      // as limits::limiter::reserve, when backend_error is empty
    std::string backend_error;  // Redis failed: answer 503, send nothing
    bool all_revoked = false;   // reserve_any: every key of the pool is out of rotation (revoke())
};

struct shared_retry_result {
    time_point ready_at{};
    std::string backend_error;
};

struct shared_settle_result {
    month_id month{};
    std::string backend_error;
};

class redis_limiter {
public:
    // Connects, SELECTs the db and loads the script. On failure `.first` is
    // null and `.second` is a message for the start-up error
    // ("limits.backend redis://127.0.0.1:6390/0: Connection refused").
    static io_awaitable<std::pair<std::unique_ptr<redis_limiter>, std::string>> connect(
        io_executor executor, config::limits_settings settings,
        std::chrono::milliseconds timeout = std::chrono::seconds(2));

    ~redis_limiter();
    redis_limiter(const redis_limiter&) = delete;
    redis_limiter& operator=(const redis_limiter&) = delete;

    // Same contract as limiter::reserve. `now` is this proxy's clock; only
    // ready_at and retry_after are derived from it.
    io_awaitable<shared_reserve_result> reserve(std::string_view upstream, time_point now,
                                                          std::uint64_t tokens);

    // Same contract as limiter::reserve_any, and keys that revoke() took out
    // (on any proxy) are skipped; when no key is left, all_revoked is set.
    io_awaitable<shared_reserve_result> reserve_any(std::span<const std::string> keys, time_point now,
                                                              std::uint64_t tokens);

    // A pool's key Mistral refused (401): every proxy leaves it out of
    // reserve_any for `pause`. Returns the backend error, if any.
    io_awaitable<std::string> revoke(const std::string& key, milliseconds pause);

    // Same contract as limiter::reserve_retry, with the delay given as a duration.
    io_awaitable<shared_retry_result> reserve_retry(reservation& r, time_point now, milliseconds delay);

    // Same contract as limiter::cancel. Returns the backend error, if any.
    io_awaitable<std::string> cancel(const reservation& r);

    // Same contract as limiter::settle; books to the month of Redis' clock.
    io_awaitable<shared_settle_result> settle(const reservation& r, std::uint64_t actual_tokens);

    // Tokens used in the current month (Redis' clock); nullopt on a backend error.
    io_awaitable<std::optional<std::uint64_t>> month_used(std::string_view upstream);

    // Same contract as limiter::adapt (local: lowers the figures this proxy sends).
    void adapt(std::string_view upstream, const rate_limits& upstream_limits);

private:
    struct figures {
        double requests_per_second = 0;
        double tokens_per_minute = 0;
        std::uint64_t tokens_per_month = 0;
    };

    redis_limiter(io_executor executor, config::limits_settings settings,
                  std::chrono::milliseconds timeout);
    figures& figures_for(const std::string& key);
    io_awaitable<std::string> ensure_connected();
    // Runs the script; `.first` is the reply array, `.second` the error.
    struct script_result;
    io_awaitable<script_result> run(const std::string& key, std::vector<std::string> args);
    io_awaitable<script_result> run(std::span<const std::string> keys, std::vector<std::string> args);

    io_executor executor_;
    config::limits_settings settings_;
    config::redis_endpoint endpoint_;
    std::chrono::milliseconds timeout_;
    std::shared_ptr<redis_connection> connection_;
    std::string sha_;
    std::map<std::string, figures, std::less<>> figures_;
};

// The Lua script (exposed for tests and for reading).
std::string_view redis_limiter_script() noexcept;

}  // namespace mistral_proxy::limits::io
