// Exact reading of long JSON numbers (see number.hpp).
#include "json/number.hpp"

#include <charconv>
#include <system_error>

namespace mistral_proxy::json {

namespace {

// JSON's whitespace (not std::isspace's). A raw token ends with any it had
// before the next structural character.
bool is_json_space(char c) noexcept { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

bool has_over_19_digits(std::string_view token) noexcept {
    int significant = 0;
    bool started = false;  // past the leading zeros
    for (const char c : token) {
        if (c >= '1' && c <= '9') {
            started = true;
        } else if (c == 'e' || c == 'E' || is_json_space(c)) {
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
    while (end != token.data() && is_json_space(end[-1])) {
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
