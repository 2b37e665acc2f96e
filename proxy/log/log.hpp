#pragma once
// Operational log lines on stderr. One write(2) per line so that lines from the
// worker threads never interleave. Never given a key or a request body.
#include <string_view>

namespace mistral_proxy::logging {

enum class log_level { debug, info, warn, error };

// Lines below this level are dropped (default: info).
void set_min_level(log_level level) noexcept;

// "debug" | "info" | "warn" | "error" (the config's log.level); anything else is info.
log_level parse_log_level(std::string_view name) noexcept;

void log_line(log_level level, std::string_view message) noexcept;

}  // namespace mistral_proxy::logging
