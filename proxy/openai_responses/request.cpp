// Responses API request -> OpenAI chat completions request (see request.hpp).
// Requests are read with simdjson's DOM: one strict pass validates every byte
// (syntax, UTF-8, trailing content), then the items are visited in any order.
// Values copied through are re-serialised from the DOM (numbers keep their
// value, not necessarily their spelling). Long because every item type, part
// type and top-level field of CreateResponse is mapped or refused here, each
// with the message that names it; the file is ordered like the request.
#include "openai_responses/request.hpp"

#include <simdjson.h>

#include <array>

#include "json/writer.hpp"

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

void translator::flush_assistant() {
    if (!pending_open_) {
        return;
    }
    begin_message();
    messages_ += R"({"role":"assistant")";
    if (pending_has_text_) {
        messages_ += R"(,"content":)";
        append_json_string(messages_, pending_text_);
    }
    if (!pending_calls_.empty()) {
        messages_ += R"(,"tool_calls":[)";
        messages_ += pending_calls_;
        messages_ += ']';
    }
    if (!pending_has_text_ && pending_calls_.empty()) {
        messages_ += R"(,"content":"")";
    }
    messages_ += '}';
    pending_open_ = false;
    pending_has_text_ = false;
    pending_text_.clear();
    pending_calls_.clear();
}

void translator::begin_input_item(std::string_view id, std::string_view prefix) {
    std::string& out = result_.input_items;
    if (!first_input_item_) {
        out += ',';
    }
    first_input_item_ = false;
    out += R"({"id":)";
    if (id.empty()) {
        id_scratch_.clear();
        ids_.append(id_scratch_, prefix);
        append_json_string(out, id_scratch_);
    } else {
        append_json_string(out, id);
    }
}

bool translator::read_fields(dom::object root) {
    for (dom::key_value_pair member : root) {
        const auto which = field_of(member.key);
        if (!which) {
            return fail("Unknown parameter: '" + std::string(member.key) +
                            "'. The Responses API (CreateResponse) has no such field; remove it.",
                        std::string(member.key), "unknown_parameter");
        }
        fields_[static_cast<std::size_t>(*which)] = member.value;  // duplicate keys: the last wins
    }
    return true;
}

bool translator::check_types() {
    struct rule {
        field f;
        bool (*ok)(dom::element);
        std::string_view expected;
    };
    static constexpr auto string_ok = [](dom::element v) { return v.type() == dom::element_type::STRING; };
    static constexpr auto object_ok = [](dom::element v) { return v.type() == dom::element_type::OBJECT; };
    static constexpr auto array_ok = [](dom::element v) { return v.type() == dom::element_type::ARRAY; };
    static constexpr auto bool_ok = [](dom::element v) { return v.type() == dom::element_type::BOOL; };
    static constexpr auto number_ok = [](dom::element v) { return is_number(v); };
    static constexpr auto integer_ok = [](dom::element v) { return is_integer(v); };
    static constexpr auto input_ok = [](dom::element v) {
        return v.type() == dom::element_type::STRING || v.type() == dom::element_type::ARRAY;
    };
    static constexpr auto choice_ok = [](dom::element v) {
        return v.type() == dom::element_type::STRING || v.type() == dom::element_type::OBJECT;
    };
    static constexpr rule rules[] = {
        {field::model, string_ok, "a string"},
        {field::input, input_ok, "a string or an array of items"},
        {field::instructions, string_ok, "a string"},
        {field::tools, array_ok, "an array"},
        {field::tool_choice, choice_ok, "a string or an object"},
        {field::parallel_tool_calls, bool_ok, "a boolean"},
        {field::text, object_ok, "an object"},
        {field::temperature, number_ok, "a number"},
        {field::top_p, number_ok, "a number"},
        {field::max_output_tokens, integer_ok, "an integer"},
        {field::reasoning, object_ok, "an object"},
        {field::stream, bool_ok, "a boolean"},
        {field::metadata, object_ok, "an object"},
        {field::user, string_ok, "a string"},
        {field::safety_identifier, string_ok, "a string"},
        {field::prompt_cache_key, string_ok, "a string"},
        {field::truncation, string_ok, "a string"},
        {field::include, array_ok, "an array"},
        {field::store, bool_ok, "a boolean"},
        {field::previous_response_id, string_ok, "a string"},
        {field::background, bool_ok, "a boolean"},
        {field::service_tier, string_ok, "a string"},
        {field::top_logprobs, integer_ok, "an integer"},
        {field::max_tool_calls, integer_ok, "an integer"},
        {field::stream_options, object_ok, "an object"},
        {field::prompt_cache_retention, string_ok, "a string"},
    };
    for (const rule& r : rules) {
        const auto value = given(r.f);
        if (value && !r.ok(*value)) {
            return wrong_type(field_names[static_cast<std::size_t>(r.f)], r.expected, *value);
        }
    }
    const auto model = given(field::model);
    if (!model || string_of(*model).empty()) {
        return fail("Missing required parameter: 'model'.", "model", "missing_required_parameter");
    }
    if (const auto background = given(field::background);
        background && background->is_bool() && bool(bool_of(*background))) {
        return fail(
            "'background': true is not supported by this proxy (Mistral has no background responses); send "
            "background: false or leave it out.",
            "background", "unsupported_parameter");
    }
    if (given(field::prompt)) {
        return fail(
            "'prompt' (a prompt template stored at OpenAI) is not supported by this proxy; send the text as "
            "'instructions' and 'input' instead.",
            "prompt", "unsupported_parameter");
    }
    if (given(field::conversation)) {
        return fail(
            "'conversation' is not supported by this proxy (it has no Conversations API); continue a "
            "conversation with 'previous_response_id' instead.",
            "conversation", "unsupported_parameter");
    }
    return true;
}

