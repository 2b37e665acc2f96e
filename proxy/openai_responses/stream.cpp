// Mistral chat SSE -> OpenAI Responses SSE events (see stream.hpp).
#include "openai_responses/stream.hpp"

#include <simdjson.h>

#include <vector>

#include "json/writer.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::openai_responses {

namespace dom = simdjson::dom;
using json::append_json_string;

namespace {

std::string_view string_of(dom::element value) noexcept {
    std::string_view s;
    if (value.get_string().get(s) != simdjson::SUCCESS) {
        return {};
    }
    return s;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

void append_uint(std::string& out, std::uint64_t value) { append_int(out, static_cast<std::int64_t>(value)); }

}  // namespace

struct stream_transcoder::impl {
    enum class kind : std::uint8_t { reasoning, message, function_call };
    struct item {
        kind type = kind::message;
        bool done = false;
        std::string id;
        std::string text;  // message text, reasoning summary, or call arguments
        std::string call_id;
        std::string name;
        std::uint64_t tool_index = 0;  // upstream tool_calls[].index
    };

    explicit impl(stream_context context) : context_(std::move(context)), splitter_(context_.max_event_bytes) {}

    void on_body(std::string_view piece, std::string& out);
    void on_event(const responses::sse_event& event, std::string& out);
    void on_end(std::string& out);
    void fail(const errors::openai_error& error, std::string& out);

    bool handle_chunk(dom::object chunk, std::string& out, std::optional<errors::openai_error>& error);
    void handle_delta(dom::object delta, std::string& out);
    void text_delta(kind type, std::string_view delta, std::string& out);
    void tool_call(dom::object call, std::string& out);

    void start(std::string& out);
    void begin_event(std::string& out, std::string_view type);
    static void end_event(std::string& out) { out += "}\n\n"; }
    void item_ref(std::string& out, std::size_t index);  // ,"item_id":..,"output_index":..
    item& add_item(kind type, std::string& out, std::string_view call_id = {}, std::string_view name = {},
                   std::uint64_t tool_index = 0);
    void close_item(std::size_t index, std::string& out);
    void close_text(std::string& out);
    void close_calls(std::string& out);
    void write_item(std::string& out, const item& it, bool whole) const;
    void write_output(std::string& out) const;
    void finish(std::string& out);
    void write_response(std::string& out, std::string_view status, const errors::openai_error* error);

