// Rule `params` (SPEC §6), the part that is its own: renames per target
// (`params: rename:` of the rule file) and the copy of an object keeping only
// the keys Mistral's schema lists. Dropping keys at each level happens where
// that level is read (messages, tools, tool_choice, response_format, the top
// level in normalizer.cpp), against the rule file's `schema:`.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include <algorithm>

#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// Copies an object keeping only `keys` (the rest dropped: params).
bool engine::read_filtered(od::value& value, std::size_t depth, const rules::key_list& keys, piece& out) {
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    const std::size_t base = members_.size();
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        piece p;
        od::json_type type;
        if (!capture(field.value(), depth + 1, p, type)) {
            return false;
        }
        const std::size_t index = push_member(base, name, p, type);
        if (on(rule_id::params) && !allowed(keys, name)) {
            members_[index].keep = false;
            fire(rule_id::params);
        }
    }
    write_object(base, out);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

constexpr std::string_view target_keys = "chat, fim, embeddings, moderations, transcriptions, speech";

// `params:` of a rule file (rules/README.md).
void parse_params(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& sub, const YAML::Node& sub_key,
                                             const YAML::Node& targets) {
        if (sub != "rename") {
            ys::fail_unknown_key(file, sub_key, sub, key, "rename");
        }
        ys::for_each_field(file, targets, "params.rename", [&](const std::string& target,
                                                               const YAML::Node& target_key,
                                                               const YAML::Node& pairs) {
            std::size_t index = 0;
            if (target == "chat") {
                index = 0;
            } else if (target == "fim") {
                index = 1;
            } else if (target == "embeddings") {
                index = 2;
            } else if (target == "moderations") {
                index = 3;
            } else if (target == "transcriptions") {
                index = 4;
            } else if (target == "speech") {
                index = 5;
            } else {
                ys::fail_unknown_key(file, target_key, target, "params.rename", target_keys);
            }
            const std::string where = "params.rename." + target;
            ys::for_each_field(file, pairs, where, [&](const std::string& from, const YAML::Node& from_key,
                                                       const YAML::Node& to) {
                set_pair(set->renames[index], from, non_empty(file, from_key, to, ys::path_of(where, from)));
            });
        });
    });
}

}  // namespace mistral_proxy::rules::load
