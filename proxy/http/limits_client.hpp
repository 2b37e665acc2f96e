#pragma once
// The rate limiter as a session calls it (SPEC §8): one interface over the
// embedded limiter (limits::limiter, shared by every worker thread, answers
// at once, the month ledger on disk) and the shared one in Redis
// (limits::io::redis_limiter, one client per worker, fails closed). The
// session asks; which backend answers is decided once, at start-up.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/asio_fwd.hpp"
#include "limits/io/redis_limiter.hpp"
#include "limits/limiter.hpp"

namespace mistral_proxy::http {

class limits_client {
public:
    virtual ~limits_client() = default;

    // limiter::reserve_any on `buckets` (one bucket, or a key pool's in turn
    // order). backend_error: nothing can be decided (answer 503, send nothing);
    // all_revoked: every key of the pool is out of rotation (shared backends).
    virtual awaitable<limits::io::shared_reserve_result> reserve(std::span<const std::string> buckets,
                                                                 std::uint64_t tokens) = 0;
    // limiter::reserve_retry after `delay`.
    virtual awaitable<limits::io::shared_retry_result> retry(limits::reservation& reservation,
                                                             limits::milliseconds delay) = 0;
    // limiter::cancel. Returns what went wrong, for the log ("" when nothing).
    virtual awaitable<std::string> cancel(const limits::reservation& reservation) = 0;
    // limiter::settle. Returns what went wrong, naming the backend ("month
    // ledger: ...", "rate limit backend: ..."), "" when the usage is booked.
    virtual awaitable<std::string> settle(const limits::reservation& reservation, std::uint64_t actual_tokens) = 0;
    // The month's usage of a bucket; nullopt when the backend cannot tell.
    virtual awaitable<std::optional<std::uint64_t>> month_used(const std::string& bucket) = 0;
    // Mistral's own figures for a bucket (a lower limit replaces the one in use).
    virtual void adapt(std::string_view bucket, const limits::rate_limits& upstream) = 0;
    // The proxy's own view of a bucket in the shape of the rate-limit headers;
    // empty when the backend keeps none here (Redis).
    virtual limits::rate_limits snapshot(std::string_view bucket) = 0;
    // A key pool's key Mistral refused: shared with the other proxies for
    // `pause` (the embedded backend has nobody to tell). Returns the error.
    virtual awaitable<std::string> revoke(const std::string& bucket, limits::milliseconds pause) = 0;
};

std::unique_ptr<limits_client> make_embedded_limits_client(limits::limiter& shared);
std::unique_ptr<limits_client> make_redis_limits_client(std::unique_ptr<limits::io::redis_limiter> client);

}  // namespace mistral_proxy::http
