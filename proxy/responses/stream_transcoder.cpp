// Mistral's chat and FIM SSE rewritten event by event for OpenAI clients
// (see stream_transcoder.hpp). Just over 600 lines: one state machine per
// stream shape, kept together so both shapes share the event handling.
#include "responses/stream_transcoder.hpp"

#include <vector>

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::append_uint;
using detail::begin_member;
using detail::copy_member;
using detail::raw_value;

namespace {

// Choice indexes above this share one state slot: n is at most a handful in
// practice, and a hostile index must not make the proxy allocate.
constexpr std::uint64_t max_tracked_choices = 64;

// Event data quoted in an error message: enough to recognise it.
constexpr std::size_t max_quoted_bytes = 200;

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string quoted_prefix(std::string_view data) {
    std::string out(data.substr(0, max_quoted_bytes));
    if (data.size() > max_quoted_bytes) {
        out += "...";
    }
    return out;
}

}  // namespace

struct stream_transcoder::impl {
    struct choice_state {
        bool role_sent = false;
        bool finished = false;
        std::uint64_t tool_calls = 0;  // tool calls started in this choice's message
    };

    impl(const response_rules& rules, stream_options options)
        : rules_(&rules), options_(options), splitter_(options.max_event_bytes) {}

    void on_body(std::string_view piece, std::string& out);
    void on_event(const sse_event& event, std::string& out);
    void on_end(std::string& out);
    void on_failure(const errors::openai_error& error, std::string& out);

    // Rewrites one chunk; false when it is malformed. `is_error`: it is an error object.
    bool write_chunk(od::object chunk, std::string& out, bool& is_error, bool& finish_error);
    bool write_choice(od::object choice, std::string& out, bool& finish_error);
    bool write_chat_delta(od::object delta, choice_state& state, std::uint64_t choice_index, std::string& out);
    bool write_tool_calls(od::array calls, choice_state& state, std::uint64_t choice_index, std::string& out);
    choice_state& state_for(std::uint64_t index);
    void finish_ok(std::string& out);
    void finish_error(const errors::openai_error& error, std::string& out);

    const response_rules* rules_;
    stream_options options_;
    sse_splitter splitter_;
    detail::json_reader reader_;
    std::string scratch_;    // function objects of tool calls while they are rewritten
    std::string text_;       // flattened content
    std::string reasoning_;  // flattened thinking
    std::string id_;         // raw JSON of the first chunk's id, created, model: for the usage chunk
    std::string created_;
    std::string model_;
    std::string usage_raw_;  // raw JSON of the last usage object
    std::vector<choice_state> choices_;
    std::optional<usage_counts> usage_;
    rule_hits hits_;
    std::uint64_t events_in_ = 0;
    bool done_ = false;
    bool failed_ = false;
};

stream_transcoder::stream_transcoder(const response_rules& rules, stream_options options)
    : impl_(std::make_unique<impl>(rules, options)) {}
stream_transcoder::~stream_transcoder() = default;
stream_transcoder::stream_transcoder(stream_transcoder&&) noexcept = default;
stream_transcoder& stream_transcoder::operator=(stream_transcoder&&) noexcept = default;

void stream_transcoder::on_body(std::string_view piece, std::string& out) { impl_->on_body(piece, out); }
void stream_transcoder::on_event(const sse_event& event, std::string& out) { impl_->on_event(event, out); }
void stream_transcoder::on_end(std::string& out) { impl_->on_end(out); }
void stream_transcoder::on_failure(const errors::openai_error& error, std::string& out) {
    impl_->on_failure(error, out);
}
bool stream_transcoder::done() const noexcept { return impl_->done_; }
bool stream_transcoder::failed() const noexcept { return impl_->failed_; }
rule_hits stream_transcoder::hits() const noexcept { return impl_->hits_; }
const std::optional<usage_counts>& stream_transcoder::usage() const noexcept { return impl_->usage_; }
std::uint64_t stream_transcoder::events_in() const noexcept { return impl_->events_in_; }