// The Response object's echo of the request.
bool translator::write_settings() {
    response_settings& s = result_.settings;
    s.model_asked = std::string(string_of(*given(field::model)));
    const auto copy = [&](field f, std::string& slot) {
        if (const auto value = given(f)) {
            slot = simdjson::minify(*value);
        }
    };
    copy(field::instructions, s.instructions);
    copy(field::temperature, s.temperature);
    copy(field::top_p, s.top_p);
    copy(field::max_output_tokens, s.max_output_tokens);
    copy(field::max_tool_calls, s.max_tool_calls);
    copy(field::metadata, s.metadata);
    copy(field::parallel_tool_calls, s.parallel_tool_calls);
    copy(field::truncation, s.truncation);
    copy(field::reasoning, s.reasoning);
    copy(field::top_logprobs, s.top_logprobs);
    copy(field::previous_response_id, s.previous_response_id);
    copy(field::user, s.user);
    copy(field::safety_identifier, s.safety_identifier);
    copy(field::prompt_cache_key, s.prompt_cache_key);
    if (const auto store = given(field::store)) {
        s.store = bool_of(*store);
    }
    result_.store = s.store;
    if (const auto stream = given(field::stream)) {
        result_.stream = bool_of(*stream);
    }
    return true;
}

bool translator::write_tools(dom::element tools) {
    std::string& echo = result_.settings.tools;
    echo = "[";
    tools_chat_ = "[";
    std::size_t index = 0;
    for (dom::element tool : array_of(tools)) {
        const std::string where = "tools[" + std::to_string(index) + "]";
        dom::object object;
        if (tool.get_object().get(object) != simdjson::SUCCESS) {
            return wrong_type(where, "an object", tool);
        }
        std::optional<dom::element> type, name, description, parameters, strict;
        for (dom::key_value_pair member : object) {
            if (member.key == "type") {
                type = member.value;
            } else if (member.key == "name") {
                name = member.value;
            } else if (member.key == "description") {
                description = member.value;
            } else if (member.key == "parameters") {
                parameters = member.value;
            } else if (member.key == "strict") {
                strict = member.value;
            } else {
                note(where + "." + std::string(member.key) + " dropped: Mistral's function tools have no such field");
            }
        }
        const std::string_view type_name = type ? string_of(*type) : std::string_view("function");
        if (type_name != "function") {
            return fail("Tool type '" + std::string(type ? string_of(*type) : "") +
                            "' is not supported by this proxy: Mistral's chat completions have no built-in tools "
                            "(web search, file search, computer use, code interpreter, image generation, MCP, shell, "
                            "custom tools). Only tools of type 'function' are supported; declare it as a function "
                            "tool that your code runs, or remove it.",
                        where + ".type", "unsupported_tool_type");
        }
        if (!name || name->type() != dom::element_type::STRING || string_of(*name).empty()) {
            return fail("Missing required parameter: '" + where + ".name' (a string).", where + ".name",
                        "missing_required_parameter");
        }
        if (description && !description->is_null() && description->type() != dom::element_type::STRING) {
            return wrong_type(where + ".description", "a string", *description);
        }
        if (parameters && !parameters->is_null() && parameters->type() != dom::element_type::OBJECT) {
            return wrong_type(where + ".parameters", "an object", *parameters);
        }
        if (strict && !strict->is_null() && strict->type() != dom::element_type::BOOL) {
            return wrong_type(where + ".strict", "a boolean", *strict);
        }
        if (index != 0) {
            echo += ',';
            tools_chat_ += ',';
        }
        const std::string name_json = simdjson::minify(*name);
        tools_chat_ += R"({"type":"function","function":{"name":)";
        tools_chat_ += name_json;
        echo += R"({"type":"function","name":)";
        echo += name_json;
        if (description && !description->is_null()) {
            const std::string text = simdjson::minify(*description);
            tools_chat_ += R"(,"description":)";
            tools_chat_ += text;
            echo += R"(,"description":)";
            echo += text;
        }
        echo += R"(,"parameters":)";
        if (parameters && !parameters->is_null()) {
            const std::string schema = simdjson::minify(*parameters);
            tools_chat_ += R"(,"parameters":)";
            tools_chat_ += schema;
            echo += schema;
        } else {
            echo += "null";
        }
        echo += R"(,"strict":)";
        if (strict && !strict->is_null()) {
            const bool on = bool_of(*strict);
            tools_chat_ += on ? R"(,"strict":true)" : R"(,"strict":false)";
            echo += on ? "true" : "false";
        } else {
            echo += "false";  // what Mistral does when strict is not sent
        }
        tools_chat_ += "}}";
        echo += '}';
        ++index;
    }
    echo += ']';
    tools_chat_ += ']';
    if (index == 0) {
        tools_chat_.clear();
    }
    return true;
}

