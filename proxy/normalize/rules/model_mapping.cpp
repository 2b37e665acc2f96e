// Rules `model_rewrite` (removed model ids -> current ones, exact) and
// `model_alias` (client-side names -> Mistral models, globs): the model the
// rules choose. One unit for both: a chain may pass through either (a -> b by
// rewrite, b -> c by alias), and the rule set resolves every chain when it
// loads (rules/rule_set.cpp, builder::finish), so a request looks up once.
// Settings: `model_rewrite:` and `model_alias:`.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// The model to send for `model`, firing the ids whose entries the chain used.
std::string_view engine::mapped_model(std::string_view model) {
    std::string_view sent = model;
    const rules::model_mapping* mapping = nullptr;
    if (on(rule_id::model_rewrite)) {
        mapping = rules_.find_rewrite(model);
    }
    if (mapping == nullptr && on(rule_id::model_alias)) {
        mapping = rules_.find_alias(model);
    }
    if (mapping != nullptr && mapping->target != model) {
        sent = mapping->target;
        if (mapping->via_rewrite && on(rule_id::model_rewrite)) {
            fire(rule_id::model_rewrite);
        }
        if (mapping->via_alias && on(rule_id::model_alias)) {
            fire(rule_id::model_alias);
        }
    }
    return sent;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

// `model_rewrite:` of a rule file (rules/README.md).
void parse_model_rewrite(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    ys::for_each_field(file, value, key, [&](const std::string& from, const YAML::Node& from_key,
                                             const YAML::Node& to) {
        b.rewrites[from] = {from, non_empty(file, from_key, to, ys::path_of(key, from)),
                          position_of(file, from_key), true};
    });
}

// `model_alias:` of a rule file.
void parse_model_alias(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    std::vector<pending_mapping> mine;
    ys::for_each_field(file, value, key, [&](const std::string& glob, const YAML::Node& glob_key,
                                             const YAML::Node& to) {
        check_glob(file, glob_key, glob, ys::path_of(key, glob));
        mine.push_back({glob, non_empty(file, glob_key, to, ys::path_of(key, glob)),
                        position_of(file, glob_key), false});
    });
    b.aliases.insert(b.aliases.begin(), mine.begin(), mine.end());
}

}  // namespace mistral_proxy::rules::load
