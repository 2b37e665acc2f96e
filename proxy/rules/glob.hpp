#pragma once
// Glob matching (* and ?) over model ids, as the rule files write them.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mistral_proxy::rules {

// Shell-style glob: '*' matches any run (also empty), '?' one character,
// everything else itself. Case-sensitive, like Mistral's model ids.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// True when the pattern is usable: not empty, no '[' / ']' / '\\' (classes and
// escapes are not supported, so refusing them beats matching them literally).
bool glob_is_valid(std::string_view pattern) noexcept;

// Several globs matched as one (a `model_classes:` entry): true when any
// matches, as glob_match would say. Most globs in rule files are a literal
// start and one trailing '*' ("mistral-embed*") or no wildcard at all, and
// most fail on their first bytes; each glob's literal start is compared
// first, so such a glob costs one compare instead of the general matcher's
// character-by-character loop (about a sixth of it, over a class of seven).
class glob_set {
public:
    glob_set() = default;
    explicit glob_set(std::vector<std::string> patterns);

    bool matches(std::string_view text) const noexcept;
    const std::vector<std::string>& patterns() const noexcept { return patterns_; }

private:
    enum class shape : std::uint8_t {
        exact,        // no wildcard: the whole pattern is the literal start
        prefix,       // the literal start, then one '*' at the end
        other,        // anything else: glob_match after the literal start agrees
    };
    struct compiled {
        std::size_t literal = 0;  // bytes before the first '*' or '?'
        shape kind = shape::other;
    };
    std::vector<std::string> patterns_;
    std::vector<compiled> compiled_;  // one a pattern, same order
};

}  // namespace mistral_proxy::rules