bool translator::write_tool_choice(dom::element choice) {
    if (choice.type() == dom::element_type::STRING) {
        const std::string_view mode = string_of(choice);
        if (mode != "auto" && mode != "none" && mode != "required") {
            return fail("Invalid value for 'tool_choice': '" + std::string(mode) +
                            "'. Send 'auto', 'none', 'required' or {\"type\":\"function\",\"name\":...}.",
                        "tool_choice", "invalid_value");
        }
        tool_choice_chat_ = simdjson::minify(choice);
        result_.settings.tool_choice = tool_choice_chat_;
        return true;
    }
    std::string_view type;
    std::optional<dom::element> name;
    for (dom::key_value_pair member : object_of(choice)) {
        if (member.key == "type") {
            type = string_of(member.value);
        } else if (member.key == "name") {
            name = member.value;
        }
    }
    if (type != "function") {
        return fail("tool_choice of type '" + std::string(type) +
                        "' is not supported by this proxy: Mistral chooses among function tools only. Send 'auto', "
                        "'none', 'required' or {\"type\":\"function\",\"name\":...}.",
                    "tool_choice.type", "unsupported_tool_choice");
    }
    if (!name || name->type() != dom::element_type::STRING) {
        return fail("Missing required parameter: 'tool_choice.name' (a string).", "tool_choice.name",
                    "missing_required_parameter");
    }
    const std::string name_json = simdjson::minify(*name);
    tool_choice_chat_ = R"({"type":"function","function":{"name":)" + name_json + "}}";
    result_.settings.tool_choice = R"({"type":"function","name":)" + name_json + "}";
    return true;
}

bool translator::write_text_format(dom::element text) {
    std::optional<dom::element> format;
    std::string echo = "{";
    for (dom::key_value_pair member : object_of(text)) {
        if (member.key == "format") {
            format = member.value;
        } else if (member.key == "verbosity") {
            if (!member.value.is_null()) {
                note("text.verbosity dropped: Mistral has no verbosity setting");
            }
        } else {
            return fail("Unknown parameter: 'text." + std::string(member.key) + "'.", "text." + std::string(member.key),
                        "unknown_parameter");
        }
    }
    if (!format || format->is_null()) {
        return true;  // the default echo
    }
    dom::object object;
    if (format->get_object().get(object) != simdjson::SUCCESS) {
        return wrong_type("text.format", "an object", *format);
    }
    std::optional<dom::element> type, name, schema, strict, description;
    for (dom::key_value_pair member : object) {
        if (member.key == "type") {
            type = member.value;
        } else if (member.key == "name") {
            name = member.value;
        } else if (member.key == "schema") {
            schema = member.value;
        } else if (member.key == "strict") {
            strict = member.value;
        } else if (member.key == "description") {
            description = member.value;
        }
    }
    const std::string_view kind = type ? string_of(*type) : std::string_view();
    if (kind == "text") {
        result_.settings.text = R"({"format":{"type":"text"}})";
        return true;
    }
    if (kind == "json_object") {
        response_format_ = R"({"type":"json_object"})";
        result_.settings.text = R"({"format":{"type":"json_object"}})";
        return true;
    }
    if (kind != "json_schema") {
        return fail("Invalid value for 'text.format.type': '" + std::string(kind) +
                        "'. Send 'text', 'json_object' or 'json_schema'.",
                    "text.format.type", "invalid_value");
    }
    if (!name || name->type() != dom::element_type::STRING) {
        return fail("Missing required parameter: 'text.format.name' (a string).", "text.format.name",
                    "missing_required_parameter");
    }
    if (!schema || schema->type() != dom::element_type::OBJECT) {
        return fail("Missing required parameter: 'text.format.schema' (a JSON schema object).", "text.format.schema",
                    "missing_required_parameter");
    }
    if (strict && !strict->is_null() && strict->type() != dom::element_type::BOOL) {
        return wrong_type("text.format.strict", "a boolean", *strict);
    }
    if (description && !description->is_null() && description->type() != dom::element_type::STRING) {
        return wrong_type("text.format.description", "a string", *description);
    }
    std::string inner = R"("name":)" + simdjson::minify(*name);
    if (description && !description->is_null()) {
        inner += R"(,"description":)" + simdjson::minify(*description);
    }
    inner += R"(,"schema":)" + simdjson::minify(*schema);
    if (strict && !strict->is_null()) {
        inner += bool_of(*strict) ? R"(,"strict":true)" : R"(,"strict":false)";
    }
    response_format_ = R"({"type":"json_schema","json_schema":{)" + inner + "}}";
    result_.settings.text = R"({"format":{"type":"json_schema",)" + inner + "}}";
    return true;
}

