// OpenAI's error shape, and Mistral's error shapes translated into it (SPEC §7).
#include "errors/openai_error.hpp"

#include <simdjson.h>

#include <cstdint>

#include "json/writer.hpp"

namespace mistral_proxy::errors {

using json::append_json_string;

namespace {

// Non-JSON error bodies are often HTML pages from a load balancer: enough of
// it to recognise, not enough to flood a client's logs.
constexpr std::size_t max_text_bytes = 1024;
// Upper bound for messages built from JSON (long FastAPI detail lists).
constexpr std::size_t max_message_bytes = 8 * 1024;
// Bodies above this are not worth parsing on an error path.
constexpr std::size_t max_parsed_body_bytes = 1024 * 1024;

std::string_view reason_phrase(unsigned status) noexcept {
    switch (status) {
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 402:
            return "Payment Required";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 413:
            return "Payload Too Large";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Entity";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "";
    }
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Cuts at a UTF-8 character boundary and marks the cut, so that a bounded
// message never ends in half a character.
std::string bounded(std::string_view text, std::size_t limit) {
    if (text.size() <= limit) {
        return std::string(text);
    }
    std::size_t cut = limit;
    // Step back over at most 3 continuation bytes to the start of the character.
    for (int k = 0; k < 3 && cut > 0 && (static_cast<std::uint8_t>(text[cut]) & 0xC0) == 0x80; ++k) {
        --cut;
    }
    std::string out(text.substr(0, cut));
    out += "\xE2\x80\xA6";  // …
    return out;
}

// The OpenAI types an SDK knows; anything else from Mistral goes to `code`.
bool is_openai_type(std::string_view type) noexcept {
    return type == "invalid_request_error" || type == "authentication_error" || type == "permission_error" ||
           type == "not_found_error" || type == "conflict_error" || type == "rate_limit_error" || type == "api_error" ||
           type == "server_error" || type == "unprocessable_entity_error" || type == "insufficient_quota";
}

// Scalars as text for param/code: Mistral sends codes as "1500" and as 3051.
std::optional<std::string> scalar_text(simdjson::dom::element value) {
    switch (value.type()) {
        case simdjson::dom::element_type::STRING: {
            std::string_view s;
            if (value.get(s) == simdjson::SUCCESS && !s.empty()) {
                return bounded(s, 256);
            }
            return std::nullopt;
        }
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64:
        case simdjson::dom::element_type::DOUBLE:
        case simdjson::dom::element_type::BOOL:
            return bounded(simdjson::minify(value), 256);
        default:
            return std::nullopt;
    }
}

std::optional<simdjson::dom::element> member(simdjson::dom::object object, std::string_view key) {
    simdjson::dom::element value;
    if (object.at_key(key).get(value) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    return value;
}

// ["body","messages",0,"role"] -> "body.messages.0.role"
std::string join_loc(simdjson::dom::array loc, bool drop_body) {
    std::string out;
    bool first = true;
    for (simdjson::dom::element part : loc) {
        std::string piece;
        std::string_view s;
        if (part.get(s) == simdjson::SUCCESS) {
            piece = std::string(s);
        } else {
            piece = simdjson::minify(part);
        }
        if (first && drop_body && piece == "body") {
            first = false;
            continue;
        }
        if (!out.empty()) {
            out += '.';
        }
        out += piece;
        first = false;
    }
    return out;
}

struct detail_text {
    std::string message;
    std::optional<std::string> param;
};

// FastAPI validation errors: one readable line per entry, joined by "; ".
detail_text format_detail_array(simdjson::dom::array detail) {
    detail_text out;
    for (simdjson::dom::element entry : detail) {
        std::string line;
        simdjson::dom::object object;
        if (entry.get(object) == simdjson::SUCCESS) {
            simdjson::dom::array loc;
            if (auto v = member(object, "loc"); v && v->get(loc) == simdjson::SUCCESS) {
                const std::string where = join_loc(loc, false);
                if (!where.empty()) {
                    line = where + ": ";
                }
                if (!out.param) {
                    std::string param = join_loc(loc, true);
                    if (!param.empty()) {
                        out.param = std::move(param);
                    }
                }
            }
            std::string_view msg;
            if (auto v = member(object, "msg"); v && v->get(msg) == simdjson::SUCCESS) {
                line += msg;
            } else {
                line += simdjson::minify(entry);
            }
            std::string_view type;
            if (auto v = member(object, "type"); v && v->get(type) == simdjson::SUCCESS && !type.empty()) {
                line += " (type=";
                line += type;
                line += ')';
            }
        } else {
            std::string_view s;
            line = entry.get(s) == simdjson::SUCCESS ? std::string(s) : simdjson::minify(entry);
        }
        if (!out.message.empty()) {
            out.message += "; ";
        }
        out.message += line;
        if (out.message.size() > max_message_bytes) {
            break;
        }
    }
    return out;
}

// `detail` as FastAPI sends it: a list of entries or a plain string.
std::optional<detail_text> format_detail(simdjson::dom::element detail) {
    simdjson::dom::array array;
    if (detail.get(array) == simdjson::SUCCESS) {
        return format_detail_array(array);
    }
    std::string_view s;
    if (detail.get(s) == simdjson::SUCCESS) {
        return detail_text{std::string(s), std::nullopt};
    }
    if (detail.is_null()) {
        return std::nullopt;
    }
    return detail_text{simdjson::minify(detail), std::nullopt};
}

// A `message` member: a string, an object wrapping `detail`, or anything else.
std::optional<detail_text> format_message(simdjson::dom::element message) {
    std::string_view s;
    if (message.get(s) == simdjson::SUCCESS) {
        return detail_text{std::string(s), std::nullopt};
    }
    simdjson::dom::object object;
    if (message.get(object) == simdjson::SUCCESS) {
        if (auto detail = member(object, "detail")) {
            if (auto text = format_detail(*detail)) {
                return text;
            }
        }
        if (auto inner = member(object, "message")) {
            std::string_view inner_text;
            if (inner->get(inner_text) == simdjson::SUCCESS) {
                return detail_text{std::string(inner_text), std::nullopt};
            }
        }
    }
    if (message.is_null()) {
        return std::nullopt;
    }
    return detail_text{simdjson::minify(message), std::nullopt};
}

// Fills `error` from a parsed JSON object; false when the object has none of
// the members Mistral's shapes use.
bool translate_object(simdjson::dom::object body, openai_error& error) {
    simdjson::dom::object source = body;
    bool known = false;
    if (auto inner = member(body, "error")) {
        simdjson::dom::object inner_object;
        std::string_view inner_text;
        if (inner->get(inner_object) == simdjson::SUCCESS) {
            source = inner_object;  // already OpenAI-shaped
            known = true;
        } else if (inner->get(inner_text) == simdjson::SUCCESS) {
            error.message = std::string(inner_text);
            known = true;
        }
    }
    if (auto message = member(source, "message")) {
        if (auto text = format_message(*message)) {
            error.message = std::move(text->message);
            if (text->param) {
                error.param = std::move(text->param);
            }
        }
        known = true;
    } else if (auto detail = member(source, "detail")) {
        if (auto text = format_detail(*detail)) {
            error.message = std::move(text->message);
            if (text->param) {
                error.param = std::move(text->param);
            }
        }
        known = true;
    }
    if (!known) {
        return false;
    }

    if (auto param = member(source, "param")) {
        if (auto text = scalar_text(*param)) {
            error.param = std::move(text);
        }
    }
    std::optional<std::string> mistral_type;
    if (auto type = member(source, "type")) {
        mistral_type = scalar_text(*type);
    }
    if (mistral_type && is_openai_type(*mistral_type)) {
        error.type = *mistral_type;
    }
    if (auto code = member(source, "code")) {
        error.code = scalar_text(*code);
    }
    if (!error.code && mistral_type && !is_openai_type(*mistral_type)) {
        // e.g. "invalid_model": more telling than nothing, and SDKs expose `code`.
        error.code = std::move(mistral_type);
    }
    return true;
}

std::string no_text_message(unsigned status, std::string_view upstream_name, bool had_body) {
    std::string message = "upstream ";
    message += upstream_name.empty() ? std::string_view("server") : upstream_name;
    message += " answered " + std::to_string(status);
    if (const auto reason = reason_phrase(status); !reason.empty()) {
        message += ' ';
        message += reason;
    }
    message += had_body ? " without an error message" : " with no body";
    return message;
}

}  // namespace

std::string_view type_for_status(unsigned status) noexcept {
    switch (status) {
        case 400:
        case 413:
        case 415:
        case 422:
            return "invalid_request_error";
        case 401:
            return "authentication_error";
        case 403:
            return "permission_error";
        case 404:
            return "not_found_error";
        case 409:
            return "conflict_error";
        case 429:
            return "rate_limit_error";
        default:
            break;
    }
    if (status >= 500 && status <= 599) {
        return "api_error";
    }
    return "invalid_request_error";
}

openai_error make_error(unsigned status, std::string message, std::optional<std::string> code,
                        std::optional<std::string> param) {
    openai_error error;
    error.status = status;
    error.type = std::string(type_for_status(status));
    error.message = std::move(message);
    error.param = std::move(param);
    error.code = std::move(code);
    return error;
}

std::string to_json(const openai_error& error) {
    // The first literal, then reserve: an append right after reserve() on an
    // empty string is GCC 12's false -Wstringop-overflow in the link-time build.
    std::string out = R"({"error":{"message":)";
    out.reserve(64 + error.message.size());
    append_json_string(out, error.message);
    out += R"(,"type":)";
    append_json_string(out, error.type.empty() ? type_for_status(error.status) : std::string_view(error.type));
    out += R"(,"param":)";
    if (error.param) {
        append_json_string(out, *error.param);
    } else {
        out += "null";
    }
    out += R"(,"code":)";
    if (error.code) {
        append_json_string(out, *error.code);
    } else {
        out += "null";
    }
    out += "}}";
    return out;
}

std::string to_sse_event(const openai_error& error) { return "data: " + to_json(error) + "\n\n"; }

openai_error translate_upstream_error(unsigned status, std::string_view body, std::string_view upstream_name,
                                      const redactor& hide) {
    openai_error error = make_error(status, std::string());
    // The raw body first: a key in it is gone before any text is cut to length.
    // (A key inside a JSON string becomes "[redacted]": the JSON stays valid.)
    std::string clean;
    if (!hide.empty()) {
        clean = hide(body);
        body = clean;
    }
    const std::string_view text = trim(body);
    if (text.empty()) {
        error.message = no_text_message(status, upstream_name, false);
        return error;
    }

    bool translated = false;
    if (text.size() <= max_parsed_body_bytes && (text.front() == '{' || text.front() == '[')) {
        // Cold path: the copy made by parse(ptr, len) buys not needing padding.
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        simdjson::dom::object object;
        if (!text.empty() && parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS &&
            root.get(object) == simdjson::SUCCESS) {
            translated = translate_object(object, error);
        }
    }
    if (!translated) {
        error.message = bounded(text, max_text_bytes);
    } else {
        // Again on the unescaped texts: a key written with JSON escapes is a key too.
        hide.apply(error);
        error.message = bounded(trim(error.message), max_message_bytes);
    }
    if (error.message.empty()) {
        error.message = no_text_message(status, upstream_name, true);
    }
    return error;
}

}  // namespace mistral_proxy::errors
