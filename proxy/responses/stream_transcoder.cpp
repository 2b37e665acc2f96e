// Mistral's chat and FIM SSE rewritten event by event for OpenAI clients
// (see stream_transcoder.hpp). The choices themselves are written by
// choice_rewriter, which the whole answers share.
#include "responses/stream_transcoder.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "responses/choice_rewriter.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;

namespace {

// An event is one data: line. Values copied through keep their whitespace,
// and a chunk sent in several data: lines has line breaks between its tokens
// (never inside a string: JSON has none there): from `mark` on, they become
// spaces.
void one_line(std::string& out, std::size_t mark) {
    const std::size_t length = out.size() - mark;
    if (std::memchr(out.data() + mark, '\n', length) != nullptr ||
        std::memchr(out.data() + mark, '\r', length) != nullptr) {
        std::replace_if(out.begin() + static_cast<std::ptrdiff_t>(mark), out.end(),
                        [](char c) { return c == '\n' || c == '\r'; }, ' ');
    }
}

}  // namespace
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
    using choice_state = detail::delta_state;

    impl(const response_rules& rules, stream_options options)
        : rules_(&rules), options_(options), splitter_(options.max_event_bytes) {}

    void on_body(std::string_view piece, std::string& out);
    void on_event(const sse_event& event, std::string& out);
    void on_end(std::string& out);
    void on_failure(const errors::openai_error& error, std::string& out);

    // Rewrites one chunk; false when it is malformed. `is_error`: it is an error object.
    bool write_chunk(od::object chunk, std::string& out, bool& is_error, bool& finish_error);
    choice_state& state_for(std::uint64_t index);
    void finish_ok(std::string& out);
    void finish_error(const errors::openai_error& error, std::string& out);

    const response_rules* rules_;
    stream_options options_;
    sse_splitter splitter_;
    std::string id_;         // raw JSON of the first chunk's id, created, model: for the usage chunk
    std::string created_;
    std::string model_;
    std::string usage_raw_;  // raw JSON of the last usage object
    std::vector<choice_state> choices_;
    std::optional<usage_counts> usage_;
    rule_hits hits_;
    detail::choice_rewriter choice_{*rules_, hits_};  // after hits_: it keeps a reference
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
    // One parser for the thread's streams, not one each: an event is parsed
    // and rewritten within this call, and what a stream keeps between events
    // is its own (strings, counts). A parser sized for its depth and largest
    // event is about 10 KB, held by each of a thousand open streams.
    thread_local detail::json_reader reader;
    bool ok = reader.open(data, doc, chunk) && write_chunk(chunk, out, is_error, finish_reason_error);
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
        od::value value;
        if (!detail::member_of(field, key, value)) {
            out.resize(mark);
            return false;
        }
        bool ok = true;
        if (key == "choices") {
            saw_choices = true;
            od::array choices;
            if (value.get_array().get(choices) == simdjson::SUCCESS) {
                begin_member(out, first, "choices");
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
                    detail::finish_kind finish = detail::finish_kind::none;
                    ok = choice_.write_streamed(
                        choice, text_shape ? detail::choice_shape::text : detail::choice_shape::chat, id_,
                        [this](std::uint64_t index) -> choice_state& { return state_for(index); }, out, finish);
                    if (!ok) {
                        break;
                    }
                    finish_error = finish_error || finish == detail::finish_kind::error;
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
            begin_member(out, first, "object");
            out += text_shape ? "\"text_completion\"" : "\"chat.completion.chunk\"";
            saw_object = true;
        } else if (key == "usage") {
            std::string_view raw;
            usage_counts counts;
            const auto usage = detail::read_usage_value(value, raw, counts);
            ok = usage != detail::usage_read::malformed;
            if (usage == detail::usage_read::read) {
                usage_raw_.assign(raw);
                usage_ = counts;
                if (options_.include_usage) {
                    // Moved into OpenAI's own usage chunk, so that it is counted once.
                    hits_.add(response_rule::stream_repair);
                } else {
                    // Nobody will send it again: it stays where Mistral put it.
                    begin_member(out, first, "usage");
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
                std::string* keep = &model_;
                if (key == "id") {
                    begin_member(out, first, "id");
                    keep = &id_;
                } else if (key == "created") {
                    begin_member(out, first, "created");
                    keep = &created_;
                } else {
                    begin_member(out, first, "model");
                }
                out += raw;
                if (keep->empty()) {
                    keep->assign(raw);
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
    one_line(out, mark);
    out += "}\n\n";
    return true;
}

void stream_transcoder::impl::finish_ok(std::string& out) {
    if (options_.include_usage && usage_) {
        const std::size_t mark = out.size();
        out += R"(data: {"id":)";
        out += id_.empty() ? std::string_view(R"("")") : std::string_view(id_);
        out += options_.shape == stream_shape::text_completion ? R"(,"object":"text_completion")"
                                                               : R"(,"object":"chat.completion.chunk")";
        out += R"(,"created":)";
        out += created_.empty() ? std::string_view("0") : std::string_view(created_);
        out += R"(,"model":)";
        out += model_.empty() ? std::string_view(R"("")") : std::string_view(model_);
        out += R"(,"choices":[],"usage":)";
        out += usage_raw_;  // copied through from a chunk, perhaps one of several data: lines
        one_line(out, mark);
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
