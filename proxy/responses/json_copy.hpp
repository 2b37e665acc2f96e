#pragma once
// Internal to proxy/responses: the copy-through writing shared by the response
// transforms (DESIGN.md "JSON rewriting"): walk the upstream JSON once with
// simdjson On-Demand, copy untouched values as raw slices, write what changes.
// Every function reports failure by its return value; none throws.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "errors/json_writer.hpp"
#include "json/walk.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::responses::detail {

namespace od = simdjson::ondemand;

// A reusable copy of the input with SIMDJSON_PADDING spare bytes, for inputs
// (SSE data views, bodies) whose buffers do not promise the padding.
class padded_input {
public:
    simdjson::padded_string_view pad(std::string_view text) {
        buffer_.assign(text);
        buffer_.append(simdjson::SIMDJSON_PADDING, '\0');
        return simdjson::padded_string_view(buffer_.data(), text.size(), buffer_.size());
    }

private:
    std::string buffer_;
};

// A parser and its padded input, reused between calls (one per thread or per
// stream). open() parses `text` as a JSON object; false when it is not one.
// Parsed once, with On-Demand; what the rewriters copy through raw is
// validated as it is copied (raw_value, raw_object: json/walk.hpp's policy).
class json_reader {
public:
    bool open(std::string_view text, od::document& doc, od::object& root) {
        const simdjson::padded_string_view padded = input_.pad(text);
        return parser_.iterate(padded).get(doc) == simdjson::SUCCESS &&
               doc.get_object().get(root) == simdjson::SUCCESS;
    }

    // open() for a request read piecemeal (the moderation request): the whole
    // document validated first — nothing after the object either — then
    // rewound for reading.
    bool open_validated(std::string_view text, od::document& doc, od::object& root) {
        const simdjson::padded_string_view padded = input_.pad(text);
        od::value value;
        od::json_type type;
        const char* location = nullptr;
        if (parser_.iterate(padded).get(doc) != simdjson::SUCCESS || doc.get_value().get(value) != simdjson::SUCCESS ||
            value.type().get(type) != simdjson::SUCCESS || type != od::json_type::object ||
            json::validate(value, type, 0) != simdjson::SUCCESS ||
            doc.current_location().get(location) != simdjson::OUT_OF_BOUNDS) {
            return false;
        }
        doc.rewind();
        return doc.get_object().get(root) == simdjson::SUCCESS;
    }

private:
    padded_input input_;
    od::parser parser_;
};

// After the root object was iterated: true when nothing follows it (On-Demand
// accepts `{..}}` unless asked).
inline bool at_end(od::document& doc) {
    const char* location = nullptr;
    return doc.current_location().get(location) == simdjson::OUT_OF_BOUNDS;
}

// A member of an object being iterated (`for (auto field : object)`): its
// unescaped key and its value, and with `type` the value's JSON type. false
// on malformed input.
inline bool member_of(simdjson::simdjson_result<od::field> member, std::string_view& key, od::value& value) {
    od::field field;
    if (json::member_of(std::move(member), field, key) != simdjson::SUCCESS) {
        return false;
    }
    value = field.value();
    return true;
}
inline bool member_of(simdjson::simdjson_result<od::field> field, std::string_view& key, od::value& value,
                      od::json_type& type) {
    return member_of(std::move(field), key, value) && value.type().get(type) == simdjson::SUCCESS;
}

// Starts an object member: a comma unless it is the first, then "key":.
// `key` is unescaped text; it is escaped here.
inline void begin_member(std::string& out, bool& first, std::string_view key) {
    if (!first) {
        out += ',';
    }
    first = false;
    errors::append_json_string(out, key);
    out += ':';
}

// Raw JSON text of a value (a view into the input), validated whole: safe to
// send. false on malformed input.
inline bool raw_value(od::value& value, std::string_view& raw) {
    // Never the root (the rewriters open it as an object), so a container's
    // end is always found: no input end is needed.
    return json::validated_raw(value, 1, nullptr, raw);
}

// Raw JSON text of an object, validated whole, and the object rewound to be
// read again. false on malformed input.
bool raw_object(od::object& object, std::string_view& raw);

// Copies a member through unchanged.
inline bool copy_member(std::string& out, bool& first, std::string_view key, od::value& value) {
    std::string_view raw;
    if (!raw_value(value, raw)) {
        return false;
    }
    begin_member(out, first, key);
    out += raw;
    return true;
}

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

// Reads prompt/completion/total tokens of a `usage` object. Unknown members are
// skipped. false on malformed input.
bool read_usage(od::object usage, usage_counts& counts);

// A function call's `arguments` as OpenAI wants them: a JSON string. Mistral
// may send an object (the schema allows it); it is written as its JSON text.
// Returns false on malformed input; sets `repaired` when it had to convert.
bool write_arguments(std::string& out, od::value& arguments, bool& repaired);

// A `function` object of a tool call with `arguments` written by
// write_arguments(); other members copied. `has_name` tells whether it named a
// function (a whole call, not a continuation fragment). false on malformed input.
bool write_function(std::string& out, od::object function, bool& has_name, bool& repaired);

// A content list written as OpenAI's members: "content" (the text, or null when
// there is none or when it is empty and `null_when_empty`) and, when thinking
// chunks were present, "reasoning_content". `text`/`reasoning` are scratch
// buffers the caller reuses. false on malformed input.
bool write_flattened_content(std::string& out, bool& first, od::array chunks, std::string& text, std::string& reasoning,
                             bool null_when_empty);

// A `usage` value: when it is an object, its raw JSON and counts. false when it
// is not an object or is malformed.
bool read_usage_value(od::value& value, std::string_view& raw, usage_counts& counts);

void append_uint(std::string& out, std::uint64_t value);
void append_int(std::string& out, std::int64_t value);

// Appends `data: ` + json + "\n\n".
inline void append_sse_data(std::string& out, std::string_view json) {
    out += "data: ";
    out += json;
    out += "\n\n";
}

}  // namespace mistral_proxy::responses::detail
