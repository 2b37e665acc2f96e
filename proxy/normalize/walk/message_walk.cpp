// The walk of `messages` (compiled as part of normalizer.cpp's translation
// unit, see the end of it): each message's members read (content and
// tool_calls by their own walks), then the steps of the rules that act on a
// whole message (messages, tool_call_ids, role_order) in SPEC order; the
// messages are written when the body is, each with its members in the
// client's order, in the array with what role_order adds.
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// ---------------------------------------------------------------------------
// One message

bool engine::read_message(od::value& value, std::size_t index, message_out& out, bool& keep) {
    message_walk w;
    w.index = index;
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    if (type != od::json_type::object) {
        return fail(w.where() + " must be an object, got " + std::string(kind_name(type)), w.where());
    }
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    w.base = members_.size();
    bool has_role = false;
    // Role may come after content: content parts are read as for a user message
    // and joined afterwards when the role turns out to be system.
    s_.calls.clear();
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
        const known_key tag = classify_key(name);
        if (tag == known_key::role) {
            if (child_type != od::json_type::string) {
                return fail(w.where() + ".role must be a string, got " + std::string(kind_name(child_type)),
                            w.where() + ".role");
            }
            if (!capture_string(child, p, w.role_text)) {
                return false;
            }
            has_role = true;
        } else if (tag == known_key::content) {
            // System content needs the role; it is fixed up after the loop.
            s_.texts.clear();
            if (!read_content(child, 2, p, w.content_empty, index)) {
                return false;
            }
            w.has_content = true;
        } else if (tag == known_key::tool_calls && child_type == od::json_type::array) {
            if (!read_tool_calls(child, 2, p, w.calls_any, index)) {
                return false;
            }
        } else if (tag == known_key::tool_call_id && child_type == od::json_type::string) {
            if (!capture_string(child, p, w.tool_call_id)) {
                return false;
            }
            w.has_tool_call_id = true;
        } else if (tag == known_key::other && same_key(name, "refusal") && child_type == od::json_type::string) {
            if (!capture_string(child, p, w.refusal_text)) {
                return false;
            }
            w.refusal = p;
        } else if (tag == known_key::other && same_key(name, "function_call") && child_type == od::json_type::object) {
            if (!read_call_function(child, 2, p, w.legacy_call_name)) {
                return false;
            }
            w.legacy_call = p;
            w.has_legacy_call = true;
        } else {
            if (!capture(child, 2, p, child_type)) {
                return false;
            }
            if (tag == known_key::prefix && child_type == od::json_type::boolean) {
                w.prefix = view(p) == "true";
            }
            w.has_audio = w.has_audio || (same_key(name, "audio") && child_type == od::json_type::object);
        }
        const std::size_t at = push_member(w.base, name, p, child_type);
        members_[at].tag = tag;
        if (tag == known_key::content) {
            w.content_index = at;
        }
    }
    if (!has_role) {
        return fail(w.where() + " needs a role (system, user, assistant or tool)", w.where() + ".role");
    }
    // The steps of the rules that act on a whole message, in SPEC order.
    if (!message_role(w) || !legacy_call_to_tool_call(w)) {  // messages
        return false;
    }
    join_refusal(w);  // messages
    out.role = w.role;
    out.prefix = w.prefix;
    out.has_tool_calls = w.calls_any && w.role == role_kind::assistant;
    if (!join_system_parts(w) || !keep_unless_empty(w, keep)) {  // messages, role_order
        return false;
    }
    if (!keep) {
        members_.resize(w.base);
        return true;
    }
    map_result_id(w);             // tool_call_ids
    if (!match_tool_result(w)) {  // role_order
        return false;
    }
    // Written with the body (write_messages): its members stay on the stack.
    out.has_content = w.has_content;
    out.map_result_id = w.map_result_id;
    out.answers_in_order = w.answers_in_order;
    out.first = static_cast<std::uint32_t>(w.base);
    out.end = static_cast<std::uint32_t>(members_.size());
    out.role_out = w.role_out;
    if (w.map_result_id) {
        out.mapped_result_id = w.mapped_result_id;
    }
    if (w.answers_in_order) {
        out.answered_id = w.answered_id;
    }
    await_results(out);  // role_order
    return true;
}

