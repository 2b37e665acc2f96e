// Token buckets and the embedded limiter, driven by a hand-held clock.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/clock.hpp"
#include "limits/estimate.hpp"
#include "limits/limiter.hpp"
#include "limits/token_bucket.hpp"
#include "limits/token_count.hpp"

using namespace mistral_proxy::limits;
using namespace std::chrono_literals;
namespace chr = std::chrono;
using mistral_proxy::config::bucket_settings;
using mistral_proxy::config::limits_settings;

namespace {

const time_point t0 = time_point{chr::sys_days{chr::year{2025} / chr::March / 10}.time_since_epoch()} + 12h;

limits_settings settings_with(bucket_settings mistral, chr::milliseconds max_wait = 30s) {
    limits_settings s;
    s.buckets["mistral"] = mistral;
    s.max_queue_wait = max_wait;
    return s;
}

}  // namespace

TEST_CASE("calendar helpers") {
    struct row {
        time_point t;
        month_id month;
        std::string next_start;
    };
    const row rows[] = {
        {t0, {2025, 3}, "2025-04-01T00:00:00Z"},
        {time_point{chr::sys_days{chr::year{2024} / chr::December / 31}.time_since_epoch()} + 23h + 59min + 59s,
         {2024, 12},
         "2025-01-01T00:00:00Z"},
        {time_point{chr::sys_days{chr::year{2025} / chr::January / 1}.time_since_epoch()}, {2025, 1}, "2025-02-01T00:00:00Z"},
        {time_point{chr::sys_days{chr::year{2024} / chr::February / 29}.time_since_epoch()}, {2024, 2}, "2024-03-01T00:00:00Z"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.next_start);
        CHECK(month_of(r.t) == r.month);
        CHECK(format_utc(next_month_start(r.month)) == r.next_start);
    }
    CHECK(to_string(month_id{2025, 3}) == "2025-03");
    CHECK(ceil_ms(-5s) == 0ms);
    CHECK(ceil_ms(1ns) == 1ms);
}

TEST_CASE("token bucket arithmetic") {
    SUBCASE("unlimited answers now and takes nothing") {
        token_bucket b;
        CHECK(b.unlimited());
        b.take(t0, 1e9);
        CHECK(b.earliest(t0, 1e9) == t0);
    }
    SUBCASE("starts full, then refills continuously") {
        token_bucket b(10, 100);  // 10/s, holds 100
        CHECK(b.available(t0) == doctest::Approx(100));
        CHECK(b.earliest(t0, 100) == t0);
        b.take(t0, 100);
        CHECK(b.available(t0) == doctest::Approx(0));
        CHECK(b.available(t0 + 1s) == doctest::Approx(10));
        CHECK(b.earliest(t0, 10) == t0 + 1s);
        CHECK(b.earliest(t0, 50) == t0 + 5s);
        CHECK(b.earliest(t0 + 7s, 50) == t0 + 7s);
        CHECK(b.full_at(t0) == t0 + 10s);
        CHECK(b.available(t0 + 60s) == doctest::Approx(100));  // capped at capacity
    }
    SUBCASE("future takes queue behind each other (debt)") {
        token_bucket b(1, 1);
        struct step {
            time_point now;
            time_point expected;
        };
        const step steps[] = {{t0, t0}, {t0, t0 + 1s}, {t0, t0 + 2s}, {t0 + 500ms, t0 + 3s}, {t0 + 10s, t0 + 10s}};
        for (const auto& s : steps) {
            const time_point at = b.earliest(s.now, 1);
            CHECK(at == s.expected);
            b.take(at, 1);
        }
    }
    SUBCASE("a cost above capacity goes once full, then the bucket is in debt") {
        token_bucket b(1, 10);
        CHECK(b.earliest(t0, 25) == t0);
        b.take(t0, 25);
        CHECK(b.earliest(t0, 1) == t0 + 16s);
    }
    SUBCASE("give_back returns tokens (and a negative amount takes more)") {
        token_bucket b(2, 10);
        b.take(t0, 10);
        b.give_back(4);
        CHECK(b.available(t0) == doctest::Approx(4));
        b.give_back(-4);
        CHECK(b.available(t0) == doctest::Approx(0));
    }
    SUBCASE("reconfigure keeps the debt in tokens") {
        token_bucket b(10, 100);
        b.take(t0, 100);  // 100 tokens missing = 10 s at 10/s
        b.reconfigure(t0, 1, 50);
        CHECK(b.rate_per_second() == doctest::Approx(1));
        CHECK(b.full_at(t0) == t0 + 100s);
    }
    SUBCASE("a clock that steps back never refills twice") {
        token_bucket b(1, 1);
        b.take(b.earliest(t0, 1), 1);
        CHECK(b.earliest(t0 - 10s, 1) == t0 + 1s);
    }
    SUBCASE("a debt past the clock's range saturates instead of wrapping into the past") {
        token_bucket b(10, 100);
        const double huge = static_cast<double>(std::numeric_limits<std::uint64_t>::max());
        b.take(t0, huge);  // ~292 years of debt on top of 2025 overflows 64-bit nanoseconds
        CHECK(b.full_at(t0) == time_point::max());
        CHECK(b.earliest(t0, 1) > t0 + chr::years(200));
        CHECK(b.available(t0) == doctest::Approx(0));
        b.take(b.earliest(t0, 1), huge);
        b.give_back(-huge);
        CHECK(b.full_at(t0) == time_point::max());
        b.reconfigure(t0, 1, 10);  // keeps the (saturated) debt
        CHECK(b.earliest(t0, 1) > t0 + chr::years(200));
    }
    SUBCASE("a refund past the clock's range saturates instead of wrapping into the future") {
        token_bucket b(1, 1);
        b.take(t0, 1);
        b.give_back(1e30);  // ~292 years back from 2025: before 1970, still in range
        b.give_back(1e30);  // once wrapped around to 2039: a bucket in debt for years
        CHECK(b.earliest(t0, 1) == t0);
        CHECK(b.available(t0) == doctest::Approx(1));
    }
}

