// The input item list and deletion answers of stored responses (see item_list.hpp).
#include "openai_responses/item_list.hpp"

#include <simdjson.h>

#include <charconv>
#include <vector>

#include "json/writer.hpp"

namespace mistral_proxy::openai_responses {

namespace {

// Decodes %XX and '+' of a query value (an item id is plain ASCII in practice).
std::string decode(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < value.size()) {
            int byte = 0;
            const auto [end, ec] = std::from_chars(value.data() + i + 1, value.data() + i + 3, byte, 16);
            if (ec == std::errc{} && end == value.data() + i + 3) {
                out += static_cast<char>(byte);
                i += 2;
            } else {
                out += c;
            }
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

parsed_item_query parse_item_list_query(std::string_view query) {
    parsed_item_query parsed;
    if (query.starts_with('?')) {
        query.remove_prefix(1);
    }
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        const auto name = pair.substr(0, eq);
        const auto value = eq == std::string_view::npos ? std::string() : decode(pair.substr(eq + 1));
        if (name == "order") {
            if (value != "asc" && value != "desc") {
                parsed.error = errors::make_error(400, "order must be 'asc' or 'desc', got '" + value + "'",
                                                  "invalid_value", "order");
                return parsed;
            }
            parsed.query.ascending = value == "asc";
        } else if (name == "limit") {
            std::size_t limit = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
            if (ec != std::errc{} || end != value.data() + value.size() || limit < 1 || limit > 100) {
                parsed.error = errors::make_error(400, "limit must be an integer from 1 to 100, got '" + value + "'",
                                                  "invalid_value", "limit");
                return parsed;
            }
            parsed.query.limit = limit;
        } else if (name == "after") {
            parsed.query.after = value;
        }
        // include[] and other parameters change nothing the proxy stores.
    }
    return parsed;
}

item_list_result build_item_list(std::string_view input_items, const item_list_query& query) {
    item_list_result result;
    simdjson::dom::parser parser;
    const simdjson::padded_string padded(input_items.empty() ? std::string_view("[]") : input_items);
    simdjson::dom::array items;
    if (parser.parse(padded).get_array().get(items) != simdjson::SUCCESS) {
        result.error = errors::make_error(500, "the stored input items of this response are unreadable", "server_error");
        return result;
    }
    // Each item's minified text, copied at once: to_string() reuses one buffer.
    std::vector<std::string> texts;
    std::vector<std::string> ids;
    for (simdjson::dom::element item : items) {
        texts.emplace_back(simdjson::to_string(item));
        std::string_view id;
        if (item["id"].get_string().get(id) != simdjson::SUCCESS) {
            id = {};  // an item without a string id: "" (GCC ignores a (void) cast on warn_unused_result)
        }
        ids.emplace_back(id);
    }
    std::vector<std::size_t> order(texts.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = query.ascending ? i : order.size() - 1 - i;
    }
    std::size_t start = 0;
    if (!query.after.empty()) {
        while (start < order.size() && ids[order[start]] != query.after) {
            ++start;
        }
        if (start == order.size()) {
            result.error = errors::make_error(400, "after: no input item '" + query.after + "' in this response",
                                              "invalid_value", "after");
            return result;
        }
        ++start;
    }
    const std::size_t end = std::min(order.size(), start + query.limit);
    std::string& out = result.body;
    out = R"({"object":"list","data":[)";
    for (std::size_t i = start; i < end; ++i) {
        out += i == start ? "" : ",";
        out += texts[order[i]];
    }
    out += R"(],"first_id":)";
    json::append_json_string(out, start < end ? std::string_view(ids[order[start]]) : std::string_view());
    out += R"(,"last_id":)";
    json::append_json_string(out, start < end ? std::string_view(ids[order[end - 1]]) : std::string_view());
    out += R"(,"has_more":)";
    out += end < order.size() ? "true" : "false";
    out += '}';
    return result;
}

std::string deleted_response(std::string_view id) {
    std::string out = R"({"id":)";
    json::append_json_string(out, id);
    out += R"(,"object":"response","deleted":true})";
    return out;
}

errors::openai_error response_not_found(std::string_view id, std::string_view param) {
    auto error = errors::make_error(404, "Response with id '" + std::string(id) + "' not found.", std::nullopt,
                                    param.empty() ? std::nullopt : std::optional<std::string>(param));
    error.type = "invalid_request_error";  // as OpenAI answers it
    return error;
}

errors::openai_error previous_response_not_found(std::string_view id) {
    auto error = response_not_found(id, "previous_response_id");
    error.message = "Previous response with id '" + std::string(id) + "' not found.";
    return error;
}

errors::openai_error store_disabled_error(bool previous) {
    const std::string field = previous ? "previous_response_id" : "item_reference";
    return errors::make_error(400,
                              field +
                                  " needs stored responses, and this proxy keeps none (responses.store: off); "
                                  "send the whole conversation in input",
                              "store_disabled", previous ? "previous_response_id" : "input");
}

}  // namespace mistral_proxy::openai_responses
