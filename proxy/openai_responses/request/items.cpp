// The request's items (input, the stored conversation, item references) ->
// chat messages: messages and their content parts, function calls and their
// outputs, an assistant message's text, the messages array assembled.
// Compiled as part of request.cpp's translation unit (see the end of it).
#include "openai_responses/request/translator.hpp"

namespace mistral_proxy::openai_responses {
namespace {

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

}  // namespace
}  // namespace mistral_proxy::openai_responses
