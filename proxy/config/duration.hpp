#pragma once
// Durations as written in config files: "250ms", "30s", "5m". A bare number is
// refused so that "30" can never silently mean 30 ms or 30 minutes.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mistral_proxy::config {

using duration = std::chrono::milliseconds;

// Parses "<non-negative integer><ms|s|m>". Returns nullopt on anything else.
std::optional<duration> parse_duration(std::string_view text);

// "1500ms" -> "1.5s" style text for messages; never used for parsing.
std::string format_duration(duration d);

}  // namespace mistral_proxy::config
