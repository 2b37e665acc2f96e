// Rule `documents` (SPEC §6): OpenAI `file` content parts -> what Mistral's
// chat reads (document_url, image_url, or Mistral's file part), never dropped:
// what cannot be passed on is refused naming the part. Settings: `documents:`
// of the rule file (document_types, image_types; read in rules/rule_set.cpp).
// Compiled as part of normalizer.cpp's translation unit (see the end of it).
#include <algorithm>
#include <cctype>

#include "normalize/engine.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::normalize::detail {
namespace {

// `list` holds lower-case media types (the rule set lowers them when it loads).
bool has_media_type(const std::vector<std::string>& list, std::string_view type) noexcept {
    return std::any_of(list.begin(), list.end(),
                       [&](const std::string& item) { return equals_ignoring_case(item, type); });
}

// "data:application/pdf;base64,JVBER..." -> "application/pdf". False unless it is
// a base64 data URL (RFC 2397) with a media type and some data. Only its head is
// looked at: a 20 MB document costs nothing here.
bool data_url_media_type(std::string_view url, std::string_view& media) noexcept {
    constexpr std::string_view scheme = "data:";
    constexpr std::size_t max_head = 256;
    if (url.size() <= scheme.size() || !equals_ignoring_case(url.substr(0, scheme.size()), scheme)) {
        return false;
    }
    const std::size_t comma = url.substr(0, max_head).find(',');
    if (comma == std::string_view::npos || comma + 1 == url.size()) {
        return false;
    }
    const std::string_view head = url.substr(scheme.size(), comma - scheme.size());
    const std::size_t last = head.rfind(';');
    if (last == std::string_view::npos || !equals_ignoring_case(head.substr(last + 1), "base64")) {
        return false;
    }
    media = head.substr(0, head.find(';'));
    return !media.empty();
}

// Mistral's file ids are UUIDs (FileChunk.file_id, format uuid): 8-4-4-4-12 hex
// digits, or the 32 digits alone (pydantic takes both).
bool is_uuid(std::string_view id) noexcept {
    if (id.size() != 36 && id.size() != 32) {
        return false;
    }
    for (std::size_t i = 0; i < id.size(); ++i) {
        const char c = id[i];
        const bool dash = id.size() == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
        const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex) {
            return false;
        }
    }
    return true;
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        out += (out.empty() ? "" : std::string(separator)) + item;
    }
    return out.empty() ? std::string("(none)") : out;
}

// The `file` object of an OpenAI file part: file_data, file_id and filename
// kept (as raw strings and unescaped texts), the rest validated; `out` is the
// whole object's bytes.
bool engine::read_file_fields(od::value& value, std::size_t depth, file_fields& fields, piece& out) {
    fields = file_fields{};
    const std::string_view token = value.raw_json_token();
    od::object object;
    if (auto e = value.get_object().get(object)) {
        return fail_json(e);
    }
    for (auto field_result : object) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        od::value& child = field.value();
        od::json_type type;
        if (auto e = child.type().get(type)) {
            return fail_json(e);
        }
        file_member* slot = same_key(name, "file_data")  ? &fields.data
                            : same_key(name, "file_id")  ? &fields.id
                            : same_key(name, "filename") ? &fields.name
                                                         : nullptr;
        piece p;
        std::string_view text;
        if (slot != nullptr && type == od::json_type::string) {
            if (!capture_string(child, p, text)) {
                return false;
            }
        } else if (!capture(child, depth + 1, p, type)) {
            return false;
        }
        if (slot != nullptr) {
            *slot = file_member{type != od::json_type::null, type, p, text};  // a duplicate key: the last wins
        }
    }
    out = extent(token, value, od::json_type::object);
    return true;
}

