#pragma once
// The token estimate a request reserves before it is sent; settle() replaces it
// with the usage Mistral reports. Deliberately simple: about 4 bytes of JSON
// per prompt token (an over-estimate for JSON, whose keys and quotes are cheap
// in tokens) plus the completion the request may produce.
//
// The completion part is the client's max_tokens, which is a ceiling the client
// picks, not a forecast: it is clamped (max_completion_tokens), so that a
// `max_tokens: 1e30` holds no more than the longest completion a model can
// produce, and when Mistral reports nothing (a stream cut short) only a bounded
// part of it is booked.
#include <cstddef>
#include <cstdint>
#include <optional>

namespace mistral_proxy::limits {

struct estimate_settings {
    std::uint64_t bytes_per_token = 4;
    // Completion tokens assumed when the request sets no max_tokens, and the
    // most that is booked for a completion whose usage Mistral never reported.
    std::uint64_t default_completion_tokens = 512;
    // The longest completion a request is assumed to ask for, whatever its
    // max_tokens: 128k tokens, the context window of Mistral's chat models
    // (large, medium, small, nemo, pixtral, ministral: max_context_length 131072
    // in /v1/models). A completion cannot outgrow the model's context; the proxy
    // keeps no per-model table, and a real completion that is longer (codestral's
    // 256k window) is booked from the usage Mistral reports anyway.
    std::uint64_t max_completion_tokens = 131072;
};

struct token_estimate {
    // Held while the request is in flight:
    //   ceil(body_bytes / bytes_per_token) + min(max_tokens or the default, max_completion_tokens).
    std::uint64_t tokens = 0;
    // Booked when the request ends without a usage from Mistral (the client cut
    // the stream, the upstream dropped it): the prompt estimate plus at most
    // default_completion_tokens of the completion. Never more than `tokens`.
    std::uint64_t unreported = 0;
};

// Never 0 for a non-empty body; saturates instead of overflowing.
token_estimate estimate_request(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                                const estimate_settings& settings = {}) noexcept;

// estimate_request(...).tokens.
std::uint64_t estimate_tokens(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                              const estimate_settings& settings = {}) noexcept;

// What an ended request books to the month (limiter::settle):
//   - the usage Mistral reported (usage.total_tokens), when it reported one;
//   - 0 when the upstream refused the call (nothing was generated);
//   - else min(estimated, unreported): the bounded estimate, never more than
//     the request's own estimate (`unreported` may be "unknown": UINT64_MAX).
// Every amount is capped at max_token_count (token_count.hpp).
std::uint64_t tokens_to_book(std::optional<std::uint64_t> reported, bool upstream_refused, std::uint64_t estimated,
                             std::uint64_t unreported) noexcept;

}  // namespace mistral_proxy::limits
