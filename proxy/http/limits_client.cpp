// The two backends of limits_client (see limits_client.hpp).
#include "http/limits_client.hpp"

namespace mistral_proxy::http {

namespace {

class embedded_limits final : public limits_client {
public:
    explicit embedded_limits(limits::limiter& shared) : limiter_(shared) {}

    awaitable<limits::io::shared_reserve_result> reserve(std::span<const std::string> buckets,
                                                         std::uint64_t tokens) override {
        limits::io::shared_reserve_result out;
        out.result = limiter_.reserve_any(buckets, limits::clock::now(), tokens);
        co_return out;
    }

    awaitable<limits::io::shared_retry_result> retry(limits::reservation& reservation,
                                                     limits::milliseconds delay) override {
        const auto now = limits::clock::now();
        limits::io::shared_retry_result out;
        out.ready_at = limiter_.reserve_retry(reservation, now, now + delay);
        co_return out;
    }

    awaitable<std::string> cancel(const limits::reservation& reservation) override {
        limiter_.cancel(reservation);
        co_return std::string();
    }

    awaitable<std::string> settle(const limits::reservation& reservation, std::uint64_t actual_tokens) override {
        const auto settled = limiter_.settle(reservation, limits::clock::now(), actual_tokens);
        co_return settled.ledger_error ? "month ledger: " + settled.ledger_error.message() : std::string();
    }

    awaitable<std::optional<std::uint64_t>> month_used(const std::string& bucket) override {
        co_return limiter_.month_used(bucket, limits::clock::now());
    }

    void adapt(std::string_view bucket, const limits::rate_limits& upstream) override {
        limiter_.adapt(bucket, limits::clock::now(), upstream);
    }

    limits::rate_limits snapshot(std::string_view bucket) override {
        return limiter_.snapshot(bucket, limits::clock::now());
    }

    awaitable<std::string> revoke(const std::string&, limits::milliseconds) override { co_return std::string(); }

private:
    limits::limiter& limiter_;
};

class redis_limits final : public limits_client {
public:
    explicit redis_limits(std::unique_ptr<limits::io::redis_limiter> client) : client_(std::move(client)) {}

    awaitable<limits::io::shared_reserve_result> reserve(std::span<const std::string> buckets,
                                                         std::uint64_t tokens) override {
        co_return co_await client_->reserve_any(buckets, limits::clock::now(), tokens);
    }

    awaitable<limits::io::shared_retry_result> retry(limits::reservation& reservation,
                                                     limits::milliseconds delay) override {
        const auto now = limits::clock::now();
        auto out = co_await client_->reserve_retry(reservation, now, delay);
        if (!out.backend_error.empty()) {
            out.ready_at = now + delay;  // the retry still waits its backoff
        }
        co_return out;
    }

    awaitable<std::string> cancel(const limits::reservation& reservation) override {
        co_return co_await client_->cancel(reservation);
    }

    awaitable<std::string> settle(const limits::reservation& reservation, std::uint64_t actual_tokens) override {
        const auto settled = co_await client_->settle(reservation, actual_tokens);
        co_return settled.backend_error.empty() ? std::string() : "rate limit backend: " + settled.backend_error;
    }

    awaitable<std::optional<std::uint64_t>> month_used(const std::string& bucket) override {
        co_return co_await client_->month_used(bucket);
    }

    void adapt(std::string_view bucket, const limits::rate_limits& upstream) override {
        client_->adapt(bucket, upstream);
    }

    limits::rate_limits snapshot(std::string_view) override { return {}; }

    awaitable<std::string> revoke(const std::string& bucket, limits::milliseconds pause) override {
        co_return co_await client_->revoke(bucket, pause);
    }

private:
    std::unique_ptr<limits::io::redis_limiter> client_;
};

}  // namespace

std::unique_ptr<limits_client> make_embedded_limits_client(limits::limiter& shared) {
    return std::make_unique<embedded_limits>(shared);
}

std::unique_ptr<limits_client> make_redis_limits_client(std::unique_ptr<limits::io::redis_limiter> client) {
    return std::make_unique<redis_limits>(std::move(client));
}

}  // namespace mistral_proxy::http
