#include "responses/moderations.hpp"

#include <array>
#include <initializer_list>
#include <vector>

#include "responses/json_copy.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::begin_member;
using detail::raw_value;

namespace {

// Sets the 400; every return then names the one local `request`, so NRVO
// applies (GCC 12 warns -Wrestrict on a moved std::string otherwise).
void refuse(moderation_request& request, std::string message, std::optional<std::string> param,
            std::optional<std::string> code = std::nullopt) {
    request.body.clear();
    request.error = errors::make_error(400, std::move(message), std::move(code), std::move(param));
}

// Messages are joined piece by piece: GCC 12 warns -Wrestrict (a false
// positive, bug 105329) on `"literal" + std::string` chains at -O3.
std::string text_of(std::initializer_list<std::string_view> pieces) {
    std::string out;
    for (const auto piece : pieces) {
        out.append(piece);
    }
    return out;
}

constexpr std::string_view input_shapes =
    "a string, an array of strings, or an array of {\"type\":\"text\",\"text\":...} parts";

// One element of an input array, appended to `out` as a JSON string. false
// with `request` refused when it cannot be classified.
bool append_input_item(od::value& item, std::size_t index, std::string& out, moderation_request& request) {
    const std::string where = text_of({"input[", std::to_string(index), "]"});
    od::json_type type;
    if (item.type().get(type) != simdjson::SUCCESS) {
        refuse(request, "request body is not valid JSON", where);
        return false;
    }
    std::string_view raw;
    if (type == od::json_type::string) {
        if (!raw_value(item, raw)) {
            refuse(request, "request body is not valid JSON", where);
            return false;
        }
        out += raw;
        return true;
    }
    od::object part;
    if (type != od::json_type::object || item.get_object().get(part) != simdjson::SUCCESS) {
        refuse(request, text_of({"'", where, "' must be a string or a {\"type\":\"text\",\"text\":...} part"}), where);
        return false;
    }
    std::string_view part_type;
    bool has_type = false;
    std::string_view text;  // raw JSON of a string
    bool text_is_string = false;
    for (auto field : part) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            refuse(request, "request body is not valid JSON", where);
            return false;
        }
        od::json_type value_type;
        if (value.type().get(value_type) != simdjson::SUCCESS) {
            refuse(request, "request body is not valid JSON", where);
            return false;
        }
        if (key == "type") {
            has_type = value_type == od::json_type::string && value.get_string().get(part_type) == simdjson::SUCCESS;
            if (!has_type) {
                part_type = {};
            }
        } else if (key == "text") {
            text_is_string = value_type == od::json_type::string && raw_value(value, text);
        }
    }
    if (has_type && part_type == "image_url") {
        refuse(request,
               text_of({"'", where,
                        "' is an image_url part: Mistral's moderation classifies text only, so images cannot be "
                        "moderated through this proxy; send the text to classify as a string or a "
                        "{\"type\":\"text\",\"text\":...} part"}),
               where, "unsupported_content");
        return false;
    }
    if (!has_type || part_type != "text") {
        refuse(request,
               text_of({"'", where, "' is a part of type ", has_type ? "'" : "", has_type ? part_type : "(none)",
                        has_type ? "'" : "", "; a moderation input part must be {\"type\":\"text\",\"text\":...}"}),
               where);
        return false;
    }
    if (!text_is_string) {
        refuse(request, text_of({"'", where, ".text' must be a string"}), text_of({where, ".text"}));
        return false;
    }
    out += text;
    return true;
}

// `input` as Mistral's: the raw string, or an array of strings. false with
// `request` refused when it cannot be.
bool map_input(od::value& value, std::string& out, moderation_request& request) {
    out.clear();
    od::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS) {
        refuse(request, "request body is not valid JSON", "input");
        return false;
    }
    std::string_view raw;
    if (type == od::json_type::string) {
        if (!raw_value(value, raw)) {
            refuse(request, "request body is not valid JSON", "input");
            return false;
        }
        out += raw;
        return true;
    }
    od::array items;
    if (type != od::json_type::array || value.get_array().get(items) != simdjson::SUCCESS) {
        refuse(request, text_of({"'input' must be ", input_shapes}), "input");
        return false;
    }
    out += '[';
    std::size_t index = 0;
    for (auto element : items) {
        od::value item;
        if (element.get(item) != simdjson::SUCCESS) {
            refuse(request, "request body is not valid JSON", "input");
            return false;
        }
        if (index > 0) {
            out += ',';
        }
        if (!append_input_item(item, index, out, request)) {
            return false;
        }
        ++index;
    }
    if (index == 0) {
        refuse(request, text_of({"'input' is an empty array: there is nothing to classify; send ", input_shapes}),
               "input");
        return false;
    }
    out += ']';
    return true;
}

}  // namespace