    stream_context context_;
    responses::sse_splitter splitter_;
    std::string id_raw_;  // raw JSON of the first chunk's id: seeds generated tool call ids
    std::string model_;
    std::vector<item> items_;
    std::size_t open_text_ = static_cast<std::size_t>(-1);  // open message or reasoning item
    std::uint64_t sequence_ = 0;
    std::uint64_t calls_ = 0;
    std::string scratch_;
    std::string call_id_;  // a generated tool call id
    std::string response_;
    std::string output_items_;
    std::string_view status_ = "in_progress";
    std::optional<responses::usage_counts> usage_;
    responses::rule_hits hits_;
    std::uint64_t events_in_ = 0;
    bool started_ = false;
    bool finished_ = false;    // finish_reason seen
    bool incomplete_ = false;  // ... and it was length
    bool done_ = false;
    bool failed_ = false;
};

stream_transcoder::stream_transcoder(stream_context context) : impl_(std::make_unique<impl>(std::move(context))) {}
stream_transcoder::~stream_transcoder() = default;
stream_transcoder::stream_transcoder(stream_transcoder&&) noexcept = default;
stream_transcoder& stream_transcoder::operator=(stream_transcoder&&) noexcept = default;

void stream_transcoder::on_body(std::string_view piece, std::string& out) { impl_->on_body(piece, out); }
void stream_transcoder::on_event(const responses::sse_event& event, std::string& out) { impl_->on_event(event, out); }
void stream_transcoder::on_end(std::string& out) { impl_->on_end(out); }
void stream_transcoder::on_failure(const errors::openai_error& error, std::string& out) {
    if (!impl_->done_) {
        impl_->fail(error, out);
    }
}
bool stream_transcoder::done() const noexcept { return impl_->done_; }
bool stream_transcoder::failed() const noexcept { return impl_->failed_; }
responses::rule_hits stream_transcoder::hits() const noexcept { return impl_->hits_; }
const std::optional<responses::usage_counts>& stream_transcoder::usage() const noexcept { return impl_->usage_; }
std::uint64_t stream_transcoder::events_in() const noexcept { return impl_->events_in_; }
const std::string& stream_transcoder::response_json() const noexcept { return impl_->response_; }
const std::string& stream_transcoder::output_items() const noexcept { return impl_->output_items_; }
std::string_view stream_transcoder::status() const noexcept { return impl_->status_; }

void stream_transcoder::impl::on_body(std::string_view piece, std::string& out) {
    if (done_) {
        return;
    }
    splitter_.feed(piece);
    responses::sse_event event;
    while (!done_) {
        const responses::sse_status status = splitter_.next(event);
        if (status == responses::sse_status::event) {
            on_event(event, out);
        } else if (status == responses::sse_status::too_large) {
            std::string message = "upstream ";
            message += context_.upstream_name;
            message += " sent a stream event larger than ";
            append_uint(message, splitter_.max_event_bytes());
            message += " bytes";
            fail(errors::make_error(502, std::move(message), "upstream_event_too_large"), out);
        } else {
            break;
        }
    }
}

void stream_transcoder::impl::on_end(std::string& out) {
    if (done_) {
        return;
    }
    responses::sse_event event;
    if (splitter_.finish(event) == responses::sse_status::event) {
        on_event(event, out);
    }
    if (done_) {
        return;
    }
    if (finished_) {
        finish(out);  // upstream forgot [DONE] after a complete answer
        return;
    }
    std::string message = "upstream ";
    message += context_.upstream_name;
    message += " ended the stream before the answer was complete";
    fail(errors::make_error(502, std::move(message), "upstream_stream_truncated"), out);
}

void stream_transcoder::impl::on_event(const responses::sse_event& event, std::string& out) {
    if (done_ || !event.has_data) {
        return;
    }
    ++events_in_;
    const std::string_view data = trim(event.data);
    if (data.empty()) {
        return;
    }
    if (data == "[DONE]") {
        start(out);
        finish(out);
        return;
    }
    // One parser and input buffer for the thread's streams, not one each: an
    // event is parsed and translated within this call, and what a stream
    // keeps between events is its own (items, strings). A DOM parser sized for
    // its largest event is ten KB or more, held by each open stream.
    thread_local dom::parser parser;
    thread_local json::padded_input input;
    const simdjson::padded_string_view padded = input.pad(data);
    dom::element root;
    dom::object chunk;
    std::optional<errors::openai_error> error;
    const bool parsed = parser.parse(padded.data(), padded.length(), false).get(root) == simdjson::SUCCESS &&
                        root.get(chunk) == simdjson::SUCCESS;
    if (parsed && model_.empty()) {
        // response.created already names the model Mistral answers with.
        dom::element model;
        if (chunk.at_key("model").get(model) == simdjson::SUCCESS) {
            model_ = string_of(model);
        }
    }
    start(out);
    const std::size_t mark = out.size();
    if (!parsed) {
        std::string message = "upstream ";
        message += context_.upstream_name;
        message += " sent a stream event that is not a JSON object: ";
        const std::string clean = context_.redact(data);
        message += std::string_view(clean).substr(0, 200);
        if (clean.size() > 200) {
            message += "...";
        }
        fail(errors::make_error(502, std::move(message), "upstream_bad_event"), out);
        return;
    }
    if (event.type == "error" || !handle_chunk(chunk, out, error)) {
        out.resize(mark);
        fail(errors::translate_upstream_error(500, data, context_.upstream_name, context_.redact), out);
        return;
    }
    if (error) {
        fail(*error, out);
    }
}

// false: the chunk is an error object.
bool stream_transcoder::impl::handle_chunk(dom::object chunk, std::string& out,
                                           std::optional<errors::openai_error>& error) {
    dom::element value;
    dom::array choices;
    const bool has_choices = chunk.at_key("choices").get(choices) == simdjson::SUCCESS;
    if (chunk.at_key("object").get(value) == simdjson::SUCCESS && string_of(value) == "error") {
        return false;
    }
    if (chunk.at_key("error").error() == simdjson::SUCCESS || chunk.at_key("detail").error() == simdjson::SUCCESS ||
        (!has_choices && chunk.at_key("message").error() == simdjson::SUCCESS)) {
        return false;
    }
    if (id_raw_.empty() && chunk.at_key("id").get(value) == simdjson::SUCCESS) {
        id_raw_ = simdjson::minify(value);
    }
    dom::object usage;
    if (chunk.at_key("usage").get(usage) == simdjson::SUCCESS) {
        responses::usage_counts counts;
        std::uint64_t n = 0;
        if (usage.at_key("prompt_tokens").get(n) == simdjson::SUCCESS) {
            counts.prompt_tokens = n;
        }
        if (usage.at_key("completion_tokens").get(n) == simdjson::SUCCESS) {
            counts.completion_tokens = n;
        }
        if (usage.at_key("total_tokens").get(n) == simdjson::SUCCESS) {
            counts.total_tokens = n;
        }
        usage_ = counts;
    }
    if (!has_choices) {
        return true;
    }
    for (dom::element element : choices) {
        dom::object choice;
        if (element.get(choice) != simdjson::SUCCESS) {
            continue;
        }
        std::uint64_t index = 0;
        if (choice.at_key("index").get(index) == simdjson::SUCCESS && index != 0) {
            continue;  // one output per Response (n is never sent)
        }
        dom::object delta;
        if (choice.at_key("delta").get(delta) == simdjson::SUCCESS) {
            handle_delta(delta, out);
        }
        if (choice.at_key("finish_reason").get(value) == simdjson::SUCCESS && value.is_string()) {
            const std::string_view reason = string_of(value);
            if (reason == "error") {
                std::string message = "upstream ";
                message += context_.upstream_name;
                message += " stopped generating because of an error (finish_reason \"error\")";
                error = errors::make_error(502, std::move(message), "upstream_generation_error");
                return true;
            }
            finished_ = true;
            incomplete_ = reason == "length" || reason == "model_length";
            if (reason == "model_length") {
                hits_.add(responses::response_rule::finish_reason);
            }
            close_text(out);
            close_calls(out);
        }
    }
    return true;
}

void stream_transcoder::impl::handle_delta(dom::object delta, std::string& out) {
    dom::element content;
    if (delta.at_key("content").get(content) == simdjson::SUCCESS) {
        dom::array chunks;
        if (content.is_string()) {
            const std::string_view text = string_of(content);
            if (!text.empty()) {
                text_delta(kind::message, text, out);
            }
        } else if (content.get(chunks) == simdjson::SUCCESS) {
            for (dom::element element : chunks) {
                dom::object chunk;
                if (element.get(chunk) != simdjson::SUCCESS) {
                    continue;
                }
                dom::element value;
                std::string_view type = "text";
                if (chunk.at_key("type").get(value) == simdjson::SUCCESS) {
                    type = string_of(value);
                }
                if (type == "text") {
                    if (chunk.at_key("text").get(value) == simdjson::SUCCESS && !string_of(value).empty()) {
                        text_delta(kind::message, string_of(value), out);
                    }
                } else if (type == "thinking") {
                    dom::array parts;
                    if (chunk.at_key("thinking").get(parts) != simdjson::SUCCESS) {
                        continue;
                    }
                    hits_.add(responses::response_rule::reasoning);
                    for (dom::element part : parts) {
                        dom::object part_object;
                        if (part.get(part_object) == simdjson::SUCCESS &&
                            part_object.at_key("text").get(value) == simdjson::SUCCESS && !string_of(value).empty()) {
                            text_delta(kind::reasoning, string_of(value), out);
                        }
                    }
                }
            }
        }
    }
    dom::array calls;
    if (delta.at_key("tool_calls").get(calls) == simdjson::SUCCESS) {
        for (dom::element element : calls) {
            dom::object call;
            if (element.get(call) == simdjson::SUCCESS) {
                tool_call(call, out);
            }
        }
    }
}

void stream_transcoder::impl::begin_event(std::string& out, std::string_view type) {
    out += "event: ";
    out += type;
    out += "\ndata: {\"type\":\"";
    out += type;
    out += "\",\"sequence_number\":";
    append_uint(out, sequence_++);
}

void stream_transcoder::impl::item_ref(std::string& out, std::size_t index) {
    out += ",\"item_id\":";
    append_json_string(out, items_[index].id);
    out += ",\"output_index\":";
    append_uint(out, index);
}

void stream_transcoder::impl::write_item(std::string& out, const item& it, bool whole) const {
    switch (it.type) {
        case kind::message:
            append_message_item(out, it.id,
                                !it.done      ? "in_progress"
                                : incomplete_ ? "incomplete"
                                              : "completed",
                                it.text, whole);
            break;
        case kind::reasoning:
            append_reasoning_item(out, it.id, it.text, whole);
            break;
        case kind::function_call:
            append_function_call_item(out, it.id, it.done ? "completed" : "in_progress", it.call_id, it.name,
                                      whole ? std::string_view(it.text) : std::string_view());
            break;
    }
}

void stream_transcoder::impl::write_output(std::string& out) const {
    out += '[';
    for (std::size_t i = 0; i < items_.size(); ++i) {
        if (i != 0) {
            out += ',';
        }
        write_item(out, items_[i], true);
    }
    out += ']';
}

void stream_transcoder::impl::write_response(std::string& out, std::string_view status,
                                             const errors::openai_error* error) {
    const bool final = status != "in_progress";
    scratch_.clear();
    if (final) {
        write_output(scratch_);
    } else {
        scratch_ = "[]";
    }
    response_state state;
    state.id = context_.response_id;
    state.created_at = context_.created_at;
    state.status = status;
    state.model = model_;
    state.output = scratch_;
    const responses::usage_counts zero;
    if (final && status != "failed") {
        state.usage = usage_ ? &*usage_ : &zero;
    } else if (usage_) {
        state.usage = &*usage_;
    }
    state.incomplete_reason = status == "incomplete" ? "max_output_tokens" : "";
    state.error = error;
    if (status == "completed") {
        state.completed_at = context_.now ? context_.now() : context_.created_at;
    }
    append_response(out, *context_.settings, state);
}

void stream_transcoder::impl::start(std::string& out) {
    if (started_) {
        return;
    }
    started_ = true;
    begin_event(out, "response.created");
    out += ",\"response\":";
    write_response(out, "in_progress", nullptr);
    end_event(out);
    begin_event(out, "response.in_progress");
    out += ",\"response\":";
    write_response(out, "in_progress", nullptr);
    end_event(out);
}

stream_transcoder::impl::item& stream_transcoder::impl::add_item(kind type, std::string& out, std::string_view call_id,
                                                                 std::string_view name, std::uint64_t tool_index) {
    items_.emplace_back();
    item& it = items_.back();
    it.type = type;
    it.call_id = call_id;
    it.name = name;
    it.tool_index = tool_index;
    context_.ids->append(it.id, type == kind::message ? "msg_" : type == kind::reasoning ? "rs_" : "fc_");
    const std::size_t index = items_.size() - 1;
    begin_event(out, "response.output_item.added");
    out += ",\"output_index\":";
    append_uint(out, index);
    out += ",\"item\":";
    write_item(out, it, false);
    end_event(out);
    if (type == kind::message) {
        begin_event(out, "response.content_part.added");
        item_ref(out, index);
        out += ",\"content_index\":0,\"part\":";
        append_output_text_part(out, "");
        end_event(out);
    } else if (type == kind::reasoning) {
        begin_event(out, "response.reasoning_summary_part.added");
        item_ref(out, index);
        out += ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}";
        end_event(out);
    }
    return it;
}

