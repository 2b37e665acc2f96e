#pragma once
// What the audio endpoints' stream rewriters share (transcription_stream,
// speech_stream): Mistral's SSE split into events at any piece boundary, each
// event's data parsed as a JSON object, Mistral's error events and data that
// is not JSON turned into one failure, and a stream that ends before its last
// event failed too. A rewriter says what its own events become (on_data) and
// how a failure reaches the client (write_failure). Pure.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "errors/redact.hpp"
#include "responses/event_rewriter.hpp"
#include "responses/sse.hpp"

namespace mistral_proxy::audio {

// The names a rewriter's messages use.
struct stream_names {
    std::string_view answer;      // "transcription": "... a body that is not a transcription"
    std::string_view stream;      // "transcription": "... ended the transcription stream before ..."
    std::string_view done_event;  // "transcription.done": the event that ends the stream
};

class audio_event_stream : public responses::event_rewriter {
public:
    void on_body(std::string_view piece, std::string& out) final;
    void on_end(std::string& out) final;
    void on_failure(const errors::openai_error& error, std::string& out) final { fail(error, out); }

    bool done() const noexcept final { return done_; }
    bool failed() const noexcept final { return failed_; }
    responses::rule_hits hits() const noexcept final { return {}; }
    const std::optional<responses::usage_counts>& usage() const noexcept final { return usage_; }
    std::uint64_t events_in() const noexcept final { return events_in_; }

protected:
    audio_event_stream(std::string upstream_name, stream_names names, errors::redactor redact = {},
                       std::size_t max_event_bytes = responses::default_max_sse_event_bytes)
        : upstream_name_(std::move(upstream_name)), names_(names), redact_(redact), splitter_(max_event_bytes) {}

    // One event that is not an error: `type` is the data's `type`, else the
    // event's name. Sets done_ on the last event; calls fail() on a bad one.
    virtual void on_data(std::string_view type, simdjson::dom::object data, std::string& out) = 0;
    // How the client is told of a failure (once): OpenAI's error event.
    virtual void write_failure(const errors::openai_error& error, std::string& out);

    void fail(const errors::openai_error& error, std::string& out);
    // The 502 for an answer that is not what this stream carries.
    errors::openai_error not_this_answer() const;

    std::string upstream_name_;
    bool done_ = false;
    std::optional<responses::usage_counts> usage_;

private:
    void on_event(const responses::sse_event& event, std::string& out);

    stream_names names_;
    errors::redactor redact_;
    responses::sse_splitter splitter_;
    bool failed_ = false;
    std::uint64_t events_in_ = 0;
};

}  // namespace mistral_proxy::audio
