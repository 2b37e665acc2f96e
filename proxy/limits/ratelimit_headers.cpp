// OpenAI's x-ratelimit-* answer headers from Mistral's and the proxy's own
// buckets, and Retry-After for the client (see ratelimit_headers.hpp).
#include "limits/ratelimit_headers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace mistral_proxy::limits {

namespace chr = std::chrono;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
               return lower(x) == lower(y);
           });
}

std::optional<double> number(const header_list& headers, std::string_view name) {
    const std::string* value = find_header(headers, name);
    if (value == nullptr) {
        return std::nullopt;
    }
    std::string_view text = *value;
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    while (!text.empty() && text.back() == ' ') {
        text.remove_suffix(1);
    }
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v) || v < 0) {
        return std::nullopt;
    }
    return v;
}

// Mistral's reset headers are in seconds.
std::optional<clock::duration> seconds(const header_list& headers, std::string_view name) {
    const auto v = number(headers, name);
    if (!v) {
        return std::nullopt;
    }
    return chr::duration_cast<clock::duration>(chr::duration<double>(std::min(*v, 1.0e9)));
}

std::optional<limit_window> window(const header_list& headers, std::string_view limit, std::string_view remaining,
                                   std::string_view reset) {
    const auto l = number(headers, limit);
    if (!l) {
        return std::nullopt;
    }
    limit_window w;
    w.limit = *l;
    w.remaining = number(headers, remaining).value_or(*l);
    if (!reset.empty()) {
        w.reset = seconds(headers, reset);
    }
    return w;
}

// The tighter of two windows: fewer remaining (ties: the smaller limit).
std::optional<limit_window> tighter(const std::optional<limit_window>& a, const std::optional<limit_window>& b) {
    if (!a) {
        return b;
    }
    if (!b) {
        return a;
    }
    if (a->remaining != b->remaining) {
        return a->remaining < b->remaining ? a : b;
    }
    return a->limit <= b->limit ? a : b;
}

std::string whole(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.0f", std::floor(std::max(v, 0.0)));
    return text;
}

void emit(header_list& out, const std::optional<limit_window>& w, std::string_view family) {
    if (!w) {
        return;
    }
    const std::string suffix(family);
    out.emplace_back("x-ratelimit-limit-" + suffix, whole(w->limit));
    out.emplace_back("x-ratelimit-remaining-" + suffix, whole(w->remaining));
    if (w->reset) {
        out.emplace_back("x-ratelimit-reset-" + suffix, format_reset(*w->reset));
    }
}

}  // namespace

const std::string* find_header(const header_list& headers, std::string_view name) {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) {
            return &value;
        }
    }
    return nullptr;
}

rate_limits parse_mistral_ratelimit_headers(const header_list& headers) {
    rate_limits out;
    if (headers.empty()) {
        return out;  // no rate-limit header at all: skip the dozen lookups that would find none
    }
    out.requests = window(headers, "x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute",
                          "x-ratelimit-reset-req-minute");
    out.tokens = window(headers, "x-ratelimit-limit-tokens-minute", "x-ratelimit-remaining-tokens-minute",
                        "x-ratelimit-reset-tokens-minute");
    if (!out.tokens) {
        out.tokens = window(headers, "x-ratelimitbysize-limit-minute", "x-ratelimitbysize-remaining-minute", "");
    }
    if (!out.tokens) {
        out.tokens = window(headers, "ratelimitbysize-limit", "ratelimitbysize-remaining", "ratelimitbysize-reset");
    } else if (!out.tokens->reset) {
        out.tokens->reset = seconds(headers, "ratelimitbysize-reset");
    }
    out.month_tokens = window(headers, "x-ratelimit-limit-tokens-month", "x-ratelimit-remaining-tokens-month", "");
    if (!out.month_tokens) {
        out.month_tokens = window(headers, "x-ratelimitbysize-limit-month", "x-ratelimitbysize-remaining-month", "");
    }
    return out;
}

header_list openai_ratelimit_headers(const rate_limits& upstream, const rate_limits& own) {
    header_list out;
    emit(out, tighter(upstream.requests, own.requests), "requests");
    emit(out, tighter(upstream.tokens, own.tokens), "tokens");
    return out;
}

std::string format_reset(clock::duration d) {
    const auto ms = std::max<std::int64_t>(0, chr::ceil<chr::milliseconds>(d).count());
    if (ms == 0) {
        return "0s";
    }
    if (ms < 1000) {
        return std::to_string(ms) + "ms";
    }
    const std::int64_t hours = ms / 3'600'000;
    const std::int64_t minutes = (ms / 60'000) % 60;
    const std::int64_t sec_ms = ms % 60'000;
    std::string out;
    if (hours > 0) {
        out += std::to_string(hours) + "h";
    }
    if (hours > 0 || minutes > 0) {
        out += std::to_string(minutes) + "m";
    }
    out += std::to_string(sec_ms / 1000);
    if (const std::int64_t frac = sec_ms % 1000; frac != 0) {
        char text[8];
        std::snprintf(text, sizeof text, ".%03lld", static_cast<long long>(frac));
        std::string f = text;
        while (f.back() == '0') {
            f.pop_back();
        }
        out += f;
    }
    out += "s";
    return out;
}

}  // namespace mistral_proxy::limits