TEST_CASE("token estimate") {
    struct row {
        std::size_t bytes;
        std::optional<std::uint64_t> max_tokens;
        std::uint64_t expected;
    };
    const row rows[] = {
        {0, {}, 512}, {1, {}, 513}, {4, {}, 513}, {5, {}, 514}, {4000, 100, 1100}, {4000, 0, 1000},
        // max_tokens is clamped to the longest completion (128k), whatever the client asks.
        {10, 131072, 3 + 131072},
        {10, 131073, 3 + 131072},
        {10, std::numeric_limits<std::uint64_t>::max(), 3 + 131072},
        {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::uint64_t>::max(), max_token_count},
    };
    for (const auto& r : rows) {
        CAPTURE(r.bytes);
        CHECK(estimate_tokens(r.bytes, r.max_tokens) == r.expected);
    }
    CHECK(estimate_tokens(100, {}, estimate_settings{2, 10}) == 60);
    CHECK(estimate_tokens(100, {}, estimate_settings{0, 0}) == 100);
    CHECK(estimate_tokens(100, 5000, estimate_settings{4, 512, 1000}) == 25 + 1000);
}

TEST_CASE("token estimate: what a request without a reported usage books") {
    struct row {
        std::size_t bytes;
        std::optional<std::uint64_t> max_tokens;
        std::uint64_t tokens;
        std::uint64_t unreported;
    };
    const row rows[] = {
        {400, {}, 100 + 512, 100 + 512},  // no max_tokens: the default, both ways
        {400, 100, 200, 200},             // a small max_tokens: the estimate itself
        {400, 512, 612, 612},
        {400, 4096, 100 + 4096, 100 + 512},  // a large one: the prompt and at most 512 of it
        {400, std::numeric_limits<std::uint64_t>::max(), 100 + 131072, 100 + 512},
    };
    for (const auto& r : rows) {
        CAPTURE(r.max_tokens.value_or(0));
        const token_estimate e = estimate_request(r.bytes, r.max_tokens);
        CHECK(e.tokens == r.tokens);
        CHECK(e.unreported == r.unreported);
        CHECK(e.unreported <= e.tokens);
    }
}

