// json::get_number, text by text: simdjson's verdict (a JSON number or not)
// and glibc strtod's bits (correctly rounded), on the shapes embeddings arrive
// in and on the corners of the grammar and of rounding. Not get_double's bits:
// simdjson 3.0.1's On-Demand get_double (Debian 12's) misreads numbers of more
// than 19 significant digits (0.20999999999999999223 gives 0.0255...), which
// is why the proxy reads numbers with get_number.
#include <doctest/doctest.h>

#include <simdjson.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "json/walk.hpp"

using namespace mistral_proxy;

namespace {

// What get_number makes of `text` as the one item of an array.
struct reading {
    bool ok = false;
    double value = 0;
};

reading read(const std::string& text) {
    static simdjson::ondemand::parser parser;
    const simdjson::padded_string json("[" + text + "]");
    reading r;
    simdjson::ondemand::document doc;
    simdjson::ondemand::array array;
    if (parser.iterate(json).get(doc) != simdjson::SUCCESS || doc.get_array().get(array) != simdjson::SUCCESS) {
        return r;
    }
    for (auto item_result : array) {
        simdjson::ondemand::value item;
        r.ok = item_result.get(item) == simdjson::SUCCESS && json::get_number(item, r.value) == simdjson::SUCCESS;
        break;
    }
    return r;
}

// The correctly rounded double of a text simdjson took.
double reference(const std::string& text) { return std::strtod(text.c_str(), nullptr); }

bool simdjson_takes(const std::string& text) {
    static simdjson::ondemand::parser parser;
    const simdjson::padded_string json("[" + text + "]");
    simdjson::ondemand::document doc;
    simdjson::ondemand::array array;
    if (parser.iterate(json).get(doc) != simdjson::SUCCESS || doc.get_array().get(array) != simdjson::SUCCESS) {
        return false;
    }
    for (auto item : array) {
        double ignored = 0;
        return item.get_double().get(ignored) == simdjson::SUCCESS;
    }
    return false;
}

void check_exact(const std::string& text) {
    CAPTURE(text);
    const reading r = read(text);
    REQUIRE(r.ok == simdjson_takes(text));
    if (r.ok) {
        CHECK(std::bit_cast<std::uint64_t>(r.value) == std::bit_cast<std::uint64_t>(reference(text)));
    }
}

}  // namespace

TEST_CASE("json::get_number: the corners of the grammar and of rounding") {
    for (const char* text :
         {"0", "-0", "1", "-1", "0.5", "-0.0", "0.000000", "123456789", "9007199254740992", "9007199254740993",
          "18446744073709551615", "18446744073709551616", "1234567890123456789", "12345678901234567890",
          "0.1", "0.2", "0.3", "-0.012345", "3.141592653589793", "2.2250738585072014e-308", "4.9e-324", "1e308",
          "1.7976931348623157e308", "1e22", "1e23", "1E5", "1e+5", "1e-5", "-1.5E-10", "0.1234567890123456789012",
          "0.00000000000000000000000000001", "100000000000000000000000", "1e400", "-1e400", "01", "-01", "1.", ".5",
          "+1", "-", "", "1e", "1e+", "0x10", "1.5.2", "NaN", "Infinity", "-Infinity", "1 ", "1\n", "00",
          "1e-400", "-1e-400", "2.4703282292062327e-324", "2.4703282292062328e-324", "0.0000001e-320", "1000e-326",
          "1e-99999999999", "1e99999999999", "0.5e309", "10e307", "100000e-330"}) {
        check_exact(text);
    }
    // Out of range with the exponent's sign pointing the other way.
    check_exact("1" + std::string(400, '0') + "e-1");
    check_exact("0." + std::string(400, '0') + "1e+10");
    check_exact("-0." + std::string(330, '0') + "1");
    // The numbers get_double misreads, read right.
    check_exact("0.20999999999999999223");
    check_exact("-1.50000000000000000001");
    check_exact("0.1234567890123456789012");
}

TEST_CASE("json::get_number: 200,000 generated numbers, correctly rounded") {
    std::uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64: reproducible
    const auto next = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    char text[64];
    for (int i = 0; i < 200000; ++i) {
        const std::uint64_t r = next();
        const double value = std::bit_cast<double>(next());
        const double small = static_cast<double>(static_cast<std::int64_t>(next() % 2000001) - 1000000) / 1e6;
        switch (r % 6) {
            case 0:  // what Mistral's embeddings look like
                std::snprintf(text, sizeof text, "%.*f", static_cast<int>(r / 8 % 18), small);
                break;
            case 1:  // shortest round trip of any double
                std::snprintf(text, sizeof text, "%.17g", value);
                break;
            case 2:
                std::snprintf(text, sizeof text, "%.*g", static_cast<int>(r / 8 % 17 + 1), small * 1e-3);
                break;
            case 3:  // integers around 2^53 and 2^64
                std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(next() >> (r / 8 % 20)));
                break;
            case 4:  // many fraction digits
                std::snprintf(text, sizeof text, "%.*f", static_cast<int>(r / 8 % 25), small * 1e4);
                break;
            default:
                std::snprintf(text, sizeof text, "%.*e", static_cast<int>(r / 8 % 20), small);
                break;
        }
        const std::string s(text);
        if (s.find("nan") != std::string::npos || s.find("inf") != std::string::npos) {
            continue;  // not JSON: both refuse, checked above
        }
        const reading got = read(s);
        if (got.ok != simdjson_takes(s) ||
            (got.ok && std::bit_cast<std::uint64_t>(got.value) != std::bit_cast<std::uint64_t>(reference(s)))) {
            check_exact(s);  // reports the text
        }
    }
}
