// Durations (ms, s, m, h, d) and sizes (B, KB, MB, GB) as the config writes them.
#include "config/duration.hpp"

#include <charconv>
#include <cstdint>
#include <limits>

namespace mistral_proxy::config {

std::optional<duration> parse_duration(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    const std::string_view unit = text.substr(digits);
    std::uint64_t scale = 0;
    if (unit == "ms") {
        scale = 1;
    } else if (unit == "s") {
        scale = 1000;
    } else if (unit == "m") {
        scale = 60 * 1000;
    } else if (unit == "h") {
        scale = 60 * 60 * 1000;
    } else if (unit == "d") {
        scale = 24 * 60 * 60 * 1000;
    } else {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
    if (ec != std::errc{} || end != text.data() + digits) {
        return std::nullopt;  // out of range
    }
    constexpr auto max_ms = static_cast<std::uint64_t>(std::numeric_limits<duration::rep>::max());
    if (value > max_ms / scale) {
        return std::nullopt;
    }
    return duration{static_cast<duration::rep>(value * scale)};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    const std::string_view unit = text.substr(digits);
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "B") {
        scale = 1;
    } else if (unit == "KB") {
        scale = std::uint64_t{1} << 10U;
    } else if (unit == "MB") {
        scale = std::uint64_t{1} << 20U;
    } else if (unit == "GB") {
        scale = std::uint64_t{1} << 30U;
    } else {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
    if (ec != std::errc{} || end != text.data() + digits || value > UINT64_MAX / scale) {
        return std::nullopt;
    }
    return value * scale;
}

std::string format_duration(duration d) {
    const auto ms = d.count();
    constexpr duration::rep hour = 60 * 60 * 1000;
    if (ms != 0 && ms % (24 * hour) == 0) {
        return std::to_string(ms / (24 * hour)) + "d";
    }
    if (ms != 0 && ms % hour == 0) {
        return std::to_string(ms / hour) + "h";
    }
    if (ms != 0 && ms % 60000 == 0) {
        return std::to_string(ms / 60000) + "m";
    }
    if (ms >= 1000 || ms <= -1000) {
        std::string out = std::to_string(ms / 1000);
        auto frac = ms % 1000;
        if (frac != 0) {
            if (frac < 0) {
                frac = -frac;
            }
            std::string f = std::to_string(frac);
            f.insert(0, 3 - f.size(), '0');
            while (!f.empty() && f.back() == '0') {
                f.pop_back();
            }
            out += "." + f;
        }
        return out + "s";
    }
    return std::to_string(ms) + "ms";
}

}  // namespace mistral_proxy::config
