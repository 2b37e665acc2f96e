#pragma once
// Durations and sizes as written in config files. Durations: "250ms", "30s",
// "5m", "2h", "30d" (SPEC §2). A bare number is refused so that "30" can never
// silently mean 30 ms or 30 minutes. Sizes: "1GB", "512MB", "64KB", "100B" or
// a bare number of bytes (a byte count has one reading).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mistral_proxy::config {

using duration = std::chrono::milliseconds;

// Parses "<non-negative integer><ms|s|m|h|d>". Returns nullopt on anything else
// (including a value whose milliseconds do not fit).
std::optional<duration> parse_duration(std::string_view text);

// Parses "<non-negative integer>[B|KB|MB|GB]" into bytes. KB, MB and GB are
// binary (1024, 1024^2, 1024^3), as in nginx and systemd: "1GB" is 2^30 bytes.
// Returns nullopt on anything else (lower case, spaces, fractions, overflow).
std::optional<std::uint64_t> parse_size(std::string_view text);

// "1500ms" -> "1.5s" style text for messages; never used for parsing. Whole
// days and hours print as "30d" / "2h".
std::string format_duration(duration d);

}  // namespace mistral_proxy::config
