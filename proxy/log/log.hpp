#pragma once
// Operational log lines on stderr. One write(2) per line so that lines from the
// worker threads never interleave. Never given a key or a request body.
#include <string_view>

namespace mistral_proxy::logging {

enum class log_level { debug, info, warn, error };

// Lines below this level are dropped (default: info).
void set_min_level(log_level level) noexcept;

void log_line(log_level level, std::string_view message) noexcept;

}  // namespace mistral_proxy::logging
