#pragma once
// Reads Mistral's `usage` object of a whole answer without rewriting it (FIM,
// float embeddings): the rate limiter corrects its estimate with it. Pure.
#include <optional>
#include <string_view>

#include "responses/response_rules.hpp"

namespace mistral_proxy::responses {

// nullopt when the body is not a JSON object or has no usage with token counts.
std::optional<usage_counts> find_usage(std::string_view body);

}  // namespace mistral_proxy::responses