bool translator::write_parts(dom::array parts, const std::string& where, std::string& out) {
    out += '[';
    std::size_t index = 0;
    for (dom::element part : parts) {
        const std::string at = where + "[" + std::to_string(index) + "]";
        dom::object object;
        if (part.get_object().get(object) != simdjson::SUCCESS) {
            return wrong_type(at, "an object", part);
        }
        std::string_view type;
        std::optional<dom::element> text, refusal, image_url, file_id, file_data, filename, file_url, detail;
        for (dom::key_value_pair member : object) {
            const std::string_view key = member.key;
            if (key == "type") {
                type = string_of(member.value);
            } else if (key == "text") {
                text = member.value;
            } else if (key == "refusal") {
                refusal = member.value;
            } else if (key == "image_url") {
                image_url = member.value;
            } else if (key == "file_id") {
                file_id = member.value;
            } else if (key == "file_data") {
                file_data = member.value;
            } else if (key == "filename") {
                filename = member.value;
            } else if (key == "file_url") {
                file_url = member.value;
            } else if (key == "detail") {
                detail = member.value;
            }
        }
        if (index != 0) {
            out += ',';
        }
        if (type == "input_text" || type == "output_text" || type == "text" || type == "refusal") {
            const auto& value = type == "refusal" ? refusal : text;
            const char* member_name = type == "refusal" ? ".refusal" : ".text";
            if (!value || value->type() != dom::element_type::STRING) {
                return fail("Missing required parameter: '" + at + member_name + "' (a string).", at + member_name,
                            "missing_required_parameter");
            }
            out += R"({"type":"text","text":)";
            out += simdjson::minify(*value);
            out += '}';
        } else if (type == "input_image") {
            if (!image_url || image_url->is_null()) {
                if (file_id && !file_id->is_null()) {
                    return fail(at + ".file_id is not supported by this proxy for images: send the image as "
                                     "image_url, a URL or a data URL (data:image/png;base64,...).",
                                at + ".file_id", "unsupported_parameter");
                }
                return fail("Missing required parameter: '" + at + ".image_url' (a URL or a data URL).",
                            at + ".image_url", "missing_required_parameter");
            }
            if (image_url->type() != dom::element_type::STRING) {
                return wrong_type(at + ".image_url", "a string", *image_url);
            }
            out += R"({"type":"image_url","image_url":{"url":)";
            out += simdjson::minify(*image_url);
            if (detail && detail->type() == dom::element_type::STRING) {
                std::string_view level = string_of(*detail);
                if (level == "original") {
                    note(at + ".detail 'original' sent as 'high': Mistral knows low, auto and high");
                    level = "high";
                }
                if (level == "low" || level == "high" || level == "auto") {
                    out += R"(,"detail":)";
                    append_json_string(out, level);
                } else {
                    return fail("Invalid value for '" + at + ".detail': '" + std::string(level) +
                                    "'. Send 'low', 'high' or 'auto'.",
                                at + ".detail", "invalid_value");
                }
            }
            out += "}}";
        } else if (type == "input_file") {
            if (file_url && !file_url->is_null()) {
                return fail(at + ".file_url is not supported by this proxy: send the file as file_data, a data URL "
                                 "(data:application/pdf;base64,<the file, base64-encoded>), or as file_id (a file "
                                 "uploaded to Mistral).",
                            at + ".file_url", "unsupported_parameter");
            }
            const bool has_data = file_data && !file_data->is_null();
            const bool has_id = file_id && !file_id->is_null();
            if (!has_data && !has_id) {
                return fail(at + " has neither file_data nor file_id: send file_data, a data URL "
                                 "(data:application/pdf;base64,...), or file_id.",
                            at, "missing_required_parameter");
            }
            out += R"({"type":"file","file":{)";
            bool first = true;
            const auto member = [&](std::string_view key, const std::optional<dom::element>& value) {
                if (!value || value->is_null()) {
                    return;
                }
                if (!first) {
                    out += ',';
                }
                first = false;
                append_json_string(out, key);
                out += ':';
                out += simdjson::minify(*value);
            };
            member("file_data", file_data);
            member("file_id", file_id);
            member("filename", filename);
            out += "}}";
        } else {
            return fail("Content part type '" + std::string(type) +
                            "' is not supported here: send input_text, input_image or input_file parts.",
                        at + ".type", "invalid_value");
        }
        ++index;
    }
    out += ']';
    return true;
}

