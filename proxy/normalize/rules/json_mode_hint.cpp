// Rule `json_mode_hint` (SPEC §6): response_format json_object without "json"
// in any message gets a system instruction (the top level inserts it, with the
// text of the rule file's `json_mode_hint:`); here the response_format object
// is read (with `params`: its keys and types Mistral lacks dropped) and the
// messages' texts are searched for "json".
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

bool mentions_json(std::string_view text) noexcept {
    for (std::size_t i = 0; i + 4 <= text.size(); ++i) {
        if ((text[i] | 0x20) == 'j' && (text[i + 1] | 0x20) == 's' && (text[i + 2] | 0x20) == 'o' &&
            (text[i + 3] | 0x20) == 'n') {
            return true;
        }
    }
    return false;
}

// The text of a hint text (escapes undone, into the scratch; checked when read).
std::string_view engine::unescaped(const hint_text& text) {
    if (!text.escaped) {
        return text.text;
    }
    s_.unescaped.resize(text.text.size() + simdjson::SIMDJSON_PADDING);
    auto* out = reinterpret_cast<std::uint8_t*>(s_.unescaped.data());
    std::string_view result;
    if (s_.parser.unescape(od::raw_json_string(reinterpret_cast<const std::uint8_t*>(text.text.data())), out)
            .get(result) != simdjson::SUCCESS) {
        return {};
    }
    return result;
}

bool engine::read_response_format(od::value& value, piece& out, bool& keep) {
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    keep = true;
    if (type != od::json_type::object) {
        if (!capture(value, 1, out, type)) {
            return false;
        }
        if (type == od::json_type::null) {
            keep = false;
            fire(rule_id::params);
            return true;
        }
        return fail("'response_format' must be an object, got " + std::string(kind_name(type)), "response_format");
    }
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    const std::size_t base = members_.size();
    std::string_view format_type;
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        od::value& child = field.value();
        od::json_type child_type;
        if (auto e = child.type().get(child_type)) {
            return fail_json(e);
        }
        piece p;
        if (same_key(name, "type") && child_type == od::json_type::string) {
            if (!capture_string(child, p, format_type)) {
                return false;
            }
        } else if (same_key(name, "json_schema") && child_type == od::json_type::object) {
            if (!read_filtered(child, 2, schema_.json_schema, p)) {
                return false;
            }
        } else if (!capture(child, 2, p, child_type)) {
            return false;
        }
        const std::size_t at = push_member(base, name, p, child_type);
        if (on(rule_id::params) && !allowed(schema_.response_format, name)) {
            members_[at].keep = false;
            fire(rule_id::params);
        }
    }
    if (schema_.present && !format_type.empty() && !rules::contains(schema_.response_format_types, format_type) &&
        on(rule_id::params)) {
        members_.resize(base);
        keep = false;
        fire(rule_id::params);
        return true;
    }
    response_json_object_ = same_key(format_type, "json_object");
    write_object(base, out);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

// `json_mode_hint:` of a rule file (rules/README.md).
void parse_json_mode_hint(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& sub, const YAML::Node& sub_key,
                                             const YAML::Node& text) {
        if (sub != "text") {
            ys::fail_unknown_key(file, sub_key, sub, key, "text");
        }
        set->json_mode_hint_text = non_empty(file, sub_key, text, ys::path_of(key, sub));
    });
}

}  // namespace mistral_proxy::rules::load
