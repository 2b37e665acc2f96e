// Rule `role_order` (SPEC §6): the order of messages Mistral accepts. An
// assistant bridge between a tool result and a user or system message, a tool
// result synthesized for each call that got none (before the next message that
// is not a tool result, and at the end), an empty assistant message dropped,
// each tool result matched to the call it answers. The walk of messages
// (walk/message_walk.cpp) calls keep_unless_empty(), match_tool_result() and
// await_results() for each message, order_before() before it keeps one and
// write_synthesized_results() at the end; it marks a trailing assistant
// message `prefix: true` itself. Settings:
// `role_order:` (assistant_bridge, missing_tool_result texts).
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// Before the message just read (the last of s_.messages) is kept: the
// synthesized results it must follow, and the assistant bridge it needs after
// a tool result (marked on it, written when the array is assembled).
void engine::order_before(std::size_t pending_before) {
    if (pending_before != 0 && s_.messages.back().role != role_kind::tool) {
        // The message must come after the results synthesized for the calls
        // before it (not for its own calls, which its read just added).
        const message_out current = s_.messages.back();
        s_.messages.pop_back();
        write_synthesized_results(pending_before);
        s_.messages.push_back(current);
    }
    message_out& m = s_.messages.back();
    const bool after_tool = s_.messages.size() >= 2 && s_.messages[s_.messages.size() - 2].role == role_kind::tool;
    if (after_tool && (m.role == role_kind::user || m.role == role_kind::system)) {
        if (bridge_text_.empty()) {
            // The same message each time: written once per request.
            const std::size_t start = mark();
            arena_.append("{\"role\":\"assistant\",\"content\":");
            string_value(rules_.assistant_bridge_text);
            arena_.push_back('}');
            bridge_text_ = since(start);
        }
        m.bridge_before = true;
        fire(rule_id::role_order);
    }
}

void engine::write_synthesized_results(std::size_t count) {
    // Each call that got no result: a tool message saying so (role_order), so the
    // counts of calls and results match as Mistral requires.
    count = std::min(count, s_.pending.size());
    for (std::size_t i = 0; i < count; ++i) {
        const pending_call& call = s_.pending[i];
        message_out m;
        m.role = role_kind::tool;
        const std::size_t start = mark();
        arena_.append("{\"role\":\"tool\",\"tool_call_id\":\"");
        arena_.append(call.id.data(), call.id.size());
        arena_.append("\",\"name\":");
        string_value(call.name);
        arena_.append(",\"content\":");
        if (missing_result_text_.empty()) {
            const std::size_t text_start = mark();
            string_value(rules_.missing_tool_result_text);
            missing_result_text_ = since(text_start);
        } else {
            append(missing_result_text_);  // escaped once per request
        }
        arena_.push_back('}');
        m.text = since(start);
        s_.messages.push_back(m);
        fire(rule_id::role_order);
    }
    s_.pending.erase(s_.pending.begin(), s_.pending.begin() + static_cast<std::ptrdiff_t>(count));
}

// An assistant message with nothing in it is dropped (keep = false).
bool engine::keep_unless_empty(const message_walk& w, bool& keep) {
    keep = true;
    if (w.role != role_kind::assistant || !w.content_empty || w.calls_any || w.prefix || !on(rule_id::role_order)) {
        return true;
    }
    if (w.has_audio) {
        return refuse(w.where() +
                          " holds only an OpenAI audio answer (audio.id), which Mistral cannot read: "
                          "send its transcript as the message's content",
                      w.where(), rule_id::role_order);
    }
    fire(rule_id::role_order);
    keep = false;
    return true;
}

// A tool result must answer a call of the assistant message before it
// (Mistral checks the counts); one without tool_call_id answers the calls in
// order, and gets the id of the one it answers.
bool engine::match_tool_result(message_walk& w) {
    if (w.role != role_kind::tool || !on(rule_id::role_order)) {
        return true;
    }
    auto it = s_.pending.end();
    if (w.has_tool_call_id) {
        std::array<char, 9> wanted{};
        if (w.map_result_id) {
            wanted = w.mapped_result_id;
        } else {
            std::copy_n(w.tool_call_id.data(), std::min<std::size_t>(w.tool_call_id.size(), 9), wanted.begin());
        }
        it = std::find_if(s_.pending.begin(), s_.pending.end(), [&](const pending_call& c) { return c.id == wanted; });
    } else if (!s_.pending.empty()) {
        it = s_.pending.begin();  // no id: results answer the calls in order
        w.answered_id = it->id;
        w.answers_in_order = true;
        fire(rule_id::role_order);
    }
    if (it == s_.pending.end()) {
        // A result for no pending call: Mistral refuses it (calls and results must
        // match), and dropping it would hide it from the model. OpenAI refuses it too.
        return refuse(w.where() + " is a tool result" +
                          (w.has_tool_call_id
                               ? " for tool_call_id '" + std::string(w.tool_call_id.substr(0, 100)) + "'"
                               : std::string()) +
                          " that answers no tool call of the assistant message before it: put that assistant "
                          "message (with its tool_calls) before it, or leave the result out",
                      w.where(), rule_id::role_order);
    }
    s_.pending.erase(it);
    return true;
}

// The calls of an assistant message kept: each awaits its result.
void engine::await_results(const message_out& out) {
    if (!out.has_tool_calls || !on(rule_id::role_order)) {
        return;
    }
    for (const auto& call : s_.calls) {
        if (call.id[0] != '\0') {
            s_.pending.push_back(call);
        }
    }
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

// `role_order:` of a rule file (rules/README.md).
void parse_role_order(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& sub, const YAML::Node& sub_key,
                                             const YAML::Node& text) {
        if (sub == "assistant_bridge") {
            set->assistant_bridge_text = non_empty(file, sub_key, text, ys::path_of(key, sub));
        } else if (sub == "missing_tool_result") {
            set->missing_tool_result_text = non_empty(file, sub_key, text, ys::path_of(key, sub));
        } else {
            ys::fail_unknown_key(file, sub_key, sub, key, "assistant_bridge, missing_tool_result");
        }
    });
}

}  // namespace mistral_proxy::rules::load
