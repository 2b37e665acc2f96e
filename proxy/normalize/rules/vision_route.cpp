// Rule `vision_route` (SPEC §6): image parts (an image_url part, or a file
// part that documents turned into one) sent to a model without vision go to
// the rule file's vision model, or get a 400 naming models that can see.
// Judged on the model after model_rewrite/model_alias and any fallback.
// Settings: `vision_route:` (models_with_vision, a model class; action;
// reroute_to; suggest).
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// False (error_ set) when the request is refused; `sent` may change.
bool engine::route_vision(std::string_view& sent) {
    if (has_image_ && on(rule_id::vision_route) && rules_.vision_route.class_index >= 0 &&
        !rules_.in_class(rules_.vision_route.class_index, sent)) {
        return reroute_or_refuse(rules_.vision_route, rule_id::vision_route, sent, "does not accept images",
                                 "; send them to a model with vision, e.g. ", "model_without_vision", "model");
    }
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

constexpr std::string_view vision_keys = "models_with_vision, action, reroute_to, suggest";

// `vision_route:` of a rule file (rules/README.md; the class is resolved in finish()).
void parse_vision_route(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    b.parse_capability(file, value, key, set->vision_route, b.vision_ref, "models_with_vision", vision_keys);
}

}  // namespace mistral_proxy::rules::load
