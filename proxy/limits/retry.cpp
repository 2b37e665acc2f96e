// The retry schedule of SPEC §8: which answers are retried, the backoff, and
// what the client is told to wait (see retry.hpp).
#include "limits/retry.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

namespace mistral_proxy::limits {

namespace chr = std::chrono;

namespace {

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<milliseconds> parse_seconds(std::string_view text, double unit_ms) {
    // digits, optionally "." digits; nothing else (no sign, no exponent).
    const auto dot = text.find('.');
    const std::string_view whole = text.substr(0, dot);
    if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(text.substr(dot + 1)))) {
        return std::nullopt;
    }
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    // A year is plenty; longer is clamped rather than overflowing.
    const double ms = std::min(std::ceil(value * unit_ms), 365.0 * 24 * 3600 * 1000);
    return milliseconds{static_cast<milliseconds::rep>(ms)};
}

std::optional<unsigned> month_index(std::string_view name) {
    static constexpr std::array<std::string_view, 12> names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (unsigned i = 0; i < names.size(); ++i) {
        if (names[i] == name) {
            return i + 1;
        }
    }
    return std::nullopt;
}

std::optional<time_point> parse_http_date(std::string_view text) {
    char month_name[4] = {};
    char zone[4] = {};
    int day = 0;
    int year = 0;
    int hour = 0;
    int minute = 0;
    int second = 0;
    const std::string s(text);
    int consumed = 0;
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (std::sscanf(s.c_str(), "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n", &day, month_name, &year, &hour,
                    &minute, &second, zone, &consumed) == 7 &&
        static_cast<std::size_t>(consumed) == s.size()) {
        // fall through to the check below
    } else if (std::sscanf(s.c_str(), "%*[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d %3[A-Z]%n", &day, month_name, &year,
                           &hour, &minute, &second, zone, &consumed) == 7 &&
               static_cast<std::size_t>(consumed) == s.size()) {
        // RFC 850: two-digit year, taken as the nearest past century (RFC 9110 §5.6.7).
        year += year < 70 ? 2000 : 1900;
    } else if (std::sscanf(s.c_str(), "%*3[A-Za-z] %3[A-Za-z] %d %2d:%2d:%2d %4d%n", month_name, &day, &hour, &minute,
                           &second, &year, &consumed) == 6 &&
               static_cast<std::size_t>(consumed) == s.size()) {
        std::strcpy(zone, "GMT");
    } else {
        return std::nullopt;
    }
    const auto month = month_index(month_name);
    if (!month || std::strcmp(zone, "GMT") != 0 || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    const chr::year_month_day ymd{chr::year{year}, chr::month{*month}, chr::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    return time_point{chr::sys_days{ymd}.time_since_epoch()} + chr::hours{hour} + chr::minutes{minute} +
           chr::seconds{second};
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

bool is_retryable_status(unsigned status) noexcept {
    return status == 429 || status == 502 || status == 503 || status == 504;
}

std::optional<milliseconds> parse_retry_after(std::string_view value, time_point now) {
    value = trim(value);
    if (value.empty()) {
        return std::nullopt;
    }
    if (value.front() >= '0' && value.front() <= '9') {
        return parse_seconds(value, 1000.0);
    }
    const auto date = parse_http_date(value);
    if (!date) {
        return std::nullopt;
    }
    return ceil_ms(*date - now);
}

std::optional<milliseconds> upstream_retry_after(const header_list& headers, time_point now) {
    if (const std::string* ms = find_header(headers, "retry-after-ms")) {
        if (auto parsed = parse_seconds(trim(*ms), 1.0)) {
            return parsed;
        }
    }
    if (const std::string* ra = find_header(headers, "retry-after")) {
        return parse_retry_after(*ra, now);
    }
    return std::nullopt;
}

retry_schedule::retry_schedule(config::retry_settings settings) : settings_(std::move(settings)) {}

retry_schedule::decision retry_schedule::after_failure(unsigned tries_done, bool retryable,
                                                       std::optional<milliseconds> upstream_retry_after) const noexcept {
    decision d;
    const unsigned retries_done = tries_done == 0 ? 0 : tries_done - 1;
    if (!retryable || retries_done >= settings_.max_retries) {
        return d;
    }
    d.retry = true;
    if (!settings_.backoff.empty()) {
        const std::size_t step = std::min<std::size_t>(retries_done, settings_.backoff.size() - 1);
        d.delay = settings_.backoff[step];
    }
    if (upstream_retry_after && *upstream_retry_after > d.delay) {
        d.delay = std::max(d.delay, std::min(*upstream_retry_after, settings_.max_retry_after));
    }
    return d;
}

milliseconds retry_schedule::client_retry_after(std::optional<milliseconds> upstream_retry_after) const noexcept {
    if (upstream_retry_after) {
        return std::min(*upstream_retry_after, settings_.max_retry_after);
    }
    const milliseconds last = settings_.backoff.empty() ? milliseconds{1000} : settings_.backoff.back();
    return std::min(last, settings_.max_retry_after);
}

header_list client_retry_headers(milliseconds retry_after, bool should_retry) {
    const milliseconds ms = std::max(retry_after, milliseconds{0});
    const auto seconds = (ms.count() + 999) / 1000;
    return {
        {"retry-after", std::to_string(seconds)},
        {"retry-after-ms", std::to_string(ms.count())},
        {"x-should-retry", should_retry ? "true" : "false"},
    };
}

}  // namespace mistral_proxy::limits
