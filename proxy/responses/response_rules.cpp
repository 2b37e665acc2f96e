// The answer side of the rules (see response_rules.hpp): what it takes from a
// loaded rule set, and the `finish_reason:` section of a rule file (rule
// `finish_reason`, applied to answers whole and streamed).
#include "responses/response_rules.hpp"

#include <algorithm>

#include "rules/loader.hpp"
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

namespace mistral_proxy::rules::load {

// `finish_reason:` of a rule file (rules/README.md).
void parse_finish_reason(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& from, const YAML::Node& from_key,
                                             const YAML::Node& to) {
        set_pair(set->finish_reasons, from, non_empty(file, from_key, to, ys::path_of(key, from)));
    });
}

}  // namespace mistral_proxy::rules::load
