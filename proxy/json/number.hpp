#pragma once
// simdjson 3.0.1's On-Demand get_double (Debian 12's) misreads a number of
// more than 19 significant digits on its slow path: 0.20999999999999999223
// reads as 0.0255..., 0.1234567890123456789012 as 0.0017... These say when a
// token may be such a number, and read it exactly (std::from_chars, correctly
// rounded). json::get_number (walk.hpp) puts the two together; every number
// the proxy compares or converts is read with it. Pure; no simdjson.
#include <cstddef>
#include <string_view>

namespace mistral_proxy::json {

// The exact count, for a token longer than the quick bound allows.
bool has_over_19_digits(std::string_view token) noexcept;

// Whether `token` (a number's raw token, which simdjson accepted) may have
// more than 19 significant digits. A bound from its length settles nearly
// every number at once: an embedding's -0.016632080078125 has 18 characters,
// and -0.00065755844116210938 has 17 digits after its leading zeros.
inline bool may_have_over_19_digits(std::string_view token) noexcept {
    if (token.size() <= 20) {
        return token.size() == 20 && has_over_19_digits(token);  // 20 digits need 20 chars and no sign or point
    }
    const std::size_t sign = token[0] == '-' ? 1 : 0;
    if (token[sign] == '0') {
        // "-0.000": the sign, the zeros and the point are not significant.
        std::size_t first = sign + 2;
        while (first < token.size() && token[first] == '0') {
            ++first;
        }
        if (token.size() - first <= 19) {
            return false;
        }
    }
    return has_over_19_digits(token);
}

// Reads a number's token (trailing JSON whitespace allowed) exactly. false
// when it is not one or is beyond a double's range.
bool read_exactly(std::string_view token, double& out) noexcept;

}  // namespace mistral_proxy::json
