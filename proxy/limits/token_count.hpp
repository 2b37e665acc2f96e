#pragma once
// Token counts in the limiters and the month ledger: bounded, and saturating
// instead of wrapping. A count comes from a client (max_tokens), from Mistral
// (usage) or from a file (the ledger), so none of them is trusted to be small:
// 2^64 - 1 once wrapped a month's usage back to a few tokens, or locked the
// month for good.
#include <cstdint>

namespace mistral_proxy::limits {

// The largest token count the limiters and the ledger keep: 2^53. It is exact
// as a double (rate-limit headers, metrics, the Redis script's Lua numbers) and
// far beyond any real month (9e15 tokens); a larger count saturates here, and a
// ledger record above it is refused when the ledger is replayed.
inline constexpr std::uint64_t max_token_count = std::uint64_t{1} << 53U;

constexpr std::uint64_t clamp_tokens(std::uint64_t n) noexcept { return n < max_token_count ? n : max_token_count; }

// a + b, at most max_token_count (both clamped first, so the sum cannot wrap).
constexpr std::uint64_t add_tokens(std::uint64_t a, std::uint64_t b) noexcept {
    return clamp_tokens(clamp_tokens(a) + clamp_tokens(b));
}

// a - b, at least 0.
constexpr std::uint64_t sub_tokens(std::uint64_t a, std::uint64_t b) noexcept { return a > b ? a - b : 0; }

}  // namespace mistral_proxy::limits