void stream_transcoder::impl::text_delta(kind type, std::string_view delta, std::string& out) {
    if (open_text_ == static_cast<std::size_t>(-1) || items_[open_text_].type != type) {
        close_text(out);
        close_calls(out);
        add_item(type, out);
        open_text_ = items_.size() - 1;
    }
    item& it = items_[open_text_];
    it.text += delta;
    if (type == kind::message) {
        begin_event(out, "response.output_text.delta");
        item_ref(out, open_text_);
        out += ",\"content_index\":0,\"delta\":";
        append_json_string(out, delta);
        out += ",\"logprobs\":[]";
    } else {
        begin_event(out, "response.reasoning_summary_text.delta");
        item_ref(out, open_text_);
        out += ",\"summary_index\":0,\"delta\":";
        append_json_string(out, delta);
    }
    end_event(out);
}

void stream_transcoder::impl::close_item(std::size_t index, std::string& out) {
    item& it = items_[index];
    if (it.done) {
        return;
    }
    it.done = true;
    switch (it.type) {
        case kind::message:
            begin_event(out, "response.output_text.done");
            item_ref(out, index);
            out += ",\"content_index\":0,\"text\":";
            append_json_string(out, it.text);
            out += ",\"logprobs\":[]";
            end_event(out);
            begin_event(out, "response.content_part.done");
            item_ref(out, index);
            out += ",\"content_index\":0,\"part\":";
            append_output_text_part(out, it.text);
            end_event(out);
            break;
        case kind::reasoning:
            begin_event(out, "response.reasoning_summary_text.done");
            item_ref(out, index);
            out += ",\"summary_index\":0,\"text\":";
            append_json_string(out, it.text);
            end_event(out);
            begin_event(out, "response.reasoning_summary_part.done");
            item_ref(out, index);
            out += ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":";
            append_json_string(out, it.text);
            out += '}';
            end_event(out);
            break;
        case kind::function_call:
            begin_event(out, "response.function_call_arguments.done");
            item_ref(out, index);
            out += ",\"name\":";
            append_json_string(out, it.name);
            out += ",\"arguments\":";
            append_json_string(out, it.text);
            end_event(out);
            break;
    }
    begin_event(out, "response.output_item.done");
    out += ",\"output_index\":";
    append_uint(out, index);
    out += ",\"item\":";
    write_item(out, it, true);
    end_event(out);
}