TEST_CASE("tokens_to_book: reported usage, refused, or a bounded estimate") {
    constexpr auto none = std::numeric_limits<std::uint64_t>::max();
    struct row {
        const char* name;
        std::optional<std::uint64_t> reported;
        bool refused;
        std::uint64_t estimated;
        std::uint64_t unreported;
        std::uint64_t expected;
    };
    const row rows[] = {
        {"reported usage wins, even above the estimate", 5000, false, 612, 612, 5000},
        {"reported usage wins over refused", 7, true, 612, 612, 7},
        {"refused: nothing generated", {}, true, 131172, 612, 0},
        {"cut short: the bounded estimate", {}, false, 131172, 612, 612},
        {"cut short: never more than the estimate", {}, false, 300, 612, 300},
        {"cut short, no bounded estimate given: the estimate", {}, false, 612, none, 612},
        {"a reported 2^64-1 saturates", none, false, 612, 612, max_token_count},
        {"an estimate of 2^64-1 saturates", {}, false, none, none, max_token_count},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        CHECK(tokens_to_book(r.reported, r.refused, r.estimated, r.unreported) == r.expected);
    }
}

TEST_CASE("token counts saturate") {
    constexpr auto top = std::numeric_limits<std::uint64_t>::max();
    CHECK(add_tokens(top, top) == max_token_count);
    CHECK(add_tokens(max_token_count - 1, 1) == max_token_count);
    CHECK(add_tokens(max_token_count, 1) == max_token_count);
    CHECK(add_tokens(2, 3) == 5);
    CHECK(sub_tokens(2, 3) == 0);
    CHECK(sub_tokens(top, 1) == top - 1);
    CHECK(clamp_tokens(top) == max_token_count);
}

TEST_CASE("limiter: requests are paced FIFO and refused past max_queue_wait") {
    limiter lim(settings_with({2, 0, 0}, 2s));  // 2 requests/s, strict pacing
    std::vector<time_point> ready;
    for (int i = 0; i < 5; ++i) {
        const auto r = lim.reserve("mistral", t0, 10);
        REQUIRE(r.granted);
        CHECK_FALSE(r.refused);
        ready.push_back(r.granted->ready_at);
    }
    const std::vector<time_point> expected = {t0, t0 + 500ms, t0 + 1s, t0 + 1500ms, t0 + 2s};
    CHECK(ready == expected);

    const auto refused = lim.reserve("mistral", t0, 10);
    REQUIRE(refused.refused);
    CHECK_FALSE(refused.granted);
    CHECK(refused.refused->limit == limit_kind::requests_per_second);
    CHECK(refused.refused->retry_after == 2500ms);
    CHECK(refused.refused->message.find("2 requests per second") != std::string::npos);
    CHECK(refused.refused->message.find("max_queue_wait") != std::string::npos);

    // Time passes: the queue drains and a newcomer goes behind the last one.
    const auto later = lim.reserve("mistral", t0 + 1200ms, 10);
    REQUIRE(later.granted);
    CHECK(later.granted->ready_at == t0 + 2500ms);
}

TEST_CASE("limiter: mistral and mistral_eu share a bucket, codestral has its own") {
    limits_settings s = settings_with({1, 0, 0});
    s.buckets["codestral"] = {1, 0, 0};
    limiter lim(s);
    CHECK(bucket_key("mistral_eu") == "mistral");
    CHECK(bucket_key("codestral") == "codestral");
    CHECK(lim.reserve("mistral", t0, 1).granted->ready_at == t0);
    CHECK(lim.reserve("mistral_eu", t0, 1).granted->ready_at == t0 + 1s);
    CHECK(lim.reserve("codestral", t0, 1).granted->ready_at == t0);
    const auto unconfigured = lim.reserve("other", t0, 1'000'000);
    REQUIRE(unconfigured.granted);
    CHECK(unconfigured.granted->ready_at == t0);

    SUBCASE("a mistral_eu entry alone is used for the shared key") {
        limits_settings eu;
        eu.buckets["mistral_eu"] = {1, 0, 0};
        limiter l2(eu);
        CHECK(l2.reserve("mistral", t0, 1).granted->ready_at == t0);
        CHECK(l2.reserve("mistral_eu", t0, 1).granted->ready_at == t0 + 1s);
    }
}