bool translator::assistant_text(dom::element content, const std::string& where, std::string& text) {
    if (content.type() == dom::element_type::STRING) {
        text = string_of(content);
        return true;
    }
    dom::array parts;
    if (content.get_array().get(parts) != simdjson::SUCCESS) {
        return wrong_type(where, "a string or an array of parts", content);
    }
    std::size_t index = 0;
    for (dom::element part : parts) {
        const std::string at = where + "[" + std::to_string(index++) + "]";
        dom::object object;
        if (part.get_object().get(object) != simdjson::SUCCESS) {
            return wrong_type(at, "an object", part);
        }
        std::string_view type;
        std::optional<dom::element> value;
        for (dom::key_value_pair member : object) {
            if (member.key == "type") {
                type = string_of(member.value);
            } else if (member.key == "text" || member.key == "refusal") {
                value = member.value;
            }
        }
        if (type != "output_text" && type != "input_text" && type != "text" && type != "refusal") {
            return fail("Content part type '" + std::string(type) +
                            "' is not supported in an assistant message: send output_text parts.",
                        at + ".type", "invalid_value");
        }
        if (!value || value->type() != dom::element_type::STRING) {
            return fail("Missing required parameter: '" + at + ".text' (a string).", at + ".text",
                        "missing_required_parameter");
        }
        text += string_of(*value);
    }
    return true;
}

bool translator::add_message(dom::object item, origin from, const std::string& where, std::string_view id) {
    std::optional<dom::element> role, content;
    for (dom::key_value_pair member : item) {
        if (member.key == "role") {
            role = member.value;
        } else if (member.key == "content") {
            content = member.value;
        }
    }
    if (!role || role->type() != dom::element_type::STRING) {
        return fail("Missing required parameter: '" + where + ".role' (user, assistant, system or developer).",
                    where + ".role", "missing_required_parameter");
    }
    const std::string_view role_name = string_of(*role);
    if (role_name != "user" && role_name != "assistant" && role_name != "system" && role_name != "developer") {
        return fail("Invalid value for '" + where + ".role': '" + std::string(role_name) +
                        "'. Send user, assistant, system or developer.",
                    where + ".role", "invalid_value");
    }
    if (!content || content->is_null()) {
        return fail("Missing required parameter: '" + where + ".content' (a string or an array of parts).",
                    where + ".content", "missing_required_parameter");
    }
    const bool is_string = content->type() == dom::element_type::STRING;
    if (!is_string && content->type() != dom::element_type::ARRAY) {
        return wrong_type(where + ".content", "a string or an array of parts", *content);
    }
    if (role_name == "assistant") {
        std::string text;
        if (!assistant_text(*content, where + ".content", text)) {
            return false;
        }
        flush_assistant();
        pending_open_ = true;
        pending_has_text_ = true;
        pending_text_ = std::move(text);
        if (from == origin::input) {
            begin_input_item(id, "msg_");
            std::string& out = result_.input_items;
            out += R"(,"type":"message","status":"completed","content":[)";
            append_output_text_part(out, pending_text_);
            out += R"(],"role":"assistant"})";
        }
        return true;
    }
    flush_assistant();
    begin_message();
    messages_ += R"({"role":)";
    append_json_string(messages_, role_name);
    messages_ += R"(,"content":)";
    if (is_string) {
        messages_ += simdjson::minify(*content);
    } else if (!write_parts(array_of(*content), where + ".content", messages_)) {
        return false;
    }
    messages_ += '}';
    if (from == origin::input) {
        begin_input_item(id, "msg_");
        std::string& out = result_.input_items;
        out += R"(,"type":"message","role":)";
        append_json_string(out, role_name);
        out += R"(,"content":)";
        if (is_string) {
            out += R"([{"type":"input_text","text":)";
            out += simdjson::minify(*content);
            out += "}]";
        } else {
            out += simdjson::minify(*content);
        }
        out += R"(,"status":"completed"})";
    }
    return true;
}

bool translator::add_function_call(dom::object item, origin from, const std::string& where, std::string_view id) {
    std::optional<dom::element> call_id, name, arguments;
    for (dom::key_value_pair member : item) {
        if (member.key == "call_id") {
            call_id = member.value;
        } else if (member.key == "name") {
            name = member.value;
        } else if (member.key == "arguments") {
            arguments = member.value;
        }
    }
    if (!call_id || call_id->type() != dom::element_type::STRING || string_of(*call_id).empty()) {
        return fail("Missing required parameter: '" + where + ".call_id' (a string).", where + ".call_id",
                    "missing_required_parameter");
    }
    if (!name || name->type() != dom::element_type::STRING || string_of(*name).empty()) {
        return fail("Missing required parameter: '" + where + ".name' (a string).", where + ".name",
                    "missing_required_parameter");
    }
    std::string args;
    if (!arguments || arguments->is_null()) {
        args = "{}";
    } else if (arguments->type() == dom::element_type::STRING) {
        args = string_of(*arguments);
    } else if (arguments->type() == dom::element_type::OBJECT) {
        args = simdjson::minify(*arguments);  // lenient: an object means its JSON text
    } else {
        return wrong_type(where + ".arguments", "a string", *arguments);
    }
    if (!pending_open_) {
        pending_open_ = true;
        pending_has_text_ = false;
    }
    if (!pending_calls_.empty()) {
        pending_calls_ += ',';
    }
    pending_calls_ += R"({"id":)";
    pending_calls_ += simdjson::minify(*call_id);
    pending_calls_ += R"(,"type":"function","function":{"name":)";
    pending_calls_ += simdjson::minify(*name);
    pending_calls_ += R"(,"arguments":)";
    append_json_string(pending_calls_, args);
    pending_calls_ += "}}";
    call_names_.emplace_back(std::string(string_of(*call_id)), std::string(string_of(*name)));
    if (from == origin::input) {
        begin_input_item(id, "fc_");
        std::string& out = result_.input_items;
        // Same member order as append_function_call_item.
        out += R"(,"type":"function_call","status":"completed","arguments":)";
        append_json_string(out, args);
        out += R"(,"call_id":)";
        out += simdjson::minify(*call_id);
        out += R"(,"name":)";
        out += simdjson::minify(*name);
        out += '}';
    }
    return true;
}

