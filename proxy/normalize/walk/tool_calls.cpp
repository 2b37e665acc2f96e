// The walk of an assistant message's `tool_calls` and of a call's `function`
// (compiled as part of normalizer.cpp's translation unit, see the end of it):
// ids mapped (rules/tool_call_ids.cpp), keys filtered by the schema (params),
// each call kept for role_order, which awaits its result.
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// ---------------------------------------------------------------------------
// Tool calls of an assistant message: ids mapped, keys filtered.

// A call's {"name","arguments"}: its name kept (for a synthesized result), keys filtered.
bool engine::read_call_function(od::value& value, std::size_t depth, piece& out, std::string_view& name) {
    od::object fn;
    if (auto e = value.get_object().get(fn)) {
        return fail_json(e);
    }
    const std::size_t fn_base = members_.size();
    for (auto fn_field_result : fn) {
        od::field& fn_field = json::field_in(fn_field_result);
        std::string_view fn_key;
        if (auto e = json::member_of(fn_field_result, fn_key)) {
            return fail_json(e);
        }
        piece q;
        od::json_type fn_type{};
        if (same_key(fn_key, "name")) {
            od::value& name_value = fn_field.value();
            if (name_value.type().get(fn_type) != simdjson::SUCCESS || fn_type != od::json_type::string) {
                return fail("tool_calls[].function.name must be a string", "messages");
            }
            if (!capture_string(name_value, q, name)) {
                return false;
            }
        } else if (!capture(fn_field.value(), depth + 1, q, fn_type)) {
            return false;
        }
        const std::size_t index = push_member(fn_base, fn_key, q, fn_type);
        if (on(rule_id::params) &&
            !allowed(keys_of::function_call, fn_key, classify_key(fn_key))) {
            members_[index].keep = false;
            fire(rule_id::params);
        }
    }
    write_object(fn_base, out);
    return true;
}

bool engine::read_tool_calls(od::value& value, std::size_t depth, piece& out, bool& any, std::size_t message_index) {
    od::array array;
    if (auto e = value.get_array().get(array)) {
        return fail_json(e);
    }
    s_.calls.clear();
    const std::size_t calls_base = members_.size();
    for (auto item_result : array) {
        od::value& item = json::value_in(item_result);
        od::object object;
        if (auto e = item_result.error()) {
            return fail_json(e);
        }
        if (auto e = item.get_object().get(object)) {
            return fail_json(e);
        }
        const std::size_t base = members_.size();
        // Filled where it is kept: a call built on the stack and copied in was
        // read back with 16-byte loads over the id's separate 8- and 1-byte
        // stores, a store that cannot be forwarded (a stall per call).
        pending_call& call = s_.calls.emplace_back();
        bool has_id = false;
        std::string_view call_type = "function";
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
            if (same_key(name, "id") && type == od::json_type::string) {
                std::string_view id;
                if (!capture_string(child, p, id)) {
                    return false;
                }
                if (on(rule_id::tool_call_ids) && !is_tool_call_id(id)) {
                    call.id = map_tool_call_id(id, s_.mapped_ids);
                    call.original = id;
                    fire(rule_id::tool_call_ids);
                    const std::size_t start = mark();
                    arena_.push_back('"');
                    arena_.append(call.id.data(), call.id.size());
                    arena_.push_back('"');
                    p = since(start);
                } else {
                    std::copy_n(id.data(), std::min<std::size_t>(id.size(), 9), call.id.begin());
                }
                has_id = true;
            } else if (same_key(name, "function") && type == od::json_type::object) {
                if (!read_call_function(child, depth + 2, p, call.name)) {
                    return false;
                }
            } else if (same_key(name, "type") && type == od::json_type::string) {
                if (!capture_string(child, p, call_type)) {
                    return false;
                }
            } else if (!capture(child, depth + 2, p, type)) {
                return false;
            }
            const std::size_t index = push_member(base, name, p, type);
            if (on(rule_id::params) && !allowed(keys_of::tool_call, name, classify_key(name))) {
                members_[index].keep = false;
                fire(rule_id::params);
            }
        }
        if (!same_key(call_type, "function") && on(rule_id::params)) {
            // OpenAI's custom tool calls: Mistral's chat calls functions only. Dropping
            // the key that holds the call would leave an empty call.
            const std::string where =
                "messages[" + std::to_string(message_index) + "].tool_calls[" + std::to_string(s_.calls.size() - 1) + "]";
            return refuse(where + " is a '" + std::string(call_type.substr(0, 100)) +
                              "' tool call; Mistral's chat takes function calls only: send it as "
                              "{\"type\":\"function\",\"function\":{\"name\",\"arguments\"}}",
                          where, rule_id::params);
        }
        if (!has_id) {
            call.id.fill('\0');
        }
        piece written;
        write_object(base, written);
        push_element(written, od::json_type::object);
    }
    any = members_.size() > calls_base;
    write_array(calls_base, out);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
