#pragma once
// Keys out of upstream text (SPEC §3: keys never appear in errors or logs).
// An upstream, hostile or just careless, may echo the Authorization header it
// was sent in an error body; whatever of such text the proxy relays to a client
// or writes to a log goes through a redactor first. Pure: no I/O.
#include <span>
#include <string>
#include <string_view>

namespace mistral_proxy::errors {

struct openai_error;

// What a secret becomes.
inline constexpr std::string_view redacted_text = "[redacted]";

// `text` with every occurrence of each non-empty secret (and of `extra`, when
// not empty) replaced by "[redacted]". Occurrences that overlap or touch are
// replaced as one run, so no part of any secret is left.
std::string redact(std::string_view text, std::span<const std::string> secrets, std::string_view extra = {});

// The secrets of one request: a list owned by the key store (alive as long as
// the runtime state the request holds) plus the client's own bearer when it is
// what went upstream. A small value, cheap to copy; default: redacts nothing.
class redactor {
public:
    redactor() = default;
    explicit redactor(std::span<const std::string> secrets, std::string_view extra = {}) noexcept
        : secrets_(secrets), extra_(extra) {}

    bool empty() const noexcept { return secrets_.empty() && extra_.empty(); }
    std::string operator()(std::string_view text) const { return redact(text, secrets_, extra_); }
    // Every text an error carries: message, type, param, code.
    void apply(openai_error& error) const;

private:
    std::span<const std::string> secrets_;
    std::string_view extra_;
};

}  // namespace mistral_proxy::errors
