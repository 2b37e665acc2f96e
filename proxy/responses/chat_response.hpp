#pragma once
// Whole (non-streamed) 2xx answers of /v1/chat/completions and of the legacy
// /v1/completions, rewritten for OpenAI clients. Pure: body in, body out.
// Untouched bytes are copied through as raw slices of the input.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::responses {

// What the relay sends instead of the upstream body.
struct body_result {
    // Send the upstream body exactly as received (`body` is then empty): it
    // needed no change, or it is not the JSON this transform understands (a
    // 2xx that is not JSON is not the proxy's to reject on passthrough paths).
    bool unchanged = false;
    std::string body;                           // the new body, when !unchanged && !error
    std::optional<errors::openai_error> error;  // answer this error (its status) instead
    rule_hits hits;
    std::optional<usage_counts> usage;  // Mistral's usage, for the limiter
    std::string content_type;           // the answer's Content-Type, when not the upstream's
};

// ChatCompletionResponse -> OpenAI chat.completion:
//   - finish_reason mapped by `rules` (model_length -> length);
//   - a choice whose finish_reason is "error" makes the whole answer a 502
//     api_error (code upstream_generation_error): the text is partial and an
//     OpenAI client has no finish_reason for that;
//   - message.content "" next to non-empty tool_calls -> null (OpenAI's shape;
//     strict clients check content === null for tool-call turns);
//   - message.content as a list (Magistral thinking chunks) -> the text as a
//     string and the thinking text in message.reasoning_content;
//   - Mistral-only keys dropped: message.prefix (echoed back it would ask the
//     model to continue a prefix), tool_calls[].index (not in OpenAI's
//     non-streamed tool call), choices[].messages;
//   - OpenAI's required members added when Mistral left them out: each choice
//     gets "logprobs":null (and a message when it had none), each message
//     "role":"assistant", "content":null and "refusal":null (strictly typed
//     clients, the Java and .NET SDKs, fail without them); "tool_calls":null
//     dropped (OpenAI's is an array or absent). tests/support/openai-schemas.json
//     holds OpenAI's schema the integration suites check every answer against;
//   - tool_calls[] get "type":"function" when missing, a stable 9-character id
//     when Mistral's is missing or the placeholder "null", and `arguments` as a
//     JSON string when Mistral sent an object.
// `body` needs no padding (it is copied once into a reused padded buffer).
body_result transform_chat_response(std::string_view body, const response_rules& rules);

// ChatCompletionResponse or FIMCompletionResponse -> OpenAI text_completion:
//   {"id","object":"text_completion","created","model",
//    "choices":[{"text","index","logprobs":null,"finish_reason"}],"usage"}
// text = the message content (list content: its text chunks; thinking dropped).
// finish_reason mapped as above; "error" gives the same 502. A body that is not
// a completion gives a 502 (the client asked for a shape the proxy must build).
body_result chat_to_text_completion(std::string_view body, const response_rules& rules);

}  // namespace mistral_proxy::responses
