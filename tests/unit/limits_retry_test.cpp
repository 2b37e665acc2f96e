// Retry schedule, Retry-After parsing and the hints sent to the client.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "config/config.hpp"
#include "limits/retry.hpp"

using namespace mistral_proxy::limits;
using namespace std::chrono_literals;
namespace chr = std::chrono;

namespace {

// Sun, 06 Nov 1994 08:49:37 GMT minus 10 s.
const time_point now =
    time_point{chr::sys_days{chr::year{1994} / chr::November / 6}.time_since_epoch()} + 8h + 49min + 27s;

mistral_proxy::config::retry_settings shipped() { return {}; }  // 3 retries, 1s 2s 4s, cap 30s

}  // namespace

TEST_CASE("retryable statuses") {
    struct row {
        unsigned status;
        bool retryable;
    };
    const row rows[] = {{429, true},  {502, true},  {503, true},  {504, true},  {500, false},
                        {400, false}, {401, false}, {404, false}, {422, false}, {200, false}};
    for (const auto& r : rows) {
        CAPTURE(r.status);
        CHECK(is_retryable_status(r.status) == r.retryable);
    }
}

TEST_CASE("Retry-After parsing") {
    struct row {
        std::string value;
        std::optional<milliseconds> expected;
    };
    const row rows[] = {
        {"0", 0ms},
        {"2", 2000ms},
        {" 7 ", 7000ms},
        {"1.5", 1500ms},
        {"3600", 3600s},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 10s},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 10s},
        {"Sun Nov  6 08:49:37 1994", 10s},
        {"Sun, 06 Nov 1994 08:49:17 GMT", 0ms},  // in the past
        {"Sun, 06 Nov 1994 08:49:37 CET", {}},
        {"Sun, 31 Feb 1994 08:49:37 GMT", {}},
        {"Sun, 06 Nov 1994 08:49:37 GMT trailing", {}},
        {"", {}},
        {"-1", {}},
        {"+5", {}},
        {"1e3", {}},
        {"soon", {}},
        {"5s", {}},
        {"99999999999999999999", 365LL * 24 * 3600 * 1000 * 1ms},
    };
    for (const auto& r : rows) {
        CAPTURE(r.value);
        CHECK(parse_retry_after(r.value, now) == r.expected);
    }
}

TEST_CASE("upstream Retry-After: retry-after-ms first") {
    CHECK(upstream_retry_after({{"Retry-After", "2"}}, now) == 2000ms);
    CHECK(upstream_retry_after({{"retry-after-ms", "250"}, {"retry-after", "2"}}, now) == 250ms);
    CHECK(upstream_retry_after({{"retry-after-ms", "bad"}, {"retry-after", "2"}}, now) == 2000ms);
    CHECK(upstream_retry_after({{"x-other", "1"}}, now) == std::nullopt);
}

TEST_CASE("backoff schedule") {
    const retry_schedule schedule(shipped());
    struct row {
        unsigned tries_done;
        bool retryable;
        std::optional<milliseconds> retry_after;
        bool retry;
        milliseconds delay;
    };
    const row rows[] = {
        {1, true, {}, true, 1s},
        {2, true, {}, true, 2s},
        {3, true, {}, true, 4s},
        {4, true, {}, false, 0ms},      // 3 retries made
        {1, false, {}, false, 0ms},     // not retryable
        {1, true, 500ms, true, 1s},     // shorter Retry-After: backoff wins
        {1, true, 7s, true, 7s},        // longer Retry-After wins
        {3, true, 3s, true, 4s},
        {1, true, 3600s, true, 30s},    // capped at max_retry_after
        {1, true, 0ms, true, 1s},
    };
    for (const auto& r : rows) {
        CAPTURE(r.tries_done);
        CAPTURE(r.retry_after.value_or(-1ms).count());
        const auto d = schedule.after_failure(r.tries_done, r.retryable, r.retry_after);
        CHECK(d.retry == r.retry);
        CHECK(d.delay == r.delay);
    }

    SUBCASE("the last step repeats") {
        mistral_proxy::config::retry_settings s;
        s.max_retries = 5;
        s.backoff = {100ms, 200ms};
        const retry_schedule five(s);
        CHECK(five.after_failure(1, true, {}).delay == 100ms);
        CHECK(five.after_failure(2, true, {}).delay == 200ms);
        CHECK(five.after_failure(5, true, {}).delay == 200ms);
        CHECK_FALSE(five.after_failure(6, true, {}).retry);
    }
    SUBCASE("no backoff configured: only Retry-After delays") {
        mistral_proxy::config::retry_settings s;
        s.backoff.clear();
        const retry_schedule none(s);
        CHECK(none.after_failure(1, true, {}).delay == 0ms);
        CHECK(none.after_failure(1, true, 2s).delay == 2s);
    }
    SUBCASE("max_retries 0 never retries") {
        mistral_proxy::config::retry_settings s;
        s.max_retries = 0;
        CHECK_FALSE(retry_schedule(s).after_failure(1, true, {}).retry);
    }
    SUBCASE("a backoff step longer than max_retry_after is kept (it was configured)") {
        mistral_proxy::config::retry_settings s;
        s.backoff = {5s};
        s.max_retry_after = 1s;
        CHECK(retry_schedule(s).after_failure(1, true, 60s).delay == 5s);
    }
}

TEST_CASE("Retry-After for the client's final answer") {
    mistral_proxy::config::retry_settings s;
    s.max_retry_after = 1s;
    s.backoff = {50ms, 50ms};
    const retry_schedule schedule(s);
    CHECK(schedule.client_retry_after(60s) == 1s);
    CHECK(schedule.client_retry_after(300ms) == 300ms);
    CHECK(schedule.client_retry_after(std::nullopt) == 50ms);
    CHECK(retry_schedule(shipped()).client_retry_after(std::nullopt) == 4s);

    struct row {
        milliseconds wait;
        bool should_retry;
        std::string retry_after;
        std::string retry_after_ms;
        std::string x_should_retry;
    };
    const row rows[] = {
        {1500ms, true, "2", "1500", "true"},
        {1000ms, true, "1", "1000", "true"},
        {1ms, true, "1", "1", "true"},
        {0ms, false, "0", "0", "false"},
        {-5ms, true, "0", "0", "true"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.wait.count());
        const header_list h = client_retry_headers(r.wait, r.should_retry);
        REQUIRE(h.size() == 3);
        CHECK(*find_header(h, "Retry-After") == r.retry_after);
        CHECK(*find_header(h, "retry-after-ms") == r.retry_after_ms);
        CHECK(*find_header(h, "x-should-retry") == r.x_should_retry);
    }
}
