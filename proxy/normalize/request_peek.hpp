#pragma once
// Reads what routing needs from a JSON request body, and refuses bodies that are
// not one valid JSON object. Pure: no I/O.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"

namespace mistral_proxy::normalize {

// Spare bytes a body buffer keeps after the data for the JSON parser to read
// past the end (equals simdjson::SIMDJSON_PADDING; request_peek.cpp checks it).
inline constexpr std::size_t body_padding = 64;

struct request_facts {
    std::string model;    // "" when absent
    bool stream = false;  // "stream": true
};

struct peek_result {
    std::optional<request_facts> facts;
    std::optional<errors::openai_error> error;  // 400 invalid_request_error when not a valid JSON object
};

// `body` must be followed by at least simdjson::SIMDJSON_PADDING readable bytes
// (the caller reserves them when it reads the body), so no copy is needed.
// Keys are matched unescaped ("mod\u0065l" is model); with duplicate keys the
// last wins, as in most JSON parsers Mistral's server uses. `"stream": null`
// counts as false (OpenAI accepts it). Nesting deeper than 128 levels is refused.
// Never throws for bad input.
peek_result peek_request(std::string_view body_with_padding);

}  // namespace mistral_proxy::normalize
