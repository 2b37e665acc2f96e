// The walk of a message's `content` (compiled as part of normalizer.cpp's
// translation unit, see the end of it): a string, or an array of parts, each
// reshaped where Mistral spells it differently (image_url, input_audio, file
// parts: rules/documents.cpp) and never dropped: what cannot be passed on is
// refused with a 400 naming the part. Gathers what the message-level steps
// need (the parts' texts for a system message, json_mode_hint's texts, whether
// an image was seen for vision_route).
#include "normalize/engine.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// ---------------------------------------------------------------------------
// Content parts

// The value of member `wanted` when it is a string (out empty otherwise); the rest is validated.
bool engine::read_inner_string(od::value& value, std::size_t depth, std::string_view wanted, piece& out) {
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    out = piece{};
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        piece p;
        od::json_type type;
        if (!capture(field.value(), depth + 1, p, type)) {
            return false;
        }
        if (name == wanted && type == od::json_type::string) {
            out = p;
        }
    }
    return true;
}



// One content part. Reshaped where Mistral spells it differently, never dropped:
// what cannot be passed on is refused with a 400 naming the part.
bool engine::read_part(od::value& value, std::size_t depth, piece& out, std::string_view& out_type,
                       std::size_t message_index, std::size_t part_index) {
    // Built only on the error path: no allocation per part.
    const auto where = [&] {
        return "messages[" + std::to_string(message_index) + "].content[" + std::to_string(part_index) + "]";
    };
    od::object object;
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    if (type != od::json_type::object) {
        return fail(where() + " must be an object, got " + std::string(kind_name(type)), where());
    }
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    const std::size_t base = members_.size();
    std::string_view part_type;
    hint_text text;
    bool openai_file = false;                       // {"type":"file","file":{...}}: OpenAI's shape, not Mistral's
    bool file_not_object = false;                   // a `file` member that is not an object ...
    od::json_type file_kind = od::json_type::null;  // ... of this kind
    file_fields file;
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        od::value& child = field.value();
        od::json_type child_type;
        if (auto e = child.type().get(child_type)) {
            return fail_json(e);
        }
        piece p;
        if (same_key(name, "image_url") && child_type == od::json_type::object) {
            if (!read_filtered(child, depth + 1, schema_.image_url, p)) {
                return false;
            }
        } else if (same_key(name, "input_audio") && child_type == od::json_type::object && on(rule_id::params)) {
            // OpenAI {data, format} -> Mistral's input_audio string (the base64 data).
            if (!read_inner_string(child, depth + 1, "data", p)) {
                return false;
            }
            if (p.empty()) {
                return refuse(where() + ".input_audio has no data: send the audio base64-encoded in input_audio.data",
                              where(), rule_id::params);
            }
            child_type = od::json_type::string;
            fire(rule_id::params);
        } else if (same_key(name, "file") && child_type == od::json_type::object) {
            if (!read_file_fields(child, depth + 1, file, p)) {
                return false;
            }
            openai_file = true;  // a duplicate key: the last wins
            file_not_object = false;
        } else if ((same_key(name, "text") || same_key(name, "refusal")) && child_type == od::json_type::string) {
            if (!capture_text(child, p, text)) {
                return false;
            }
        } else if (!capture(child, depth + 1, p, child_type)) {
            return false;
        } else if (same_key(name, "file")) {
            file_not_object = true;
            file_kind = child_type;
            openai_file = false;
        }
        if (same_key(name, "type")) {
            if (child_type != od::json_type::string) {
                return fail(where() + ".type must be a string", where() + ".type");
            }
            const std::string_view raw = view(p);
            part_type = raw.substr(1, raw.size() - 2);  // part types are plain names
        }
        push_member(base, name, p, child_type);
    }
    if (same_key(part_type, "file") && on(rule_id::documents)) {
        if (file_not_object && !openai_file) {
            return refuse(where() + ".file must be an object with file_data (a data URL) or file_id, got " +
                              std::string(kind_name(file_kind)),
                          where(), rule_id::documents);
        }
        if (openai_file) {
            members_.resize(base);
            return write_file_part(file, out, out_type, where());
        }
    }
    if (same_key(part_type, "refusal")) {
        // OpenAI's assistant refusal part: Mistral has none; its text is the message.
        part_type = "text";
        for (std::size_t i = base; i < members_.size(); ++i) {
            if (same_key(members_[i].key, "refusal")) {
                members_[i].key = "text";
            } else if (same_key(members_[i].key, "type")) {
                members_[i].value = piece{};
            }
        }
        fire(rule_id::params);
    }
    const rules::content_part_spec* spec = schema_.present ? schema_.part(part_type) : nullptr;
    if (schema_.present && spec == nullptr && on(rule_id::params)) {
        // A part type Mistral does not know: its content would be lost.
        std::string types;
        for (const auto& known : schema_.content_parts) {
            types += (types.empty() ? "" : ", ") + known.type;
        }
        return refuse(where() +
                          (part_type.empty() ? std::string(" has no type")
                                             : " is a '" + std::string(part_type.substr(0, 100)) +
                                                   "' part, which Mistral's chat does not take") +
                          "; send it as one of the part types Mistral takes: " + types,
                      where(), rule_id::params);
    }
    // An OpenAI file part with the documents rule off goes as the client wrote it.
    const bool keep_all = openai_file && same_key(part_type, "file");
    if (same_key(part_type, "image_url")) {
        has_image_ = true;
    }
    if (!text.text.empty()) {
        s_.hint_texts.push_back(text);  // looked at only if json_mode_hint may apply
    }
    for (std::size_t i = base; i < members_.size(); ++i) {
        if (same_key(part_type, "text") && same_key(members_[i].key, "text") && members_[i].type == od::json_type::string) {
            s_.texts.push_back(members_[i].value.inner());
        }
    }
    out_type = part_type;
    const std::size_t start = mark();
    arena_.push_back('{');
    bool first = true;
    for (std::size_t i = base; i < members_.size(); ++i) {
        member& m = members_[i];
        if (spec != nullptr && on(rule_id::params) && !keep_all && !rules::contains(spec->keys, m.key)) {
            fire(rule_id::params);  // keys Mistral's part lacks (cache_control, ...): not content
            continue;
        }
        if (!first) {
            arena_.push_back(',');
        }
        first = false;
        key(m.key);
        if (same_key(m.key, "type") && m.value.empty()) {
            arena_.append("\"text\"");
        } else {
            append(m.value);
        }
    }
    arena_.push_back('}');
    members_.resize(base);
    out = since(start);
    return true;
}

