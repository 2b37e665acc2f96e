#include "responses/usage.hpp"

#include <simdjson.h>

namespace mistral_proxy::responses {

std::optional<usage_counts> find_usage(std::string_view body) {
    // Cold path (once per answer, after it was read): the DOM parser copies the
    // body to padded memory itself, so no padding is needed here.
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element document;
    if (parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    simdjson::dom::object usage;
    if (document["usage"].get(usage) != simdjson::SUCCESS) {
        return std::nullopt;
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
