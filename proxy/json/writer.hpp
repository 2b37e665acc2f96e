#pragma once
// The one JSON string escaping of the proxy, on the request side (the
// normalizer's output) and the answer side (the rewriters, errors, health,
// explain) alike; everything else is copied through as raw slices (walk.hpp).
#include <string>
#include <string_view>

namespace mistral_proxy::json {

// Appends `text` as a JSON string literal (with quotes), escaping what RFC 8259
// requires. Invalid UTF-8 bytes are replaced by U+FFFD so the output always parses.
void append_json_string(std::string& out, std::string_view text);

std::string json_string(std::string_view text);

// True when `text` is one JSON value (RFC 8259), white space around it allowed.
bool is_json(std::string_view text);

}  // namespace mistral_proxy::json
