#pragma once
// OpenAI's `Response` object and its output items, written as JSON text: the
// pieces shared by the whole-answer translation (answer.hpp) and the stream
// transcoder (stream.hpp). Every member the OpenAI schema marks required is
// always written. Pure.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::openai_responses {

// What a Response object echoes of its request, each member as JSON text
// (what the client sent, re-serialised; or OpenAI's default). Filled by
// translate_request() (request.hpp).
struct response_settings {
    std::string model_asked;            // the model as the client named it (unescaped)
    std::string instructions = "null";  // string or null (never carried over from a previous response)
    std::string tools = "[]";           // function tools in OpenAI's FunctionTool shape
    std::string tool_choice = R"("auto")";
    std::string temperature = "null";  // null when not sent: Mistral's default differs per model
    std::string top_p = "null";
    std::string max_output_tokens = "null";
    std::string max_tool_calls = "null";
    std::string text = R"({"format":{"type":"text"}})";
    std::string metadata = "{}";
    std::string parallel_tool_calls = "true";
    std::string truncation = R"("disabled")";
    std::string reasoning = "null";
    std::string top_logprobs = "0";
    std::string previous_response_id = "null";
    std::string user;  // JSON string, or "" when absent (the schema has no null for it)
    std::string safety_identifier = "null";
    std::string prompt_cache_key = "null";
    bool store = true;
};

// The changing part of a Response object.
struct response_state {
    std::string_view id;                             // resp_...
    std::int64_t created_at = 0;                     // unix seconds
    std::string_view status = "completed";           // in_progress, completed, incomplete, failed
    std::string_view model;                          // unescaped; settings.model_asked when empty
    std::string_view output = "[]";                  // JSON array of output items
    const responses::usage_counts* usage = nullptr;  // omitted when null (the schema has no null for it)
    std::string_view incomplete_reason;              // "" -> incomplete_details: null
    const errors::openai_error* error = nullptr;     // -> error: {code, message}; null when none
    std::optional<std::int64_t> completed_at;        // null when absent
};

// Appends the whole Response object.
void append_response(std::string& out, const response_settings& settings, const response_state& state);

// {"input_tokens":..,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},
//  "output_tokens":..,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":..}
void append_usage(std::string& out, const responses::usage_counts& usage);

// ResponseError.code for an error: one of the schema's enum values.
std::string_view response_error_code(const errors::openai_error& error) noexcept;

// Output items. `with_content` false writes the empty lists that
// response.output_item.added carries (the parts follow in their own events).
void append_message_item(std::string& out, std::string_view id, std::string_view status, std::string_view text,
                         bool with_content = true);
void append_reasoning_item(std::string& out, std::string_view id, std::string_view summary_text,
                           bool with_summary = true);
void append_function_call_item(std::string& out, std::string_view id, std::string_view status, std::string_view call_id,
                               std::string_view name, std::string_view arguments);
// {"type":"output_text","annotations":[],"logprobs":[],"text":...}
void append_output_text_part(std::string& out, std::string_view text);

void append_int(std::string& out, std::int64_t value);

}  // namespace mistral_proxy::openai_responses
