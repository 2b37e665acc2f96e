// The shared limiter against a real redis-server started on a free loopback
// port for this run (--save '' --appendonly no). Synchronisation is by the
// server's own "Ready to accept connections" line and by Redis TIME, the
// script's clock: the checks read the ready instants Redis scheduled, so no
// test sleeps or depends on timing beyond "these calls took < 1 s".
#define DOCTEST_CONFIG_IMPLEMENT
// Coroutine lambdas trip GCC 12's false -Wmismatched-new-delete (GCC bug 109224).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/io/redis_connection.hpp"
#include "limits/io/redis_limiter.hpp"
#include "limits/token_count.hpp"
#include "redis_server.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::limits;
using namespace mistral_proxy::limits::io;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace chr = std::chrono;

namespace {

using redis_test::redis_server;

redis_server server;

config::limits_settings settings_for(const std::string& key, config::bucket_settings bucket,
                                     chr::milliseconds max_wait = 60s) {
    config::limits_settings s;
    s.buckets[key] = bucket;
    s.max_queue_wait = max_wait;
    s.backend = "redis://127.0.0.1:" + std::to_string(server.port) + "/3";
    return s;
}

// Runs a coroutine to completion on a fresh io_context (exceptions surface here).
template <class F>
void run(F body) {
    asio::io_context ctx;
    auto done = asio::co_spawn(ctx, body(ctx.get_executor()), asio::use_future);
    ctx.run();
    done.get();
}

io_awaitable<std::unique_ptr<redis_limiter>> make(io_executor ex, const config::limits_settings& s) {
    // Not a structured binding: clang 14 cannot capture one in INFO's lambda.
    auto connected = co_await redis_limiter::connect(ex, s);
    INFO(connected.second);
    REQUIRE(connected.first);
    co_return std::move(connected.first);
}

}  // namespace

TEST_CASE("two limiters on one key never exceed the shared request rate, FIFO") {
    const auto s = settings_for("rate", {5, 0, 0});  // 5/s: one every 200 ms
    std::vector<std::int64_t> ready;              // in the order answers arrived
    std::vector<std::int64_t> ready_by_proxy[2];  // per proxy (one connection each: Redis' order)
    run([&](io_executor ex) -> io_awaitable<void> {
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        // Both proxies pipeline 10 requests each, interleaved, all at once.
        // The last answer wakes the test (the timer's expiry is only a bound).
        io_timer all_done(ex);
        int failures = 0;
        for (int i = 0; i < 20; ++i) {
            redis_limiter* l = i % 2 == 0 ? a.get() : b.get();
            asio::co_spawn(
                ex,
                [&ready, &ready_by_proxy, &failures, &all_done, l, i]() -> io_awaitable<void> {
                    const auto r = co_await l->reserve("rate", clock::now(), 1);
                    if (r.backend_error.empty() && r.result.granted) {
                        ready.push_back(r.result.granted->backend_ready_us);
                        ready_by_proxy[i % 2].push_back(r.result.granted->backend_ready_us);
                    } else {
                        ++failures;
                    }
                    if (ready.size() + static_cast<std::size_t>(failures) == 20) {
                        all_done.cancel();
                    }
                },
                asio::detached);
        }
        all_done.expires_after(10s);
        co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable_t<io_executor>{}));
        CHECK(failures == 0);
    });
    REQUIRE(ready.size() == 20);
    // FIFO: each proxy's requests are answered in Redis' order, and their
    // ready instants never decrease.
    CHECK(std::is_sorted(ready_by_proxy[0].begin(), ready_by_proxy[0].end()));
    CHECK(std::is_sorted(ready_by_proxy[1].begin(), ready_by_proxy[1].end()));
    // Together: never two requests within 1/rate of each other.
    std::sort(ready.begin(), ready.end());
    for (std::size_t i = 1; i < ready.size(); ++i) {
        CAPTURE(i);
        CHECK(ready[i] - ready[i - 1] >= 200'000);
    }
    // And not slower than the rate either (the 20 calls took well under a second).
    CHECK(ready.back() - ready.front() < 19 * 200'000 + 1'000'000);
}

TEST_CASE("tokens per minute are shared; max_queue_wait refusals say which limit") {
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("tpm", {0, 600, 0}, 40s);  // 10 tokens/s
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        const auto first = co_await a->reserve("tpm", clock::now(), 600);
        REQUIRE(first.result.granted);
        const time_point now = clock::now();
        const auto second = co_await b->reserve("tpm", now, 300);
        REQUIRE(second.result.granted);
        const auto wait = second.result.granted->ready_at - now;
        CHECK(wait > 29s);
        CHECK(wait <= 30s);
        const auto third = co_await a->reserve("tpm", clock::now(), 200);
        REQUIRE(third.result.refused);
        CHECK(third.result.refused->limit == limit_kind::tokens_per_minute);
        CHECK(third.result.refused->retry_after > 49s);
        CHECK(third.result.refused->retry_after <= 50s);
    });
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("wait", {1, 0, 0}, 500ms);
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        REQUIRE((co_await a->reserve("wait", clock::now(), 1)).result.granted);
        const auto no = co_await b->reserve("wait", clock::now(), 1);
        REQUIRE(no.result.refused);
        CHECK(no.result.refused->limit == limit_kind::requests_per_second);
        CHECK(no.result.refused->retry_after > 900ms);
        CHECK(no.result.refused->retry_after <= 1000ms);
        CHECK(no.result.refused->message.find("max_queue_wait") != std::string::npos);
    });
}