bool translator::add_function_call_output(dom::object item, origin from, const std::string& where,
                                          std::string_view id) {
    std::optional<dom::element> call_id, output;
    for (dom::key_value_pair member : item) {
        if (member.key == "call_id") {
            call_id = member.value;
        } else if (member.key == "output") {
            output = member.value;
        }
    }
    if (!call_id || call_id->type() != dom::element_type::STRING || string_of(*call_id).empty()) {
        return fail(
            "Missing required parameter: '" + where + ".call_id' (the call_id of the function_call it answers).",
            where + ".call_id", "missing_required_parameter");
    }
    if (!output || (output->type() != dom::element_type::STRING && output->type() != dom::element_type::ARRAY)) {
        if (!output) {
            return fail("Missing required parameter: '" + where + ".output' (a string or an array of parts).",
                        where + ".output", "missing_required_parameter");
        }
        return wrong_type(where + ".output", "a string or an array of parts", *output);
    }
    flush_assistant();
    begin_message();
    const std::string_view call = string_of(*call_id);
    messages_ += R"({"role":"tool","tool_call_id":)";
    append_json_string(messages_, call);
    for (auto it = call_names_.rbegin(); it != call_names_.rend(); ++it) {
        if (it->first == call) {
            messages_ += R"(,"name":)";
            append_json_string(messages_, it->second);
            break;
        }
    }
    messages_ += R"(,"content":)";
    if (output->type() == dom::element_type::STRING) {
        messages_ += simdjson::minify(*output);
    } else if (!write_parts(array_of(*output), where + ".output", messages_)) {
        return false;
    }
    messages_ += '}';
    if (from == origin::input) {
        begin_input_item(id, "fco_");
        std::string& out = result_.input_items;
        out += R"(,"type":"function_call_output","call_id":)";
        append_json_string(out, call);
        out += R"(,"output":)";
        out += simdjson::minify(*output);
        out += R"(,"status":"completed"})";
    }
    return true;
}

bool translator::add_reference(dom::object item, origin from, const std::string& where) {
    std::optional<dom::element> id;
    for (dom::key_value_pair member : item) {
        if (member.key == "id") {
            id = member.value;
        }
    }
    if (!id || id->type() != dom::element_type::STRING) {
        return fail("Missing required parameter: '" + where + ".id' (the id of a stored item).", where + ".id",
                    "missing_required_parameter");
    }
    if (from != origin::input) {
        return fail("A stored item is itself an item_reference; send the item instead.", where + ".id",
                    "invalid_value");
    }
    const std::string_view wanted = string_of(*id);
    const std::string_view stored = earlier_.find_item ? earlier_.find_item(wanted) : std::string_view();
    if (stored.empty()) {
        return fail("Item with id '" + std::string(wanted) +
                        "' not found: item_reference names an item of a stored response (store: true); send the "
                        "item itself instead.",
                    where + ".id", "item_not_found");
    }
    dom::element element;
    if (item_parser.parse(stored.data(), stored.size()).get(element) != simdjson::SUCCESS ||
        element.type() != dom::element_type::OBJECT) {
        return fail(
            "Item with id '" + std::string(wanted) + "' could not be read from the store; send the item itself.",
            where + ".id", "item_not_found");
    }
    if (!add_item(element, origin::reference, where)) {
        return false;
    }
    std::string& out = result_.input_items;
    if (!first_input_item_) {
        out += ',';
    }
    first_input_item_ = false;
    out += simdjson::minify(element);
    return true;
}

