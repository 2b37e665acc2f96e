// The audio stream rewriters' shared part; see event_stream.hpp.
#include "audio/event_stream.hpp"

namespace mistral_proxy::audio {

using simdjson::SUCCESS;
namespace dom = simdjson::dom;

errors::openai_error audio_event_stream::not_this_answer() const {
    std::string message = upstream_name_;
    message += " answered with a body that is not a ";
    message += names_.answer;
    return errors::make_error(502, std::move(message), "bad_upstream_response");
}

void audio_event_stream::write_failure(const errors::openai_error& error, std::string& out) {
    out += errors::to_sse_event(error);
}

void audio_event_stream::fail(const errors::openai_error& error, std::string& out) {
    if (done_ || failed_) {
        return;
    }
    failed_ = true;
    write_failure(error, out);
}

void audio_event_stream::on_event(const responses::sse_event& event, std::string& out) {
    ++events_in_;
    thread_local dom::parser parser;
    dom::object data;
    // An empty `data:` is no JSON (and its view may have no bytes to point at,
    // which the parser must not be handed: fuzz_speech found it).
    if (event.data.empty() || parser.parse(event.data.data(), event.data.size()).get(data) != SUCCESS) {
        fail(not_this_answer(), out);
        return;
    }
    std::string_view type;
    if (data["type"].get(type) != SUCCESS) {
        type = event.type;
    }
    dom::element error;
    std::string_view object_kind;
    const bool error_object = data["object"].get(object_kind) == SUCCESS && object_kind == "error";
    if (type == "error" || error_object || data["error"].get(error) == SUCCESS) {
        // {"object":"error",...} or {"error":...}: Mistral's message in OpenAI's shape.
        fail(errors::translate_upstream_error(502, event.data, upstream_name_, redact_), out);
        return;
    }
    on_data(type, data, out);
}

void audio_event_stream::on_body(std::string_view piece, std::string& out) {
    if (done_ || failed_) {
        return;
    }
    splitter_.feed(piece);
    responses::sse_event event;
    for (;;) {
        const auto status = splitter_.next(event);
        if (status == responses::sse_status::need_more) {
            return;
        }
        if (status == responses::sse_status::too_large) {
            fail(errors::make_error(502,
                                    upstream_name_ + " sent a stream event larger than " +
                                        std::to_string(splitter_.max_event_bytes()) + " bytes",
                                    "bad_upstream_response"),
                 out);
            return;
        }
        if (event.has_data) {
            on_event(event, out);
        }
        if (done_ || failed_) {
            return;
        }
    }
}

void audio_event_stream::on_end(std::string& out) {
    if (done_ || failed_) {
        return;
    }
    responses::sse_event event;
    if (splitter_.finish(event) == responses::sse_status::event && event.has_data) {
        on_event(event, out);
    }
    std::string message = upstream_name_;
    message += " ended the ";
    message += names_.stream;
    message += " stream before ";
    message += names_.done_event;
    fail(errors::make_error(502, std::move(message), "upstream_stream_incomplete"), out);
}

}  // namespace mistral_proxy::audio
