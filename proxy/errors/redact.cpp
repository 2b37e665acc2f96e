// Hiding keys in upstream text the proxy relays or logs (see redact.hpp).
#include "errors/redact.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "errors/openai_error.hpp"

namespace mistral_proxy::errors {

namespace {

using span_list = std::vector<std::pair<std::size_t, std::size_t>>;  // [begin, end) in the text

void find_all(std::string_view text, std::string_view secret, span_list& found) {
    if (secret.empty()) {
        return;
    }
    // Step by one, not by the secret's length: "aa" in "aaa" is two overlapping runs.
    for (std::size_t at = text.find(secret); at != std::string_view::npos; at = text.find(secret, at + 1)) {
        found.emplace_back(at, at + secret.size());
    }
}

void redact_in_place(std::string& text, std::span<const std::string> secrets, std::string_view extra) {
    if (secrets.empty() && extra.empty()) {
        return;
    }
    std::string out = redact(text, secrets, extra);
    text.swap(out);
}

}  // namespace

std::string redact(std::string_view text, std::span<const std::string> secrets, std::string_view extra) {
    span_list found;
    for (const std::string& secret : secrets) {
        find_all(text, secret, found);
    }
    find_all(text, extra, found);
    if (found.empty()) {
        return std::string(text);
    }
    std::sort(found.begin(), found.end());
    std::string out;
    out.reserve(text.size());
    std::size_t copied = 0;
    for (std::size_t i = 0; i < found.size();) {
        const std::size_t begin = found[i].first;
        std::size_t end = found[i].second;
        // Merge every run that overlaps or touches this one.
        for (++i; i < found.size() && found[i].first <= end; ++i) {
            end = std::max(end, found[i].second);
        }
        out.append(text.substr(copied, begin - copied));
        out.append(redacted_text);
        copied = end;
    }
    out.append(text.substr(copied));
    return out;
}

void redactor::apply(openai_error& error) const {
    if (empty()) {
        return;
    }
    redact_in_place(error.message, secrets_, extra_);
    redact_in_place(error.type, secrets_, extra_);
    if (error.param) {
        redact_in_place(*error.param, secrets_, extra_);
    }
    if (error.code) {
        redact_in_place(*error.code, secrets_, extra_);
    }
}

}  // namespace mistral_proxy::errors