TEST_CASE("limiter: tokens per minute, estimate correction") {
    limiter lim(settings_with({0, 600, 0}, 30s));  // 10 tokens/s, holds 600
    const auto a = lim.reserve("mistral", t0, 600);
    REQUIRE(a.granted);
    CHECK(a.granted->ready_at == t0);
    // The next 300 need 30 s of refill.
    const auto b = lim.reserve("mistral", t0, 300);
    REQUIRE(b.granted);
    CHECK(b.granted->ready_at == t0 + 30s);
    // 400 more would wait 70 s: refused, naming the minute limit.
    const auto c = lim.reserve("mistral", t0, 400);
    REQUIRE(c.refused);
    CHECK(c.refused->limit == limit_kind::tokens_per_minute);
    CHECK(c.refused->retry_after == 70s);
    CHECK(c.refused->message.find("600 tokens per minute") != std::string::npos);

    // a used 100 of its 600: 500 come back, so c fits after b now.
    lim.settle(*a.granted, t0 + 1s, 100);
    const auto c2 = lim.reserve("mistral", t0 + 1s, 400);
    REQUIRE(c2.granted);
    CHECK(c2.granted->ready_at == t0 + 30s);  // FIFO: not before b

    SUBCASE("an estimate that was too low pushes newcomers back") {
        lim.settle(*b.granted, t0 + 31s, 900);  // 600 more than estimated
        // Without the correction 1 token would go at t0 + 31 s; now it waits 49.1 s.
        const auto d = lim.reserve("mistral", t0 + 31s, 1);
        REQUIRE(d.refused);
        CHECK(d.refused->retry_after == 49100ms);
    }
}

TEST_CASE("limiter: cancel gives the place and the tokens back") {
    limiter lim(settings_with({1, 0, 0}, 10s));
    const auto a = lim.reserve("mistral", t0, 1);
    const auto b = lim.reserve("mistral", t0, 1);
    const auto c = lim.reserve("mistral", t0, 1);
    REQUIRE((a.granted && b.granted && c.granted));
    CHECK(c.granted->ready_at == t0 + 2s);

    SUBCASE("the newest one: the tail shrinks") {
        lim.cancel(*c.granted);
        CHECK(lim.reserve("mistral", t0, 1).granted->ready_at == t0 + 2s);
    }
    SUBCASE("one in the middle: those behind keep their place, newcomers queue behind them") {
        lim.cancel(*b.granted);
        const auto d = lim.reserve("mistral", t0, 1);
        REQUIRE(d.granted);
        CHECK(d.granted->ready_at == t0 + 3s);  // behind c (FIFO), and not in the same instant as c
        const auto e = lim.reserve("mistral", t0, 1);
        CHECK(e.granted->ready_at == t0 + 4s);
    }
    SUBCASE("a cancelled month estimate is no longer in flight") {
        limiter month(settings_with({0, 0, 1000}));
        // Each holds half of what is left: 500, 250, ..., 1; ten hold it all.
        std::vector<reservation> held;
        for (auto r = month.reserve("mistral", t0, 5000); r.granted; r = month.reserve("mistral", t0, 5000)) {
            held.push_back(*r.granted);
            REQUIRE(held.size() < 64);
        }
        CHECK(held.size() == 10);
        CHECK(month.reserve("mistral", t0, 1).refused);
        month.cancel(held.front());
        CHECK(month.reserve("mistral", t0, 1).granted);
    }
}

TEST_CASE("limiter: retries take a request token again") {
    limiter lim(settings_with({1, 0, 0}, 10s));
    auto a = lim.reserve("mistral", t0, 1);
    REQUIRE(a.granted);
    // The try at t0 got a 429; backoff says 1.5 s.
    const time_point retry_at = lim.reserve_retry(*a.granted, t0 + 100ms, t0 + 1600ms);
    CHECK(retry_at == t0 + 1600ms);
    CHECK(a.granted->ready_at == retry_at);
    // A newcomer queues behind the retry, and the request bucket counted both tries.
    CHECK(lim.reserve("mistral", t0 + 100ms, 1).granted->ready_at == t0 + 2600ms);
    // A retry with no delay still waits for its bucket.
    auto b = lim.reserve("mistral", t0 + 100ms, 1);
    REQUIRE(b.granted);
    CHECK(lim.reserve_retry(*b.granted, t0 + 100ms, t0 + 100ms) == t0 + 4600ms);
}

