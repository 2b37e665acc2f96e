#pragma once
// POST /v1/completions (OpenAI's legacy endpoint, which Mistral lacks): the
// request becomes a Mistral FIM request (codestral models) or a chat request
// (other models); the answer goes back in OpenAI's text_completion shape with
// chat_to_text_completion() (chat_response.hpp) or, streamed, with a
// stream_transcoder of shape text_completion (stream_transcoder.hpp). Pure.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"

namespace mistral_proxy::responses {

enum class completions_target {
    fim,   // POST {codestral}/v1/fim/completions
    chat,  // POST {mistral}/v1/chat/completions
};

struct completions_request {
    // The upstream body (when !error). Its capacity keeps 64 spare bytes after
    // the data, so it can go straight to normalize::normalize_request (which
    // then applies model_alias, ranges, ... to it as for a direct FIM/chat call).
    std::string body;
    bool stream = false;                        // "stream": true
    bool include_usage = false;                 // stream_options.include_usage: true (for the stream_transcoder)
    std::optional<errors::openai_error> error;  // 400 invalid_request_error
};

// Maps an OpenAI completions request body (needs no padding) to the target's body:
//   fim:  model, prompt, suffix, max_tokens, min_tokens, stop, temperature,
//         top_p, stream, seed -> random_seed (FIMCompletionRequest's fields);
//   chat: model, messages: [{"role":"user","content": prompt}], max_tokens,
//         stop, temperature, top_p, stream, n, presence_penalty,
//         frequency_penalty, seed -> random_seed (suffix has no place: dropped).
// Everything else (echo false, best_of 1, logprobs, logit_bias, user,
// stream_options, ...) is dropped, as ChatCompletionRequest and
// FIMCompletionRequest refuse unknown fields. Values are copied as they are
// (ranges are the normalizer's `ranges` rule, run on the result).
// 400 for what cannot be honoured: prompt missing, not a string, or several
// prompts / token ids; echo: true; best_of > 1; n > 1 with FIM.
completions_request map_completions_request(std::string_view body, completions_target target);

}  // namespace mistral_proxy::responses