void stream_transcoder::impl::close_text(std::string& out) {
    if (open_text_ != static_cast<std::size_t>(-1)) {
        close_item(open_text_, out);
        open_text_ = static_cast<std::size_t>(-1);
    }
}

void stream_transcoder::impl::close_calls(std::string& out) {
    for (std::size_t i = 0; i < items_.size(); ++i) {
        if (items_[i].type == kind::function_call && !items_[i].done) {
            close_item(i, out);
        }
    }
}

void stream_transcoder::impl::tool_call(dom::object call, std::string& out) {
    dom::element value;
    std::string_view id;
    std::string_view name;
    std::uint64_t upstream_index = 0;
    const bool has_index = call.at_key("index").get(upstream_index) == simdjson::SUCCESS;
    if (call.at_key("id").get(value) == simdjson::SUCCESS) {
        id = string_of(value);
        if (responses::detail::is_placeholder_id(id)) {
            id = {};
        }
    }
    dom::object function;
    const bool has_function = call.at_key("function").get(function) == simdjson::SUCCESS;
    if (has_function && function.at_key("name").get(value) == simdjson::SUCCESS) {
        name = string_of(value);
    }
    // Continuation: no name, and an open call with the same index (or the last one).
    std::size_t target = static_cast<std::size_t>(-1);
    if (name.empty()) {
        for (std::size_t i = items_.size(); i-- > 0;) {
            const item& it = items_[i];
            if (it.type == kind::function_call && !it.done && (!has_index || it.tool_index == upstream_index)) {
                target = i;
                break;
            }
        }
    }
    if (target == static_cast<std::size_t>(-1)) {
        close_text(out);
        if (id.empty()) {
            call_id_.clear();
            responses::detail::append_tool_call_id(call_id_, id_raw_, 0, calls_);
            id = call_id_;
            hits_.add(responses::response_rule::stream_repair);
        }
        add_item(kind::function_call, out, id, name, has_index ? upstream_index : calls_);
        ++calls_;
        target = items_.size() - 1;
    }
    item& it = items_[target];
    std::string_view arguments;
    std::string arguments_text;
    if (has_function && function.at_key("arguments").get(value) == simdjson::SUCCESS) {
        if (value.is_string()) {
            arguments = string_of(value);
        } else if (!value.is_null()) {
            arguments_text = simdjson::minify(value);
            arguments = arguments_text;
            hits_.add(responses::response_rule::message_repair);
        }
    }
    if (!arguments.empty()) {
        it.text += arguments;
        begin_event(out, "response.function_call_arguments.delta");
        item_ref(out, target);
        out += ",\"delta\":";
        append_json_string(out, arguments);
        end_event(out);
    }
}

