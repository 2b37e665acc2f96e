#pragma once
// POST /v1/responses, answer side (not streamed): Mistral's whole chat
// completion (ChatCompletionResponse, the raw upstream body) translated into
// OpenAI's `Response` object, plus its output items for the store and the
// usage for the limiter. Pure: no I/O, no exceptions on input.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "openai_responses/ids.hpp"
#include "openai_responses/response_object.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::openai_responses {

struct answer_context {
    std::string_view response_id;                 // translated_request::response_id
    std::int64_t created_at = 0;                  // unix seconds when the request came in
    std::int64_t completed_at = 0;                // unix seconds when the answer arrived
    const response_settings* settings = nullptr;  // translated_request::settings (required)
    id_source* ids = nullptr;                     // for msg_/fc_/rs_ ids (required)
};

struct translated_answer {
    std::string body;                              // the Response object (when !error)
    std::string output_items;                      // its `output` array, for the store
    std::string_view status;                       // "completed" or "incomplete"
    std::optional<responses::usage_counts> usage;  // Mistral's usage, for the limiter (also on error)
    std::optional<errors::openai_error> error;     // answer this instead (502)
};

// The first choice of the completion becomes the output items, in this order:
//   - a `reasoning` item {id: rs_..., summary: [{type: summary_text, text}]} when
//     the content is a list with thinking chunks;
//   - a `message` item {id: msg_..., status, role: assistant,
//     content: [{type: output_text, text, annotations: [], logprobs: []}]} when
//     there is text, or when there is nothing else;
//   - one `function_call` item per tool call {id: fc_..., status: completed,
//     call_id: Mistral's tool call id (a stable generated one when missing),
//     name, arguments: a JSON string (an object is written as its JSON text)}.
// status: "completed"; "incomplete" with incomplete_details.reason
// "max_output_tokens" (and the message item "incomplete") when finish_reason
// is length or model_length. finish_reason "error" -> 502 api_error
// (upstream_generation_error); a body that is not a completion -> 502
// (upstream_bad_body). `model` is the model Mistral answered with.
translated_answer translate_answer(std::string_view mistral_body, const answer_context& context);

}  // namespace mistral_proxy::openai_responses