TEST_CASE("limiter: monthly budget, rollover") {
    limiter lim(settings_with({0, 0, 1000}));
    const auto a = lim.reserve("mistral", t0, 700);
    REQUIRE(a.granted);
    lim.settle(*a.granted, t0 + 1s, 600);
    CHECK(lim.month_used("mistral", t0 + 1s) == 600);
    // 400 are left: a request estimated at 2000 is still admitted (the budget
    // is not spent), holding half of what is left ...
    const auto b = lim.reserve("mistral", t0 + 2s, 2000);
    REQUIRE(b.granted);
    CHECK(b.granted->month_held == 200);
    // ... so the others are not locked out while it runs; in-flight holds
    // still count: this one holds the half of the 200 left.
    const auto c = lim.reserve("mistral", t0 + 2s, 150);
    REQUIRE(c.granted);
    CHECK(c.granted->month_held == 100);
    CHECK(lim.snapshot("mistral", t0 + 2s).month_tokens->remaining == doctest::Approx(100));
    lim.settle(*b.granted, t0 + 3s, 450);
    CHECK(lim.month_used("mistral", t0 + 3s) == 1050);

    const auto d = lim.reserve("mistral", t0 + 4s, 1);
    REQUIRE(d.refused);
    CHECK(d.refused->limit == limit_kind::tokens_per_month);
    CHECK(d.refused->message.find("monthly token budget of 1000 tokens for 'mistral' is exhausted") !=
          std::string::npos);
    CHECK(d.refused->message.find("resets at 2025-04-01T00:00:00Z") != std::string::npos);
    const time_point april = time_point{chr::sys_days{chr::year{2025} / chr::April / 1}.time_since_epoch()};
    CHECK(d.refused->retry_after == chr::duration_cast<milliseconds>(april - (t0 + 4s)));

    // The first instant of April starts a fresh budget.
    const auto e = lim.reserve("mistral", april, 10);
    REQUIRE(e.granted);
    CHECK(e.granted->month == month_id{2025, 4});
    CHECK(lim.month_used("mistral", april) == 0);
    // A March reservation settled in April is booked to April.
    const auto late = lim.settle(*c.granted, april + 1s, 7);
    CHECK(late.month == month_id{2025, 4});
    CHECK(lim.month_used("mistral", april + 1s) == 7);
}

TEST_CASE("limiter: an estimate of 2^64-1 (max_tokens: 1e30) locks nobody out") {
    constexpr auto huge = std::numeric_limits<std::uint64_t>::max();
    limiter lim(settings_with({0, 6000, 100000}, 10s));  // 100 tokens/s, holds 6000
    const auto big = lim.reserve("mistral", t0, huge);
    REQUIRE(big.granted);
    CHECK(big.granted->ready_at == t0);
    CHECK(big.granted->minute_held == 6000);  // the bucket's capacity, no debt
    CHECK(big.granted->month_held == 50000);  // half of the month
    // While it is in flight a normal request goes: behind it in the minute
    // bucket (600 tokens at 100/s), not behind hours of debt, and the month is open.
    const auto normal = lim.reserve("mistral", t0, 600);
    REQUIRE(normal.granted);
    CHECK(normal.granted->ready_at == t0 + 6s);
    CHECK(normal.granted->month_held == 600);
    // Both report small usages: the month holds exactly those.
    lim.settle(*big.granted, t0 + 10s, 40);
    lim.settle(*normal.granted, t0 + 10s, 30);
    CHECK(lim.month_used("mistral", t0 + 10s) == 70);
    const auto snap = lim.snapshot("mistral", t0 + 10s);
    CHECK(snap.month_tokens->remaining == doctest::Approx(100000 - 70));

    SUBCASE("a cancelled one gives back exactly what it held") {
        const auto again = lim.reserve("mistral", t0 + 70s, huge);
        REQUIRE(again.granted);
        lim.cancel(*again.granted);
        CHECK(lim.snapshot("mistral", t0 + 70s).month_tokens->remaining == doctest::Approx(100000 - 70));
        CHECK(lim.snapshot("mistral", t0 + 70s).tokens->remaining == doctest::Approx(6000));
    }
}