// A message's members in the client's order, with what the steps changed
// (from the message stack, where read_message left them).
void engine::write_message(const message_out& m, bool add_prefix) {
    const keys_of list = m.role == role_kind::system      ? keys_of::system_message
                         : m.role == role_kind::user      ? keys_of::user_message
                         : m.role == role_kind::assistant ? keys_of::assistant_message
                                                          : keys_of::tool_message;
    const member_stack& members = s_.message_members;
    arena_.append("{\"role\":");
    plain_string_value(m.role_out);  // one of the role names: nothing to escape
    member_run run;
    run.first = false;  // after the role
    for (std::size_t i = m.first; i < m.end; ++i) {
        const member& member = members[i];
        if (member.tag == known_key::role || (member.tag == known_key::prefix && !m.prefix)) {
            continue;  // prefix false is the default; role_order may set it to true
        }
        if (message_drops(list, member)) {
            continue;
        }
        if (member.tag == known_key::content && member.value.empty()) {
            next_member(run);
            key(member.key);
            arena_.append("\"\"");
        } else if (m.map_result_id && member.tag == known_key::tool_call_id) {
            fire(rule_id::tool_call_ids);
            next_member(run);
            key(member.key);
            arena_.push_back('"');
            arena_.append(m.mapped_result_id.data(), m.mapped_result_id.size());
            arena_.push_back('"');
        } else {
            write_member(run, member);
        }
    }
    flush(run);
    if (m.answers_in_order) {
        arena_.append(",\"tool_call_id\":\"");
        arena_.append(m.answered_id.data(), m.answered_id.size());
        arena_.push_back('"');
    }
    fill_required_content(m);
    if (add_prefix) {
        // Mistral serves a trailing assistant message only as a prefix to continue.
        arena_.append(",\"prefix\":true");
        fire(rule_id::role_order);
    }
    arena_.push_back('}');
}

bool engine::read_messages(od::value& value) {
    od::array array;
    if (auto e = value.get_array().get(array)) {
        return fail_json(e);
    }
    s_.messages.clear();
    s_.pending.clear();
    s_.hint_texts.clear();
    has_image_ = false;
    // The messages' members go on their own stack and stay there until the
    // body is written: each message is then written once, in its place,
    // instead of into the arena first and copied into the body after.
    struct stack_swap {
        member_stack& a;
        member_stack& b;
        stack_swap(member_stack& x, member_stack& y) : a(x), b(y) { std::swap(a, b); }
        ~stack_swap() { std::swap(a, b); }
        stack_swap(const stack_swap&) = delete;
        stack_swap& operator=(const stack_swap&) = delete;
    };
    s_.message_members.clear();
    const stack_swap message_stack(s_.members, s_.message_members);
    std::size_t index = 0;
    for (auto item_result : array) {
        od::value& item = json::value_in(item_result);
        if (auto e = item_result.error()) {
            return fail_json(e);
        }
        // Read into its slot: read_message writes it field by field, and a
        // copy pushed afterwards read those stores back with 16-byte loads (a
        // failed store forward per message).
        message_out& m = s_.messages.emplace_back();
        bool keep = true;
        const std::size_t pending_before = s_.pending.size();
        if (!read_message(item, index++, m, keep)) {
            return false;
        }
        if (!keep) {
            s_.messages.pop_back();
            continue;
        }
        if (on(rule_id::role_order)) {
            order_before(pending_before);
        }
    }
    if (on(rule_id::role_order)) {
        write_synthesized_results();
    }
    // The array itself is assembled where the body is written (write_messages):
    // assembled here it would be copied whole once more into the body.
    return true;
}

// The messages array, in the body being written: each message read, with the
// bridges role_order put before some, and the hint json_mode_hint puts first.
void engine::write_messages(bool hint) {
    arena_.push_back('[');
    if (hint) {
        fire(rule_id::json_mode_hint);
        arena_.append("{\"role\":\"system\",\"content\":");
        string_value(rules_.json_mode_hint_text);
        arena_.push_back('}');
        if (!s_.messages.empty()) {
            arena_.push_back(',');
        }
    }
    for (std::size_t i = 0; i < s_.messages.size(); ++i) {
        const message_out& m = s_.messages[i];
        if (i != 0) {
            arena_.push_back(',');
        }
        if (m.bridge_before) {
            append(bridge_text_);
            arena_.push_back(',');
        }
        if (!m.text.empty()) {
            append(m.text);  // a tool result role_order made
            continue;
        }
        const bool last = i + 1 == s_.messages.size();
        write_message(m, last && m.role == role_kind::assistant && !m.prefix && !m.has_tool_calls &&
                             on(rule_id::role_order));
    }
    arena_.push_back(']');
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