bool translator::add_item(dom::element item, origin from, const std::string& where) {
    dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
        return wrong_type(where, "an object (an input item)", item);
    }
    std::optional<dom::element> type, role;
    std::string_view id;
    for (dom::key_value_pair member : object) {
        if (member.key == "type") {
            type = member.value;
        } else if (member.key == "role") {
            role = member.value;
        } else if (member.key == "id") {
            id = string_of(member.value);
        }
    }
    std::string_view kind;
    if (type && !type->is_null()) {
        if (type->type() != dom::element_type::STRING) {
            return wrong_type(where + ".type", "a string", *type);
        }
        kind = string_of(*type);
    } else if (role) {
        kind = "message";  // EasyInputMessage: {role, content}
    } else if (!id.empty()) {
        kind = "item_reference";  // ItemReferenceParam: type may be null
    } else {
        return fail("Missing required parameter: '" + where + ".type'.", where + ".type", "missing_required_parameter");
    }
    if (kind == "message") {
        return add_message(object, from, where, id);
    }
    if (kind == "function_call") {
        return add_function_call(object, from, where, id);
    }
    if (kind == "function_call_output") {
        return add_function_call_output(object, from, where, id);
    }
    if (kind == "reasoning") {
        // Mistral takes no reasoning back; its thinking is not replayed (OpenAI's
        // own encrypted reasoning could not be read by Mistral either).
        note("reasoning items dropped: Mistral's chat takes no earlier reasoning back");
        if (from == origin::input) {
            begin_input_item(id, "rs_");
            std::string& out = result_.input_items;
            out += R"(,"type":"reasoning","summary":)";
            std::optional<dom::element> summary;
            for (dom::key_value_pair member : object) {
                if (member.key == "summary") {
                    summary = member.value;
                }
            }
            out += summary && summary->type() == dom::element_type::ARRAY ? simdjson::minify(*summary) : "[]";
            out += '}';
        }
        return true;
    }
    if (kind == "item_reference") {
        return add_reference(object, from, where);
    }
    return fail("Input item type '" + std::string(kind) +
                    "' is not supported by this proxy: send message, function_call, function_call_output, reasoning "
                    "or item_reference items.",
                where + ".type", "unsupported_item_type");
}

bool translator::add_items(dom::array items, origin from, std::string_view base) {
    std::size_t index = 0;
    for (dom::element item : items) {
        std::string where(base);
        where += '[';
        where += std::to_string(index++);
        where += ']';
        if (!add_item(item, from, where)) {
            return false;
        }
    }
    return true;
}

bool translator::write_messages() {
    if (const auto instructions = given(field::instructions)) {
        begin_message();
        messages_ += R"({"role":"system","content":)";
        messages_ += simdjson::minify(*instructions);
        messages_ += '}';
    }
    if (!earlier_.previous_items.empty()) {
        dom::element element;
        dom::array items;
        if (history_parser.parse(earlier_.previous_items.data(), earlier_.previous_items.size()).get(element) !=
                simdjson::SUCCESS ||
            element.get_array().get(items) != simdjson::SUCCESS) {
            return fail("The stored conversation of previous_response_id could not be read; start a new one.",
                        "previous_response_id", "previous_response_not_found");
        }
        if (!add_items(items, origin::previous, "previous_response_id")) {
            return false;
        }
    }
    result_.input_items = "[";
    if (const auto input = given(field::input)) {
        if (input->type() == dom::element_type::STRING) {
            flush_assistant();
            begin_message();
            const std::string text = simdjson::minify(*input);
            messages_ += R"({"role":"user","content":)";
            messages_ += text;
            messages_ += '}';
            begin_input_item({}, "msg_");
            result_.input_items += R"(,"type":"message","role":"user","content":[{"type":"input_text","text":)";
            result_.input_items += text;
            result_.input_items += R"(}],"status":"completed"})";
        } else if (!add_items(array_of(*input), origin::input, "input")) {
            return false;
        }
    }
    flush_assistant();
    result_.input_items += ']';
    if (first_message_) {
        return fail("Missing required parameter: 'input' (a string or a list of items).", "input",
                    "missing_required_parameter");
    }
    return true;
}