TEST_CASE("limiter: the month's usage saturates near 2^64 instead of wrapping") {
    constexpr auto huge = std::numeric_limits<std::uint64_t>::max();
    limiter lim(settings_with({0, 6000, 1000}));
    const auto a = lim.reserve("mistral", t0, 10);
    const auto b = lim.reserve("mistral", t0, 10);
    REQUIRE((a.granted && b.granted));
    lim.settle(*a.granted, t0, huge);  // what a hostile or broken upstream might report
    CHECK(lim.month_used("mistral", t0) == max_token_count);
    lim.settle(*b.granted, t0, 5);  // 2^64 - 1 + 5 once wrapped to 4: a month open again
    CHECK(lim.month_used("mistral", t0) == max_token_count);
    const auto next = lim.reserve("mistral", t0 + 1s, 1);
    REQUIRE(next.refused);
    CHECK(next.refused->limit == limit_kind::tokens_per_month);
    CHECK(lim.snapshot("mistral", t0 + 1s).month_tokens->remaining == doctest::Approx(0));
}

TEST_CASE("limiter: adapts to a lower upstream limit, never to a higher one") {
    limiter lim(settings_with({2, 6000, 100000}));
    rate_limits higher;
    higher.requests = limit_window{600, 600, {}};  // 10/s: ignored
    higher.tokens = limit_window{60000, 60000, {}};
    lim.adapt("mistral", t0, higher);
    auto snap = lim.snapshot("mistral", t0);
    REQUIRE(snap.requests);
    CHECK(snap.requests->limit == doctest::Approx(120));
    CHECK(snap.tokens->limit == doctest::Approx(6000));

    rate_limits lower;
    lower.requests = limit_window{60, 59, {}};     // 1/s
    lower.tokens = limit_window{1200, 1000, {}};   // 1200 per minute
    lower.month_tokens = limit_window{5000, 10, {}};
    lim.adapt("mistral_eu", t0, lower);
    snap = lim.snapshot("mistral", t0);
    CHECK(snap.requests->limit == doctest::Approx(60));
    CHECK(snap.tokens->limit == doctest::Approx(1200));
    CHECK(snap.month_tokens->limit == doctest::Approx(5000));
    CHECK(lim.reserve("mistral", t0, 1).granted->ready_at == t0);
    CHECK(lim.reserve("mistral", t0, 1).granted->ready_at == t0 + 1s);

    SUBCASE("an unconfigured key adopts the upstream's limits") {
        lim.adapt("codestral", t0, lower);
        CHECK(lim.reserve("codestral", t0, 1).granted->ready_at == t0);
        CHECK(lim.reserve("codestral", t0, 1).granted->ready_at == t0 + 1s);
    }
}

TEST_CASE("limiter: snapshot in header terms") {
    limiter lim(settings_with({1, 600, 1000}));
    auto snap = lim.snapshot("mistral", t0);
    REQUIRE((snap.requests && snap.tokens && snap.month_tokens));
    CHECK(snap.requests->limit == doctest::Approx(60));
    CHECK(snap.requests->remaining == doctest::Approx(60));
    CHECK(snap.tokens->remaining == doctest::Approx(600));
    CHECK(*snap.tokens->reset == clock::duration::zero());
    const auto r = lim.reserve("mistral", t0, 300);
    REQUIRE(r.granted);
    snap = lim.snapshot("mistral", t0);
    CHECK(snap.requests->remaining == doctest::Approx(59));
    CHECK(*snap.requests->reset == 1s);
    CHECK(snap.tokens->remaining == doctest::Approx(300));
    CHECK(*snap.tokens->reset == 30s);
    CHECK(snap.month_tokens->remaining == doctest::Approx(700));
    CHECK_FALSE(limiter(limits_settings{}).snapshot("mistral", t0).requests);
}
