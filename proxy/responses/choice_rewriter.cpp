// One choice of a chat or FIM answer rewritten for OpenAI clients, whole or
// streamed (see choice_rewriter.hpp).
#include "responses/choice_rewriter.hpp"

namespace mistral_proxy::responses::detail {

bool choice_rewriter::read_index(od::object& choice, std::uint64_t& index) {
    od::value index_value;
    if (choice.find_field_unordered("index").get(index_value) == simdjson::SUCCESS &&
        index_value.get_uint64().get(index) != simdjson::SUCCESS) {
        index = 0;
    }
    return choice.reset().error() == simdjson::SUCCESS;
}

finish_kind choice_rewriter::write_finish_reason(od::value& value, std::string& out) {
    std::string_view reason;
    if (value.get_string().get(reason) != simdjson::SUCCESS) {
        out += "null";
        return finish_kind::none;
    }
    const std::string_view mapped = rules_->map_finish_reason(reason);
    if (reason == "error" || mapped == "error") {
        out += "null";
        return finish_kind::error;
    }
    if (mapped != reason) {
        hits_->add(response_rule::finish_reason);
    }
    json::append_json_string(out, mapped);
    return finish_kind::reason;
}

namespace {
// Of two finish_reason members (a duplicate key), the one that matters.
finish_kind worse(finish_kind a, finish_kind b) noexcept {
    if (a == finish_kind::error || b == finish_kind::error) {
        return finish_kind::error;
    }
    return a == finish_kind::reason || b == finish_kind::reason ? finish_kind::reason : finish_kind::none;
}
}  // namespace

bool choice_rewriter::write_whole(od::object choice, std::uint64_t position, choice_shape shape,
                                  std::string_view answer_id, std::string& out, finish_kind& finish) {
    finish = finish_kind::none;
    if (shape == choice_shape::text) {
        std::string_view index_raw;
        std::string_view text_raw;
        bool flattened = false;
        finish_.assign("null");
        for (auto field : choice) {
            std::string_view key;
            od::value value;
            if (!member_of(field, key, value)) {
                return false;
            }
            if (key == "index") {
                if (!raw_value(value, index_raw)) {
                    return false;
                }
            } else if (key == "finish_reason") {
                finish_.clear();
                finish = worse(finish, write_finish_reason(value, finish_));
            } else if (key == "message") {
                od::object message;
                if (value.get_object().get(message) == simdjson::SUCCESS && !read_text(message, text_raw, flattened)) {
                    return false;
                }
            }
        }
        write_text_choice(out, text_raw, flattened, index_raw, position, finish_);
        return true;
    }

    out += '{';
    bool first = true;
    bool saw_message = false;
    bool saw_logprobs = false;
    for (auto field : choice) {
        std::string_view key;
        od::value value;
        if (!member_of(field, key, value)) {
            return false;
        }
        if (key == "message") {
            saw_message = true;
            od::object message;
            if (value.get_object().get(message) == simdjson::SUCCESS) {
                begin_member(out, first, "message");
                if (!write_message(message, answer_id, position, out)) {
                    return false;
                }
            } else if (!copy_member(out, first, key, value)) {
                return false;
            }
        } else if (key == "finish_reason") {
            begin_member(out, first, "finish_reason");
            finish = worse(finish, write_finish_reason(value, out));
        } else if (key == "messages") {
            hits_->add(response_rule::message_repair);  // Mistral-only
        } else {
            saw_logprobs = saw_logprobs || key == "logprobs";
            if (!copy_member(out, first, key, value)) {
                return false;
            }
        }
    }
    // OpenAI's choice requires both (Mistral's may leave the message out, and
    // never sends logprobs); strictly typed clients fail on a missing one.
    if (!saw_message) {
        begin_member(out, first, "message");
        out += R"({"role":"assistant","content":null,"refusal":null})";
        hits_->add(response_rule::message_repair);
    }
    if (!saw_logprobs) {
        begin_member(out, first, "logprobs");
        out += "null";
        hits_->add(response_rule::message_repair);
    }
    out += '}';
    return true;
}

bool choice_rewriter::write_streamed(od::object choice, std::uint64_t index, delta_state& state, choice_shape shape,
                                     std::string_view answer_id, std::string& out, finish_kind& finish) {
    finish = finish_kind::none;
    const bool text_shape = shape == choice_shape::text;
    bool first = true;
    bool saw_index = false;
    bool saw_delta = false;
    bool saw_finish = false;
    std::string_view text_raw;  // the delta's content when it is a plain string (raw JSON)
    bool text_flattened = false;
    finish_.assign("null");

    if (!text_shape) {
        out += '{';
    }
    for (auto field : choice) {
        std::string_view key;
        od::value value;
        if (!member_of(field, key, value)) {
            return false;
        }
        if (key == "delta") {
            saw_delta = true;
            od::object delta;
            const bool is_object = value.get_object().get(delta) == simdjson::SUCCESS;
            if (text_shape) {
                if (is_object && !read_text(delta, text_raw, text_flattened)) {
                    return false;
                }
            } else if (is_object) {
                begin_member(out, first, "delta");
                if (!write_delta(delta, state, answer_id, index, out)) {
                    return false;
                }
            } else if (!copy_member(out, first, key, value)) {
                return false;
            }
        } else if (key == "finish_reason") {
            saw_finish = true;
            finish_.clear();
            const finish_kind kind = write_finish_reason(value, finish_);
            state.finished = state.finished || kind != finish_kind::none;
            finish = worse(finish, kind);
            if (!text_shape) {
                begin_member(out, first, "finish_reason");
                out += finish_;
            }
        } else if (text_shape) {
            continue;  // text_completion choices have a fixed set of members, written below
        } else {
            saw_index = saw_index || key == "index";
            if (!copy_member(out, first, key, value)) {
                return false;
            }
        }
    }
    if (text_shape) {
        write_text_choice(out, text_raw, text_flattened, {}, index, finish_);
        return true;
    }
    if (!saw_delta) {
        begin_member(out, first, "delta");
        out += state.role_sent ? "{}" : R"({"role":"assistant"})";
        state.role_sent = true;
        hits_->add(response_rule::stream_repair);
    }
    if (!saw_finish) {
        begin_member(out, first, "finish_reason");
        out += "null";
    }
    if (!saw_index) {
        // Required by OpenAI's chunk choice (and by Mistral's, which a stream may still break).
        begin_member(out, first, "index");
        append_uint(out, index);
        hits_->add(response_rule::stream_repair);
    }
    out += '}';
    return true;
}

bool choice_rewriter::write_message(od::object message, std::string_view answer_id, std::uint64_t choice,
                                    std::string& out) {
    // content "" next to tool calls becomes null. Mistral writes content
    // before tool_calls, so whether the message has calls is known at its
    // end: where an empty content went is kept and replaced then, in one
    // walk of the message (looking ahead for tool_calls first walked it
    // twice). Of duplicate content keys the last counts, as for a JSON reader.
    std::size_t empty_content_at = std::string::npos;
    bool empty_content_flattened = false;
    bool has_tool_calls = false;
    out += '{';
    bool first = true;
    bool saw_role = false;
    bool saw_content = false;
    bool saw_refusal = false;
    for (auto field : message) {
        std::string_view key;
        od::value value;
        od::json_type type;
        if (!member_of(field, key, value, type)) {
            return false;
        }
        saw_role = saw_role || key == "role";
        saw_content = saw_content || key == "content";
        saw_refusal = saw_refusal || key == "refusal";
        if (key == "content" && type == od::json_type::string) {
            std::string_view raw;
            if (!raw_value(value, raw)) {
                return false;
            }
            begin_member(out, first, "content");
            empty_content_at = raw == R"("")" ? out.size() : std::string::npos;
            empty_content_flattened = false;
            out += raw;
        } else if (key == "prefix") {
            hits_->add(response_rule::message_repair);  // Mistral-only
        } else {
            if (key == "content") {
                empty_content_at = std::string::npos;  // a later content of another type replaces it
                empty_content_flattened = true;        // a list's empty text (write_flattened_content)
            }
            calls_written_ = 0;
            if (!write_member(key, type, value, nullptr, &empty_content_at, answer_id, choice, first, out)) {
                return false;
            }
            has_tool_calls = has_tool_calls || calls_written_ != 0;
        }
    }
    if (has_tool_calls && empty_content_at != std::string::npos) {
        out.replace(empty_content_at, 2, "null");
        if (!empty_content_flattened) {
            hits_->add(response_rule::message_repair);  // (a flattened list counts as `reasoning` already)
        }
    }
    // OpenAI's message requires role, content and refusal (null when none);
    // Mistral's may leave out role and content, and has no refusal.
    if (!saw_role) {
        begin_member(out, first, "role");
        out += R"("assistant")";
        hits_->add(response_rule::message_repair);
    }
    if (!saw_content) {
        begin_member(out, first, "content");
        out += "null";
        hits_->add(response_rule::message_repair);
    }
    if (!saw_refusal) {
        begin_member(out, first, "refusal");
        out += "null";
        hits_->add(response_rule::message_repair);
    }
    out += '}';
    return true;
}

bool choice_rewriter::write_delta(od::object delta, delta_state& state, std::string_view answer_id,
                                  std::uint64_t choice, std::string& out) {
    out += '{';
    bool first = true;
    bool role_written = false;
    for (auto field : delta) {
        std::string_view key;
        od::value value;
        od::json_type type;
        if (!member_of(field, key, value, type)) {
            return false;
        }
        if (key == "role") {
            if (type == od::json_type::null && !state.role_sent) {
                begin_member(out, first, "role");
                out += R"("assistant")";
                hits_->add(response_rule::stream_repair);
            } else if (!copy_member(out, first, key, value)) {
                return false;
            }
            role_written = true;
        } else if (!write_member(key, type, value, &state, nullptr, answer_id, choice, first, out)) {
            return false;
        }
    }
    if (!state.role_sent && !role_written) {
        begin_member(out, first, "role");
        out += R"("assistant")";
        hits_->add(response_rule::stream_repair);
    }
    state.role_sent = true;
    out += '}';
    return true;
}

bool choice_rewriter::write_member(std::string_view key, od::json_type type, od::value& value, delta_state* stream,
                                   std::size_t* empty_content_at, std::string_view answer_id, std::uint64_t choice,
                                   bool& first, std::string& out) {
    if (key == "content" && type == od::json_type::array) {
        od::array chunks;
        if (value.get_array().get(chunks) != simdjson::SUCCESS ||
            !write_flattened_content(out, first, chunks, text_, reasoning_, empty_content_at)) {
            return false;
        }
        hits_->add(response_rule::reasoning);
        return true;
    }
    if (key == "tool_calls" && type == od::json_type::array) {
        od::array calls;
        if (value.get_array().get(calls) != simdjson::SUCCESS) {
            return false;
        }
        begin_member(out, first, "tool_calls");
        return write_tool_calls(calls, stream, answer_id, choice, out);
    }
    if (key == "tool_calls" && type == od::json_type::null) {
        hits_->add(response_rule::message_repair);  // OpenAI's tool_calls is an array or absent, never null
        return true;
    }
    return copy_member(out, first, key, value);
}

bool choice_rewriter::write_tool_calls(od::array calls, delta_state* stream, std::string_view answer_id,
                                       std::uint64_t choice, std::string& out) {
    out += '[';
    std::uint64_t position = 0;  // the call's place in a whole message
    for (auto element : calls) {
        od::object call;
        if (element.get_object().get(call) != simdjson::SUCCESS) {
            return false;
        }
        function_.clear();
        // One block for the function object (a whole answer's rewriter is
        // new each time: growing from empty took three).
        function_.reserve(256);
        std::string_view id;
        bool has_real_id = false;
        bool has_function = false;
        bool has_name = false;
        bool has_index = false;
        bool has_type = false;
        bool repaired = false;  // a key OpenAI's tool call does not have was dropped, or arguments converted
        std::uint64_t upstream_index = 0;
        for (auto field : call) {
            std::string_view key;
            od::value value;
            if (!member_of(field, key, value)) {
                return false;
            }
            if (key == "id") {
                std::string_view text;
                if (value.get_string().get(text) == simdjson::SUCCESS && !is_placeholder_id(text)) {
                    // The unescaped view lives in the parser's string buffer until the next parse.
                    id = text;
                    has_real_id = true;
                }
            } else if (key == "function") {
                od::object function;
                if (value.get_object().get(function) != simdjson::SUCCESS ||
                    !write_function(function_, function, has_name, repaired)) {
                    return false;
                }
                has_function = true;
            } else if (key == "index") {
                has_index = value.get_uint64().get(upstream_index) == simdjson::SUCCESS;
            } else if (key == "type") {
                std::string_view text;
                has_type = value.get_string().get(text) == simdjson::SUCCESS;
            } else {
                repaired = true;
            }
        }
        // A whole message has every call whole. A stream sends each call whole
        // too, but a later piece of the same call (no name, no id) continues
        // the last one, as OpenAI's fragments do.
        bool is_new = true;
        std::uint64_t index = position;
        if (stream != nullptr) {
            is_new = has_name || has_real_id || stream->tool_calls == 0;
            index = is_new ? stream->tool_calls++ : stream->tool_calls - 1;
            if (!has_index || upstream_index != index || (is_new && (!has_type || !has_real_id))) {
                hits_->add(response_rule::stream_repair);
            }
        } else if (has_index || !has_real_id || !has_type) {
            repaired = true;  // index is not part of OpenAI's whole tool call
        }
        if (repaired) {
            hits_->add(response_rule::message_repair);
        }
        if (position != 0) {
            out += ',';
        }
        out += '{';
        bool first = true;
        if (stream != nullptr) {
            begin_member(out, first, "index");
            append_uint(out, index);
        }
        if (has_real_id) {
            begin_member(out, first, "id");
            json::append_json_string(out, id);
        } else if (is_new) {
            begin_member(out, first, "id");
            out += '"';
            append_tool_call_id(out, answer_id, choice, index);
            out += '"';
        }
        if (is_new) {
            begin_member(out, first, "type");
            out += R"("function")";
        }
        if (has_function) {
            begin_member(out, first, "function");
            out += function_;
        }
        out += '}';
        ++position;
    }
    out += ']';
    calls_written_ = position;
    return true;
}

bool choice_rewriter::read_text(od::object holder, std::string_view& raw, bool& flattened) {
    for (auto field : holder) {
        std::string_view key;
        od::value content;
        if (!member_of(field, key, content)) {
            return false;
        }
        if (key != "content") {
            continue;
        }
        od::json_type type;
        if (content.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        if (type == od::json_type::string) {
            if (!raw_value(content, raw)) {
                return false;
            }
            flattened = false;
        } else if (type == od::json_type::array) {
            od::array chunks;
            text_.clear();
            reasoning_.clear();
            bool any_text = false;
            bool any_reasoning = false;
            if (content.get_array().get(chunks) != simdjson::SUCCESS ||
                !flatten_content(chunks, text_, reasoning_, any_text, any_reasoning)) {
                return false;
            }
            flattened = true;
            if (any_reasoning) {
                hits_->add(response_rule::reasoning);  // a legacy completion has no place for it
            }
        }
    }
    return true;
}

void choice_rewriter::write_text_choice(std::string& out, std::string_view raw, bool flattened,
                                        std::string_view index_json, std::uint64_t index,
                                        std::string_view finish_json) {
    out += R"({"text":)";
    if (flattened) {
        json::append_json_string(out, text_);
    } else if (!raw.empty()) {
        out += raw;
    } else {
        out += R"("")";
    }
    out += R"(,"index":)";
    if (!index_json.empty()) {
        out += index_json;
    } else {
        append_uint(out, index);
    }
    out += R"(,"logprobs":null,"finish_reason":)";
    out += finish_json;
    out += '}';
    hits_->add(response_rule::text_completion);
}

}  // namespace mistral_proxy::responses::detail