moderation_request map_moderation_request(std::string_view body) {
    moderation_request request;
    thread_local detail::json_reader reader;
    thread_local std::string input;
    od::document doc;
    od::object root;
    if (!reader.open_validated(body, doc, root)) {
        const auto first = body.find_first_not_of(" \t\r\n");
        refuse(request,
               first != std::string_view::npos && body[first] == '{'
                   ? std::string("request body is not valid JSON")
                   : text_of({"request body must be a JSON object with 'input' (", input_shapes, ")"}),
               std::nullopt);
        return request;
    }
    std::string model;  // raw JSON of a string; the default when empty
    bool has_input = false;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            refuse(request, "request body is not valid JSON", std::nullopt);
            return request;
        }
        if (key == "input") {
            if (!map_input(value, input, request)) {
                return request;
            }
            has_input = true;
        } else if (key == "model") {
            od::json_type type;
            std::string_view raw;
            if (value.type().get(type) != simdjson::SUCCESS) {
                refuse(request, "request body is not valid JSON", "model");
                return request;
            }
            if (type == od::json_type::null) {
                model.clear();
            } else if (type == od::json_type::string && raw_value(value, raw)) {
                model.assign(raw);
            } else {
                refuse(request, "'model' must be a string, e.g. \"omni-moderation-latest\"", "model");
                return request;
            }
        }
    }
    if (!has_input) {
        refuse(request, text_of({"you must provide 'input': ", input_shapes}), "input");
        return request;
    }
    std::string& out = request.body;
    out.reserve(input.size() + model.size() + 64);
    out += "{\"model\":";
    if (model.empty()) {
        json::append_json_string(out, default_moderation_model);
    } else {
        out += model;
    }
    out += ",\"input\":";
    out += input;
    out += '}';
    return request;
}

