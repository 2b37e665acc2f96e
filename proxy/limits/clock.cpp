// The limiter's clock and UTC formatting (see clock.hpp).
#include "limits/clock.hpp"

#include <cstdio>

namespace mistral_proxy::limits {

namespace chr = std::chrono;

month_id month_of(time_point t) noexcept {
    const chr::year_month_day ymd{chr::floor<chr::days>(t)};
    return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month())};
}

time_point next_month_start(month_id m) noexcept {
    const chr::year_month_day first = chr::year{m.year} / chr::month{m.month} / chr::day{1};
    const chr::year_month_day next = first + chr::months{1};
    return time_point{chr::sys_days{next}.time_since_epoch()};
}

std::string to_string(month_id m) {
    char text[16];
    std::snprintf(text, sizeof text, "%04d-%02u", m.year, m.month);
    return text;
}

std::string format_utc(time_point t) {
    const auto day = chr::floor<chr::days>(t);
    const chr::year_month_day ymd{day};
    const chr::hh_mm_ss hms{chr::floor<chr::seconds>(t - day)};
    char text[32];
    std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return text;
}

milliseconds ceil_ms(clock::duration d) noexcept {
    if (d <= clock::duration::zero()) {
        return milliseconds::zero();
    }
    return chr::ceil<milliseconds>(d);
}

}  // namespace mistral_proxy::limits
