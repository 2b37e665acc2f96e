// Mistral chat completion -> OpenAI Response object (see answer.hpp).
#include "openai_responses/answer.hpp"

#include <simdjson.h>

#include <vector>

#include "json/writer.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::openai_responses {

namespace dom = simdjson::dom;

namespace {

std::string_view string_of(dom::element value) noexcept {
    std::string_view s;
    if (value.get_string().get(s) != simdjson::SUCCESS) {
        return {};
    }
    return s;
}

// Text and thinking of Mistral's content as a list of chunks.
void flatten(dom::array chunks, std::string& text, std::string& thinking, bool& any_thinking) {
    for (dom::element chunk : chunks) {
        dom::object object;
        if (chunk.get(object) != simdjson::SUCCESS) {
            continue;
        }
        std::string_view type = "text";
        dom::element value;
        if (object.at_key("type").get(value) == simdjson::SUCCESS) {
            type = string_of(value);
        }
        if (type == "text") {
            if (object.at_key("text").get(value) == simdjson::SUCCESS) {
                text += string_of(value);
            }
        } else if (type == "thinking") {
            dom::array parts;
            if (object.at_key("thinking").get(parts) != simdjson::SUCCESS) {
                continue;
            }
            any_thinking = true;
            for (dom::element part : parts) {
                dom::object part_object;
                dom::element part_text;
                if (part.get(part_object) == simdjson::SUCCESS &&
                    part_object.at_key("text").get(part_text) == simdjson::SUCCESS) {
                    thinking += string_of(part_text);
                }
            }
        }
    }
}

std::optional<responses::usage_counts> usage_of(dom::object root) {
    dom::object usage;
    if (root.at_key("usage").get(usage) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    responses::usage_counts counts;
    std::uint64_t n = 0;
    if (usage.at_key("prompt_tokens").get(n) == simdjson::SUCCESS) {
        counts.prompt_tokens = n;
    }
    if (usage.at_key("completion_tokens").get(n) == simdjson::SUCCESS) {
        counts.completion_tokens = n;
    }
    if (usage.at_key("total_tokens").get(n) == simdjson::SUCCESS) {
        counts.total_tokens = n;
    }
    return counts;
}

struct call {
    std::string call_id;
    std::string name;
    std::string arguments;
};

}  // namespace

translated_answer translate_answer(std::string_view mistral_body, const answer_context& context) {
    translated_answer result;
    const auto bad_body = [&] {
        result.error =
            errors::make_error(502, "upstream answered with a body that is not a chat completion", "upstream_bad_body");
        return result;
    };
    thread_local dom::parser parser;
    // Past 1 MiB of capacity the parser is given back after the call (as the request side does).
    struct release {
        dom::parser& p;
        ~release() {
            if (p.capacity() > (std::size_t{1} << 20)) {
                p = dom::parser();
            }
        }
    } on_return{parser};
    dom::element root_element;
    dom::object root;
    if (mistral_body.empty() ||
        parser.parse(mistral_body.data(), mistral_body.size()).get(root_element) != simdjson::SUCCESS ||
        root_element.get(root) != simdjson::SUCCESS) {
        return bad_body();
    }
    result.usage = usage_of(root);
    dom::array choices;
    dom::object choice;
    dom::object message;
    if (root.at_key("choices").get(choices) != simdjson::SUCCESS || choices.at(0).get(choice) != simdjson::SUCCESS ||
        choice.at_key("message").get(message) != simdjson::SUCCESS) {
        return bad_body();
    }
    std::string_view model;
    dom::element value;
    if (root.at_key("model").get(value) == simdjson::SUCCESS) {
        model = string_of(value);
    }
    std::string answer_id_raw;
    if (root.at_key("id").get(value) == simdjson::SUCCESS) {
        answer_id_raw = simdjson::minify(value);
    }
    std::string_view finish_reason;
    if (choice.at_key("finish_reason").get(value) == simdjson::SUCCESS) {
        finish_reason = string_of(value);
    }
    if (finish_reason == "error") {
        result.error =
            errors::make_error(502, "upstream stopped generating because of an error (finish_reason \"error\")",
                               "upstream_generation_error");
        return result;
    }
    const bool incomplete = finish_reason == "length" || finish_reason == "model_length";
    result.status = incomplete ? "incomplete" : "completed";

    std::string text;
    std::string thinking;
    bool any_thinking = false;
    if (message.at_key("content").get(value) == simdjson::SUCCESS) {
        dom::array chunks;
        if (value.get(chunks) == simdjson::SUCCESS) {
            flatten(chunks, text, thinking, any_thinking);
        } else {
            text = string_of(value);
        }
    }
    std::vector<call> calls;
    dom::array tool_calls;
    if (message.at_key("tool_calls").get(tool_calls) == simdjson::SUCCESS) {
        for (dom::element element : tool_calls) {
            dom::object object;
            dom::object function;
            if (element.get(object) != simdjson::SUCCESS ||
                object.at_key("function").get(function) != simdjson::SUCCESS) {
                continue;
            }
            call c;
            if (object.at_key("id").get(value) == simdjson::SUCCESS) {
                c.call_id = string_of(value);
            }
            if (responses::detail::is_placeholder_id(c.call_id)) {
                c.call_id.clear();
                responses::detail::append_tool_call_id(c.call_id, answer_id_raw, 0, calls.size());
            }
            if (function.at_key("name").get(value) == simdjson::SUCCESS) {
                c.name = string_of(value);
            }
            if (function.at_key("arguments").get(value) == simdjson::SUCCESS) {
                if (value.is_string()) {
                    c.arguments = string_of(value);
                } else {
                    c.arguments = simdjson::minify(value);
                }
            }
            calls.push_back(std::move(c));
        }
    }

    id_source& ids = *context.ids;
    std::string& output = result.output_items;
    output += '[';
    std::string id;
    if (any_thinking) {
        id.clear();
        ids.append(id, "rs_");
        append_reasoning_item(output, id, thinking);
    }
    if (!text.empty() || calls.empty()) {
        if (output.size() > 1) {
            output += ',';
        }
        id.clear();
        ids.append(id, "msg_");
        append_message_item(output, id, incomplete ? "incomplete" : "completed", text);
    }
    for (const call& c : calls) {
        if (output.size() > 1) {
            output += ',';
        }
        id.clear();
        ids.append(id, "fc_");
        append_function_call_item(output, id, "completed", c.call_id, c.name, c.arguments);
    }
    output += ']';

    response_state state;
    state.id = context.response_id;
    state.created_at = context.created_at;
    state.status = result.status;
    state.model = model;
    state.output = output;
    const responses::usage_counts zero;
    state.usage = result.usage ? &*result.usage : &zero;
    state.incomplete_reason = incomplete ? "max_output_tokens" : "";
    if (!incomplete) {
        state.completed_at = context.completed_at;
    }
    result.body.reserve(output.size() + 1024);
    append_response(result.body, *context.settings, state);
    return result;
}

}  // namespace mistral_proxy::openai_responses
