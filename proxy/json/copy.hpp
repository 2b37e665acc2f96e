#pragma once
// The one copy-through JSON writer of the answer side and of the proxy's own
// translations (DESIGN.md "JSON rewriting"): parse once with simdjson
// On-Demand, copy untouched values as raw slices — each validated whole as it
// is copied (walk.hpp) — and write what changes with writer.hpp's escaping.
// (The request normalizer writes through its own arena of input slices, the
// same policy with zero copies: normalize/engine.hpp.) Every function reports
// failure by its return value; none throws. No Asio.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "json/walk.hpp"
#include "json/writer.hpp"

namespace mistral_proxy::json {

// A reusable copy of the input with SIMDJSON_PADDING spare bytes, for inputs
// (SSE data views, bodies) whose buffers do not promise the padding.
class padded_input {
public:
    simdjson::padded_string_view pad(std::string_view text) {
        if (text.empty()) {
            buffer_.clear();  // an empty view's data may be null: nothing to copy from
        } else {
            buffer_.assign(text);
        }
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
            validate(value, type, 0) != simdjson::SUCCESS ||
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
// The member is read in place (json::field_in: no copy of simdjson's fresh
// iterator state, which would stall on store forwarding).
inline bool member_of(simdjson::simdjson_result<od::field>& member, std::string_view& key, od::value& value) {
    if (member_of(member, key) != simdjson::SUCCESS) {
        return false;
    }
    value = field_in(member).value();
    return true;
}
inline bool member_of(simdjson::simdjson_result<od::field>& field, std::string_view& key, od::value& value,
                      od::json_type& type) {
    return member_of(field, key, value) && value.type().get(type) == simdjson::SUCCESS;
}

// Starts an object member: a comma unless it is the first, then "key":.
// `key` is unescaped text; it is escaped here.
inline void begin_member(std::string& out, bool& first, std::string_view key) {
    if (!first) {
        out += ',';
    }
    first = false;
    append_json_string(out, key);
    out += ':';
}

// The same for a name written in the code (a literal: nothing to escape), in
// one append. A stream event has a dozen of these; through the escaping path
// above they were an eighth of its cost. Where the input's key was matched
// against a name, write the name.
template <std::size_t N>
inline void begin_member(std::string& out, bool& first, const char (&name)[N]) {
    char text[N + 3];  // ',' '"' name '"' ':' (N counts the terminator)
    std::size_t n = 0;
    if (!first) {
        text[n++] = ',';
    }
    first = false;
    text[n++] = '"';
    std::memcpy(text + n, name, N - 1);
    n += N - 1;
    text[n++] = '"';
    text[n++] = ':';
    out.append(text, n);
}

// Raw JSON text of a value (a view into the input), validated whole: safe to
// send. false on malformed input.
inline bool raw_value(od::value& value, std::string_view& raw) {
    // Never the root (the rewriters open it as an object), so a container's
    // end is always found: no input end is needed.
    return validated_raw(value, 1, nullptr, raw);
}

// Raw JSON text of an object, validated whole, and the object rewound to be
// read again. false on malformed input.
bool raw_object(od::object& object, std::string_view& raw);

// The member `"key":value` as the input has it, from the key's opening quote
// to the value's end, when the key was written without escapes and nothing
// stands between it, the colon and the value; else empty. `raw` is the
// value's text in the input (raw_value), `key` the unescaped key.
//
// Sound without knowing where the input begins: the key's raw form is at
// least as long as its text (unescaping never lengthens), so the bytes read
// before `raw` are the input's. With no '"' or '\\' in the text, a quote n+3
// bytes before the value (n the text's length) cannot be an escaped quote
// inside the raw key (its text would then hold a '"'), so it opens the key,
// whose raw form is then exactly its text: those bytes are the member.
inline std::string_view member_text(std::string_view key, std::string_view raw) noexcept {
    const char* value = raw.data();
    const std::size_t n = key.size();
    if (value[-1] != ':' || value[-2] != '"' || value[-3 - static_cast<std::ptrdiff_t>(n)] != '"') {
        return {};
    }
    for (const char c : key) {
        if (c == '"' || c == '\\') {
            return {};
        }
    }
    return std::string_view(value - 3 - n, n + 3 + raw.size());
}

// Copies a member through unchanged: the input's bytes in one append when
// member_text finds them (the common case: no key escaping pass).
inline bool copy_member(std::string& out, bool& first, std::string_view key, od::value& value) {
    std::string_view raw;
    if (!raw_value(value, raw)) {
        return false;
    }
    if (const std::string_view whole = member_text(key, raw); !whole.empty()) {
        if (!first) {
            out += ',';
        }
        first = false;
        out += whole;
        return true;
    }
    begin_member(out, first, key);
    out += raw;
    return true;
}

void append_uint(std::string& out, std::uint64_t value);
void append_int(std::string& out, std::int64_t value);

}  // namespace mistral_proxy::json
