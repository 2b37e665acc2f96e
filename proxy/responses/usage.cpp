// Finding Mistral's usage in an answer for the limiter (see usage.hpp).
#include "responses/usage.hpp"

#include <simdjson.h>

namespace mistral_proxy::responses {

namespace {

// Mistral writes `usage` last: parsing only that small object spares parsing
// thousands of embedding floats. Returns "" when the tail does not hold it.
std::string_view usage_object_in_tail(std::string_view body) {
    const auto key = body.rfind("\"usage\"");
    if (key == std::string_view::npos || body.size() - key > 1024) {
        return {};
    }
    const auto open = body.find('{', key);
    const auto close = body.find('}', key);
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
        return {};
    }
    return body.substr(open, close - open + 1);
}

}  // namespace

std::optional<usage_counts> find_usage(std::string_view body) {
    // The DOM parser copies its input to padded memory itself, so no padding is
    // needed here; a big body is parsed by a parser that does not outlive it.
    thread_local simdjson::dom::parser parser;
    simdjson::dom::parser big_body_parser;
    simdjson::dom::object usage;
    const auto tail = usage_object_in_tail(body);
    simdjson::dom::element document;
    if (!tail.empty() && parser.parse(tail.data(), tail.size()).get(usage) == simdjson::SUCCESS) {
        // found in the tail
    } else {
        auto& whole_parser = body.size() > 1024 * 1024 ? big_body_parser : parser;
        if (body.empty() || whole_parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS ||
            document["usage"].get(usage) != simdjson::SUCCESS) {
            return std::nullopt;
        }
    }
    usage_counts counts;
    std::uint64_t value = 0;
    bool any = false;
    if (usage["prompt_tokens"].get(value) == simdjson::SUCCESS) {
        counts.prompt_tokens = value;
        any = true;
    }
    if (usage["completion_tokens"].get(value) == simdjson::SUCCESS) {
        counts.completion_tokens = value;
        any = true;
    }
    if (usage["total_tokens"].get(value) == simdjson::SUCCESS) {
        counts.total_tokens = value;
        any = true;
    } else {
        counts.total_tokens = counts.prompt_tokens + counts.completion_tokens;
    }
    if (!any) {
        return std::nullopt;
    }
    return counts;
}

}  // namespace mistral_proxy::responses
