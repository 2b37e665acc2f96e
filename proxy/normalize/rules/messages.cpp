// Rule `messages` (SPEC §6): each message reshaped into what Mistral's schema
// for its role accepts. `developer` becomes `system` and the legacy `function`
// result becomes `tool`; an assistant's legacy `function_call` becomes one
// tool call; its `refusal` joins its content; a system message's text parts
// are joined into one string (a part that is not text is refused: a system
// message cannot hold it); keys the role's schema lacks are dropped; a message
// without content gets the empty content Mistral requires. The walk of one
// message (engine::read_message in walk/message_walk.cpp) reads its members into a
// message_walk and calls these steps in SPEC order. No settings in the rule
// file (the schema is `schema:`); `switches: {messages: false}` turns it off.
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// The role's kind and the name it is sent with.
bool engine::message_role(message_walk& w) {
    const std::string_view text = w.role_text;
    w.role_out = text;
    if (same_key(text, "system")) {
        w.role = role_kind::system;
    } else if (same_key(text, "developer")) {
        w.role = role_kind::system;
        if (on(rule_id::messages)) {
            w.role_out = "system";
            fire(rule_id::messages);
        }
    } else if (same_key(text, "user")) {
        w.role = role_kind::user;
    } else if (same_key(text, "assistant")) {
        w.role = role_kind::assistant;
    } else if (same_key(text, "tool") || same_key(text, "function")) {
        w.role = role_kind::tool;
        if (same_key(text, "function") && on(rule_id::messages)) {
            w.role_out = "tool";  // OpenAI's legacy function result
            fire(rule_id::messages);
        }
    } else {
        return fail(w.where() + ".role must be one of system, developer, user, assistant, tool; got '" +
                        std::string(text) + "'",
                    w.where() + ".role");
    }
    return true;
}

// OpenAI's legacy function_call on an assistant message -> one tool call:
// Mistral's schema has no function_call, and the function result that
// follows must answer a call.
bool engine::legacy_call_to_tool_call(message_walk& w) {
    if (w.role != role_kind::assistant || !w.has_legacy_call || !on(rule_id::messages)) {
        return true;
    }
    if (w.calls_any) {
        return refuse(
            w.where() + " has both tool_calls and the legacy function_call: send the call once, in tool_calls",
            w.where(), rule_id::messages);
    }
    pending_call call;
    call.id = map_tool_call_id("function_call " + std::to_string(w.index));  // stable across a conversation's turns
    call.name = w.legacy_call_name;
    const std::size_t start = mark();
    arena_.append("[{\"id\":\"");
    arena_.append(call.id.data(), call.id.size());
    arena_.append("\",\"type\":\"function\",\"function\":");
    append(w.legacy_call);
    arena_.append("}]");
    const std::size_t at = push_member(w.base, "tool_calls", since(start), od::json_type::array);
    members_[at].tag = known_key::tool_calls;
    s_.calls.clear();
    s_.calls.push_back(call);
    w.calls_any = true;
    fire(rule_id::messages);
    return true;
}

// OpenAI's message-level refusal is what the assistant said: it joins the content.
void engine::join_refusal(message_walk& w) {
    if (w.role != role_kind::assistant || w.refusal_text.empty() || !on(rule_id::messages)) {
        return;
    }
    const std::size_t start = mark();
    const piece content = w.content_index != SIZE_MAX ? members_[w.content_index].value : piece{};
    const piece inner = content.inner();  // without the quotes or brackets
    if (w.content_empty) {
        append(w.refusal);
    } else if (members_[w.content_index].type == od::json_type::string) {
        arena_.push_back('"');
        append(inner);
        arena_.append("\\n\\n");
        append(w.refusal.inner());
        arena_.push_back('"');
    } else {
        arena_.push_back('[');
        append(inner);
        arena_.append(",{\"type\":\"text\",\"text\":");
        append(w.refusal);
        arena_.append("}]");
    }
    const bool as_string = w.content_empty || members_[w.content_index].type == od::json_type::string;
    w.content_index =
        push_member(w.base, "content", since(start), as_string ? od::json_type::string : od::json_type::array);
    members_[w.content_index].tag = known_key::content;
    w.content_empty = false;
    s_.hint_texts.push_back(hint_text{w.refusal_text, false});
    fire(rule_id::messages);
}

// System content given as parts -> one string: the role may come after the
// content, so the texts were collected (read_content) and are joined here.
// Parts that are not text cannot join a string: Mistral's system messages
// take thinking parts as they are, and nothing else.
bool engine::join_system_parts(message_walk& w) {
    if (w.role != role_kind::system || w.content_index == SIZE_MAX ||
        members_[w.content_index].type != od::json_type::array || !on(rule_id::messages)) {
        return true;
    }
    if (content_.first_not_system != SIZE_MAX) {
        const std::string part = w.where() + ".content[" + std::to_string(content_.first_not_system) + "]";
        return refuse(part + " is a '" + std::string(content_.first_not_system_type) +
                          "' part, which a system message cannot hold: send it in a user message",
                      part, rule_id::messages);
    }
    if (content_.first_other != SIZE_MAX) {
        return true;  // a thinking part: the parts go as they are
    }
    fire(rule_id::messages);
    const std::size_t start = mark();
    arena_.push_back('"');
    for (std::size_t i = 0; i < s_.texts.size(); ++i) {
        if (i != 0) {
            arena_.append("\\n\\n");
        }
        append(s_.texts[i]);
    }
    arena_.push_back('"');
    members_[w.content_index].value = since(start);
    members_[w.content_index].type = od::json_type::string;
    return true;
}

// A key the role's schema lacks (`schema:` of the rule file) is dropped.
bool engine::message_drops(keys_of list, const member& m) {
    if (allowed(list, m.key, m.tag) || !on(rule_id::messages)) {
        return false;
    }
    fire(rule_id::messages);
    return true;
}

// Mistral's schema requires the content of system, user and tool messages.
void engine::fill_required_content(const message_out& m) {
    if (!m.has_content && (m.role == role_kind::system || m.role == role_kind::user || m.role == role_kind::tool) &&
        schema_.present) {
        arena_.append(",\"content\":\"\"");
        fire(rule_id::messages);
    }
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
