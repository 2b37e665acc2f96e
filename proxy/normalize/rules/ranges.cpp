// Rule `ranges` (SPEC §6): a top-level number outside Mistral's range
// (temperature <= 1.5, top_p > 0, random_seed >= 0, ...) is replaced by the
// bound, written as the rule file spells it. Settings: `ranges:` (field -> min,
// max). The top level calls write_clamped() for each number it writes.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include <algorithm>

#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// Writes the bound instead of `number` when `name` has a range that `number`
// is outside of; false (nothing written) otherwise.
bool engine::write_clamped(std::string_view name, std::optional<double> number) {
    const rules::range_rule* range = number && on(rule_id::ranges) ? rules_.find_range(name) : nullptr;
    if (range != nullptr && range->min && *number < *range->min) {
        arena_.append(range->min_text);
        fire(rule_id::ranges);
        return true;
    }
    if (range != nullptr && range->max && *number > *range->max) {
        arena_.append(range->max_text);
        fire(rule_id::ranges);
        return true;
    }
    return false;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

constexpr std::string_view range_keys = "min, max";

// `ranges:` of a rule file (rules/README.md).
void parse_ranges(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& field, const YAML::Node&,
                                             const YAML::Node& bounds) {
        const std::string where = ys::path_of(key, field);
        range_rule range;
        range.field = field;
        ys::for_each_field(file, bounds, where, [&](const std::string& bound, const YAML::Node& bound_key,
                                                    const YAML::Node& number_node) {
            const double v = number(file, bound_key, number_node, ys::path_of(where, bound));
            if (bound == "min") {
                range.min = v;
                range.min_text = number_node.Scalar();
            } else if (bound == "max") {
                range.max = v;
                range.max_text = number_node.Scalar();
            } else {
                ys::fail_unknown_key(file, bound_key, bound, where, range_keys);
            }
        });
        if (range.min && range.max && *range.min > *range.max) {
            ys::fail(file, bounds, where + ": min is greater than max");
        }
        auto& ranges = set->ranges;
        auto it = std::find_if(ranges.begin(), ranges.end(), [&](const auto& r) { return r.field == field; });
        if (it != ranges.end()) {
            *it = std::move(range);
        } else {
            ranges.push_back(std::move(range));
        }
    });
}

}  // namespace mistral_proxy::rules::load
