// The embedded rate limiter: token buckets per upstream key with FIFO
// reservations, corrected by Mistral's usage (see limiter.hpp).
#include "limits/limiter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "limits/ledger.hpp"
#include "limits/token_count.hpp"

namespace mistral_proxy::limits {

namespace chr = std::chrono;

namespace {

constexpr double seconds_per_minute = 60.0;

std::string format_number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

// The most of an estimate the minute bucket holds: its capacity (whole tokens).
std::uint64_t minute_hold(const token_bucket& bucket, std::uint64_t tokens) {
    if (bucket.unlimited() || bucket.capacity() >= static_cast<double>(max_token_count)) {
        return clamp_tokens(tokens);
    }
    return std::min(clamp_tokens(tokens), static_cast<std::uint64_t>(bucket.capacity()));
}

std::string format_seconds(clock::duration d) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g s", chr::duration<double>(d).count());
    return text;
}

}  // namespace

std::string_view to_string(limit_kind kind) noexcept {
    switch (kind) {
        case limit_kind::requests_per_second:
            return "requests_per_second";
        case limit_kind::tokens_per_minute:
            return "tokens_per_minute";
        case limit_kind::tokens_per_month:
            return "tokens_per_month";
    }
    return "unknown";
}

std::string bucket_key(std::string_view upstream) {
    if (upstream == "mistral_eu") {
        return "mistral";
    }
    return std::string(upstream);
}

limiter::limiter(const config::limits_settings& settings, month_ledger* ledger)
    : settings_(settings), ledger_(ledger) {}

limiter::key_state& limiter::state_for(const std::string& key) {
    const auto found = keys_.find(key);
    if (found != keys_.end()) {
        return found->second;
    }
    // mistral_eu shares mistral's key; its figures are taken from the
    // "mistral" entry, or from a "mistral_eu" entry when only that is written.
    // A pool member ("mistral/MISTRAL_KEY_B") has the figures of its upstream's bucket.
    const std::string base = key.substr(0, key.find('/'));
    config::bucket_settings figures;
    if (const auto it = settings_.buckets.find(base); it != settings_.buckets.end()) {
        figures = it->second;
    } else if (base == "mistral") {
        if (const auto eu = settings_.buckets.find("mistral_eu"); eu != settings_.buckets.end()) {
            figures = eu->second;
        }
    }
    key_state s;
    // Request bucket: capacity 1, i.e. strict pacing at 1/rate. A larger burst
    // would let a sliding one-second window see more than the rate (Mistral's
    // free tier answers 429 to two requests within a second).
    if (figures.requests_per_second > 0) {
        s.requests = token_bucket(figures.requests_per_second, 1);
    }
    // Minute bucket: refills tokens_per_minute / 60 per second and holds one
    // minute's worth, so a single large prompt can go at once.
    if (figures.tokens_per_minute > 0) {
        const auto tpm = static_cast<double>(figures.tokens_per_minute);
        s.tokens = token_bucket(tpm / seconds_per_minute, tpm);
    }
    s.month_budget = figures.tokens_per_month;
    return keys_.emplace(key, std::move(s)).first->second;
}

void limiter::roll_month(const std::string& key, key_state& s, month_id m) {
    if (s.month_loaded && s.month == m) {
        return;
    }
    s.month = m;
    s.month_loaded = true;
    s.month_used = ledger_ != nullptr ? clamp_tokens(ledger_->used(key, m)) : 0;
    // Estimates still in flight belong to the month they were taken in; their
    // settle() books the actual usage to the new month.
    s.month_in_flight = 0;
}

