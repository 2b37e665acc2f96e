// Id generation for the Responses API objects (see ids.hpp).
#include "openai_responses/ids.hpp"

#include <random>

namespace mistral_proxy::openai_responses {

namespace {

void append_hex64(std::string& out, std::uint64_t value) {
    static constexpr char hex[] = "0123456789abcdef";
    for (int shift = 60; shift >= 0; shift -= 4) {
        out += hex[(value >> shift) & 0xF];
    }
}

}  // namespace

void counter_ids::append(std::string& out, std::string_view prefix) {
    out += prefix;
    append_hex64(out, 0);
    append_hex64(out, 0);
    append_hex64(out, next_++);
}

void random_ids::append(std::string& out, std::string_view prefix) {
    thread_local std::mt19937_64 engine = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device(), device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }();
    out += prefix;
    append_hex64(out, engine());
    append_hex64(out, engine());
    append_hex64(out, engine());
}

}  // namespace mistral_proxy::openai_responses
