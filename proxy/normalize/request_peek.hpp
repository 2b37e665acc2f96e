#pragma once
// Reads what routing needs from a JSON request body, and refuses bodies that are
// not one valid JSON object. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"

namespace mistral_proxy::normalize {

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
// last wins, as in most JSON parsers Mistral's server uses.
peek_result peek_request(std::string_view body_with_padding);

}  // namespace mistral_proxy::normalize
