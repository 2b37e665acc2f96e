#pragma once
// POST /v1/responses with stream: true: Mistral's chat completion SSE stream
// rewritten event by event into OpenAI's Responses stream events
// (ResponseStreamEvent), each written as "event: <type>\ndata: <json>\n\n" with
// sequence_number counting from 0. The same method set as
// responses::stream_transcoder, so the relay can run either. Pure: nothing is
// held back except the unfinished tail of an upstream SSE event.
//
// Events, in order:
//   response.created, response.in_progress (status in_progress, output []) —
//     on the first upstream event, so a failure before it can still be answered
//     with a plain HTTP error;
//   per text run: response.output_item.added (message), response.content_part.added,
//     response.output_text.delta..., response.output_text.done,
//     response.content_part.done, response.output_item.done;
//   per thinking run (Magistral thinking chunks): output_item.added (reasoning),
//     response.reasoning_summary_part.added, response.reasoning_summary_text.delta...,
//     response.reasoning_summary_text.done, response.reasoning_summary_part.done,
//     output_item.done;
//   per tool call: output_item.added (function_call, arguments ""),
//     response.function_call_arguments.delta (the call whole, as Mistral sends
//     it, or OpenAI-style fragments continuing by `index`),
//     response.function_call_arguments.done, output_item.done (at finish_reason,
//     or when text starts again);
//   end: response.completed, or response.incomplete (finish_reason length /
//     model_length: incomplete_details.reason max_output_tokens), carrying the
//     whole Response with usage.
// A Mistral error object in the stream, finish_reason "error", data that is not
// JSON, an oversized event, a stream cut before finish_reason, or on_failure():
// an `error` event {code, message, param, error: {type, code, message, param}}
// then response.failed (the Response with status failed, error {code, message}
// and the items so far); done. The nested `error` is what OpenAI sends on the
// wire besides the documented top-level members: the openai SDK throws an
// APIError on it (so the Agents SDK fails the run rather than returning the
// partial text as its answer); the AI SDK reads either shape.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/event_rewriter.hpp"
#include "errors/redact.hpp"
#include "openai_responses/ids.hpp"
#include "openai_responses/response_object.hpp"
#include "responses/response_rules.hpp"
#include "responses/sse.hpp"

namespace mistral_proxy::openai_responses {

struct stream_context {
    std::string response_id;                      // translated_request::response_id
    std::int64_t created_at = 0;                  // unix seconds when the request came in
    const response_settings* settings = nullptr;  // must outlive the transcoder (required)
    id_source* ids = nullptr;                     // must outlive the transcoder (required)
    std::function<std::int64_t()> now;            // completed_at; created_at when empty
    std::size_t max_event_bytes = responses::default_max_sse_event_bytes;
    std::string_view upstream_name = "mistral";  // named in error messages the proxy writes
    errors::redactor redact;                     // keys hidden in upstream text an error event quotes
};

class stream_transcoder final : public responses::event_rewriter {
public:
    explicit stream_transcoder(stream_context context);
    ~stream_transcoder();
    stream_transcoder(stream_transcoder&&) noexcept;
    stream_transcoder& operator=(stream_transcoder&&) noexcept;

    // One piece of the upstream body, as read. Appends every event the piece
    // completes (whole events only). After done() further pieces are ignored.
    void on_body(std::string_view piece, std::string& out) override;
    // One upstream event, for a relay that splits events itself.
    void on_event(const responses::sse_event& event, std::string& out);
    // The upstream body ended: flushes a last event that lacked its blank line,
    // then response.completed/incomplete when finish_reason was seen, else the
    // failure events (the stream was cut short).
    void on_end(std::string& out) override;
    // The upstream failed mid-stream (reset, stalled): unless done(), the
    // failure events for `error`.
    void on_failure(const errors::openai_error& error, std::string& out) override;

    bool done() const noexcept override;
    bool failed() const noexcept override;  // ended with response.failed
    responses::rule_hits hits() const noexcept override;
    const std::optional<responses::usage_counts>& usage() const noexcept override;
    std::uint64_t events_in() const noexcept override;

    // After done(): the final Response object (status completed, incomplete or
    // failed) and its output items as a JSON array, for the store.
    const std::string& response_json() const noexcept;
    const std::string& output_items() const noexcept;
    std::string_view status() const noexcept;  // "in_progress" until done()

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace mistral_proxy::openai_responses
