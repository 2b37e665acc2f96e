// The Responses request translator's class and the helpers its parts share
// (request.cpp: the top-level fields and the run; request/tools.cpp;
// request/items.cpp). Private to those files, which are one translation unit:
// request.cpp includes the other two at its end, as the normalizer includes
// its walk (so this header is read once, and its anonymous namespace is theirs).
#pragma once

#include <simdjson.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json/writer.hpp"
#include "openai_responses/request.hpp"

namespace mistral_proxy::openai_responses {

namespace dom = simdjson::dom;
using json::append_json_string;

namespace {


std::string_view kind_name(dom::element value) noexcept {
    switch (value.type()) {
        case dom::element_type::ARRAY:
            return "an array";
        case dom::element_type::OBJECT:
            return "an object";
        case dom::element_type::INT64:
        case dom::element_type::UINT64:
            return "an integer";
        case dom::element_type::DOUBLE:
            return "a number";
        case dom::element_type::STRING:
            return "a string";
        case dom::element_type::BOOL:
            return "a boolean";
        case dom::element_type::NULL_VALUE:
            return "null";
    }
    return "a value";
}

bool is_number(dom::element value) noexcept {
    const auto t = value.type();
    return t == dom::element_type::INT64 || t == dom::element_type::UINT64 || t == dom::element_type::DOUBLE;
}

bool is_integer(dom::element value) noexcept {
    const auto t = value.type();
    return t == dom::element_type::INT64 || t == dom::element_type::UINT64;
}

std::string_view string_of(dom::element value) noexcept {
    std::string_view s;
    if (value.get_string().get(s) != simdjson::SUCCESS) {
        return {};
    }
    return s;
}

// One parser per document that may be open at the same time: the request, the
// stored conversation, a stored item, and the reference scan. A parser keeps
// the capacity of the largest document it read (about 9 bytes per input byte):
// past 1 MiB it is given back after the call, so that one 20 MB PDF does not
// pin ~180 MB per thread.
thread_local dom::parser body_parser;
thread_local dom::parser history_parser;
thread_local dom::parser item_parser;
thread_local dom::parser scan_parser;

constexpr std::size_t kept_capacity = std::size_t{1} << 20;

void release_if_large(dom::parser& parser) {
    if (parser.capacity() > kept_capacity) {
        parser = dom::parser();
    }
}

// Accessors for values whose type was checked already.
dom::object object_of(dom::element value) noexcept {
    dom::object object;
    if (value.get(object) != simdjson::SUCCESS) {
        return {};
    }
    return object;
}

dom::array array_of(dom::element value) noexcept {
    dom::array array;
    if (value.get(array) != simdjson::SUCCESS) {
        return {};
    }
    return array;
}

bool bool_of(dom::element value) noexcept {
    bool flag = false;
    if (value.get(flag) != simdjson::SUCCESS) {
        return false;
    }
    return flag;
}

// The fields of CreateResponse (openai-openapi.yaml: CreateResponse and the
// schemas of its allOf) this translator knows.
enum class field {
    model,
    input,
    instructions,
    tools,
    tool_choice,
    parallel_tool_calls,
    text,
    temperature,
    top_p,
    max_output_tokens,
    reasoning,
    stream,
    metadata,
    user,
    safety_identifier,
    prompt_cache_key,
    truncation,
    include,
    store,
    previous_response_id,
    background,
    service_tier,
    top_logprobs,
    max_tool_calls,
    stream_options,
    prompt_cache_retention,
    prompt_cache_options,
    moderation,
    context_management,
    prompt,
    conversation,
    count
};

constexpr std::array<std::string_view, static_cast<std::size_t>(field::count)> field_names = {"model",
                                                                                              "input",
                                                                                              "instructions",
                                                                                              "tools",
                                                                                              "tool_choice",
                                                                                              "parallel_tool_calls",
                                                                                              "text",
                                                                                              "temperature",
                                                                                              "top_p",
                                                                                              "max_output_tokens",
                                                                                              "reasoning",
                                                                                              "stream",
                                                                                              "metadata",
                                                                                              "user",
                                                                                              "safety_identifier",
                                                                                              "prompt_cache_key",
                                                                                              "truncation",
                                                                                              "include",
                                                                                              "store",
                                                                                              "previous_response_id",
                                                                                              "background",
                                                                                              "service_tier",
                                                                                              "top_logprobs",
                                                                                              "max_tool_calls",
                                                                                              "stream_options",
                                                                                              "prompt_cache_retention",
                                                                                              "prompt_cache_options",
                                                                                              "moderation",
                                                                                              "context_management",
                                                                                              "prompt",
                                                                                              "conversation"};

std::optional<field> field_of(std::string_view key) noexcept {
    for (std::size_t i = 0; i < field_names.size(); ++i) {
        if (field_names[i] == key) {
            return static_cast<field>(i);
        }
    }
    return std::nullopt;
}

// Where an item comes from: the request's input, the stored conversation, or a
// stored item named by an item_reference.
enum class origin { input, previous, reference };

class translator {
public:
    translator(translated_request& result, const history& earlier, id_source& ids)
        : result_(result), earlier_(earlier), ids_(ids) {}

