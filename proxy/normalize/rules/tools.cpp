// Rule `tools` (SPEC §6): empty `tools` removed (with tool_choice, at the top
// level), missing `parameters` defaulted, `$schema`/`$id` stripped; with
// `params`, keys of tools and functions Mistral lacks dropped and OpenAI's
// legacy `functions` turned into `tools`.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

bool engine::read_function(od::value& value, std::size_t depth, piece& out) {
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    const std::size_t base = members_.size();
    bool has_parameters = false;
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        od::value& child = field.value();
        od::json_type type;
        if (auto e = child.type().get(type)) {
            return fail_json(e);
        }
        piece p;
        bool keep = true;
        if (same_key(name, "parameters") && type == od::json_type::object && on(rule_id::tools)) {
            // $schema/$id at the top of a JSON schema (zod-to-json-schema, pydantic) are refused.
            od::object params;
            if (auto e = child.get_object().get(params)) {
                return fail_json(e);
            }
            const std::size_t params_base = members_.size();
            for (auto param_result : params) {
                od::field& param = json::field_in(param_result);
                std::string_view param_key;
                if (auto e = json::member_of(param_result, param_key)) {
                    return fail_json(e);
                }
                piece q;
                od::json_type param_type{};
                if (!capture(param.value(), depth + 2, q, param_type)) {
                    return false;
                }
                const std::size_t at = push_member(params_base, param_key, q, param_type);
                if (same_key(param_key, "$schema") || same_key(param_key, "$id")) {
                    members_[at].keep = false;
                    fire(rule_id::tools);
                } else {
                    // Other keys may carry escapes: written from the raw slice's key text below.
                }
            }
            // Keys are written unescaped: key() JSON-escapes them where needed.
            write_object(params_base, p);
            has_parameters = true;
        } else {
            if (!capture(child, depth + 1, p, type)) {
                return false;
            }
            if (same_key(name, "parameters")) {
                has_parameters = type == od::json_type::object;
                keep = has_parameters;
            }
            if (same_key(name, "description") && type == od::json_type::null) {
                keep = false;  // Mistral wants a string or nothing
            }
        }
        const std::size_t at = push_member(base, name, p, type);
        members_[at].keep = keep;
        if (!keep || (on(rule_id::params) && !allowed(schema_.function, name))) {
            members_[at].keep = false;
            fire(rule_id::params);
        }
    }
    if (!has_parameters && on(rule_id::tools)) {
        // Mistral requires parameters; a function without arguments takes an empty object.
        const std::size_t start = mark();
        arena_.append("{\"type\":\"object\",\"properties\":{}}");
        push_member(base, "parameters", since(start), od::json_type::object);
        fire(rule_id::tools);
    }
    write_object(base, out);
    return true;
}

// `tools` (legacy_functions false) or OpenAI's legacy `functions` (true).
bool engine::read_tools(od::value& value, bool legacy_functions, piece& out) {
    od::array array;
    if (auto e = value.get_array().get(array)) {
        return fail_json(e);
    }
    const std::size_t list_base = members_.size();
    std::size_t index = 0;
    for (auto item_result : array) {
        od::value& item = json::value_in(item_result);
        od::json_type type;
        if (auto e = item_result.error()) {
            return fail_json(e);
        }
        if (auto e = item.type().get(type)) {
            return fail_json(e);
        }
        const std::size_t tool_index = index++;
        const auto where = [&] {
            return std::string(legacy_functions ? "functions[" : "tools[") + std::to_string(tool_index) + "]";
        };
        if (type != od::json_type::object) {
            return fail(where() + " must be an object, got " + std::string(kind_name(type)), where());
        }
        piece tool;
        if (legacy_functions) {
            piece fn;
            if (!read_function(item, 2, fn)) {
                return false;
            }
            const std::size_t start = mark();
            arena_.append("{\"type\":\"function\",\"function\":");
            append(fn);
            arena_.push_back('}');
            tool = since(start);
        } else {
            od::object object;
            if (auto e = item.get_object().get(object)) {
                return fail_json(e);
            }
            const std::size_t base = members_.size();
            std::string_view tool_type = "function";
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
                if (same_key(name, "function") && child_type == od::json_type::object) {
                    if (!read_function(child, 3, p)) {
                        return false;
                    }
                } else if (same_key(name, "type") && child_type == od::json_type::string) {
                    if (!capture_string(child, p, tool_type)) {
                        return false;
                    }
                } else if (!capture(child, 3, p, child_type)) {
                    return false;
                }
                const std::size_t at = push_member(base, name, p, child_type);
                if (on(rule_id::params) && !allowed(schema_.tool, name)) {
                    members_[at].keep = false;
                    fire(rule_id::params);
                }
            }
            if (tool_type != "function" && on(rule_id::params)) {
                // OpenAI's custom/built-in tool kinds: Mistral's chat cannot take them.
                fire(rule_id::params);
                members_.resize(base);
                continue;
            }
            write_object(base, tool);
        }
        push_element(tool, od::json_type::object);
    }
    tool_count_ = members_.size() - list_base;
    write_array(list_base, out);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
