// Rule `tool_choice_any` (SPEC §6): tool_choice "required" -> "any"; with
// `params`, the tool_choice kinds and keys Mistral lacks dropped, and OpenAI's
// legacy function_call turned into tool_choice.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

bool engine::read_tool_choice(od::value& value, piece& out, bool& keep) {
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    keep = true;
    if (type == od::json_type::string) {
        std::string_view choice;
        if (!capture_string(value, out, choice)) {
            return false;
        }
        if (same_key(choice, "required") && on(rule_id::tool_choice_any)) {
            const std::size_t start = mark();
            arena_.append("\"any\"");
            out = since(start);
            fire(rule_id::tool_choice_any);
        } else if (schema_.present && !rules::contains(schema_.tool_choice_values, choice) && on(rule_id::params)) {
            keep = false;
            fire(rule_id::params);
        }
        return true;
    }
    if (type == od::json_type::object) {
        // {"type":"function","function":{"name":...}}; OpenAI's other kinds (allowed_tools, custom) are dropped.
        od::object object;
        if (auto e = value.get_object().get(object)) {
            return fail_json(e);
        }
        const std::size_t base = members_.size();
        std::string_view choice_type = "function";
        bool has_function = false;
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
                if (!capture_string(child, p, choice_type)) {
                    return false;
                }
            } else if (same_key(name, "function") && child_type == od::json_type::object) {
                if (!read_filtered(child, 2, rules::key_list{"name"}, p)) {
                    return false;
                }
                has_function = true;
            } else if (!capture(child, 2, p, child_type)) {
                return false;
            }
            const std::size_t at = push_member(base, name, p, child_type);
            if (on(rule_id::params) && !allowed(schema_.tool_choice, name)) {
                members_[at].keep = false;
                fire(rule_id::params);
            }
        }
        if ((choice_type != "function" || !has_function) && on(rule_id::params)) {
            members_.resize(base);
            keep = false;
            fire(rule_id::params);
            return true;
        }
        write_object(base, out);
        return true;
    }
    piece ignored;
    if (!capture(value, 1, ignored, type)) {
        return false;
    }
    if (type == od::json_type::null) {
        keep = false;
        fire(rule_id::params);
        return true;
    }
    return fail("'tool_choice' must be a string or an object, got " + std::string(kind_name(type)), "tool_choice");
}

// OpenAI's legacy function_call -> tool_choice.
bool engine::read_function_call(od::value& value, piece& out, bool& keep) {
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    keep = false;
    if (type == od::json_type::string) {
        std::string_view choice;
        if (!capture_string(value, out, choice)) {
            return false;
        }
        keep = same_key(choice, "auto") || same_key(choice, "none");
        return true;
    }
    if (type == od::json_type::object) {
        piece fn;
        if (!read_filtered(value, 2, rules::key_list{"name"}, fn)) {
            return false;
        }
        const std::size_t start = mark();
        arena_.append("{\"type\":\"function\",\"function\":");
        append(fn);
        arena_.push_back('}');
        out = since(start);
        keep = view(fn).size() > 2;
        return true;
    }
    piece ignored;
    return capture(value, 1, ignored, type);
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
