// Glob matching over model ids (see glob.hpp).
#include "rules/glob.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace mistral_proxy::rules {

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    // Greedy with one backtrack point (the last '*'): linear in practice and
    // never exponential, unlike the naive recursive matcher.
    std::size_t p = 0;
    std::size_t t = 0;
    std::size_t star = std::string_view::npos;
    std::size_t star_text = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t]))) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_text = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++star_text;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        ++p;
    }
    return p == pattern.size();
}

bool glob_is_valid(std::string_view pattern) noexcept {
    return !pattern.empty() && pattern.find_first_of("[]\\") == std::string_view::npos;
}

glob_set::glob_set(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
    compiled_.reserve(patterns_.size());
    for (const auto& pattern : patterns_) {
        compiled c;
        c.literal = std::min(pattern.find_first_of("*?"), pattern.size());
        if (c.literal == pattern.size()) {
            c.kind = shape::exact;
        } else if (c.literal + 1 == pattern.size() && pattern[c.literal] == '*') {
            c.kind = shape::prefix;
        }
        compiled_.push_back(c);
    }
}

bool glob_set::matches(std::string_view text) const noexcept {
    for (std::size_t i = 0; i < patterns_.size(); ++i) {
        const compiled& c = compiled_[i];
        const std::string& pattern = patterns_[i];
        if (text.size() < c.literal ||
            (c.literal > 0 && (pattern[0] != text[0] || std::memcmp(pattern.data(), text.data(), c.literal) != 0))) {
            continue;
        }
        switch (c.kind) {
            case shape::exact:
                if (text.size() == c.literal) {
                    return true;
                }
                break;
            case shape::prefix:
                return true;
            case shape::other:
                if (glob_match(pattern, text)) {
                    return true;
                }
                break;
        }
    }
    return false;
}

}  // namespace mistral_proxy::rules