void stream_transcoder::impl::on_body(std::string_view piece, std::string& out) {
    if (done_) {
        return;
    }
    splitter_.feed(piece);
    sse_event event;
    while (!done_) {
        const sse_status status = splitter_.next(event);
        if (status == sse_status::event) {
            on_event(event, out);
        } else if (status == sse_status::too_large) {
            std::string message = "upstream ";
            message += options_.upstream_name;
            message += " sent a stream event larger than ";
            append_uint(message, splitter_.max_event_bytes());
            message += " bytes";
            finish_error(errors::make_error(502, std::move(message), "upstream_event_too_large"), out);
        } else {
            break;
        }
    }
}

void stream_transcoder::impl::on_end(std::string& out) {
    if (done_) {
        return;
    }
    sse_event event;
    const sse_status status = splitter_.finish(event);
    if (status == sse_status::event) {
        on_event(event, out);
    }
    if (done_) {
        return;
    }
    bool all_finished = !choices_.empty();
    for (const choice_state& state : choices_) {
        all_finished = all_finished && state.finished;
    }
    if (all_finished) {
        // Upstream forgot [DONE] after a complete answer: nothing is missing.
        hits_.add(response_rule::stream_repair);
        finish_ok(out);
        return;
    }
    std::string message = "upstream ";
    message += options_.upstream_name;
    message += " ended the stream before the answer was complete";
    finish_error(errors::make_error(502, std::move(message), "upstream_stream_truncated"), out);
}

void stream_transcoder::impl::on_failure(const errors::openai_error& error, std::string& out) {
    if (!done_) {
        finish_error(error, out);
    }
}

void stream_transcoder::impl::on_event(const sse_event& event, std::string& out) {
    if (done_ || !event.has_data) {
        return;
    }
    ++events_in_;
    const std::string_view data = trim(event.data);
    if (data.empty()) {
        return;
    }
    if (data == "[DONE]") {
        finish_ok(out);
        return;
    }
    const std::size_t mark = out.size();
    od::document doc;
    od::object chunk;
    bool is_error = event.type == "error";
    bool finish_reason_error = false;
    bool ok = reader_.open(data, doc, chunk) && write_chunk(chunk, out, is_error, finish_reason_error);
    if (ok && !is_error) {
        ok = detail::at_end(doc);  // trailing bytes after the object ({...}}) make the event malformed
    }
    if (is_error) {
        out.resize(mark);
        finish_error(errors::translate_upstream_error(500, data, options_.upstream_name, options_.redact), out);
        return;
    }
    if (!ok) {
        out.resize(mark);
        std::string message = "upstream ";
        message += options_.upstream_name;
        message += " sent a stream event that is not a JSON object: ";
        message += quoted_prefix(options_.redact(data));  // no key survives the cut
        finish_error(errors::make_error(502, std::move(message), "upstream_bad_event"), out);
        return;
    }
    if (finish_reason_error) {
        // The chunk's content went out; the client must still learn it is incomplete.
        std::string message = "upstream ";
        message += options_.upstream_name;
        message += " stopped generating because of an error (finish_reason \"error\")";
        finish_error(errors::make_error(502, std::move(message), "upstream_generation_error"), out);
    }
}

stream_transcoder::impl::choice_state& stream_transcoder::impl::state_for(std::uint64_t index) {
    const std::size_t slot = static_cast<std::size_t>(index < max_tracked_choices ? index : max_tracked_choices);
    if (slot >= choices_.size()) {
        choices_.resize(slot + 1);
    }
    return choices_[slot];
}

