// The copy-through JSON writing shared by the answer rewriters (see json_copy.hpp).
#include "responses/json_copy.hpp"


namespace mistral_proxy::responses::detail {

namespace {

// FNV-1a: tiny, stable across builds and platforms (std::hash is neither).
constexpr std::uint64_t fnv_offset = 14695981039346656037ULL;
constexpr std::uint64_t fnv_prime = 1099511628211ULL;

std::uint64_t fnv1a(std::uint64_t hash, std::string_view bytes) noexcept {
    for (const char c : bytes) {
        hash ^= static_cast<std::uint8_t>(c);
        hash *= fnv_prime;
    }
    return hash;
}

std::uint64_t fnv1a(std::uint64_t hash, std::uint64_t value) noexcept {
    for (int i = 0; i < 8; ++i) {
        hash ^= (value >> (8 * i)) & 0xFF;
        hash *= fnv_prime;
    }
    return hash;
}

// Text of a {"type":"text","text":...} chunk (the type may be absent: TextChunk's default).
bool append_chunk_text(od::object chunk, std::string& text, bool& any) {
    for (auto field : chunk) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            return false;
        }
        if (key == "text") {
            std::string_view value;
            if (field.value().get_string().get(value) != simdjson::SUCCESS) {
                return false;
            }
            text += value;
            any = true;
        }
    }
    return true;
}

}  // namespace

void append_tool_call_id(std::string& out, std::string_view answer_id, std::uint64_t choice, std::uint64_t call) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uint64_t hash = fnv1a(fnv1a(fnv1a(fnv_offset, answer_id), choice), call);
    for (int i = 0; i < 9; ++i) {
        out += alphabet[hash % 62];
        hash /= 62;
        if (hash == 0) {
            hash = fnv1a(fnv_offset, static_cast<std::uint64_t>(i) + call);
        }
    }
}

bool flatten_content(od::array chunks, std::string& text, std::string& reasoning, bool& any_text, bool& any_reasoning) {
    for (auto element : chunks) {
        od::object chunk;
        if (element.get_object().get(chunk) != simdjson::SUCCESS) {
            return false;
        }
        std::string_view type = "text";
        // `type` may follow the payload; find it first, then read the payload.
        od::value type_value;
        if (chunk.find_field_unordered("type").get(type_value) == simdjson::SUCCESS) {
            if (type_value.get_string().get(type) != simdjson::SUCCESS) {
                return false;
            }
        }
        // The view of `type` points into the parser's string buffer, which later
        // get_string() calls do not overwrite within one document.
        if (chunk.reset().error() != simdjson::SUCCESS) {
            return false;
        }
        if (type == "text") {
            if (!append_chunk_text(chunk, text, any_text)) {
                return false;
            }
        } else if (type == "thinking") {
            od::array thinking;
            if (chunk.find_field_unordered("thinking").get_array().get(thinking) != simdjson::SUCCESS) {
                continue;  // ThinkChunk requires it; a chunk without it carries nothing to keep
            }
            for (auto part : thinking) {
                od::object part_object;
                if (part.get_object().get(part_object) != simdjson::SUCCESS) {
                    return false;
                }
                std::string_view part_type = "text";
                od::value part_type_value;
                if (part_object.find_field_unordered("type").get(part_type_value) == simdjson::SUCCESS &&
                    part_type_value.get_string().get(part_type) != simdjson::SUCCESS) {
                    return false;
                }
                if (part_object.reset().error() != simdjson::SUCCESS) {
                    return false;
                }
                if (part_type == "text" && !append_chunk_text(part_object, reasoning, any_reasoning)) {
                    return false;
                }
            }
        }
    }
    return true;
}

bool write_arguments(std::string& out, od::value& arguments, bool& repaired) {
    od::json_type type;
    if (arguments.type().get(type) != simdjson::SUCCESS) {
        return false;
    }
    std::string_view raw;
    if (!raw_value(arguments, raw)) {
        return false;
    }
    if (type == od::json_type::string) {
        out += raw;
        return true;
    }
    // An object (or anything else) becomes the string of its JSON text.
    json::append_json_string(out, raw);
    repaired = true;
    return true;
}

bool write_function(std::string& out, od::object function, bool& has_name, bool& repaired) {
    out += '{';
    bool first = true;
    for (auto field : function) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            return false;
        }
        if (key == "name") {
            std::string_view name;
            if (value.get_string().get(name) != simdjson::SUCCESS) {
                return false;
            }
            has_name = !name.empty();
            begin_member(out, first, "name");
            json::append_json_string(out, name);
        } else if (key == "arguments") {
            begin_member(out, first, "arguments");
            if (!write_arguments(out, value, repaired)) {
                return false;
            }
        } else if (!copy_member(out, first, key, value)) {
            return false;
        }
    }
    out += '}';
    return true;
}

bool write_flattened_content(std::string& out, bool& first, od::array chunks, std::string& text, std::string& reasoning,
                             std::size_t* empty_text_at) {
    text.clear();
    reasoning.clear();
    bool any_text = false;
    bool any_reasoning = false;
    if (!flatten_content(chunks, text, reasoning, any_text, any_reasoning)) {
        return false;
    }
    begin_member(out, first, "content");
    if (empty_text_at != nullptr) {
        *empty_text_at = any_text && text.empty() ? out.size() : std::string::npos;
    }
    if (any_text) {
        json::append_json_string(out, text);
    } else {
        out += "null";
    }
    if (any_reasoning) {
        begin_member(out, first, "reasoning_content");
        json::append_json_string(out, reasoning);
    }
    return true;
}

usage_read read_usage_value(od::value& value, std::string_view& raw, usage_counts& counts) {
    // One walk: each member is validated as it is read, a count through
    // get_uint64 (which checks the number, and leaves a value it refuses,
    // say 1.5, to validate() as any other), and the object's bytes run from
    // its first token to where the walk left off. `usage` never ends the
    // answer, so that end is always known.
    const std::string_view token = value.raw_json_token();
    od::object usage;
    if (const auto e = value.get_object().get(usage)) {
        // simdjson refuses another type before it moves: nothing was walked.
        return e == simdjson::INCORRECT_TYPE ? usage_read::not_object : usage_read::malformed;
    }
    usage_counts read = counts;
    for (auto member : usage) {
        od::field& field = json::field_in(member);
        std::string_view key;
        if (json::member_of(member, key) != simdjson::SUCCESS) {
            return usage_read::malformed;
        }
        od::value& child = field.value();
        od::json_type type;
        if (child.type().get(type) != simdjson::SUCCESS) {
            return usage_read::malformed;
        }
        std::uint64_t* slot = nullptr;
        if (type == od::json_type::number) {
            if (key == "prompt_tokens") {
                slot = &read.prompt_tokens;
            } else if (key == "completion_tokens") {
                slot = &read.completion_tokens;
            } else if (key == "total_tokens") {
                slot = &read.total_tokens;
            }
        }
        if (slot != nullptr && child.get_uint64().get(*slot) == simdjson::SUCCESS) {
            continue;
        }
        if (json::validate(child, type, 2) != simdjson::SUCCESS) {
            return usage_read::malformed;
        }
    }
    raw = json::extent(token, value, od::json_type::object, nullptr);
    if (raw.empty()) {
        return usage_read::malformed;
    }
    counts = read;
    return usage_read::read;
}

}  // namespace mistral_proxy::responses::detail
