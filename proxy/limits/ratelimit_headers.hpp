#pragma once
// Rate-limit headers: Mistral's names in, OpenAI's names out. Pure functions
// over (name, value) lists; names are matched case-insensitively.
//
// Mistral sends (seen on api.mistral.ai and codestral):
//   x-ratelimit-limit-req-minute / x-ratelimit-remaining-req-minute / x-ratelimit-reset-req-minute
//   x-ratelimit-limit-tokens-minute / x-ratelimit-remaining-tokens-minute / x-ratelimit-reset-tokens-minute
//   x-ratelimit-limit-tokens-month / x-ratelimit-remaining-tokens-month
//   x-ratelimit-tokens-query-cost
// and, on older deployments, the "by size" family (tokens):
//   ratelimitbysize-limit / ratelimitbysize-remaining / ratelimitbysize-reset (seconds)
//   x-ratelimitbysize-limit-minute / x-ratelimitbysize-remaining-minute
//   x-ratelimitbysize-limit-month / x-ratelimitbysize-remaining-month
// OpenAI clients read:
//   x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests,
//   x-ratelimit-limit-tokens,   x-ratelimit-remaining-tokens,   x-ratelimit-reset-tokens
// where reset is a Go-style duration ("1s", "6m0s", "250ms").
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "limits/clock.hpp"

namespace mistral_proxy::limits {

using header_list = std::vector<std::pair<std::string, std::string>>;

// One limit over one window: the limit, what is left, and how long until it is whole again.
struct limit_window {
    double limit = 0;
    double remaining = 0;
    std::optional<clock::duration> reset;  // unknown when the upstream does not say
};

struct rate_limits {
    std::optional<limit_window> requests;      // per minute
    std::optional<limit_window> tokens;        // per minute
    std::optional<limit_window> month_tokens;  // per calendar month
};

// Reads Mistral's headers (both families; the newer wins when both are there).
// A window is set only when its limit is present and numeric; a missing
// remaining counts as the limit. Garbage values are ignored, never an error.
rate_limits parse_mistral_ratelimit_headers(const header_list& headers);

// The OpenAI headers to set on the answer: per family (requests, tokens) the
// tighter of the upstream's window and the proxy's own (fewer remaining), or
// whichever exists. Numbers are whole (remaining rounded down). Nothing is
// returned for a family neither side knows.
header_list openai_ratelimit_headers(const rate_limits& upstream, const rate_limits& own);

// Go-style duration as OpenAI writes it: "0s", "250ms", "1s", "1.5s", "6m0s", "1h2m3s".
std::string format_reset(clock::duration d);

// Case-insensitive lookup; nullptr when absent (the first match wins).
const std::string* find_header(const header_list& headers, std::string_view name);

}  // namespace mistral_proxy::limits
