// Exact reading of long JSON numbers (see number.hpp).
#include "json/number.hpp"

#include <charconv>
#include <system_error>

namespace mistral_proxy::json {

bool has_over_19_digits(std::string_view token) noexcept {
    int significant = 0;
    bool started = false;  // past the leading zeros
    for (const char c : token) {
        if (c >= '1' && c <= '9') {
            started = true;
        } else if (c == 'e' || c == 'E' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            break;
        } else if (c != '0') {
            continue;  // the sign, the point
        }
        significant += started ? 1 : 0;
    }
    return significant > 19;
}

bool read_exactly(std::string_view token, double& out) noexcept {
    const char* end = token.data() + token.size();
    while (end != token.data() && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t')) {
        --end;
    }
    double value = 0;
    const auto [stop, error] = std::from_chars(token.data(), end, value);
    if (error != std::errc{} || stop != end) {
        return false;
    }
    out = value;
    return true;
}

}  // namespace mistral_proxy::json
