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
//     `usage` is taken out of the content chunks. Decision: it is removed even
//     when the client did not ask for include_usage, so every client sees
//     OpenAI's stream exactly (usage once, in its own chunk, only when asked;
//     clients that sum usage over chunks would otherwise count it twice). The
//     proxy still reads it: usage() feeds the limiter;
//   * with include_usage, OpenAI's final chunk {"id","object","created","model",
//     "choices":[],"usage":{...}} goes right before data: [DONE].
// A Mistral error object in the stream ({"object":"error",...}, {"detail":...},
// {"error":...}) becomes data: {"error":{message,type,param,code}} and the
// stream ends there, without [DONE] (SPEC §7; the SDK throws with the message).
// Data that is not JSON ends the stream the same way. A normal stream always
// ends with data: [DONE], also when upstream forgot to send it.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "errors/openai_error.hpp"
#include "responses/json_copy.hpp"
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
};

class stream_transcoder {
public:
    // `rules` must outlive the transcoder (it belongs to the rule set the
    // request holds).
    stream_transcoder(const response_rules& rules, stream_options options);

    // One piece of the upstream body, as read. Appends to `out` every OpenAI
    // event the piece completes (zero or more whole events; never half of one).
    // After done() further pieces are ignored.
    void on_body(std::string_view piece, std::string& out);

    // One upstream event, for a relay that splits events itself. on_body() calls it.
    void on_event(const sse_event& event, std::string& out);

    // The upstream body ended normally. Flushes a last event that lacked its
    // blank line; then, unless done(): when every choice had its finish_reason,
    // the usage chunk (if asked) and data: [DONE]; otherwise an error event
    // (the stream was cut short).
    void on_end(std::string& out);

    // The upstream failed mid-stream (reset, stalled): unless done(), appends
    // data: {"error":...} for `error` and ends.
    void on_failure(const errors::openai_error& error, std::string& out);

    // The stream has ended (data: [DONE] or an error event was appended); the
    // relay may stop reading upstream and finish the client's body.
    bool done() const noexcept { return done_; }
    // The ending was an error event (for metrics and the access log).
    bool failed() const noexcept { return failed_; }

    // Response rules that changed something so far (for metrics: in a stream
    // the x-mistral-proxy-rules header is already sent).
    rule_hits hits() const noexcept { return hits_; }

    // The last usage Mistral reported, when it did.
    const std::optional<usage_counts>& usage() const noexcept { return usage_; }

    std::uint64_t events_in() const noexcept { return events_in_; }

private:
    struct choice_state {
        bool role_sent = false;
        bool finished = false;
        std::uint64_t tool_calls = 0;  // tool calls started in this choice's message
    };

    // Rewrites one chunk; false when it is not a chunk (error object, malformed).
    bool write_chunk(simdjson::ondemand::object chunk, std::string& out, bool& is_error, bool& finish_error);
    bool write_choice(simdjson::ondemand::object choice, std::string& out, bool& finish_error);
    bool write_chat_delta(simdjson::ondemand::object delta, choice_state& state, std::uint64_t choice_index,
                          std::string& out);
    bool write_tool_calls(simdjson::ondemand::array calls, choice_state& state, std::uint64_t choice_index,
                          std::string& out);
    choice_state& state_for(std::uint64_t index);
    void finish_ok(std::string& out);
    void finish_error(const errors::openai_error& error, std::string& out);

    const response_rules* rules_;
    stream_options options_;
    sse_splitter splitter_;
    detail::json_reader reader_;
    std::string scratch_;     // function objects of tool calls while they are rewritten
    std::string text_;        // flattened content
    std::string reasoning_;   // flattened thinking
    std::string id_;          // raw JSON of the first chunk's id, created, model: for the usage chunk
    std::string created_;
    std::string model_;
    std::string usage_raw_;   // raw JSON of the last usage object
    std::vector<choice_state> choices_;
    std::optional<usage_counts> usage_;
    rule_hits hits_;
    std::uint64_t events_in_ = 0;
    bool done_ = false;
    bool failed_ = false;
};

}  // namespace mistral_proxy::responses
