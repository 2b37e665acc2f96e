#pragma once
// Internal to proxy/responses: one choice of a Mistral chat or FIM answer
// rewritten for OpenAI clients — the one place where the answer rules that act
// inside a choice live, for the whole answer (chat_response.cpp: a `message`)
// and for the stream (stream_transcoder.cpp: a `delta` per chunk) alike:
//   - finish_reason mapped by the rules; "error" reported to the caller, which
//     turns the answer into an OpenAI error;
//   - content as a list (Magistral thinking chunks) -> text and reasoning_content;
//   - tool calls: a stable generated id for a missing or placeholder one,
//     "type":"function", arguments as a JSON string, Mistral-only keys dropped,
//     and in a stream OpenAI's per-message `index`;
//   - OpenAI's required members (role, content, refusal, logprobs; a delta's
//     first role) added when Mistral left them out;
//   - the legacy text_completion choice {"text","index","logprobs","finish_reason"}.
// Its callers only walk their envelopes (the answer object, the SSE events).
#include <cstdint>
#include <string>
#include <string_view>

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses::detail {

// What a choice's finish_reason said.
enum class finish_kind {
    none,    // absent, null or not a string: the choice goes on (streamed) or has none
    reason,  // a finish reason, written mapped
    error,   // "error" (or mapped to it): written as null; the caller answers an error
};

// The two answer shapes a choice is written in.
enum class choice_shape {
    chat,  // chat.completion / chat.completion.chunk
    text,  // legacy text_completion (from a chat or FIM answer)
};

// A streamed choice's state from one chunk to the next.
struct delta_state {
    bool role_sent = false;
    bool finished = false;
    std::uint64_t tool_calls = 0;  // tool calls started in this choice's message
};

class choice_rewriter {
public:
    // `rules` and `hits` outlive the rewriter; every rule that changes
    // something is added to `hits`.
    choice_rewriter(const response_rules& rules, rule_hits& hits) : rules_(&rules), hits_(&hits) {}

    // A choice of a whole answer, at `position` in its array, appended to
    // `out`. `answer_id` is the answer's raw JSON id (seeds generated tool
    // call ids). false on malformed input.
    bool write_whole(od::object choice, std::uint64_t position, choice_shape shape, std::string_view answer_id,
                     std::string& out, finish_kind& finish);

    // A choice of a stream chunk, appended to `out`. `state_of(index)` gives
    // the state of the choice with that index (called once). false on
    // malformed input.
    template <typename StateOf>
    bool write_streamed(od::object choice, choice_shape shape, std::string_view answer_id, StateOf&& state_of,
                        std::string& out, finish_kind& finish) {
        std::uint64_t index = 0;
        if (!read_index(choice, index)) {
            return false;
        }
        return write_streamed(choice, index, state_of(index), shape, answer_id, out, finish);
    }

private:
    bool write_streamed(od::object choice, std::uint64_t index, delta_state& state, choice_shape shape,
                        std::string_view answer_id, std::string& out, finish_kind& finish);
    static bool read_index(od::object& choice, std::uint64_t& index);
    finish_kind write_finish_reason(od::value& value, std::string& out);
    bool write_message(od::object message, std::string_view answer_id, std::uint64_t choice, std::string& out);
    bool write_delta(od::object delta, delta_state& state, std::string_view answer_id, std::uint64_t choice,
                     std::string& out);
    // A member of a message or a delta other than role and a string content:
    // content as a list, tool_calls (an array, or a null dropped), anything
    // else copied. `stream` as for write_tool_calls; `empty_content_at`
    // (a whole message's, else null): see write_flattened_content.
    bool write_member(std::string_view key, od::json_type type, od::value& value, delta_state* stream,
                      std::size_t* empty_content_at, std::string_view answer_id, std::uint64_t choice, bool& first,
                      std::string& out);
    // `stream`: the delta's state (OpenAI's index, continuation fragments);
    // null for a whole message.
    bool write_tool_calls(od::array calls, delta_state* stream, std::string_view answer_id, std::uint64_t choice,
                          std::string& out);
    // The legacy text of a message or delta: its `content` (a string, or a
    // list flattened into text_). false on malformed input.
    bool read_text(od::object holder, std::string_view& raw, bool& flattened);
    void write_text_choice(std::string& out, std::string_view raw, bool flattened, std::string_view index_json,
                           std::uint64_t index, std::string_view finish_json);

    const response_rules* rules_;
    rule_hits* hits_;
    std::string text_;                 // flattened content
    std::string reasoning_;            // flattened thinking
    std::string function_;             // a tool call's function object while it is rewritten
    std::string finish_;               // a mapped finish_reason as JSON
    std::uint64_t calls_written_ = 0;  // by the last write_tool_calls
};

}  // namespace mistral_proxy::responses::detail