bool engine::read_content(od::value& value, std::size_t depth, piece& out, bool& is_empty, std::size_t message_index) {
    const auto where = [&] { return "messages[" + std::to_string(message_index) + "].content"; };
    content_ = content_facts{};
    od::json_type type;
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    if (type == od::json_type::string) {
        // Captured in its slot (looked at only if json_mode_hint may apply):
        // built on the stack, it was copied with a 16-byte load over the
        // capture's two 8-byte stores, a failed store forward per message.
        hint_text& text = s_.hint_texts.emplace_back();
        if (!capture_text(value, out, text)) {
            return false;
        }
        is_empty = text.text.empty();  // an escape is never empty
        return true;
    }
    if (type == od::json_type::null) {
        is_empty = true;
        return capture(value, depth, out, type);
    }
    if (type != od::json_type::array) {
        return fail(where() + " must be a string, an array of content parts or null, got " +
                        std::string(kind_name(type)),
                    where());
    }
    od::array array;
    if (auto e = value.get_array().get(array)) {
        return fail_json(e);
    }
    // Parts are written first (each into the arena), then joined.
    const std::size_t parts_base = members_.size();
    std::size_t index = 0;
    for (auto item_result : array) {
        od::value& item = json::value_in(item_result);
        if (auto e = item_result.error()) {
            return fail_json(e);
        }
        piece part;
        std::string_view part_type;
        if (!read_part(item, depth + 1, part, part_type, message_index, index)) {
            return false;
        }
        if (!same_key(part_type, "text")) {
            if (content_.first_other == SIZE_MAX) {
                content_.first_other = index;
            }
            if (content_.first_not_system == SIZE_MAX && schema_.present &&
                !rules::contains(schema_.system_content_part_types, part_type)) {
                content_.first_not_system = index;
                content_.first_not_system_type = part_type;
            }
        }
        push_element(part, od::json_type::object);
        ++index;
    }
    is_empty = members_.size() == parts_base;
    write_array(parts_base, out);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail
