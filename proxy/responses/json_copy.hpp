#pragma once
// Internal to proxy/responses: what the answer rewriters share beyond the
// generic copy-through writing of json/copy.hpp — tool call ids, content
// lists, usage, function arguments. Every function reports failure by its
// return value; none throws.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "json/copy.hpp"
#include "json/writer.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::responses::detail {

namespace od = simdjson::ondemand;

// The generic copy-through pieces (json/copy.hpp), named here as the
// rewriters have always named them.
using json::append_int;
using json::append_uint;
using json::at_end;
using json::begin_member;
using json::copy_member;
using json::json_reader;
using json::member_of;
using json::padded_input;
using json::raw_object;
using json::raw_value;

inline bool is_placeholder_id(std::string_view id) noexcept { return id.empty() || id == "null" || id == "None"; }

// Nine characters of [a-zA-Z0-9] (the tool call id format Mistral accepts back)
// derived from the answer's id and the call's position, so the same answer
// always yields the same ids and a conversation round-trips unchanged.
void append_tool_call_id(std::string& out, std::string_view answer_id, std::uint64_t choice, std::uint64_t call);

// Mistral's content as a list of chunks (Magistral: [{"type":"thinking",
// "thinking":[{"type":"text","text":...}]}, {"type":"text","text":...}]):
// the text chunks' text appended to `text`, the thinking chunks' text to
// `reasoning`. Other chunk types (references, images) carry no text and are
// skipped. false on malformed input.
bool flatten_content(od::array chunks, std::string& text, std::string& reasoning, bool& any_text, bool& any_reasoning);

// A function call's `arguments` as OpenAI wants them: a JSON string. Mistral
// may send an object (the schema allows it); it is written as its JSON text.
// Returns false on malformed input; sets `repaired` when it had to convert.
bool write_arguments(std::string& out, od::value& arguments, bool& repaired);

// A `function` object of a tool call with `arguments` written by
// write_arguments(); other members copied. `has_name` tells whether it named a
// function (a whole call, not a continuation fragment). false on malformed input.
bool write_function(std::string& out, od::object function, bool& has_name, bool& repaired);

// A content list written as OpenAI's members: "content" (the text, or null when
// there is none) and, when thinking chunks were present, "reasoning_content".
// `empty_text_at` (null to ignore): set to where an empty text's `""` went in
// `out`, else to npos (a message with tool calls makes it null afterwards).
// `text`/`reasoning` are scratch buffers the caller reuses. false on
// malformed input.
bool write_flattened_content(std::string& out, bool& first, od::array chunks, std::string& text, std::string& reasoning,
                             std::size_t* empty_text_at);

// What read_usage_value found.
enum class usage_read {
    read,        // an object, valid: `raw` and `counts` are set
    not_object,  // null, a number...: untouched, the caller may copy it as any value
    malformed,   // an object that is not valid JSON: walked part way, so the
                 // value cannot be read again and the body is malformed
};

// A `usage` value: when it is an object, its raw JSON and its prompt,
// completion and total tokens (a count that is not an unsigned integer is
// left as it was; other members are validated, not read). `counts` is
// changed only when the result is usage_read::read.
usage_read read_usage_value(od::value& value, std::string_view& raw, usage_counts& counts);


// Appends `data: ` + json + "\n\n".
inline void append_sse_data(std::string& out, std::string_view json) {
    out += "data: ";
    out += json;
    out += "\n\n";
}

}  // namespace mistral_proxy::responses::detail
