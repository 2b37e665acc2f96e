#pragma once
// Glob matching (* and ?) over model ids, as the rule files write them.
#include <string_view>

namespace mistral_proxy::rules {

// Shell-style glob: '*' matches any run (also empty), '?' one character,
// everything else itself. Case-sensitive, like Mistral's model ids.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// True when the pattern is usable: not empty, no '[' / ']' / '\\' (classes and
// escapes are not supported, so refusing them beats matching them literally).
bool glob_is_valid(std::string_view pattern) noexcept;

}  // namespace mistral_proxy::rules