limiter::offer limiter::evaluate(const std::string& key, time_point now, std::uint64_t tokens) {
    offer o;
    o.key = &key;
    key_state& s = state_for(key);
    o.state = &s;
    const month_id month = month_of(now);
    o.month = month;
    roll_month(key, s, month);

    const std::uint64_t spent = add_tokens(s.month_used, s.month_in_flight);
    if (s.month_budget > 0 && spent >= s.month_budget) {
        const time_point reset = next_month_start(month);
        refusal r;
        r.limit = limit_kind::tokens_per_month;
        r.retry_after = std::max(milliseconds{1}, ceil_ms(reset - now));
        r.message = "The monthly token budget of " + std::to_string(s.month_budget) + " tokens for '" + key +
                    "' is exhausted (" + to_string(month) + "); it resets at " + format_utc(reset) + ".";
        o.refused = std::move(r);
        return o;
    }

    o.minute_held = minute_hold(s.tokens, tokens);
    const std::uint64_t left = sub_tokens(s.month_budget, spent);
    o.month_held = s.month_budget > 0 ? std::min(clamp_tokens(tokens), left / 2 + left % 2) : clamp_tokens(tokens);
    const auto cost = static_cast<double>(o.minute_held);
    const time_point by_requests = s.requests.earliest(now, 1);
    const time_point by_tokens = s.tokens.earliest(now, cost);
    o.ready = std::max({now, by_requests, by_tokens, s.floor});
    const clock::duration wait = o.ready - now;
    if (wait > settings_.max_queue_wait) {
        refusal r;
        const bool tokens_bind = !s.tokens.unlimited() && (by_tokens >= by_requests || s.requests.unlimited());
        r.limit = tokens_bind ? limit_kind::tokens_per_minute : limit_kind::requests_per_second;
        r.retry_after = std::max(milliseconds{1}, ceil_ms(wait));
        const std::string what = tokens_bind
                                     ? format_number(s.tokens.rate_per_second() * seconds_per_minute) + " tokens per minute"
                                     : format_number(s.requests.rate_per_second()) + " requests per second";
        r.message = "Rate limit of " + what + " for '" + key + "' reached: the request would wait " +
                    format_seconds(wait) + ", longer than max_queue_wait (" + format_seconds(settings_.max_queue_wait) +
                    ").";
        o.refused = std::move(r);
    }
    return o;
}

reservation limiter::commit(const offer& o, std::uint64_t tokens) {
    key_state& s = *o.state;
    s.requests.take(o.ready, 1);
    s.tokens.take(o.ready, static_cast<double>(o.minute_held));
    s.month_in_flight = add_tokens(s.month_in_flight, o.month_held);
    reservation r;
    r.key = *o.key;
    r.ready_at = o.ready;
    r.tokens = tokens;
    r.month = o.month;
    r.minute_held = o.minute_held;
    r.month_held = o.month_held;
    r.id = ++s.last_id;
    r.floor_before = s.floor;
    s.floor = o.ready;
    return r;
}

reserve_result limiter::reserve(std::string_view upstream, time_point now, std::uint64_t tokens) {
    const std::string key = bucket_key(upstream);
    const std::lock_guard lock(mutex_);
    offer o = evaluate(key, now, tokens);
    if (o.refused) {
        return {std::nullopt, std::move(o.refused)};
    }
    return {commit(o, tokens), std::nullopt};
}

reserve_result limiter::reserve_any(std::span<const std::string> keys, time_point now, std::uint64_t tokens) {
    const std::lock_guard lock(mutex_);
    std::optional<offer> best;
    std::size_t best_index = 0;
    std::optional<refusal> soonest_refusal;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        offer o = evaluate(keys[i], now, tokens);
        if (o.refused) {
            if (!soonest_refusal || o.refused->retry_after < soonest_refusal->retry_after) {
                soonest_refusal = std::move(o.refused);
            }
        } else if (!best || o.ready < best->ready) {  // a tie stays with the earlier key: the caller's turn order
            best = std::move(o);
            best_index = i;
        }
    }
    if (!best) {
        if (soonest_refusal && keys.size() > 1) {
            soonest_refusal->message += " Every key of the pool (" + std::to_string(keys.size()) + ") is limited.";
        }
        return {std::nullopt, std::move(soonest_refusal)};
    }
    reservation r = commit(*best, tokens);
    r.pool_index = best_index;
    return {std::move(r), std::nullopt};
}

time_point limiter::reserve_retry(reservation& r, time_point now, time_point not_before) {
    const std::lock_guard lock(mutex_);
    key_state& s = state_for(r.key);
    const time_point ready = std::max({now, not_before, s.requests.earliest(now, 1), s.floor});
    s.requests.take(ready, 1);
    r.ready_at = ready;
    r.id = ++s.last_id;
    r.floor_before = s.floor;
    s.floor = ready;
    return ready;
}

void limiter::cancel(const reservation& r) {
    const std::lock_guard lock(mutex_);
    key_state& s = state_for(r.key);
    s.tokens.give_back(static_cast<double>(r.minute_held));
    if (s.month_loaded && s.month == r.month) {
        s.month_in_flight = sub_tokens(s.month_in_flight, r.month_held);
    }
    // Only the newest reservation hands the queue's tail back. The request slot
    // of an older one stays taken (it goes unused): giving it back would let a
    // newcomer, who must still queue behind the later reservations (FIFO), go
    // at the same instant as one of them, a burst the pacing exists to prevent.
    if (r.id == s.last_id && s.floor == r.ready_at) {
        s.requests.give_back(1);
        s.floor = r.floor_before;
    }
}

