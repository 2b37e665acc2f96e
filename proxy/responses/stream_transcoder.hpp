#pragma once
// Mistral's SSE answer of a streamed chat or FIM completion, rewritten event by
// event into what OpenAI clients expect. Pure: the relay hands it body pieces
// as they arrive and writes what it appends to `out` at once; nothing is held
// back except the unfinished tail of an event.
//
// Per upstream event (data: {...chunk...}):
//   * chat shape (chat.completion.chunk):
//     - the first delta of each choice carries "role":"assistant";
//     - tool_calls deltas get "index" (position among the message's tool calls),
//       "type":"function" and an id: Mistral's own when real, else a stable
//       generated one (no "null" placeholder); arguments sent as an object
//       become a JSON string; keys OpenAI's delta does not have are dropped;
//     - content as a list (Magistral thinking chunks) becomes a string, with the
//       reasoning in "reasoning_content";
//   * text shape (legacy /v1/completions, from a FIM or chat stream): each chunk
//     becomes {"id","object":"text_completion","created","model",
//     "choices":[{"text","index","logprobs":null,"finish_reason"}]};
//   * both: finish_reason mapped by the rules (model_length -> length);
//     finish_reason "error" ends the stream with an error event;
//     `usage`: with include_usage it is taken out of the content chunk and sent
//     once, in OpenAI's own usage chunk (clients that sum usage over chunks
//     would otherwise count it twice); without, it stays where Mistral put it,
//     since nothing else carries it. Either way usage() feeds the limiter;
//   * with include_usage, OpenAI's final chunk {"id","object","created","model",
//     "choices":[],"usage":{...}} goes right before data: [DONE].
// A Mistral error object in the stream ({"object":"error",...}, {"detail":...},
// {"error":...}) becomes data: {"error":{message,type,param,code}} and the
// stream ends there, without [DONE] (SPEC §7; the SDK throws with the message).
// Data that is not JSON ends the stream the same way. A normal stream always
// ends with data: [DONE], also when upstream forgot to send it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/event_rewriter.hpp"
#include "responses/response_rules.hpp"
#include "responses/sse.hpp"

namespace mistral_proxy::responses {

enum class stream_shape {
    chat_completion_chunk,  // POST /v1/chat/completions
    text_completion,        // POST /v1/completions (legacy), answered from FIM or chat
};

struct stream_options {
    stream_shape shape = stream_shape::chat_completion_chunk;
    bool include_usage = false;  // the client sent stream_options.include_usage: true
    std::size_t max_event_bytes = default_max_sse_event_bytes;
    std::string_view upstream_name = "mistral";  // named in error messages the proxy writes
    errors::redactor redact;  // keys hidden in upstream text an error event quotes
};

class stream_transcoder final : public event_rewriter {
public:
    // `rules` must outlive the transcoder (it belongs to the rule set the
    // request holds).
    stream_transcoder(const response_rules& rules, stream_options options);
    ~stream_transcoder();
    stream_transcoder(stream_transcoder&&) noexcept;
    stream_transcoder& operator=(stream_transcoder&&) noexcept;

    // One piece of the upstream body, as read. Appends to `out` every OpenAI
    // event the piece completes (zero or more whole events; never half of one).
    // After done() further pieces are ignored.
    void on_body(std::string_view piece, std::string& out) override;

    // One upstream event, for a relay that splits events itself. on_body() calls it.
    void on_event(const sse_event& event, std::string& out);

    // The upstream body ended normally. Flushes a last event that lacked its
    // blank line; then, unless done(): when every choice had its finish_reason,
    // the usage chunk (if asked) and data: [DONE]; otherwise an error event
    // (the stream was cut short).
    void on_end(std::string& out) override;

    // The upstream failed mid-stream (reset, stalled): unless done(), appends
    // data: {"error":...} for `error` and ends.
    void on_failure(const errors::openai_error& error, std::string& out) override;

    // The stream has ended (data: [DONE] or an error event was appended); the
    // relay may stop reading upstream and finish the client's body.
    bool done() const noexcept override;
    // The ending was an error event (for metrics and the access log).
    bool failed() const noexcept override;

    // Response rules that changed something so far (for metrics: in a stream
    // the x-mistral-proxy-rules header is already sent).
    rule_hits hits() const noexcept override;

    // The last usage Mistral reported, when it did.
    const std::optional<usage_counts>& usage() const noexcept override;

    // Upstream events with data seen so far (for metrics).
    std::uint64_t events_in() const noexcept override;

private:
    // Parser state and buffers live behind a pointer so that this header stays
    // free of simdjson (the relay's Beast translation unit includes it).
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace mistral_proxy::responses
