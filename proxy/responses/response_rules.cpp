// The answer rules' ids and their names (see response_rules.hpp).
#include "responses/response_rules.hpp"

#include "rules/rule_set.hpp"

namespace mistral_proxy::responses {

std::string_view response_rules::map_finish_reason(std::string_view from) const noexcept {
    for (const auto& [source, target] : finish_reasons) {
        if (source == from) {
            return target;
        }
    }
    return from;
}

response_rules response_rules::from(const rules::rule_set& set) {
    response_rules out;
    if (set.enabled(rules::rule_id::finish_reason)) {
        out.finish_reasons = set.finish_reasons;
    }
    out.moderation_categories.assign(set.moderation_categories.begin(), set.moderation_categories.end());
    return out;
}

void rule_hits::append_ids(std::string& out, std::string_view separator) const {
    for_each([&](response_rule rule) {
        if (!out.empty()) {
            out += separator;
        }
        out += rule_id(rule);
    });
}

}  // namespace mistral_proxy::responses