bool stream_transcoder::impl::write_chunk(od::object chunk, std::string& out, bool& is_error, bool& finish_error) {
    const bool text_shape = options_.shape == stream_shape::text_completion;
    const std::size_t mark = out.size();
    out += "data: {";
    bool first = true;
    bool saw_object = false;
    bool saw_choices = false;
    bool saw_message = false;
    std::size_t choices_written = 0;
    for (auto field : chunk) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            out.resize(mark);
            return false;
        }
        od::value value = field.value();
        bool ok = true;
        if (key == "choices") {
            saw_choices = true;
            od::array choices;
            if (value.get_array().get(choices) == simdjson::SUCCESS) {
                begin_member(out, first, key);
                out += '[';
                // Counted per array: a chunk may repeat "choices" (duplicate keys), and a
                // count over the chunk would open the second array with a comma.
                std::size_t in_this_array = 0;
                for (auto element : choices) {
                    od::object choice;
                    if (element.get_object().get(choice) != simdjson::SUCCESS) {
                        ok = false;
                        break;
                    }
                    if (in_this_array != 0) {
                        out += ',';
                    }
                    ok = write_choice(choice, out, finish_error);
                    if (!ok) {
                        break;
                    }
                    ++in_this_array;
                    ++choices_written;
                }
                out += ']';
            } else {
                ok = copy_member(out, first, key, value);
            }
        } else if (key == "object") {
            std::string_view object;
            if (value.get_string().get(object) == simdjson::SUCCESS && object == "error") {
                is_error = true;
            }
            begin_member(out, first, key);
            out += text_shape ? "\"text_completion\"" : "\"chat.completion.chunk\"";
            saw_object = true;
        } else if (key == "usage") {
            std::string_view raw;
            usage_counts counts;
            if (detail::read_usage_value(value, raw, counts)) {
                usage_raw_.assign(raw);
                usage_ = counts;
                if (options_.include_usage) {
                    // Moved into OpenAI's own usage chunk, so that it is counted once.
                    hits_.add(response_rule::stream_repair);
                } else {
                    // Nobody will send it again: it stays where Mistral put it.
                    begin_member(out, first, key);
                    out += raw;
                }
            }
        } else if (key == "error" || key == "detail") {
            is_error = true;
        } else if (key == "message") {
            saw_message = true;
        } else if (key == "id" || key == "created" || key == "model") {
            std::string_view raw;
            ok = raw_value(value, raw);
            if (ok) {
                begin_member(out, first, key);
                out += raw;
                std::string& keep = key == "id" ? id_ : key == "created" ? created_ : model_;
                if (keep.empty()) {
                    keep.assign(raw);
                }
            }
        } else {
            ok = copy_member(out, first, key, value);
        }
        if (!ok) {
            out.resize(mark);
            return false;
        }
    }
    if (is_error || (!saw_choices && saw_message)) {
        is_error = true;
        out.resize(mark);
        return true;
    }
    if (choices_written == 0) {
        // OpenAI sends `choices: []` only in the usage chunk; a chunk left empty
        // (Mistral's usage-only chunk) says nothing else.
        out.resize(mark);
        return true;
    }
    if (!saw_object) {
        begin_member(out, first, "object");
        out += text_shape ? "\"text_completion\"" : "\"chat.completion.chunk\"";
        hits_.add(response_rule::stream_repair);
    }
    out += "}\n\n";
    return true;
}