namespace {

struct category_flag {
    std::string_view name;
    bool value = false;
};
struct category_score {
    std::string_view name;
    std::string_view raw;  // the number as Mistral wrote it
    double value = 0;
};

// A `categories` object: name -> boolean (null: as if absent).
bool read_flags(od::value& value, std::vector<category_flag>& flags) {
    od::object object;
    if (value.get_object().get(object) != simdjson::SUCCESS) {
        return false;
    }
    for (auto field : object) {
        category_flag flag;
        od::value member;
        od::json_type type;
        if (field.unescaped_key().get(flag.name) != simdjson::SUCCESS ||
            field.value().get(member) != simdjson::SUCCESS || member.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        if (type == od::json_type::null) {
            continue;
        }
        if (member.get_bool().get(flag.value) != simdjson::SUCCESS) {
            return false;
        }
        flags.push_back(flag);
    }
    return true;
}

// A `category_scores` object: name -> number (null: as if absent).
bool read_scores(od::value& value, std::vector<category_score>& scores) {
    od::object object;
    if (value.get_object().get(object) != simdjson::SUCCESS) {
        return false;
    }
    for (auto field : object) {
        category_score score;
        od::value member;
        od::json_type type;
        if (field.unescaped_key().get(score.name) != simdjson::SUCCESS ||
            field.value().get(member) != simdjson::SUCCESS || member.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        if (type == od::json_type::null) {
            continue;
        }
        if (type != od::json_type::number) {
            return false;
        }
        // The token runs on to the next one: keep the number's own characters.
        const std::string_view token = member.raw_json_token();
        const auto end = token.find_first_not_of("0123456789+-.eE");
        score.raw = token.substr(0, end);
        if (score.raw.empty() || json::get_number(member, score.value) != simdjson::SUCCESS) {  // see json/number.hpp
            return false;
        }
        scores.push_back(score);
    }
    return true;
}

}  // namespace

body_result transform_moderation_response(std::string_view body, const response_rules& rules) {
    body_result result;
    const auto bad_body = [&]() -> body_result& {
        result.body.clear();
        result.error = errors::make_error(502, "upstream answered with a body that is not a moderation response",
                                          "upstream_bad_body");
        return result;
    };
    thread_local detail::json_reader reader;
    thread_local std::vector<category_flag> flags;
    thread_local std::vector<category_score> scores;
    od::document doc;
    od::object root;
    if (!reader.open(body, doc, root)) {
        return bad_body();
    }
    const auto& names = rules::openai_moderation_categories;
    const auto mistral_names = [&](std::size_t category) -> const std::vector<std::string>* {
        return category < rules.moderation_categories.size() ? &rules.moderation_categories[category] : nullptr;
    };
    std::string& out = result.body;
    out.reserve(512 + body.size());
    out += '{';
    bool first = true;
    bool saw_id = false;
    bool saw_model = false;
    bool saw_results = false;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            return bad_body();
        }
        if (key != "results") {
            od::json_type type;
            if (value.type().get(type) != simdjson::SUCCESS) {
                return bad_body();
            }
            if ((key == "id" || key == "model") && type != od::json_type::string) {
                return bad_body();
            }
            saw_id = saw_id || key == "id";
            saw_model = saw_model || key == "model";
            if (key == "usage") {
                std::string_view raw;
                usage_counts counts;
                const auto usage = detail::read_usage_value(value, raw, counts);
                if (usage == detail::usage_read::malformed) {
                    return bad_body();
                }
                if (usage == detail::usage_read::read) {
                    result.usage = counts;
                    begin_member(out, first, key);
                    out += raw;
                    continue;
                }
            }
            if (!detail::copy_member(out, first, key, value)) {
                return bad_body();
            }
            continue;
        }
        od::array items;
        if (value.get_array().get(items) != simdjson::SUCCESS) {
            return bad_body();
        }
        saw_results = true;
        begin_member(out, first, key);
        out += '[';
        bool first_item = true;
        for (auto element : items) {
            od::object item;
            if (element.get_object().get(item) != simdjson::SUCCESS) {
                return bad_body();
            }
            flags.clear();
            scores.clear();
            for (auto item_field : item) {
                std::string_view item_key;
                if (item_field.unescaped_key().get(item_key) != simdjson::SUCCESS) {
                    return bad_body();
                }
                od::value item_value = item_field.value();
                if (item_key == "categories") {
                    if (!read_flags(item_value, flags)) {
                        return bad_body();
                    }
                } else if (item_key == "category_scores") {
                    if (!read_scores(item_value, scores)) {
                        return bad_body();
                    }
                }
            }
            // Per OpenAI category: any mapped flag, the largest mapped score.
            std::array<bool, rules::openai_moderation_categories.size()> flagged_by{};
            std::array<const category_score*, rules::openai_moderation_categories.size()> top{};
            bool flagged = false;
            for (std::size_t c = 0; c < names.size(); ++c) {
                const auto* from = mistral_names(c);
                if (from == nullptr) {
                    continue;
                }
                for (const auto& mistral : *from) {
                    for (const auto& flag : flags) {
                        flagged_by[c] = flagged_by[c] || (flag.value && flag.name == mistral);
                    }
                    for (const auto& score : scores) {
                        if (score.name == mistral && (top[c] == nullptr || score.value > top[c]->value)) {
                            top[c] = &score;
                        }
                    }
                }
                flagged = flagged || flagged_by[c];
            }
            if (!first_item) {
                out += ',';
            }
            first_item = false;
            out += flagged ? "{\"flagged\":true,\"categories\":{" : "{\"flagged\":false,\"categories\":{";
            for (std::size_t c = 0; c < names.size(); ++c) {
                out += c == 0 ? "\"" : ",\"";
                out += names[c];
                out += flagged_by[c] ? "\":true" : "\":false";
            }
            out += "},\"category_scores\":{";
            for (std::size_t c = 0; c < names.size(); ++c) {
                out += c == 0 ? "\"" : ",\"";
                out += names[c];
                out += "\":";
                out += top[c] != nullptr ? top[c]->raw : std::string_view("0");
            }
            out += "},\"category_applied_input_types\":{";
            for (std::size_t c = 0; c < names.size(); ++c) {
                out += c == 0 ? "\"" : ",\"";
                out += names[c];
                out += "\":[\"text\"]";
            }
            out += "}}";
        }
        out += ']';
    }
    if (!saw_id || !saw_model || !saw_results || !detail::at_end(doc)) {
        return bad_body();
    }
    out += '}';
    return result;
}

}  // namespace mistral_proxy::responses