void translator::run(std::string_view body) {
    dom::element root_element;
    dom::object root;
    if (body_parser.parse(body.data(), body.size()).get(root_element) != simdjson::SUCCESS ||
        root_element.get_object().get(root) != simdjson::SUCCESS) {
        fail("The request body must be a JSON object (a Responses API request).", "", std::nullopt);
        result_.error->param.reset();
        return;
    }
    result_.response_id = ids_.make("resp_");  // first, so that it is resp_...1 in tests
    if (!read_fields(root) || !check_types() || !write_settings()) {
        return;
    }
    if (const auto tools = given(field::tools); tools && !write_tools(*tools)) {
        return;
    }
    if (const auto choice = given(field::tool_choice); choice && !write_tool_choice(*choice)) {
        return;
    }
    if (const auto text = given(field::text); text && !write_text_format(*text)) {
        return;
    }
    if (const auto reasoning = given(field::reasoning)) {
        for (dom::key_value_pair member : object_of(*reasoning)) {
            if (member.key == "effort" && member.value.type() == dom::element_type::STRING) {
                reasoning_effort_ = simdjson::minify(member.value);
            }
        }
    }
    if (!write_messages()) {
        return;
    }
    // Accepted, not sent: noted when they ask for something Mistral will not do.
    if (given(field::max_tool_calls)) {
        note("max_tool_calls not enforced: Mistral has no such limit");
    }
    if (const auto v = given(field::top_logprobs); v && is_integer(*v) && simdjson::minify(*v) != "0") {
        note("top_logprobs dropped: logprobs are not available through this proxy");
    }
    if (const auto v = given(field::include); v && array_of(*v).size() != 0) {
        note("include dropped: none of its extra outputs is available from Mistral");
    }
    if (const auto v = given(field::truncation); v && string_of(*v) == "auto") {
        note("truncation 'auto' not applied: the conversation is sent whole");
    }
    if (given(field::moderation) || given(field::context_management)) {
        note("moderation/context_management dropped: Mistral's chat has no such settings");
    }
    if (given(field::service_tier) || given(field::prompt_cache_retention) || given(field::prompt_cache_options)) {
        note("service_tier/prompt_cache_* dropped: not Mistral settings");
    }

    std::string& out = result_.chat_body;
    out.reserve(messages_.size() + tools_chat_.size() + 256);
    out += R"({"model":)";
    out += simdjson::minify(*given(field::model));
    out += R"(,"messages":[)";
    out += messages_;
    out += ']';
    if (!tools_chat_.empty()) {
        out += R"(,"tools":)";
        out += tools_chat_;
    }
    if (!tool_choice_chat_.empty()) {
        out += R"(,"tool_choice":)";
        out += tool_choice_chat_;
    }
    if (const auto v = given(field::parallel_tool_calls)) {
        out += R"(,"parallel_tool_calls":)";
        out += simdjson::minify(*v);
    }
    if (!response_format_.empty()) {
        out += R"(,"response_format":)";
        out += response_format_;
    }
    if (const auto v = given(field::temperature)) {
        out += R"(,"temperature":)";
        out += simdjson::minify(*v);
    }
    if (const auto v = given(field::top_p)) {
        out += R"(,"top_p":)";
        out += simdjson::minify(*v);
    }
    if (const auto v = given(field::max_output_tokens)) {
        out += R"(,"max_tokens":)";
        out += simdjson::minify(*v);
    }
    if (!reasoning_effort_.empty()) {
        out += R"(,"reasoning_effort":)";
        out += reasoning_effort_;
    }
    if (result_.stream) {
        out += R"(,"stream":true,"stream_options":{"include_usage":true})";
    }
    out += '}';
    out.reserve(out.size() + simdjson::SIMDJSON_PADDING);
}

}  // namespace

references find_references(std::string_view body) {
    references found;
    struct release {
        ~release() { release_if_large(scan_parser); }
    } on_return;
    dom::element root_element;
    dom::object root;
    if (scan_parser.parse(body.data(), body.size()).get(root_element) != simdjson::SUCCESS ||
        root_element.get_object().get(root) != simdjson::SUCCESS) {
        found.error = errors::make_error(400, "The request body must be a JSON object (a Responses API request).");
        return found;
    }
    for (dom::key_value_pair member : root) {
        if (member.key == "previous_response_id") {
            found.previous_response_id = std::string(string_of(member.value));
        } else if (member.key == "input") {
            found.item_ids.clear();
            dom::array items;
            if (member.value.get_array().get(items) != simdjson::SUCCESS) {
                continue;
            }
            for (dom::element item : items) {
                dom::object object;
                if (item.get_object().get(object) != simdjson::SUCCESS) {
                    continue;
                }
                std::optional<dom::element> type;
                bool has_role = false;
                std::string_view id;
                for (dom::key_value_pair field_member : object) {
                    if (field_member.key == "type") {
                        type = field_member.value;
                    } else if (field_member.key == "role") {
                        has_role = true;
                    } else if (field_member.key == "id") {
                        id = string_of(field_member.value);
                    }
                }
                const bool reference = (type && string_of(*type) == "item_reference") ||
                                       ((!type || type->is_null()) && !has_role && !id.empty());
                if (reference && !id.empty()) {
                    found.item_ids.emplace_back(id);
                }
            }
        }
    }
    return found;
}

translated_request translate_request(std::string_view body, const history& earlier, id_source& ids) {
    translated_request result;
    translator t(result, earlier, ids);
    t.run(body);
    release_if_large(body_parser);
    release_if_large(history_parser);
    release_if_large(item_parser);
    if (result.error) {
        result.chat_body.clear();
        result.input_items.clear();
    }
    return result;
}

std::string join_items(std::string_view previous_items, std::string_view input_items, std::string_view output_items) {
    std::string out = "[";
    bool first = true;
    for (std::string_view items : {previous_items, input_items, output_items}) {
        // Trim whitespace and the brackets; what is left is the comma-separated items.
        while (!items.empty() &&
               (items.front() == ' ' || items.front() == '\n' || items.front() == '\t' || items.front() == '\r')) {
            items.remove_prefix(1);
        }
        while (!items.empty() &&
               (items.back() == ' ' || items.back() == '\n' || items.back() == '\t' || items.back() == '\r')) {
            items.remove_suffix(1);
        }
        if (items.size() < 2 || items.front() != '[' || items.back() != ']') {
            continue;
        }
        items = items.substr(1, items.size() - 2);
        bool blank = true;
        for (const char c : items) {
            blank = blank && (c == ' ' || c == '\n' || c == '\t' || c == '\r');
        }
        if (blank) {
            continue;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        out += items;
    }
    out += ']';
    return out;
}

}  // namespace mistral_proxy::openai_responses
