// Rule `tool_capable` (SPEC §6): tools sent to a model that cannot call them
// (shipped: open-mistral-nemo, mistral-embed) get a 400 naming models that
// can, or go to the rule file's reroute model. Judged on the model actually
// sent, after vision_route. Settings: `tool_capable:` (models_without_tools,
// a model class; action; reroute_to; suggest).
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// What vision_route and tool_capable do once a model fails their check: send
// the request to the rule's reroute_to model, or refuse it with a 400 naming
// the rule's suggestions. False (error_ set) when refused.
bool engine::reroute_or_refuse(const rules::capability_rule& rule, rule_id id, std::string_view& sent,
                               std::string_view cannot, std::string_view instead, const char* code,
                               const char* param) {
    if (rule.action == rules::capability_action::reroute) {
        sent = rule.reroute_to;
        fire(id);
        return true;
    }
    std::string message = "model '" + std::string(sent) + "' " + std::string(cannot);
    if (!rule.suggest.empty()) {
        message += instead;
        for (std::size_t i = 0; i < rule.suggest.size(); ++i) {
            message += (i == 0 ? "" : ", ") + rule.suggest[i];
        }
    }
    message += " (mistral-proxy rule ";
    message += rules::rule_name(id);
    message += ')';
    error_ = errors::make_error(400, std::move(message), code, param);
    return false;
}

// `tools`: how many tools the request sends (after params and tools dropped
// what Mistral cannot take). False (error_ set) when it is refused.
bool engine::check_tool_capable(std::string_view& sent, std::size_t tools) {
    if (tools > 0 && on(rule_id::tool_capable) && rules_.tool_capable.class_index >= 0 &&
        rules_.in_class(rules_.tool_capable.class_index, sent)) {
        return reroute_or_refuse(rules_.tool_capable, rule_id::tool_capable, sent, "cannot call tools",
                                 "; use a model that can, e.g. ", "model_without_tools", "tools");
    }
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

constexpr std::string_view tool_capable_keys = "models_without_tools, action, reroute_to, suggest";

// `tool_capable:` of a rule file (rules/README.md; the class is resolved in finish()).
void parse_tool_capable(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    b.parse_capability(file, value, key, set->tool_capable, b.tool_capable_ref, "models_without_tools",
                     tool_capable_keys);
}

}  // namespace mistral_proxy::rules::load
