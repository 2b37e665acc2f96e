#pragma once
// Minimal JSON text output: the proxy writes small objects of its own (errors,
// health, explain) and copies everything else through as raw slices.
#include <string>
#include <string_view>

namespace mistral_proxy::errors {

// Appends `text` as a JSON string literal (with quotes), escaping what RFC 8259
// requires. Invalid UTF-8 bytes are replaced by U+FFFD so the output always parses.
void append_json_string(std::string& out, std::string_view text);

std::string json_string(std::string_view text);

// True when `text` is one JSON value (RFC 8259), white space around it allowed.
bool is_json(std::string_view text);

}  // namespace mistral_proxy::errors