bool stream_transcoder::impl::write_choice(od::object choice, std::string& out, bool& finish_error) {
    std::uint64_t index = 0;
    {
        od::value index_value;
        if (choice.find_field_unordered("index").get(index_value) == simdjson::SUCCESS) {
            if (index_value.get_uint64().get(index) != simdjson::SUCCESS) {
                index = 0;
            }
        }
        if (choice.reset().error() != simdjson::SUCCESS) {
            return false;
        }
    }
    choice_state& state = state_for(index);
    const bool text_shape = options_.shape == stream_shape::text_completion;

    bool first = true;
    bool saw_index = false;
    bool saw_delta = false;
    bool saw_finish = false;
    std::string_view text_raw;  // the delta's content when it is a plain string (raw JSON)
    bool text_flattened = false;
    std::string_view finish_raw = "null";
    std::string finish_mapped;  // only when the mapping changed it

    if (!text_shape) {
        out += '{';
    }
    for (auto field : choice) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            return false;
        }
        od::value value = field.value();
        if (key == "delta") {
            saw_delta = true;
            od::object delta;
            const bool is_object = value.get_object().get(delta) == simdjson::SUCCESS;
            if (!text_shape) {
                if (is_object) {
                    begin_member(out, first, key);
                    if (!write_chat_delta(delta, state, index, out)) {
                        return false;
                    }
                } else if (!copy_member(out, first, key, value)) {
                    return false;
                }
                continue;
            }
            if (!is_object) {
                continue;
            }
            for (auto delta_field : delta) {
                std::string_view delta_key;
                if (delta_field.unescaped_key().get(delta_key) != simdjson::SUCCESS) {
                    return false;
                }
                if (delta_key != "content") {
                    continue;
                }
                od::value content = delta_field.value();
                od::json_type type;
                if (content.type().get(type) != simdjson::SUCCESS) {
                    return false;
                }
                if (type == od::json_type::string) {
                    if (!raw_value(content, text_raw)) {
                        return false;
                    }
                } else if (type == od::json_type::array) {
                    od::array chunks;
                    text_.clear();
                    reasoning_.clear();
                    bool any_text = false;
                    bool any_reasoning = false;
                    if (content.get_array().get(chunks) != simdjson::SUCCESS ||
                        !detail::flatten_content(chunks, text_, reasoning_, any_text, any_reasoning)) {
                        return false;
                    }
                    text_flattened = true;
                    if (any_reasoning) {
                        hits_.add(response_rule::reasoning);  // a legacy completion has no place for it
                    }
                }
            }
        } else if (key == "finish_reason") {
            saw_finish = true;
            std::string_view reason;
            if (value.get_string().get(reason) == simdjson::SUCCESS) {
                state.finished = true;
                const std::string_view mapped = rules_->map_finish_reason(reason);
                if (reason == "error" || mapped == "error") {
                    finish_error = true;
                    finish_raw = "null";
                } else {
                    if (mapped != reason) {
                        hits_.add(response_rule::finish_reason);
                    }
                    finish_mapped.clear();
                    errors::append_json_string(finish_mapped, mapped);
                    finish_raw = finish_mapped;
                }
            } else {
                finish_raw = "null";
            }
            if (!text_shape) {
                begin_member(out, first, key);
                out += finish_raw;
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
        out += R"({"index":)";
        append_uint(out, index);
        out += R"(,"text":)";
        if (text_flattened) {
            errors::append_json_string(out, text_);
        } else if (!text_raw.empty()) {
            out += text_raw;
        } else {
            out += R"("")";
        }
        out += R"(,"logprobs":null,"finish_reason":)";
        out += finish_raw;
        out += '}';
        hits_.add(response_rule::text_completion);
        return true;
    }
    if (!saw_delta) {
        begin_member(out, first, "delta");
        out += state.role_sent ? "{}" : R"({"role":"assistant"})";
        state.role_sent = true;
        hits_.add(response_rule::stream_repair);
    }
    if (!saw_finish) {
        begin_member(out, first, "finish_reason");
        out += "null";
    }
    if (!saw_index) {
        // Required by OpenAI's chunk choice (and by Mistral's, which a stream may still break).
        begin_member(out, first, "index");
        append_uint(out, index);
        hits_.add(response_rule::stream_repair);
    }
    out += '}';
    return true;
}

bool stream_transcoder::impl::write_chat_delta(od::object delta, choice_state& state, std::uint64_t choice_index,
                                               std::string& out) {
    out += '{';
    bool first = true;
    bool role_written = false;
    for (auto field : delta) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            return false;
        }
        od::value value = field.value();
        od::json_type type;
        if (value.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        if (key == "role") {
            if (type == od::json_type::null && !state.role_sent) {
                begin_member(out, first, key);
                out += R"("assistant")";
                hits_.add(response_rule::stream_repair);
            } else if (!copy_member(out, first, key, value)) {
                return false;
            }
            role_written = true;
        } else if (key == "content" && type == od::json_type::array) {
            od::array chunks;
            if (value.get_array().get(chunks) != simdjson::SUCCESS ||
                !detail::write_flattened_content(out, first, chunks, text_, reasoning_, false)) {
                return false;
            }
            hits_.add(response_rule::reasoning);
        } else if (key == "tool_calls" && type == od::json_type::array) {
            od::array calls;
            if (value.get_array().get(calls) != simdjson::SUCCESS) {
                return false;
            }
            begin_member(out, first, key);
            if (!write_tool_calls(calls, state, choice_index, out)) {
                return false;
            }
        } else if (key == "tool_calls" && type == od::json_type::null) {
            hits_.add(response_rule::message_repair);  // OpenAI's delta.tool_calls is an array or absent
        } else if (!copy_member(out, first, key, value)) {
            return false;
        }
    }
    if (!state.role_sent && !role_written) {
        begin_member(out, first, "role");
        out += R"("assistant")";
        hits_.add(response_rule::stream_repair);
    }
    state.role_sent = true;
    out += '}';
    return true;
}