settle_result limiter::settle(const reservation& r, time_point now, std::uint64_t actual_tokens) {
    settle_result result;
    result.month = month_of(now);
    actual_tokens = clamp_tokens(actual_tokens);
    {
        const std::lock_guard lock(mutex_);
        key_state& s = state_for(r.key);
        // Corrects the minute bucket by the difference (either sign).
        s.tokens.give_back(static_cast<double>(r.minute_held) - static_cast<double>(actual_tokens));
        if (s.month_loaded && s.month == r.month) {
            s.month_in_flight = sub_tokens(s.month_in_flight, r.month_held);
        }
        roll_month(r.key, s, result.month);
        s.month_used = add_tokens(s.month_used, actual_tokens);
    }
    // The fsync happens outside the lock so other requests are not held up.
    if (ledger_ != nullptr && actual_tokens > 0) {
        result.ledger_error = ledger_->add(r.key, result.month, actual_tokens);
    }
    return result;
}

void limiter::adapt(std::string_view upstream, time_point now, const rate_limits& upstream_limits) {
    const std::string key = bucket_key(upstream);
    const std::lock_guard lock(mutex_);
    key_state& s = state_for(key);
    if (upstream_limits.requests && upstream_limits.requests->limit > 0) {
        const double rate = upstream_limits.requests->limit / seconds_per_minute;
        if (s.requests.unlimited() || rate < s.requests.rate_per_second()) {
            s.requests.reconfigure(now, rate, 1);
        }
    }
    if (upstream_limits.tokens && upstream_limits.tokens->limit > 0) {
        const double tpm = upstream_limits.tokens->limit;
        if (s.tokens.unlimited() || tpm < s.tokens.capacity()) {
            s.tokens.reconfigure(now, tpm / seconds_per_minute, tpm);
        }
    }
    if (upstream_limits.month_tokens && upstream_limits.month_tokens->limit >= 1) {
        const double limit = upstream_limits.month_tokens->limit;
        const std::uint64_t budget =
            limit >= static_cast<double>(max_token_count) ? max_token_count : static_cast<std::uint64_t>(limit);
        if (s.month_budget == 0 || budget < s.month_budget) {
            s.month_budget = budget;
        }
    }
}

rate_limits limiter::snapshot(std::string_view upstream, time_point now) {
    const std::string key = bucket_key(upstream);
    const std::lock_guard lock(mutex_);
    key_state& s = state_for(key);
    rate_limits out;
    if (!s.requests.unlimited()) {
        // As a per-minute figure, comparable with Mistral's req-minute window:
        // what can still start within the next minute.
        const double per_minute = s.requests.rate_per_second() * seconds_per_minute;
        const clock::duration until_full = s.requests.full_at(now) - now;
        const double behind = chr::duration<double>(until_full).count() * s.requests.rate_per_second();
        limit_window w;
        w.limit = per_minute;
        w.remaining = std::max(0.0, std::floor(per_minute - behind));
        w.reset = until_full;
        out.requests = w;
    }
    if (!s.tokens.unlimited()) {
        limit_window w;
        w.limit = s.tokens.capacity();
        w.remaining = std::floor(s.tokens.available(now));
        w.reset = s.tokens.full_at(now) - now;
        out.tokens = w;
    }
    if (s.month_budget > 0) {
        const month_id month = month_of(now);
        roll_month(key, s, month);
        const std::uint64_t spent = add_tokens(s.month_used, s.month_in_flight);
        limit_window w;
        w.limit = static_cast<double>(s.month_budget);
        w.remaining = spent >= s.month_budget ? 0.0 : static_cast<double>(s.month_budget - spent);
        w.reset = next_month_start(month) - now;
        out.month_tokens = w;
    }
    return out;
}

std::uint64_t limiter::month_used(std::string_view upstream, time_point now) {
    const std::string key = bucket_key(upstream);
    const std::lock_guard lock(mutex_);
    key_state& s = state_for(key);
    roll_month(key, s, month_of(now));
    return s.month_used;
}

}  // namespace mistral_proxy::limits
