// The rate limiter in Redis (limits.backend: redis://): the same buckets and
// ledger as the embedded one, shared by several proxies (see redis_limiter.hpp).
#include "limits/io/redis_limiter.hpp"

#include <algorithm>
#include <cstdio>

#include "limits/io/redis_connection.hpp"
#include "limits/token_count.hpp"

namespace mistral_proxy::limits::io {

namespace asio = boost::asio;
namespace chr = std::chrono;
using connect_result = std::pair<std::unique_ptr<redis_limiter>, std::string>;

namespace {

// Buckets as in token_bucket (GCRA: tat = when the bucket is full again),
// times in microseconds of Redis TIME. Requests: capacity 1 (strict pacing).
// Tokens: capacity tokens_per_minute. The floor keeps ready times FIFO.
constexpr std::string_view script = R"lua(
local key = KEYS[1]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m
end
local function days_from_civil(y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5)
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
local y, m = civil(math.floor(now / 86400000000))
local month = string.format('%04d-%02d', y, m)
local ny, nm = y, m + 1
if nm == 13 then ny, nm = y + 1, 1 end
local next_month = days_from_civil(ny, nm) * 86400000000

-- Token counts saturate at 2^53 (exact in a Lua number, as max_token_count in
-- token_count.hpp) and never go below 0; HINCRBY is not used since it fails on
-- numbers past 2^63.
local max_tokens = 9007199254740992
local function tokens(v)
  v = tonumber(v) or 0
  if v ~= v or v < 0 then return 0 end
  if v > max_tokens then return max_tokens end
  return math.floor(v)
end
local function num(v) return tonumber(v) or 0 end
local function put(field, v) redis.call('HSET', key, field, string.format('%.0f', v)) end
-- A wait or an instant (microseconds) as an integer reply, within 2^53.
local function us(v)
  if v > max_tokens then return max_tokens end
  if v < -max_tokens then return -max_tokens end
  return v
end
local function take_inflight(mon, cost)
  local f = 'inflight:' .. mon
  local left = tokens(redis.call('HGET', key, f)) - cost
  if left < 0 then left = 0 end
  put(f, left)
end

if op == 'reserve' then
  -- As limits::limiter::reserve: the minute bucket holds the estimate up to its
  -- capacity, the month up to half of what it has left (rounded up). With
  -- several KEYS (a key pool, in turn order) as limiter::reserve_any: the key
  -- whose request may go soonest, the earlier on a tie; keys another proxy
  -- took out of rotation (KEY:revoked) are skipped. The reply's 7th item is
  -- the index (1-based) of the key taken; {3} when every key is out.
  local rps, rate, cap, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tokens(ARGV[5])
  local max_wait, budget = tonumber(ARGV[6]), tokens(ARGV[7])
  local best, best_ready, best_state, refused
  local considered = 0
  for i = 1, #KEYS do
    local k = KEYS[i]
    if #KEYS == 1 or redis.call('EXISTS', k .. ':revoked') == 0 then
      considered = considered + 1
      local st = redis.call('HMGET', k, 'req_tat', 'tok_tat', 'floor', 'used:' .. month, 'inflight:' .. month)
      local req_tat, tok_tat, floor = num(st[1]), num(st[2]), num(st[3])
      local used, inflight = tokens(st[4]), tokens(st[5])
      local spent = tokens(used + inflight)
      if budget > 0 and spent >= budget then
        if refused == nil or next_month - now < refused[2] then refused = {1, next_month - now, 2, month, next_month, 0, i} end
      else
        local tok_cost = cost
        if rate > 0 then tok_cost = math.min(cost, math.floor(cap)) end
        local month_cost = cost
        if budget > 0 then month_cost = math.min(cost, math.ceil((budget - spent) / 2)) end
        local by_req, by_tok = now, now
        if rps > 0 then by_req = math.max(now, req_tat) end
        if rate > 0 then by_tok = math.max(now, tok_tat - (cap - math.min(tok_cost, cap)) / rate * 1000000) end
        local ready = math.ceil(math.max(now, by_req, by_tok, floor))
        if ready - now > max_wait then
          local which = 0
          if rate > 0 and (by_tok >= by_req or rps <= 0) then which = 1 end
          if refused == nil or ready - now < refused[2] then refused = {1, us(ready - now), which, month, 0, 0, i} end
        elseif best == nil or ready < best_ready then
          best, best_ready = i, ready
          best_state = {req_tat, tok_tat, inflight, tok_cost, month_cost}
        end
      end
    end
  end
  if considered == 0 then return {3} end
  if best == nil then return refused end
  key = KEYS[best]
  local ready = best_ready
  local req_tat, tok_tat, inflight, tok_cost, month_cost = unpack(best_state)
  if rps > 0 then put('req_tat', math.max(req_tat, ready) + 1000000 / rps) end
  if rate > 0 then put('tok_tat', math.max(tok_tat, ready) + tok_cost * 1000000 / rate) end
  put('floor', ready)
  put('inflight:' .. month, tokens(inflight + month_cost))
  return {0, us(ready - now), us(ready), month, tok_cost, month_cost, best}
elseif op == 'revoke' then
  -- A key Mistral refused (401): out of every proxy's rotation for ARGV[2] ms.
  redis.call('SET', key .. ':revoked', '1', 'PX', tonumber(ARGV[2]))
  return {0}
elseif op == 'retry' then
  local rps, delay = tonumber(ARGV[2]), tonumber(ARGV[3])
  local st = redis.call('HMGET', key, 'req_tat', 'floor')
  local req_tat, floor = num(st[1]), num(st[2])
  local ready = math.ceil(math.max(now + delay, floor, rps > 0 and req_tat or 0))
  if rps > 0 then put('req_tat', math.max(req_tat, ready) + 1000000 / rps) end
  put('floor', math.max(floor, ready))
  return {0, us(ready - now), us(ready)}
elseif op == 'cancel' then
  -- tok_cost and month_cost: what reserve held (its reply's 5th and 6th items).
  local rps, rate, tok_cost, ready, mon = tonumber(ARGV[2]), tonumber(ARGV[3]), tokens(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
  local month_cost = tokens(ARGV[7])
  local st = redis.call('HMGET', key, 'req_tat', 'tok_tat', 'floor')
  if rate > 0 then put('tok_tat', num(st[2]) - tok_cost * 1000000 / rate) end
  -- The newest reservation hands its request slot back; an older one's stays
  -- unused (as in the embedded limiter: no burst behind later reservations).
  if rps > 0 and num(st[3]) == ready then put('req_tat', num(st[1]) - 1000000 / rps) end
  take_inflight(mon, month_cost)
  return {0}
elseif op == 'settle' then
  local rate, tok_cost, actual, mon = tonumber(ARGV[2]), tokens(ARGV[3]), tokens(ARGV[4]), ARGV[5]
  local month_cost = tokens(ARGV[6])
  if rate > 0 then
    put('tok_tat', num(redis.call('HGET', key, 'tok_tat')) + (actual - tok_cost) * 1000000 / rate)
  end
  take_inflight(mon, month_cost)
  local f = 'used:' .. month
  put(f, tokens(tokens(redis.call('HGET', key, f)) + actual))
  return {0, month}
elseif op == 'used' then
  return {0, month, tokens(redis.call('HGET', key, 'used:' .. month))}
end
return redis.error_reply('mistral-proxy limiter: unknown operation ' .. tostring(op))
)lua";

std::string number(double v) {
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", v);
    return text;
}

std::optional<month_id> parse_month(std::string_view text) {
    int year = 0;
    unsigned month = 0;
    if (text.size() != 7 || std::sscanf(std::string(text).c_str(), "%4d-%2u", &year, &month) != 2 || month < 1 ||
        month > 12) {
        return std::nullopt;
    }
    return month_id{year, month};
}

long long integer_at(const redis_reply& r, std::size_t i) {
    return i < r.elements.size() && r.elements[i].type == redis_reply::kind::integer ? r.elements[i].integer : 0;
}

std::string text_at(const redis_reply& r, std::size_t i) {
    return i < r.elements.size() ? r.elements[i].text : std::string();
}

// A pool member's hash shares its upstream's hash tag: a pool is one slot.
std::string hash_key(const std::string& key) {
    const auto slash = key.find('/');
    if (slash == std::string::npos) {
        return "mistral-proxy:{" + key + "}";
    }
    return "mistral-proxy:{" + key.substr(0, slash) + "}" + key.substr(slash);
}

}  // namespace

std::string_view redis_limiter_script() noexcept { return script; }

struct redis_limiter::script_result {
    redis_reply reply;
    std::string error;
};

redis_limiter::redis_limiter(io_executor executor, config::limits_settings settings,
                             std::chrono::milliseconds timeout)
    : executor_(std::move(executor)), settings_(std::move(settings)), timeout_(timeout) {}

redis_limiter::~redis_limiter() {
    if (connection_) {
        connection_->close();
    }
}

io_awaitable<std::pair<std::unique_ptr<redis_limiter>, std::string>> redis_limiter::connect(
    io_executor executor, config::limits_settings settings, std::chrono::milliseconds timeout) {
    const auto endpoint = config::parse_redis_backend(settings.backend);
    if (!endpoint) {
        co_return connect_result{nullptr, "limits.backend '" + settings.backend + "' is not redis://HOST:PORT[/DB]"};
    }
    std::unique_ptr<redis_limiter> self(new redis_limiter(executor, std::move(settings), timeout));
    self->endpoint_ = *endpoint;
    if (std::string error = co_await self->ensure_connected(); !error.empty()) {
        co_return connect_result{nullptr, "limits.backend " + error};
    }
    co_return connect_result{std::move(self), std::string()};
}

io_awaitable<std::string> redis_limiter::ensure_connected() {
    if (connection_ && connection_->connected()) {
        co_return std::string();
    }
    auto [connection, error] = co_await redis_connection::connect(executor_, endpoint_, timeout_);
    if (!connection) {
        co_return error;
    }
    std::vector<std::string> load{"SCRIPT", "LOAD", std::string(script)};
    const redis_result loaded = co_await connection->command(std::move(load));
    if (!loaded.reply || loaded.reply->type != redis_reply::kind::string) {
        co_return connection->name() + ": SCRIPT LOAD failed: " + (loaded.reply ? loaded.reply->text : loaded.error);
    }
    sha_ = loaded.reply->text;
    connection_ = std::move(connection);
    co_return std::string();
}

io_awaitable<redis_limiter::script_result> redis_limiter::run(const std::string& key,
                                                                 std::vector<std::string> args) {
    co_return co_await run(std::span<const std::string>(&key, 1), std::move(args));
}

io_awaitable<redis_limiter::script_result> redis_limiter::run(std::span<const std::string> keys,
                                                                 std::vector<std::string> args) {
    if (std::string error = co_await ensure_connected(); !error.empty()) {
        co_return script_result{{}, std::move(error)};
    }
    std::vector<std::string> command{"EVALSHA", sha_, std::to_string(keys.size())};
    for (const auto& key : keys) {
        command.push_back(hash_key(key));
    }
    command.insert(command.end(), args.begin(), args.end());
    redis_result r = co_await connection_->command(command);
    if (r.reply && r.reply->type == redis_reply::kind::error && r.reply->text.rfind("NOSCRIPT", 0) == 0) {
        // Redis restarted or its scripts were flushed: send the source once.
        command[0] = "EVAL";
        command[1] = std::string(script);
        r = co_await connection_->command(std::move(command));
    }
    if (!r.reply) {
        co_return script_result{{}, std::move(r.error)};
    }
    if (r.reply->type != redis_reply::kind::array || r.reply->elements.empty()) {
        co_return script_result{{}, connection_->name() + ": " + (r.reply->text.empty() ? "unexpected reply" : r.reply->text)};
    }
    co_return script_result{std::move(*r.reply), {}};
}

redis_limiter::figures& redis_limiter::figures_for(const std::string& key) {
    const auto found = figures_.find(key);
    if (found != figures_.end()) {
        return found->second;
    }
    figures f;
    // A pool member ("mistral/MISTRAL_KEY_B") has the figures of its upstream's bucket.
    const std::string base = key.substr(0, key.find('/'));
    auto it = settings_.buckets.find(base);
    if (it == settings_.buckets.end() && base == "mistral") {
        it = settings_.buckets.find("mistral_eu");
    }
    if (it != settings_.buckets.end()) {
        f.requests_per_second = it->second.requests_per_second;
        f.tokens_per_minute = static_cast<double>(it->second.tokens_per_minute);
        f.tokens_per_month = it->second.tokens_per_month;
    }
    return figures_.emplace(key, f).first->second;
}

io_awaitable<shared_reserve_result> redis_limiter::reserve(std::string_view upstream, time_point now,
                                                              std::uint64_t tokens) {
    const std::string key = bucket_key(upstream);
    co_return co_await reserve_any(std::span<const std::string>(&key, 1), now, tokens);
}

io_awaitable<std::string> redis_limiter::revoke(const std::string& key, milliseconds pause) {
    std::vector<std::string> args{"revoke", std::to_string(std::max<long long>(1, pause.count()))};
    script_result r = co_await run(key, std::move(args));
    co_return std::move(r.error);
}

io_awaitable<shared_reserve_result> redis_limiter::reserve_any(std::span<const std::string> keys, time_point now,
                                                                  std::uint64_t tokens) {
    shared_reserve_result out;
    if (keys.empty()) {
        out.backend_error = "no key to reserve on";
        co_return out;
    }
    // Every key of a pool has its upstream's figures (adapt() may lower one
    // key's; the first key's stand for the pool).
    const figures f = figures_for(keys.front());
    const auto max_wait_us = chr::duration_cast<chr::microseconds>(settings_.max_queue_wait).count();
    std::vector<std::string> args{"reserve", number(f.requests_per_second), number(f.tokens_per_minute / 60.0),
              number(f.tokens_per_minute), std::to_string(tokens), std::to_string(max_wait_us),
              std::to_string(f.tokens_per_month)};
    script_result r = co_await run(keys, std::move(args));
    if (!r.error.empty()) {
        out.backend_error = std::move(r.error);
        co_return out;
    }
    if (integer_at(r.reply, 0) == 3) {
        out.all_revoked = true;
        co_return out;
    }
    const auto chosen = static_cast<std::size_t>(std::max(1LL, integer_at(r.reply, 6)) - 1);
    const std::string& key = keys[std::min(chosen, keys.size() - 1)];
    const auto month = parse_month(text_at(r.reply, 3));
    if (!month) {
        out.backend_error = "limits.backend: unexpected reply from the limiter script";
        co_return out;
    }
    const chr::microseconds wait{integer_at(r.reply, 1)};
    if (integer_at(r.reply, 0) == 0) {
        reservation res;
        res.key = key;
        res.ready_at = now + chr::duration_cast<clock::duration>(wait);
        res.tokens = tokens;
        res.month = *month;
        res.backend_ready_us = integer_at(r.reply, 2);
        res.minute_held = static_cast<std::uint64_t>(std::max(0LL, integer_at(r.reply, 4)));
        res.month_held = static_cast<std::uint64_t>(std::max(0LL, integer_at(r.reply, 5)));
        res.pool_index = std::min(chosen, keys.size() - 1);
        out.result.granted = std::move(res);
        co_return out;
    }
    refusal no;
    no.retry_after = std::max(milliseconds{1}, ceil_ms(wait));
    switch (integer_at(r.reply, 2)) {
        case 2: {
            no.limit = limit_kind::tokens_per_month;
            const time_point reset{chr::duration_cast<clock::duration>(chr::microseconds{integer_at(r.reply, 4)})};
            no.message = "The monthly token budget of " + std::to_string(f.tokens_per_month) + " tokens for '" + key +
                         "' is exhausted (" + to_string(*month) + ", shared by every proxy on this key); it resets at " +
                         format_utc(reset) + ".";
            break;
        }
        case 1:
            no.limit = limit_kind::tokens_per_minute;
            no.message = "Rate limit of " + number(f.tokens_per_minute) + " tokens per minute for '" + key +
                         "' (shared) reached: the request would wait longer than max_queue_wait.";
            break;
        default:
            no.limit = limit_kind::requests_per_second;
            no.message = "Rate limit of " + number(f.requests_per_second) + " requests per second for '" + key +
                         "' (shared) reached: the request would wait longer than max_queue_wait.";
            break;
    }
    if (keys.size() > 1) {
        no.message += " Every key of the pool (" + std::to_string(keys.size()) + ") is limited.";
    }
    out.result.refused = std::move(no);
    co_return out;
}

io_awaitable<shared_retry_result> redis_limiter::reserve_retry(reservation& r, time_point now, milliseconds delay) {
    const figures f = figures_for(r.key);
    std::vector<std::string> args{"retry", number(f.requests_per_second),
                                           std::to_string(chr::duration_cast<chr::microseconds>(delay).count())};
    script_result s = co_await run(r.key, std::move(args));
    shared_retry_result out;
    if (!s.error.empty()) {
        out.backend_error = std::move(s.error);
        co_return out;
    }
    r.ready_at = now + chr::duration_cast<clock::duration>(chr::microseconds{integer_at(s.reply, 1)});
    r.backend_ready_us = integer_at(s.reply, 2);
    out.ready_at = r.ready_at;
    co_return out;
}

io_awaitable<std::string> redis_limiter::cancel(const reservation& r) {
    const figures f = figures_for(r.key);
    std::vector<std::string> args{"cancel",
                                  number(f.requests_per_second),
                                  number(f.tokens_per_minute / 60.0),
                                  std::to_string(r.minute_held),
                                  std::to_string(r.backend_ready_us),
                                  to_string(r.month),
                                  std::to_string(r.month_held)};
    script_result s = co_await run(r.key, std::move(args));
    co_return std::move(s.error);
}

io_awaitable<shared_settle_result> redis_limiter::settle(const reservation& r, std::uint64_t actual_tokens) {
    const figures f = figures_for(r.key);
    std::vector<std::string> args{"settle",
                                  number(f.tokens_per_minute / 60.0),
                                  std::to_string(r.minute_held),
                                  std::to_string(clamp_tokens(actual_tokens)),
                                  to_string(r.month),
                                  std::to_string(r.month_held)};
    script_result s = co_await run(r.key, std::move(args));
    shared_settle_result out;
    if (!s.error.empty()) {
        out.backend_error = std::move(s.error);
        co_return out;
    }
    out.month = parse_month(text_at(s.reply, 1)).value_or(r.month);
    co_return out;
}

io_awaitable<std::optional<std::uint64_t>> redis_limiter::month_used(std::string_view upstream) {
    std::vector<std::string> args{"used"};
    script_result s = co_await run(bucket_key(upstream), std::move(args));
    if (!s.error.empty()) {
        co_return std::nullopt;
    }
    co_return static_cast<std::uint64_t>(std::max(0LL, integer_at(s.reply, 2)));
}

void redis_limiter::adapt(std::string_view upstream, const rate_limits& upstream_limits) {
    figures& f = figures_for(bucket_key(upstream));
    if (upstream_limits.requests && upstream_limits.requests->limit > 0) {
        const double rate = upstream_limits.requests->limit / 60.0;
        if (f.requests_per_second <= 0 || rate < f.requests_per_second) {
            f.requests_per_second = rate;
        }
    }
    if (upstream_limits.tokens && upstream_limits.tokens->limit > 0) {
        if (f.tokens_per_minute <= 0 || upstream_limits.tokens->limit < f.tokens_per_minute) {
            f.tokens_per_minute = upstream_limits.tokens->limit;
        }
    }
    if (upstream_limits.month_tokens && upstream_limits.month_tokens->limit >= 1) {
        const double limit = upstream_limits.month_tokens->limit;
        const std::uint64_t budget =
            limit >= static_cast<double>(max_token_count) ? max_token_count : static_cast<std::uint64_t>(limit);
        if (f.tokens_per_month == 0 || budget < f.tokens_per_month) {
            f.tokens_per_month = budget;
        }
    }
}

}  // namespace mistral_proxy::limits::io
