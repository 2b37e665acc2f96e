// Mistral's rate-limit headers translated to OpenAI's.
#include <doctest/doctest.h>

#include <string>

#include "limits/ratelimit_headers.hpp"

using namespace mistral_proxy::limits;
using namespace std::chrono_literals;

namespace {

std::string get(const header_list& h, std::string_view name) {
    const std::string* v = find_header(h, name);
    return v == nullptr ? "(absent)" : *v;
}

}  // namespace

TEST_CASE("reset durations in OpenAI's Go style") {
    struct row {
        clock::duration d;
        std::string text;
    };
    const row rows[] = {
        {0s, "0s"},          {-3s, "0s"},        {1ns, "1ms"},         {250ms, "250ms"},   {1s, "1s"},
        {1500ms, "1.5s"},    {17281ms, "17.281s"}, {59990ms, "59.99s"}, {60s, "1m0s"},    {6min, "6m0s"},
        {61500ms, "1m1.5s"}, {3723s, "1h2m3s"},  {3600s, "1h0m0s"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.text);
        CHECK(format_reset(r.d) == r.text);
    }
}

TEST_CASE("parsing Mistral's headers") {
    SUBCASE("current names") {
        const header_list h = {
            {"X-RateLimit-Limit-Req-Minute", "720"},     {"x-ratelimit-remaining-req-minute", "717"},
            {"x-ratelimit-limit-tokens-minute", "5000000"}, {"x-ratelimit-remaining-tokens-minute", "4999911"},
            {"x-ratelimit-reset-tokens-minute", "12"},   {"x-ratelimit-limit-tokens-month", "1000000000"},
            {"x-ratelimit-remaining-tokens-month", "999998798"}, {"x-ratelimit-tokens-query-cost", "52"},
        };
        const rate_limits r = parse_mistral_ratelimit_headers(h);
        REQUIRE(r.requests);
        CHECK(r.requests->limit == 720);
        CHECK(r.requests->remaining == 717);
        CHECK_FALSE(r.requests->reset);
        REQUIRE(r.tokens);
        CHECK(r.tokens->limit == 5000000);
        CHECK(r.tokens->remaining == 4999911);
        CHECK(*r.tokens->reset == 12s);
        REQUIRE(r.month_tokens);
        CHECK(r.month_tokens->remaining == 999998798);
    }
    SUBCASE("the older by-size family") {
        const header_list h = {
            {"ratelimitbysize-limit", "500000"},
            {"ratelimitbysize-remaining", "499900"},
            {"ratelimitbysize-reset", "28"},
            {"ratelimitbysize-query-cost", "100"},
            {"x-ratelimitbysize-limit-month", "1000000000"},
            {"x-ratelimitbysize-remaining-month", "999999000"},
        };
        const rate_limits r = parse_mistral_ratelimit_headers(h);
        CHECK_FALSE(r.requests);
        REQUIRE(r.tokens);
        CHECK(r.tokens->limit == 500000);
        CHECK(r.tokens->remaining == 499900);
        CHECK(*r.tokens->reset == 28s);
        REQUIRE(r.month_tokens);
        CHECK(r.month_tokens->limit == 1000000000);
    }
    SUBCASE("x-ratelimitbysize minute names, reset from ratelimitbysize-reset") {
        const rate_limits r = parse_mistral_ratelimit_headers({{"x-ratelimitbysize-limit-minute", "2000"},
                                                               {"x-ratelimitbysize-remaining-minute", "100"},
                                                               {"ratelimitbysize-reset", "7"}});
        REQUIRE(r.tokens);
        CHECK(r.tokens->remaining == 100);
        CHECK(*r.tokens->reset == 7s);
    }
    SUBCASE("garbage and partial values") {
        struct row {
            header_list headers;
            bool has_tokens;
            double remaining;
        };
        const row rows[] = {
            {{{"x-ratelimit-limit-tokens-minute", "abc"}}, false, 0},
            {{{"x-ratelimit-limit-tokens-minute", "-5"}}, false, 0},
            {{{"x-ratelimit-limit-tokens-minute", "10x"}}, false, 0},
            {{{"x-ratelimit-limit-tokens-minute", ""}}, false, 0},
            {{{"x-ratelimit-remaining-tokens-minute", "10"}}, false, 0},  // no limit: no window
            {{{"x-ratelimit-limit-tokens-minute", "100"}}, true, 100},    // no remaining: all of it
            {{{"x-ratelimit-limit-tokens-minute", " 100 "}, {"x-ratelimit-remaining-tokens-minute", "zz"}}, true, 100},
            {{}, false, 0},
        };
        for (const auto& r : rows) {
            const rate_limits parsed = parse_mistral_ratelimit_headers(r.headers);
            CHECK(parsed.tokens.has_value() == r.has_tokens);
            if (parsed.tokens) {
                CHECK(parsed.tokens->remaining == r.remaining);
            }
        }
    }
}

TEST_CASE("OpenAI headers: the tighter of upstream and own") {
    rate_limits upstream;
    upstream.requests = limit_window{720, 717, {}};
    upstream.tokens = limit_window{5000000, 4999911, 12s};
    SUBCASE("upstream only") {
        const header_list h = openai_ratelimit_headers(upstream, {});
        CHECK(get(h, "x-ratelimit-limit-requests") == "720");
        CHECK(get(h, "x-ratelimit-remaining-requests") == "717");
        CHECK(get(h, "x-ratelimit-reset-requests") == "(absent)");
        CHECK(get(h, "x-ratelimit-limit-tokens") == "5000000");
        CHECK(get(h, "x-ratelimit-remaining-tokens") == "4999911");
        CHECK(get(h, "x-ratelimit-reset-tokens") == "12s");
        CHECK(h.size() == 5);
    }
    SUBCASE("own buckets tighter") {
        rate_limits own;
        own.requests = limit_window{60, 59.7, 1s};
        own.tokens = limit_window{2000, 1500.9, 15s};
        const header_list h = openai_ratelimit_headers(upstream, own);
        CHECK(get(h, "x-ratelimit-limit-requests") == "60");
        CHECK(get(h, "x-ratelimit-remaining-requests") == "59");
        CHECK(get(h, "x-ratelimit-reset-requests") == "1s");
        CHECK(get(h, "x-ratelimit-limit-tokens") == "2000");
        CHECK(get(h, "x-ratelimit-remaining-tokens") == "1500");
        CHECK(get(h, "x-ratelimit-reset-tokens") == "15s");
    }
    SUBCASE("mixed: own requests tighter, upstream tokens tighter") {
        rate_limits own;
        own.requests = limit_window{60, 10, 1s};
        own.tokens = limit_window{100000000, 99999999, 0s};
        const header_list h = openai_ratelimit_headers(upstream, own);
        CHECK(get(h, "x-ratelimit-remaining-requests") == "10");
        CHECK(get(h, "x-ratelimit-remaining-tokens") == "4999911");
    }
    SUBCASE("neither side knows: nothing") {
        CHECK(openai_ratelimit_headers({}, {}).empty());
    }
    SUBCASE("round trip from Mistral's names") {
        const header_list h = openai_ratelimit_headers(
            parse_mistral_ratelimit_headers({{"ratelimitbysize-limit", "500000"}, {"ratelimitbysize-remaining", "12"}}),
            {});
        CHECK(get(h, "x-ratelimit-remaining-tokens") == "12");
        CHECK(get(h, "x-ratelimit-limit-requests") == "(absent)");
    }
}