// documents: an OpenAI file part as what Mistral's chat reads. A PDF (any of the
// rule file's document_types) as a data URL -> document_url with that same URL
// (DocumentURLChunk's document_url is a plain string, and Mistral takes base64
// data URLs for documents), an image -> image_url; a Mistral file id (UUID) ->
// Mistral's file part. Anything else is refused, naming the part.
bool engine::write_file_part(const file_fields& f, piece& out, std::string_view& out_type, const std::string& where) {
    const auto send_instead = [&] {
        return " Send a PDF as file.file_data, a data URL (data:application/pdf;base64,<the file, base64-encoded>), "
               "or upload it to Mistral (POST /v1/files through this proxy, purpose ocr) and send the id it returns "
               "as file.file_id.";
    };
    if (f.name.present && f.name.type != od::json_type::string) {
        return refuse(where + ".file.filename must be a string, got " + std::string(kind_name(f.name.type)), where,
                      rule_id::documents);
    }
    fire(rule_id::documents);
    const std::size_t start = mark();
    if (f.data.present) {
        std::string_view media;
        if (f.data.type != od::json_type::string || !data_url_media_type(f.data.text, media)) {
            return refuse(where + ".file.file_data must be a base64 data URL; got " +
                              (f.data.type == od::json_type::string
                                   ? "text starting '" + std::string(f.data.text.substr(0, 24)) + "'"
                                   : std::string(kind_name(f.data.type))) +
                              "." + send_instead(),
                          where, rule_id::documents);
        }
        if (has_media_type(rules_.document_types, media)) {
            arena_.append("{\"type\":\"document_url\",\"document_url\":");
            append(f.data.value);
            if (f.name.present) {
                arena_.append(",\"document_name\":");
                append(f.name.value);
            }
            arena_.push_back('}');
            out_type = "document_url";
        } else if (has_media_type(rules_.image_types, media)) {
            arena_.append("{\"type\":\"image_url\",\"image_url\":");
            append(f.data.value);
            arena_.push_back('}');
            out_type = "image_url";
            has_image_ = true;  // vision_route applies as to any image
        } else {
            return refuse(where + ".file.file_data is " + std::string(media.substr(0, 100)) +
                              ", which Mistral's chat does not read; it reads documents of type " +
                              joined(rules_.document_types) + " and images of type " + joined(rules_.image_types) +
                              ". Convert the file to PDF, or send its text in a text part.",
                          where, rule_id::documents);
        }
    } else if (f.id.present) {
        if (f.id.type != od::json_type::string || !is_uuid(f.id.text)) {
            return refuse(
                where + ".file.file_id " +
                    (f.id.type == od::json_type::string ? std::string("'").append(f.id.text.substr(0, 100)) + "'"
                                                        : std::string("(") + std::string(kind_name(f.id.type)) + ")") +
                    " is not a Mistral file id (a UUID): Mistral cannot read files stored at OpenAI." + send_instead(),
                where, rule_id::documents);
        }
        arena_.append("{\"type\":\"file\",\"file_id\":");
        append(f.id.value);
        arena_.push_back('}');
        out_type = "file";
    } else {
        return refuse(where + ".file has neither file_data nor file_id." + send_instead(), where, rule_id::documents);
    }
    out = since(start);
    return true;
}

}  // namespace
}  // namespace mistral_proxy::normalize::detail

namespace mistral_proxy::rules::load {

// `documents:` of a rule file (rules/README.md).
void parse_documents(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& sub, const YAML::Node& sub_key,
                                             const YAML::Node& types) {
        const std::string path = ys::path_of(key, sub);
        std::vector<std::string>* target = sub == "document_types" ? &set->document_types
                                           : sub == "image_types"  ? &set->image_types
                                                                   : nullptr;
        if (target == nullptr) {
            ys::fail_unknown_key(file, sub_key, sub, key, "document_types, image_types");
        }
        auto list = string_list(file, sub_key, types, path);
        for (std::size_t i = 0; i < list.size(); ++i) {
            std::string& type = list[i];
            std::transform(type.begin(), type.end(), type.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            const auto slash = type.find('/');
            if (slash == std::string::npos || slash == 0 || slash + 1 == type.size() ||
                type.find_first_of(";, \t") != std::string::npos) {
                ys::fail(file, types[i], path + "[" + std::to_string(i) + "]: '" + type +
                                             "' is not a media type (type/subtype, e.g. application/pdf)");
            }
        }
        *target = std::move(list);
    });
}

}  // namespace mistral_proxy::rules::load