    void run(std::string_view body);

private:
    // Sets the 400 and returns false.
    bool fail(std::string message, std::string param, std::optional<std::string> code = std::nullopt) {
        result_.error = errors::make_error(400, std::move(message), std::move(code), std::move(param));
        return false;
    }
    bool wrong_type(std::string_view param, std::string_view expected, dom::element got) {
        return fail("Invalid type for '" + std::string(param) + "': expected " + std::string(expected) + ", but got " +
                        std::string(kind_name(got)) + " instead.",
                    std::string(param), "invalid_type");
    }
    void note(std::string text) {
        for (const std::string& n : result_.notes) {
            if (n == text) {
                return;
            }
        }
        result_.notes.push_back(std::move(text));
    }

    bool read_fields(dom::object root);
    bool check_types();
    bool write_settings();
    bool write_messages();
    bool write_tools(dom::element tools);
    bool write_tool_choice(dom::element choice);
    bool write_text_format(dom::element text);

    bool add_items(dom::array items, origin from, std::string_view base);
    bool add_item(dom::element item, origin from, const std::string& where);
    bool add_message(dom::object item, origin from, const std::string& where, std::string_view id);
    bool add_function_call(dom::object item, origin from, const std::string& where, std::string_view id);
    bool add_function_call_output(dom::object item, origin from, const std::string& where, std::string_view id);
    bool add_reference(dom::object item, origin from, const std::string& where);
    // Chat content parts of a user/system/developer message or tool output.
    bool write_parts(dom::array parts, const std::string& where, std::string& out);
    // Text of an assistant message's content (string or text parts).
    bool assistant_text(dom::element content, const std::string& where, std::string& text);

    void begin_message() {
        if (!first_message_) {
            messages_ += ',';
        }
        first_message_ = false;
    }
    void flush_assistant();
    void begin_input_item(std::string_view id, std::string_view prefix);

    translated_request& result_;
    const history& earlier_;
    id_source& ids_;
    std::array<std::optional<dom::element>, static_cast<std::size_t>(field::count)> fields_{};

    std::string messages_;
    bool first_message_ = true;
    // An assistant message being built: function_call items that follow it join it.
    bool pending_open_ = false;
    bool pending_has_text_ = false;
    std::string pending_text_;
    std::string pending_calls_;
    std::vector<std::pair<std::string, std::string>> call_names_;  // call_id -> function name

    bool first_input_item_ = true;
    std::string tools_chat_;        // chat "tools" value
    std::string tool_choice_chat_;  // chat "tool_choice" value
    std::string response_format_;   // chat "response_format" value
    std::string reasoning_effort_;  // chat "reasoning_effort" value
    std::string id_scratch_;

    std::optional<dom::element> get(field f) const { return fields_[static_cast<std::size_t>(f)]; }
    // Present and not null.
    std::optional<dom::element> given(field f) const {
        auto value = get(f);
        if (value && value->is_null()) {
            return std::nullopt;
        }
        return value;
    }
};

}  // namespace
}  // namespace mistral_proxy::openai_responses
