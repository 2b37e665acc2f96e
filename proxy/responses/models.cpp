// /v1/models and /v1/models/{id} with the rule files' aliases (see models.hpp).
#include "responses/models.hpp"

#include <vector>

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::append_int;
using detail::begin_member;
using detail::copy_member;

namespace {

void append_synthesized(std::string& out, const model_alias& alias, std::int64_t created) {
    out += R"({"id":)";
    json::append_json_string(out, alias.alias);
    out += R"(,"object":"model","created":)";
    append_int(out, created);
    out += R"(,"owned_by":)";
    json::append_json_string(out, alias_owner);
    out += ',';
    json::append_json_string(out, alias_target_member);
    out += ':';
    json::append_json_string(out, alias.target);
    out += '}';
}

// The target's card rewritten for the alias; false when `card` is not an object.
bool append_from_card(std::string& out, std::string_view card, const model_alias& alias) {
    detail::json_reader reader;
    od::document doc;
    od::object root;
    if (!reader.open(card, doc, root)) {
        return false;
    }
    const std::size_t mark = out.size();
    out += '{';
    bool first = true;
    begin_member(out, first, "id");
    json::append_json_string(out, alias.alias);
    for (auto field : root) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            out.resize(mark);
            return false;
        }
        if (key == "id" || key == "owned_by" || key == "aliases" || key == alias_target_member) {
            continue;
        }
        od::value value = field.value();
        if (!copy_member(out, first, key, value)) {
            out.resize(mark);
            return false;
        }
    }
    if (!detail::at_end(doc)) {
        out.resize(mark);
        return false;
    }
    begin_member(out, first, "owned_by");
    json::append_json_string(out, alias_owner);
    begin_member(out, first, alias_target_member);
    json::append_json_string(out, alias.target);
    out += '}';
    return true;
}

struct upstream_card {
    std::string id;
    std::string raw;
};

}  // namespace

const model_alias* find_alias(std::span<const model_alias> aliases, std::string_view id) noexcept {
    for (const model_alias& alias : aliases) {
        if (alias.alias == id) {
            return &alias;
        }
    }
    return nullptr;
}

body_result merge_model_list(std::string_view upstream_body, std::span<const model_alias> aliases,
                             std::int64_t created) {
    body_result result;
    const auto bad_body = [&]() -> body_result& {
        result.body.clear();
        result.error = errors::make_error(502, "upstream answered /v1/models with a body that is not a model list",
                                          "upstream_bad_body");
        return result;
    };
    detail::json_reader reader;
    od::document doc;
    od::object root;
    if (!reader.open(upstream_body, doc, root)) {
        return bad_body();
    }
    std::vector<upstream_card> cards;
    std::vector<std::string_view> added;
    std::string& out = result.body;
    out += '{';
    bool first = true;
    bool saw_data = false;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            return bad_body();
        }
        if (key != "data") {
            if (!copy_member(out, first, key, value)) {
                return bad_body();
            }
            continue;
        }
        od::array data;
        if (value.get_array().get(data) != simdjson::SUCCESS) {
            return bad_body();
        }
        saw_data = true;
        begin_member(out, first, key);
        out += '[';
        for (auto element : data) {
            od::object card;
            std::string_view raw;
            if (element.get_object().get(card) != simdjson::SUCCESS || !detail::raw_object(card, raw)) {
                return bad_body();
            }
            std::string_view id;
            if (card.find_field_unordered("id").get_string().get(id) != simdjson::SUCCESS) {
                id = {};
            }
            if (!cards.empty()) {
                out += ',';
            }
            out += raw;
            cards.push_back(upstream_card{std::string(id), std::string(raw)});
        }
        // The aliases close the list; their cards come from a parser of their own.
        for (const model_alias& alias : aliases) {
            bool skip = false;
            for (const upstream_card& card : cards) {
                skip = skip || card.id == alias.alias;
            }
            for (const std::string_view name : added) {
                skip = skip || name == alias.alias;
            }
            if (skip) {
                continue;
            }
            if (!cards.empty() || !added.empty()) {
                out += ',';
            }
            added.push_back(alias.alias);
            const upstream_card* target = nullptr;
            for (const upstream_card& card : cards) {
                if (card.id == alias.target) {
                    target = &card;
                    break;
                }
            }
            if (target == nullptr || !append_from_card(out, target->raw, alias)) {
                append_synthesized(out, alias, created);
            }
        }
        out += ']';
    }
    if (!saw_data || !detail::at_end(doc)) {
        return bad_body();
    }
    out += '}';
    if (added.empty()) {
        result.unchanged = true;
        result.body.clear();
    } else {
        result.hits.add(response_rule::model_alias);
    }
    return result;
}

std::string alias_model_card(std::string_view target_card, const model_alias& alias, std::int64_t created) {
    std::string out;
    if (target_card.empty() || !append_from_card(out, target_card, alias)) {
        out.clear();
        append_synthesized(out, alias, created);
    }
    return out;
}

}  // namespace mistral_proxy::responses
