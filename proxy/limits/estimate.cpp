#include "limits/estimate.hpp"

#include <limits>

namespace mistral_proxy::limits {

std::uint64_t estimate_tokens(std::size_t body_bytes, std::optional<std::uint64_t> max_tokens,
                              const estimate_settings& settings) noexcept {
    const std::uint64_t per_token = settings.bytes_per_token == 0 ? 1 : settings.bytes_per_token;
    const std::uint64_t prompt = (static_cast<std::uint64_t>(body_bytes) + per_token - 1) / per_token;
    const std::uint64_t completion = max_tokens.value_or(settings.default_completion_tokens);
    const std::uint64_t room = std::numeric_limits<std::uint64_t>::max() - prompt;
    return completion > room ? std::numeric_limits<std::uint64_t>::max() : prompt + completion;
}

}  // namespace mistral_proxy::limits