TEST_CASE("the month's budget and usage are shared") {
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("month", {0, 0, 1000});
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        const auto r = co_await a->reserve("month", clock::now(), 10);
        REQUIRE(r.result.granted);
        const auto settled = co_await a->settle(*r.result.granted, 1200);
        CHECK(settled.backend_error.empty());
        CHECK(settled.month == month_of(clock::now()));
        CHECK(co_await b->month_used("month") == 1200);
        const auto no = co_await b->reserve("month", clock::now(), 1);
        REQUIRE(no.result.refused);
        CHECK(no.result.refused->limit == limit_kind::tokens_per_month);
        CHECK(no.result.refused->message.find("is exhausted") != std::string::npos);
        CHECK(no.result.refused->message.find("resets at " + format_utc(next_month_start(month_of(clock::now())))) !=
              std::string::npos);
    });
}

TEST_CASE("cancel and retry") {
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("cancel", {1, 0, 0});
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        auto r1 = co_await a->reserve("cancel", clock::now(), 1);
        auto r2 = co_await a->reserve("cancel", clock::now(), 1);
        REQUIRE((r1.result.granted && r2.result.granted));
        CHECK(r2.result.granted->backend_ready_us - r1.result.granted->backend_ready_us == 1'000'000);
        CHECK((co_await a->cancel(*r2.result.granted)).empty());
        // The newest reservation was given up: its slot goes to the next one.
        auto r3 = co_await b->reserve("cancel", clock::now(), 1);
        REQUIRE(r3.result.granted);
        CHECK(r3.result.granted->backend_ready_us == r2.result.granted->backend_ready_us);
        // r1's try failed; its retry waits 1.5 s and takes a request slot.
        const time_point now = clock::now();
        const auto retry = co_await a->reserve_retry(*r1.result.granted, now, 1500ms);
        CHECK(retry.backend_error.empty());
        CHECK(retry.ready_at - now > 1400ms);
        CHECK(retry.ready_at - now <= 2100ms);
        auto r4 = co_await b->reserve("cancel", clock::now(), 1);
        REQUIRE(r4.result.granted);
        CHECK(r4.result.granted->backend_ready_us - r1.result.granted->backend_ready_us == 1'000'000);
    });
}

TEST_CASE("a key pool: two proxies share its keys, each key paced by its bucket; a revoked key is skipped by both") {
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("pool", {1, 0, 0});  // 1/s per key
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        const std::vector<std::string> keys{"pool/KEY_A", "pool/KEY_B"};
        std::map<std::string, std::vector<std::int64_t>> ready;
        for (int i = 0; i < 8; ++i) {
            auto r = co_await (i % 2 == 0 ? a : b)->reserve_any(keys, clock::now(), 1);
            REQUIRE(r.backend_error.empty());
            REQUIRE(r.result.granted);
            CHECK(r.result.granted->key == keys[r.result.granted->pool_index]);
            ready[r.result.granted->key].push_back(r.result.granted->backend_ready_us);
        }
        // Least waiting first: the keys alternate, four each, one per second on each key.
        REQUIRE(ready["pool/KEY_A"].size() == 4);
        REQUIRE(ready["pool/KEY_B"].size() == 4);
        for (const auto& entry : ready) {  // no structured binding: clang 14 cannot capture one in CAPTURE
            const auto& key = entry.first;
            const auto& times = entry.second;
            CAPTURE(key);
            for (std::size_t i = 1; i < times.size(); ++i) {
                CHECK(times[i] - times[i - 1] == 1'000'000);
            }
        }
        // Proxy a learns KEY_B was refused (401): proxy b skips it too.
        CHECK((co_await a->revoke("pool/KEY_B", 60s)).empty());
        for (int i = 0; i < 2; ++i) {
            auto r = co_await b->reserve_any(keys, clock::now(), 1);
            REQUIRE(r.result.granted);
            CHECK(r.result.granted->key == "pool/KEY_A");
        }
        CHECK((co_await b->revoke("pool/KEY_A", 60s)).empty());
        auto none = co_await a->reserve_any(keys, clock::now(), 1);
        CHECK(none.backend_error.empty());
        CHECK(none.all_revoked);
        CHECK_FALSE(none.result.granted);
    });
}

