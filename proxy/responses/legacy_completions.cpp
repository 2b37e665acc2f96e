// OpenAI's legacy /v1/completions request mapped to a FIM or chat body (see legacy_completions.hpp).
#include "responses/legacy_completions.hpp"

#include <array>

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::begin_member;
using detail::raw_value;

namespace {

// Sets the 400; every return then names the one local `request`, so NRVO
// applies (GCC 12 warns -Wrestrict on a moved std::string otherwise).
void refuse(completions_request& request, std::string message, std::optional<std::string> param = std::nullopt) {
    request.body.clear();
    request.error = errors::make_error(400, std::move(message), std::nullopt, std::move(param));
}

constexpr std::array fim_fields = {std::string_view("model"),      std::string_view("suffix"),
                                   std::string_view("max_tokens"), std::string_view("min_tokens"),
                                   std::string_view("stop"),       std::string_view("temperature"),
                                   std::string_view("top_p"),      std::string_view("stream")};
constexpr std::array chat_fields = {std::string_view("model"),
                                    std::string_view("max_tokens"),
                                    std::string_view("stop"),
                                    std::string_view("temperature"),
                                    std::string_view("top_p"),
                                    std::string_view("stream"),
                                    std::string_view("n"),
                                    std::string_view("presence_penalty"),
                                    std::string_view("frequency_penalty")};

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& fields, std::string_view key) {
    for (const auto field : fields) {
        if (field == key) {
            return true;
        }
    }
    return false;
}

// The prompt as raw JSON of one string: a string, or an array holding exactly one.
// Empty view with `message` set when it cannot be used.
std::string_view prompt_of(od::value& value, std::string& message) {
    od::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS) {
        message = "request body is not valid JSON";
        return {};
    }
    std::string_view raw;
    if (type == od::json_type::string) {
        if (!raw_value(value, raw)) {
            message = "request body is not valid JSON";
        }
        return raw;
    }
    if (type == od::json_type::array) {
        od::array items;
        if (value.get_array().get(items) != simdjson::SUCCESS) {
            message = "request body is not valid JSON";
            return {};
        }
        std::size_t count = 0;
        for (auto item : items) {
            od::json_type item_type;
            if (item.type().get(item_type) != simdjson::SUCCESS) {
                message = "request body is not valid JSON";
                return {};
            }
            if (item_type != od::json_type::string) {
                message = "'prompt' as token ids is not supported: send the prompt as a string";
                return {};
            }
            if (++count > 1) {
                message = "'prompt' with several prompts is not supported: send one request per prompt";
                return {};
            }
            od::value item_value = item.value();
            if (!raw_value(item_value, raw)) {
                message = "request body is not valid JSON";
                return {};
            }
        }
        if (count == 0) {
            message = "'prompt' must not be empty";
        }
        return raw;
    }
    message = "'prompt' must be a string";
    return {};
}

}  // namespace

completions_request map_completions_request(std::string_view body, completions_target target) {
    completions_request request;
    thread_local detail::json_reader reader;
    od::document doc;
    od::object root;
    if (!reader.open(body, doc, root)) {
        refuse(request, "request body must be a JSON object");
        return request;
    }
    std::string& out = request.body;
    out.reserve(body.size() + 48);
    out += '{';
    bool first = true;
    std::string_view prompt;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            refuse(request, "request body is not valid JSON");
            return request;
        }
        if (key == "prompt") {
            std::string message;
            prompt = prompt_of(value, message);
            if (!message.empty()) {
                refuse(request, std::move(message), "prompt");
                return request;
            }
            continue;
        }
        if (key == "echo") {
            bool echo = false;
            if (value.get_bool().get(echo) == simdjson::SUCCESS && echo) {
                refuse(request, "'echo' is not supported by this proxy", "echo");
                return request;
            }
            continue;
        }
        if (key == "best_of" || (key == "n" && target == completions_target::fim)) {
            std::uint64_t count = 1;
            if (value.get_uint64().get(count) == simdjson::SUCCESS && count > 1) {
                refuse(request, "'" + std::string(key) + "' above 1 is not supported for this model", std::string(key));
                return request;
            }
            continue;
        }
        if (key == "stream_options") {
            od::object options;
            if (value.get_object().get(options) == simdjson::SUCCESS) {
                bool include = false;
                if (options.find_field_unordered("include_usage").get_bool().get(include) == simdjson::SUCCESS) {
                    request.include_usage = include;
                }
            }
            continue;
        }
        const bool keep = target == completions_target::fim ? listed(fim_fields, key) : listed(chat_fields, key);
        if (key == "seed") {
            std::string_view raw;
            if (!raw_value(value, raw)) {
                refuse(request, "request body is not valid JSON");
                return request;
            }
            begin_member(out, first, "random_seed");
            out += raw;
            continue;
        }
        if (!keep) {
            continue;
        }
        std::string_view raw;
        if (!raw_value(value, raw)) {
            refuse(request, "request body is not valid JSON");
            return request;
        }
        if (key == "stream") {
            request.stream = raw == "true";  // the value is consumed: read its text
        }
        begin_member(out, first, key);
        out += raw;
    }
    if (!detail::at_end(doc)) {
        refuse(request, "request body is not valid JSON");
        return request;
    }
    if (prompt.empty()) {
        refuse(request, "'prompt' is required", "prompt");
        return request;
    }
    if (target == completions_target::fim) {
        begin_member(out, first, "prompt");
        out += prompt;
    } else {
        begin_member(out, first, "messages");
        out += R"([{"role":"user","content":)";
        out += prompt;
        out += "}]";
    }
    out += '}';
    // The request side parses this body in place next; give it simdjson's padding.
    out.reserve(out.size() + simdjson::SIMDJSON_PADDING);
    return request;
}

}  // namespace mistral_proxy::responses
