#pragma once
// POST /v1/responses, request side: OpenAI's Responses API request body (schema
// CreateResponse) translated into an OpenAI *chat completions* request body.
// The caller then runs that body through the chat normalizer
// (normalize::normalize_request(..., endpoint::chat_completions, ...)), so that
// every chat rule (model aliases, tool_choice_any, tool_call_ids, role_order,
// messages, documents, params, ranges, json_mode_hint, vision_route) fires
// exactly as for a chat call. Pure: no I/O, no exceptions on input.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "errors/openai_error.hpp"
#include "openai_responses/ids.hpp"
#include "openai_responses/response_object.hpp"

namespace mistral_proxy::openai_responses {

// What a request body needs from the responses store, found by a cheap scan
// before translation.
struct references {
    std::string previous_response_id;           // "" when none
    std::vector<std::string> item_ids;          // ids of input item_reference items, in order (may repeat)
    std::optional<errors::openai_error> error;  // 400 when the body is not a JSON object
};
references find_references(std::string_view body);

// What the store gave back for those references.
struct history {
    // JSON array text: every item of the earlier conversation (inputs and outputs
    // of each response of the chain, in order) — "" when none.
    std::string_view previous_items;
    // JSON of a stored item by its id, "" when unknown. May be empty (no store).
    // The text it returns is read before find_item is called again, so it only
    // has to live until then.
    std::function<std::string_view(std::string_view item_id)> find_item;
};

struct translated_request {
    std::string response_id;  // resp_... for the Response this request will produce
    // OpenAI chat completions JSON, for the chat normalizer. Its capacity keeps
    // 64 spare bytes after the data (normalize::body_padding): pass it as is.
    std::string chat_body;
    // JSON array: this request's input items as OpenAI lists them (each with an
    // "id"; item_reference items replaced by the stored item), for the store and
    // GET /v1/responses/{id}/input_items.
    std::string input_items;
    response_settings settings;  // what the Response object echoes
    bool stream = false;
    bool store = true;
    // What was dropped or mapped that the client should know (for the log).
    std::vector<std::string> notes;
    // 400 invalid_request_error naming the field (param) and what to send instead.
    std::optional<errors::openai_error> error;
};

// Translates a Responses request body (needs no padding). Chat body layout:
//   model; messages = [instructions as a system message] + earlier.previous_items
//     + input; tools (function tools only); tool_choice; parallel_tool_calls;
//   response_format (from text.format); temperature; top_p;
//   max_tokens (max_output_tokens); reasoning_effort (reasoning.effort);
//   stream (+ stream_options.include_usage: true when streaming).
// Items: message (user/assistant/system/developer; string content or parts:
// input_text -> text, input_image -> image_url, input_file -> file (the
// documents rule takes it from there), output_text/refusal -> text),
// function_call (consecutive ones, and an assistant message right before them,
// become one assistant message with tool_calls; call_id is the tool call id),
// function_call_output -> a tool message, reasoning -> dropped (noted),
// item_reference -> the stored item from earlier.find_item.
// Accepted but not sent (echoed in the Response where it has a member):
//   metadata, user, store, previous_response_id, include, truncation,
//   service_tier, safety_identifier, prompt_cache_key, prompt_cache_retention,
//   prompt_cache_options, stream_options, top_logprobs, max_tool_calls,
//   moderation, context_management, text.verbosity, background: false.
// Refused (400): not a JSON object, wrong types, fields CreateResponse does not
// define (code unknown_parameter), built-in tools, tool_choice other than
// auto/none/required/{type:function}, background: true, prompt, conversation,
// input_image/input_file by file_url or image file_id, unknown item types,
// an item_reference the store does not know (code item_not_found).
translated_request translate_request(std::string_view body, const history& earlier, id_source& ids);

// The conversation a stored response continues with: the JSON arrays joined in
// order (each may be "" or "[]"). What the store keeps as previous_items for
// the next response of the chain.
std::string join_items(std::string_view previous_items, std::string_view input_items, std::string_view output_items);

}  // namespace mistral_proxy::openai_responses
