// Writers of OpenAI's Response object and output items (see response_object.hpp).
#include "openai_responses/response_object.hpp"

#include <charconv>

#include "json/writer.hpp"

namespace mistral_proxy::openai_responses {

using json::append_json_string;

void append_int(std::string& out, std::int64_t value) {
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, static_cast<std::size_t>(result.ptr - buffer));
}

namespace {

void append_uint(std::string& out, std::uint64_t value) {
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, static_cast<std::size_t>(result.ptr - buffer));
}

}  // namespace

void append_usage(std::string& out, const responses::usage_counts& usage) {
    out += R"({"input_tokens":)";
    append_uint(out, usage.prompt_tokens);
    out += R"(,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":)";
    append_uint(out, usage.completion_tokens);
    out += R"(,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":)";
    append_uint(out, usage.total_tokens != 0 ? usage.total_tokens : usage.prompt_tokens + usage.completion_tokens);
    out += '}';
}

std::string_view response_error_code(const errors::openai_error& error) noexcept {
    if (error.status == 429) {
        return "rate_limit_exceeded";
    }
    if (error.status == 400 || error.status == 422) {
        return "invalid_prompt";
    }
    return "server_error";
}

void append_response(std::string& out, const response_settings& settings, const response_state& state) {
    out += R"({"id":)";
    append_json_string(out, state.id);
    out += R"(,"object":"response","created_at":)";
    append_int(out, state.created_at);
    out += R"(,"status":)";
    append_json_string(out, state.status);
    out += R"(,"background":false,"completed_at":)";
    if (state.completed_at) {
        append_int(out, *state.completed_at);
    } else {
        out += "null";
    }
    out += R"(,"error":)";
    if (state.error != nullptr) {
        out += R"({"code":)";
        append_json_string(out, response_error_code(*state.error));
        out += R"(,"message":)";
        append_json_string(out, state.error->message);
        out += '}';
    } else {
        out += "null";
    }
    out += R"(,"incomplete_details":)";
    if (state.incomplete_reason.empty()) {
        out += "null";
    } else {
        out += R"({"reason":)";
        append_json_string(out, state.incomplete_reason);
        out += '}';
    }
    out += R"(,"instructions":)";
    out += settings.instructions;
    out += R"(,"max_output_tokens":)";
    out += settings.max_output_tokens;
    out += R"(,"max_tool_calls":)";
    out += settings.max_tool_calls;
    out += R"(,"model":)";
    append_json_string(out, state.model.empty() ? std::string_view(settings.model_asked) : state.model);
    out += R"(,"output":)";
    out += state.output;
    out += R"(,"parallel_tool_calls":)";
    out += settings.parallel_tool_calls;
    out += R"(,"previous_response_id":)";
    out += settings.previous_response_id;
    out += R"(,"prompt_cache_key":)";
    out += settings.prompt_cache_key;
    out += R"(,"reasoning":)";
    out += settings.reasoning;
    out += R"(,"safety_identifier":)";
    out += settings.safety_identifier;
    out += R"(,"service_tier":"default","store":)";
    out += settings.store ? "true" : "false";
    out += R"(,"temperature":)";
    out += settings.temperature;
    out += R"(,"text":)";
    out += settings.text;
    out += R"(,"tool_choice":)";
    out += settings.tool_choice;
    out += R"(,"tools":)";
    out += settings.tools;
    out += R"(,"top_logprobs":)";
    out += settings.top_logprobs;
    out += R"(,"top_p":)";
    out += settings.top_p;
    out += R"(,"truncation":)";
    out += settings.truncation;
    if (state.usage != nullptr) {
        out += R"(,"usage":)";
        append_usage(out, *state.usage);
    }
    if (!settings.user.empty()) {
        out += R"(,"user":)";
        out += settings.user;
    }
    out += R"(,"metadata":)";
    out += settings.metadata;
    out += '}';
}

void append_output_text_part(std::string& out, std::string_view text) {
    out += R"({"type":"output_text","annotations":[],"logprobs":[],"text":)";
    append_json_string(out, text);
    out += '}';
}

void append_message_item(std::string& out, std::string_view id, std::string_view status, std::string_view text,
                         bool with_content) {
    out += R"({"id":)";
    append_json_string(out, id);
    out += R"(,"type":"message","status":)";
    append_json_string(out, status);
    out += R"(,"content":[)";
    if (with_content) {
        append_output_text_part(out, text);
    }
    out += R"(],"role":"assistant"})";
}

void append_reasoning_item(std::string& out, std::string_view id, std::string_view summary_text, bool with_summary) {
    out += R"({"id":)";
    append_json_string(out, id);
    out += R"(,"type":"reasoning","summary":[)";
    if (with_summary) {
        out += R"({"type":"summary_text","text":)";
        append_json_string(out, summary_text);
        out += '}';
    }
    out += "]}";
}

void append_function_call_item(std::string& out, std::string_view id, std::string_view status, std::string_view call_id,
                               std::string_view name, std::string_view arguments) {
    out += R"({"id":)";
    append_json_string(out, id);
    out += R"(,"type":"function_call","status":)";
    append_json_string(out, status);
    out += R"(,"arguments":)";
    append_json_string(out, arguments);
    out += R"(,"call_id":)";
    append_json_string(out, call_id);
    out += R"(,"name":)";
    append_json_string(out, name);
    out += '}';
}

}  // namespace mistral_proxy::openai_responses