bool stream_transcoder::impl::write_tool_calls(od::array calls, choice_state& state, std::uint64_t choice_index,
                                               std::string& out) {
    out += '[';
    bool first_call = true;
    for (auto element : calls) {
        od::object call;
        if (element.get_object().get(call) != simdjson::SUCCESS) {
            return false;
        }
        scratch_.clear();
        std::string_view id_raw;
        bool has_real_id = false;
        bool has_function = false;
        bool has_name = false;
        bool has_index = false;
        bool has_type = false;
        bool repaired = false;
        std::uint64_t upstream_index = 0;
        for (auto field : call) {
            std::string_view key;
            if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                return false;
            }
            od::value value = field.value();
            if (key == "id") {
                std::string_view id;
                if (value.get_string().get(id) == simdjson::SUCCESS && !detail::is_placeholder_id(id)) {
                    // The unescaped view lives in the parser's string buffer until the next event.
                    id_raw = id;
                    has_real_id = true;
                }
            } else if (key == "function") {
                od::object function;
                if (value.get_object().get(function) != simdjson::SUCCESS ||
                    !detail::write_function(scratch_, function, has_name, repaired)) {
                    return false;
                }
                has_function = true;
            } else if (key == "index") {
                has_index = value.get_uint64().get(upstream_index) == simdjson::SUCCESS;
            } else if (key == "type") {
                has_type = true;
            } else {
                repaired = true;  // not part of OpenAI's tool call delta: dropped
            }
        }
        // Mistral sends each call whole; a later piece of the same call (no name,
        // no id) continues the last one, as OpenAI's fragments do.
        const bool is_new = has_name || has_real_id || state.tool_calls == 0;
        const std::uint64_t index = is_new ? state.tool_calls++ : state.tool_calls - 1;
        if (!has_index || upstream_index != index || (is_new && (!has_type || !has_real_id))) {
            hits_.add(response_rule::stream_repair);
        }
        if (repaired) {
            hits_.add(response_rule::message_repair);
        }
        if (!first_call) {
            out += ',';
        }
        first_call = false;
        out += R"({"index":)";
        append_uint(out, index);
        if (has_real_id) {
            out += R"(,"id":)";
            errors::append_json_string(out, id_raw);
        } else if (is_new) {
            out += R"(,"id":")";
            detail::append_tool_call_id(out, id_, choice_index, index);
            out += '"';
        }
        if (is_new) {
            out += R"(,"type":"function")";
        }
        if (has_function) {
            out += R"(,"function":)";
            out += scratch_;
        }
        out += '}';
    }
    out += ']';
    return true;
}

void stream_transcoder::impl::finish_ok(std::string& out) {
    if (options_.include_usage && usage_) {
        out += R"(data: {"id":)";
        out += id_.empty() ? std::string_view(R"("")") : std::string_view(id_);
        out += options_.shape == stream_shape::text_completion ? R"(,"object":"text_completion")"
                                                               : R"(,"object":"chat.completion.chunk")";
        out += R"(,"created":)";
        out += created_.empty() ? std::string_view("0") : std::string_view(created_);
        out += R"(,"model":)";
        out += model_.empty() ? std::string_view(R"("")") : std::string_view(model_);
        out += R"(,"choices":[],"usage":)";
        out += usage_raw_;
        out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
    done_ = true;
}

void stream_transcoder::impl::finish_error(const errors::openai_error& error, std::string& out) {
    out += errors::to_sse_event(error);
    hits_.add(response_rule::errors);
    done_ = true;
    failed_ = true;
}

}  // namespace mistral_proxy::responses