void stream_transcoder::impl::finish(std::string& out) {
    if (done_) {
        return;
    }
    close_text(out);
    close_calls(out);
    status_ = incomplete_ ? "incomplete" : "completed";
    response_.clear();
    write_response(response_, status_, nullptr);
    output_items_.clear();
    write_output(output_items_);
    begin_event(out, incomplete_ ? "response.incomplete" : "response.completed");
    out += ",\"response\":";
    out += response_;
    end_event(out);
    done_ = true;
}

void stream_transcoder::impl::fail(const errors::openai_error& error, std::string& out) {
    if (done_) {
        return;
    }
    start(out);
    hits_.add(responses::response_rule::errors);
    // The documented ResponseErrorEvent members at the top, and the same again
    // in a nested `error` object, the shape OpenAI sends on the wire: the SDKs
    // throw on data with an `error` member (openai-node's Stream, so the Agents
    // SDK fails the run instead of taking the partial output for an answer) and
    // the AI SDK reads either.
    const std::string_view type =
        error.type.empty() ? errors::type_for_status(error.status) : std::string_view(error.type);
    const std::string_view code = error.code ? std::string_view(*error.code) : type;
    begin_event(out, "error");
    const std::size_t members_from = out.size();
    out += ",\"code\":";
    append_json_string(out, code);
    out += ",\"message\":";
    append_json_string(out, error.message);
    out += ",\"param\":";
    if (error.param) {
        append_json_string(out, *error.param);
    } else {
        out += "null";
    }
    const std::string members = out.substr(members_from + 1);  // "code":..,"message":..,"param":..
    out += ",\"error\":{\"type\":";
    append_json_string(out, type);
    out += ',';
    out += members;
    out += '}';
    end_event(out);
    status_ = "failed";
    response_.clear();
    write_response(response_, status_, &error);
    output_items_.clear();
    write_output(output_items_);
    begin_event(out, "response.failed");
    out += ",\"response\":";
    out += response_;
    end_event(out);
    done_ = true;
    failed_ = true;
}

}  // namespace mistral_proxy::openai_responses
