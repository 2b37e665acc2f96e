// The request's tools, tool_choice and text.format -> chat's tools,
// tool_choice and response_format, each refused with the message that names
// it when Mistral's chat has no equivalent. Compiled as part of request.cpp's
// translation unit (see the end of it).
#include "openai_responses/request/translator.hpp"

namespace mistral_proxy::openai_responses {
namespace {

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

}  // namespace
}  // namespace mistral_proxy::openai_responses
