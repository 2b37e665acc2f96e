// Rule `fallback` (SPEC §6): on a retryable upstream failure before any byte
// reached the client, the request is planned again for the next model of the
// rule file's `fallbacks:` chain (proxy/http/ decides when, and asks
// rule_set::fallback_chain for the order; `fallback_statuses:` says which
// statuses count). Here: the walk's step (the fallback model replaces the one
// the model rules chose, before vision_route and tool_capable judge it) and
// the parsers of both sections. Chains that loop are refused once every file
// is read (rules/rule_set.cpp, builder::finish).
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include <algorithm>

#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

void engine::use_fallback(std::string_view& sent) {
    if (!model_override_.empty() && model_override_ != sent) {
        sent = model_override_;
        fire(rule_id::fallback);
    }
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

// `fallbacks:` of a rule file (rules/README.md): model glob -> models, later files first.
void parse_fallbacks(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    std::vector<std::pair<fallback_entry, position>> mine;
    ys::for_each_field(file, value, key, [&](const std::string& glob, const YAML::Node& glob_key,
                                             const YAML::Node& list) {
        const std::string path = ys::path_of(key, glob);
        check_glob(file, glob_key, glob, path);
        if (!list.IsSequence() || list.size() == 0) {
            ys::fail_at_value(file, glob_key, list,
                              path + " must be a non-empty list of models, got " +
                                  (list.IsSequence() ? std::string("an empty list") : ys::kind_of(list)));
        }
        fallback_entry entry{glob, {}};
        for (std::size_t i = 0; i < list.size(); ++i) {
            const std::string item_path = path + "[" + std::to_string(i) + "]";
            std::string model = non_empty(file, list[i], list[i], item_path);
            if (model.find_first_of("*?[]\\") != std::string::npos) {
                ys::fail(file, list[i], item_path + ": '" + model + "' must be a model id, not a glob");
            }
            if (std::find(entry.models.begin(), entry.models.end(), model) != entry.models.end()) {
                ys::fail(file, list[i], item_path + ": '" + model + "' is listed twice");
            }
            entry.models.push_back(std::move(model));
        }
        mine.emplace_back(std::move(entry), position_of(file, glob_key));
    });
    b.fallbacks.insert(b.fallbacks.begin(), mine.begin(), mine.end());
}

// `fallback_statuses:` of a rule file: replaces the list.
void parse_fallback_statuses(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& key_node = s.key_node;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    if (!value.IsSequence()) {
        ys::fail_at_value(file, key_node, value, key + " must be a list of HTTP statuses, got " + ys::kind_of(value));
    }
    std::vector<unsigned> statuses;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string item_path = key + "[" + std::to_string(i) + "]";
        unsigned status = 0;
        if (!value[i].IsScalar() || !YAML::convert<unsigned>::decode(value[i], status) || status < 400 ||
            status > 599) {
            ys::fail(file, value[i], item_path + " must be an HTTP status from 400 to 599");
        }
        statuses.push_back(status);
    }
    set->fallback_statuses = std::move(statuses);
}

}  // namespace mistral_proxy::rules::load
