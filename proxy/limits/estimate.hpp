#pragma once
// The token estimate a request reserves before it is sent; settle() replaces it
// with the usage Mistral reports. Deliberately simple: about 4 bytes of JSON
// per prompt token (an over-estimate for JSON, whose keys and quotes are cheap
// in tokens) plus the completion the request may produce.
#include <cstddef>
#include <cstdint>
#include <optional>

namespace mistral_proxy::limits {

struct estimate_settings {
    std::uint64_t bytes_per_token = 4;
    // Completion tokens assumed when the request sets no max_tokens.
    std::uint64_t default_completion_tokens = 512;
};

// ceil(body_bytes / bytes_per_token) + (max_tokens or the default). Never 0
// for a non-empty body; saturates instead of overflowing.
std::uint64_t estimate_tokens(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                              const estimate_settings& settings = {}) noexcept;

}  // namespace mistral_proxy::limits