TEST_CASE("a flushed script is sent again") {
    run([](io_executor ex) -> io_awaitable<void> {
        const auto s = settings_for("flush", {0, 0, 0});
        auto a = co_await make(ex, s);
        // A named endpoint: a temporary argument here trips a GCC 12 coroutine bug (double free).
        const config::redis_endpoint endpoint{"127.0.0.1", server.port, 3};
        auto [raw, error] = co_await redis_connection::connect(ex, endpoint, 2000ms);
        REQUIRE(raw);
        std::vector<std::string> flush{"SCRIPT", "FLUSH"};
        const auto flushed = co_await raw->command(std::move(flush));
        REQUIRE(flushed.reply);
        const auto r = co_await a->reserve("flush", clock::now(), 1);
        CHECK(r.backend_error.empty());
        CHECK(r.result.granted);
        raw->close();
    });
}

TEST_CASE("an estimate of 2^64-1 (max_tokens: 1e30) locks nobody out; shared counts saturate") {
    run([](io_executor ex) -> io_awaitable<void> {
        constexpr auto huge = std::numeric_limits<std::uint64_t>::max();
        const auto s = settings_for("huge", {0, 6000, 100000}, 10s);  // 100 tokens/s, holds 6000
        auto a = co_await make(ex, s);
        auto b = co_await make(ex, s);
        // Once a script error (HINCRBY past 2^63): every such request got a 503.
        const auto big = co_await a->reserve("huge", clock::now(), huge);
        INFO(big.backend_error);
        REQUIRE(big.result.granted);
        CHECK(big.result.granted->minute_held == 6000);  // the bucket's capacity, no debt
        CHECK(big.result.granted->month_held == 50000);  // half of the month
        // While it is in flight another proxy's normal request goes, behind it in
        // the minute bucket (600 tokens at 100/s), and the month stays open.
        const time_point now = clock::now();
        const auto normal = co_await b->reserve("huge", now, 600);
        REQUIRE(normal.result.granted);
        CHECK(normal.result.granted->month_held == 600);
        CHECK(normal.result.granted->ready_at - now > 5s);
        CHECK(normal.result.granted->ready_at - now <= 6s);
        CHECK((co_await a->settle(*big.result.granted, 40)).backend_error.empty());
        CHECK((co_await b->settle(*normal.result.granted, 30)).backend_error.empty());
        CHECK(co_await a->month_used("huge") == 70);
        // A reported 2^64-1 saturates, and usage after it does not wrap.
        const auto c = co_await a->reserve("huge", clock::now(), 10);
        const auto d = co_await b->reserve("huge", clock::now(), 10);
        REQUIRE((c.result.granted && d.result.granted));
        CHECK((co_await a->settle(*c.result.granted, huge)).backend_error.empty());
        CHECK((co_await b->settle(*d.result.granted, 5)).backend_error.empty());
        CHECK(co_await b->month_used("huge") == max_token_count);
        const auto spent = co_await a->reserve("huge", clock::now(), 1);
        REQUIRE(spent.result.refused);
        CHECK(spent.result.refused->limit == limit_kind::tokens_per_month);
    });
}

TEST_CASE("Redis unreachable: a clear error at start, fail closed later") {
    run([](io_executor ex) -> io_awaitable<void> {
        config::limits_settings s;
        const std::uint16_t nobody = redis_test::free_port();
        s.backend = "redis://127.0.0.1:" + std::to_string(nobody);
        auto [limiter, error] = co_await redis_limiter::connect(ex, s);
        CHECK_FALSE(limiter);
        CHECK(error.find("limits.backend redis://127.0.0.1:" + std::to_string(nobody)) == 0);
        CHECK(error.find("refused") != std::string::npos);
        s.backend = "memory";
        auto [none, why] = co_await redis_limiter::connect(ex, s);
        CHECK_FALSE(none);
        CHECK(why.find("is not redis://") != std::string::npos);
    });
    run([](io_executor ex) -> io_awaitable<void> {
        auto a = co_await make(ex, settings_for("down", {1, 0, 0}));
        server.stop();
        const auto r = co_await a->reserve("down", clock::now(), 1);
        CHECK_FALSE(r.backend_error.empty());
        CHECK_FALSE(r.result.granted);
        CHECK_FALSE(r.result.refused);
    });
}

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);  // hiredis writes to a socket Redis may have closed
    doctest::Context context(argc, argv);
    server.start();
    const int failed = context.run();
    server.stop();
    return failed;
}
