// The token estimate a request reserves before it is sent (see estimate.hpp).
#include "limits/estimate.hpp"

#include <algorithm>

#include "limits/token_count.hpp"

namespace mistral_proxy::limits {

token_estimate estimate_request(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                                const estimate_settings& settings) noexcept {
    const std::uint64_t per_token = settings.bytes_per_token == 0 ? 1 : settings.bytes_per_token;
    const auto bytes = static_cast<std::uint64_t>(body_bytes);
    const std::uint64_t prompt = bytes / per_token + (bytes % per_token != 0 ? 1 : 0);
    const std::uint64_t completion =
        std::min(max_tokens.value_or(settings.default_completion_tokens), settings.max_completion_tokens);
    token_estimate out;
    out.tokens = add_tokens(prompt, completion);
    out.unreported = add_tokens(prompt, std::min(completion, settings.default_completion_tokens));
    return out;
}

std::uint64_t estimate_tokens(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                              const estimate_settings& settings) noexcept {
    return estimate_request(body_bytes, max_tokens, settings).tokens;
}

std::uint64_t tokens_to_book(std::optional<std::uint64_t> reported, bool upstream_refused, std::uint64_t estimated,
                             std::uint64_t unreported) noexcept {
    if (reported) {
        return clamp_tokens(*reported);
    }
    if (upstream_refused) {
        return 0;
    }
    return clamp_tokens(std::min(estimated, unreported));
}

}  // namespace mistral_proxy::limits
