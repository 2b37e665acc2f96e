#include "normalize/request_peek.hpp"

#include <simdjson.h>

#include <memory>

namespace mistral_proxy::normalize {

static_assert(body_padding == simdjson::SIMDJSON_PADDING, "body buffers must reserve simdjson's padding");

namespace {

// Deep enough for any real chat request (JSON schemas in tools nest ~10-20),
// shallow enough that a hostile body cannot make later recursive passes costly.
constexpr std::size_t max_depth = 128;
// A parser keeps its buffers between requests; one that grew for a huge body
// is dropped afterwards instead of pinning that memory per thread.
constexpr std::size_t max_retained_capacity = 1024 * 1024;
constexpr std::size_t initial_capacity = 64 * 1024;

std::string_view kind_name(simdjson::dom::element_type type) noexcept {
    switch (type) {
        case simdjson::dom::element_type::ARRAY:
            return "an array";
        case simdjson::dom::element_type::OBJECT:
            return "an object";
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64:
        case simdjson::dom::element_type::DOUBLE:
            return "a number";
        case simdjson::dom::element_type::STRING:
            return "a string";
        case simdjson::dom::element_type::BOOL:
            return "a boolean";
        case simdjson::dom::element_type::NULL_VALUE:
            return "null";
    }
    return "a value";
}

peek_result refuse(std::string message, std::optional<std::string> param = std::nullopt) {
    peek_result result;
    result.error = errors::make_error(400, std::move(message), std::nullopt, std::move(param));
    return result;
}

std::string parse_error_message(simdjson::error_code code) {
    switch (code) {
        case simdjson::EMPTY:
            return "request body is empty; expected a JSON object";
        case simdjson::DEPTH_ERROR:
            return "request body is nested too deeply (more than " + std::to_string(max_depth) + " levels)";
        case simdjson::UTF8_ERROR:
            return "request body is not valid UTF-8";
        case simdjson::CAPACITY:
            return "request body is too large to parse";
        case simdjson::MEMALLOC:
            return "request body could not be parsed: out of memory";
        default:
            break;
    }
    return std::string("request body is not valid JSON: ") + simdjson::error_message(code);
}

// nullptr when out of memory.
simdjson::dom::parser* thread_parser(std::unique_ptr<simdjson::dom::parser>& slot) {
    if (!slot) {
        auto parser = std::make_unique<simdjson::dom::parser>();
        // Sets the depth limit; later automatic growth keeps it.
        if (parser->allocate(initial_capacity, max_depth) != simdjson::SUCCESS) {
            return nullptr;
        }
        slot = std::move(parser);
    }
    return slot.get();
}

}  // namespace

peek_result peek_request(std::string_view body_with_padding) {
    thread_local std::unique_ptr<simdjson::dom::parser> slot;
    simdjson::dom::parser* parser_ptr = thread_parser(slot);
    if (parser_ptr == nullptr) {
        return refuse(parse_error_message(simdjson::MEMALLOC));
    }
    simdjson::dom::parser& parser = *parser_ptr;

    peek_result result;
    {
        simdjson::dom::element root;
        // Full validation (structure, UTF-8, trailing content) in one pass, no copy.
        const auto code = parser.parse(body_with_padding.data(), body_with_padding.size(), false).get(root);
        if (code != simdjson::SUCCESS) {
            result = refuse(parse_error_message(code));
        } else if (simdjson::dom::object object; root.get(object) != simdjson::SUCCESS) {
            result =
                refuse(std::string("request body must be a JSON object, got ") + std::string(kind_name(root.type())));
        } else {
            request_facts facts;
            // Every field is visited so that with duplicate keys the last wins.
            for (const simdjson::dom::key_value_pair field : object) {
                if (field.key == "model") {
                    std::string_view model;
                    if (field.value.get(model) != simdjson::SUCCESS) {
                        result = refuse("'model' must be a string, got " + std::string(kind_name(field.value.type())),
                                        "model");
                        break;
                    }
                    facts.model.assign(model);
                } else if (field.key == "stream") {
                    bool stream = false;
                    if (field.value.get(stream) == simdjson::SUCCESS) {
                        facts.stream = stream;
                    } else if (field.value.is_null()) {
                        facts.stream = false;  // OpenAI accepts null as "not set"
                    } else {
                        result = refuse("'stream' must be a boolean, got " + std::string(kind_name(field.value.type())),
                                        "stream");
                        break;
                    }
                }
            }
            if (!result.error) {
                result.facts = std::move(facts);
            }
        }
    }
    if (parser.capacity() > max_retained_capacity) {
        slot.reset();
    }
    return result;
}

}  // namespace mistral_proxy::normalize
