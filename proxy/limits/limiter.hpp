#pragma once
// The embedded (in-process) rate limiter: per upstream key a request bucket, a
// tokens-per-minute bucket and a monthly token budget (SPEC §8).
//
// Reservation model, no threads and no busy loop: reserve() answers at once
// with the instant the request may go (`ready_at`), or a refusal when that is
// further away than max_queue_wait. Each reservation takes its tokens at its
// ready_at, so the next one is scheduled behind it: ready_at never decreases
// in reservation order (FIFO). The caller waits on a timer until ready_at,
// then sends. Thread-safe (one mutex; every call is O(1) arithmetic).
//
// Session flow:
//   estimate_tokens() -> reserve() -> wait until ready_at (cancel() if the
//   client goes away) -> send -> on a retryable outcome reserve_retry() (a
//   retry takes another request token) -> settle() with Mistral's usage.
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "config/config.hpp"
#include "limits/clock.hpp"
#include "limits/ratelimit_headers.hpp"
#include "limits/token_bucket.hpp"

namespace mistral_proxy::limits {

class month_ledger;

enum class limit_kind { requests_per_second, tokens_per_minute, tokens_per_month };
std::string_view to_string(limit_kind kind) noexcept;

// Upstreams that share one API key share one bucket: "mistral_eu" -> "mistral".
std::string bucket_key(std::string_view upstream);

struct reservation {
    std::string key;                // bucket key (see bucket_key)
    time_point ready_at{};          // send no earlier than this
    std::uint64_t tokens = 0;       // the estimate asked for
    month_id month{};               // month the estimate is held against
    std::uint64_t minute_held = 0;  // private to the limiters: taken from the minute bucket (<= tokens)
    std::uint64_t month_held = 0;   // private to the limiters: held against the month (<= tokens)
    std::uint64_t id = 0;           // private to the limiter
    time_point floor_before{};      // private to the limiter
    std::size_t pool_index = 0;     // reserve_any: the index of the key it took
    std::int64_t backend_ready_us = 0;  // private to the shared (Redis) limiter: ready_at on Redis' clock
};

struct refusal {
    limit_kind limit = limit_kind::requests_per_second;
    milliseconds retry_after{0};  // > 0: when trying again has a chance
    std::string message;          // for the client: which limit, and for the month when it resets
};

// Exactly one of the two is set.
struct reserve_result {
    std::optional<reservation> granted;
    std::optional<refusal> refused;
};

struct settle_result {
    month_id month{};           // month the usage was booked to (the month at settle time)
    std::error_code ledger_error;  // the usage could not be made durable (logged by the caller)
};

class limiter {
public:
    // `ledger` (may be null: nothing persisted) must outlive the limiter. It is
    // read for a key's month usage the first time the key is used in a month,
    // and written by settle().
    explicit limiter(const config::limits_settings& settings, month_ledger* ledger = nullptr);

    limiter(const limiter&) = delete;
    limiter& operator=(const limiter&) = delete;

    // Takes 1 request and `tokens` (the estimate) for `upstream` (an upstream
    // name or a bucket key). Refused, with nothing taken, when
    //   - the month's budget is spent: used + in-flight holds >= budget. A
    //     request is admitted while any budget is left (its actual usage may
    //     overshoot by itself): refusing on the estimate, which includes
    //     max_tokens, would strand the end of every month;
    //   - or the request would have to wait longer than max_queue_wait.
    // What a granted request holds until it is settled, so that an estimate
    // (whose max_tokens the client picks) never locks other clients out:
    //   - minute bucket: the estimate, at most the bucket's capacity. An
    //     estimate never puts the bucket into debt; the usage Mistral reports
    //     may, at settle();
    //   - month: the estimate, at most half of what the month has left (rounded
    //     up). However large one request's estimate, even beyond the whole
    //     budget, the rest stays open to the others while it runs; a burst near
    //     the end of the month still runs out of room after a few requests.
    // Counts saturate (token_count.hpp): nothing here wraps.
    reserve_result reserve(std::string_view upstream, time_point now, std::uint64_t tokens);

    // A key pool (keys: bucket keys such as "mistral/MISTRAL_KEY_A", in turn
    // order): reserves on the key whose request may go soonest, the earlier
    // in `keys` on a tie, so that equal keys take turns when the caller rotates
    // the order. `pool_index` of the reservation says which. Refused only when
    // every key refuses: then with the refusal that ends soonest.
    reserve_result reserve_any(std::span<const std::string> keys, time_point now, std::uint64_t tokens);

    // A retry of a reservation whose try was sent: takes one more request at or
    // after `not_before` (now + the retry delay) and returns the new ready_at
    // (also stored in `r`). The token estimate stays held. Never refused: the
    // request already waited its turn.
    time_point reserve_retry(reservation& r, time_point now, time_point not_before);

    // Gives a reservation up before it was sent (the client disconnected while
    // waiting): its token estimate goes back, and so does its request slot when
    // it is the newest reservation of its key. An older one's slot stays unused
    // (strict pacing); reservations behind it keep their ready_at and
    // newcomers still queue behind them.
    void cancel(const reservation& r);

    // The request is over: replaces the estimate with the `actual_tokens` Mistral
    // reported (usage.total_tokens; 0 when the upstream refused it; a bounded
    // estimate when the usage is unknown, e.g. the client cut the stream: see
    // tokens_to_book), books them to the current month and appends them to the
    // ledger (fsync). `actual_tokens` is capped at max_token_count. Call once.
    settle_result settle(const reservation& r, time_point now, std::uint64_t actual_tokens);

    // Mistral reported its limits (parsed from its headers): a limit lower than
    // the one in use replaces it; a higher one is ignored (the config stays the
    // ceiling). Called after each upstream answer.
    void adapt(std::string_view upstream, time_point now, const rate_limits& upstream_limits);

    // The proxy's own view of a key, in the shape of the rate-limit headers.
    // Only limits that are configured (or adapted) are set.
    rate_limits snapshot(std::string_view upstream, time_point now);

    // The month's usage as the limiter counts it (ledger + settled since).
    std::uint64_t month_used(std::string_view upstream, time_point now);

private:
    struct key_state {
        token_bucket requests;
        token_bucket tokens;
        std::uint64_t month_budget = 0;  // 0 = unlimited
        month_id month{};
        bool month_loaded = false;
        std::uint64_t month_used = 0;
        std::uint64_t month_in_flight = 0;
        time_point floor{};  // ready_at of the latest reservation
        std::uint64_t last_id = 0;
    };

    // What reserving on one key would give, computed without taking anything.
    struct offer {
        const std::string* key = nullptr;
        key_state* state = nullptr;
        time_point ready{};
        month_id month{};
        std::uint64_t minute_held = 0;
        std::uint64_t month_held = 0;
        std::optional<refusal> refused;
    };
    offer evaluate(const std::string& key, time_point now, std::uint64_t tokens);
    reservation commit(const offer& o, std::uint64_t tokens);

    key_state& state_for(const std::string& key);
    void roll_month(const std::string& key, key_state& s, month_id m);

    config::limits_settings settings_;
    month_ledger* ledger_;
    std::mutex mutex_;
    std::map<std::string, key_state, std::less<>> keys_;
};

}  // namespace mistral_proxy::limits
