// Log lines to stderr with a level filter (see log.hpp).
#include "log/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>

namespace mistral_proxy::logging {

namespace {
std::atomic<log_level> min_level{log_level::info};

std::string_view level_name(log_level level) noexcept {
    switch (level) {
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::warn:
            return "warn";
        case log_level::error:
            return "error";
    }
    return "info";
}
}  // namespace

void set_min_level(log_level level) noexcept { min_level.store(level, std::memory_order_relaxed); }

log_level parse_log_level(std::string_view name) noexcept {
    return name == "debug" ? log_level::debug
           : name == "warn" ? log_level::warn
           : name == "error" ? log_level::error
                             : log_level::info;
}

void log_line(log_level level, std::string_view message) noexcept {
    if (level < min_level.load(std::memory_order_relaxed)) {
        return;
    }
    try {
        const auto now = std::chrono::system_clock::now();
        const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        char stamp[32];
        const auto stamp_size = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
        std::string line;
        line.reserve(stamp_size + message.size() + 16);
        line.append(stamp, stamp_size).append(" ").append(level_name(level)).append(" ").append(message).append("\n");
        // A failed write to stderr has nowhere to be reported.
        [[maybe_unused]] const auto written = ::write(STDERR_FILENO, line.data(), line.size());
    } catch (...) {
        // Out of memory while logging: drop the line rather than the request.
    }
}

}  // namespace mistral_proxy::logging
