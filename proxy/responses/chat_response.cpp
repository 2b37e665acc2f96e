// Whole chat answers rewritten for OpenAI clients, and the legacy
// text_completion shape (see chat_response.hpp).
#include "responses/chat_response.hpp"

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::append_uint;
using detail::begin_member;
using detail::copy_member;
using detail::raw_value;

namespace {

enum class target_shape { chat_completion, text_completion };

errors::openai_error generation_error() {
    return errors::make_error(502, "upstream stopped generating because of an error (finish_reason \"error\")",
                              "upstream_generation_error");
}

errors::openai_error not_a_completion() {
    return errors::make_error(502, "upstream answered with a body that is not a completion", "upstream_bad_body");
}

// One pass over the body; per-call scratch lives here so nothing is shared
// between threads.
class rewriter {
public:
    rewriter(const response_rules& rules, target_shape shape) : rules_(rules), shape_(shape) {}

    body_result run(std::string_view body) {
        body_result result;
        thread_local detail::json_reader reader;
        od::document doc;
        od::object root;
        if (!reader.open(body, doc, root)) {
            return failed(result);
        }
        // The answer's id seeds generated tool call ids; it may follow `choices`.
        {
            od::value id_value;
            if (root.find_field_unordered("id").get(id_value) == simdjson::SUCCESS) {
                std::string_view raw;
                if (raw_value(id_value, raw)) {
                    answer_id_ = raw;
                }
            }
            if (root.reset().error() != simdjson::SUCCESS) {
                return failed(result);
            }
        }
        out_.reserve(body.size() + 64);
        out_ += '{';
        bool first = true;
        bool saw_object = false;
        bool saw_choices = false;
        for (auto field : root) {
            std::string_view key;
            if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                return failed(result);
            }
            od::value value = field.value();
            bool ok = true;
            if (key == "choices") {
                od::array choices;
                if (value.get_array().get(choices) != simdjson::SUCCESS) {
                    return failed(result);
                }
                saw_choices = true;
                begin_member(out_, first, key);
                ok = write_choices(choices);
            } else if (key == "object" && shape_ == target_shape::text_completion) {
                begin_member(out_, first, key);
                out_ += R"("text_completion")";
                saw_object = true;
            } else if (key == "usage") {
                std::string_view raw;
                usage_counts counts;
                if (detail::read_usage_value(value, raw, counts)) {
                    result.usage = counts;
                    begin_member(out_, first, key);
                    out_ += raw;
                } else {
                    ok = copy_member(out_, first, key, value);
                }
            } else {
                ok = copy_member(out_, first, key, value);
            }
            if (!ok) {
                return failed(result);
            }
        }
        if (!detail::at_end(doc) || !saw_choices) {
            return failed(result);
        }
        if (shape_ == target_shape::text_completion && !saw_object) {
            begin_member(out_, first, "object");
            out_ += R"("text_completion")";
        }
        out_ += '}';
        result.hits = hits_;
        if (generation_error_) {
            result.error = generation_error();
            result.hits.add(response_rule::errors);
            return result;
        }
        if (shape_ == target_shape::text_completion) {
            result.hits.add(response_rule::text_completion);
        }
        if (result.hits.empty()) {
            result.unchanged = true;  // nothing differed: the upstream bytes are the answer
            return result;
        }
        result.body = std::move(out_);
        return result;
    }

private:
    body_result& failed(body_result& result) {
        if (shape_ == target_shape::text_completion) {
            result.error = not_a_completion();
        } else {
            result.unchanged = true;
        }
        return result;
    }

    bool write_choices(od::array choices) {
        out_ += '[';
        bool first_choice = true;
        std::uint64_t position = 0;
        for (auto element : choices) {
            od::object choice;
            if (element.get_object().get(choice) != simdjson::SUCCESS) {
                return false;
            }
            if (!first_choice) {
                out_ += ',';
            }
            first_choice = false;
            const bool ok = shape_ == target_shape::chat_completion ? write_chat_choice(choice, position)
                                                                    : write_text_choice(choice, position);
            if (!ok) {
                return false;
            }
            ++position;
        }
        out_ += ']';
        return true;
    }

    // Writes the mapped finish_reason value (or null) and notes "error".
    void write_finish_reason(od::value& value, std::string& out) {
        std::string_view reason;
        if (value.get_string().get(reason) != simdjson::SUCCESS) {
            out += "null";
            return;
        }
        const std::string_view mapped = rules_.map_finish_reason(reason);
        if (reason == "error" || mapped == "error") {
            generation_error_ = true;
        }
        if (mapped != reason) {
            hits_.add(response_rule::finish_reason);
        }
        errors::append_json_string(out, mapped);
    }

    bool write_chat_choice(od::object choice, std::uint64_t position) {
        out_ += '{';
        bool first = true;
        bool saw_message = false;
        bool saw_logprobs = false;
        for (auto field : choice) {
            std::string_view key;
            if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                return false;
            }
            od::value value = field.value();
            if (key == "message") {
                saw_message = true;
                od::object message;
                if (value.get_object().get(message) == simdjson::SUCCESS) {
                    begin_member(out_, first, key);
                    if (!write_message(message, position)) {
                        return false;
                    }
                    continue;
                }
                if (!copy_member(out_, first, key, value)) {
                    return false;
                }
            } else if (key == "finish_reason") {
                begin_member(out_, first, key);
                write_finish_reason(value, out_);
            } else if (key == "messages") {
                hits_.add(response_rule::message_repair);  // Mistral-only
            } else {
                saw_logprobs = saw_logprobs || key == "logprobs";
                if (!copy_member(out_, first, key, value)) {
                    return false;
                }
            }
        }
        // OpenAI's choice requires both (Mistral's may leave the message out, and
        // never sends logprobs); strictly typed clients fail on a missing one.
        if (!saw_message) {
            begin_member(out_, first, "message");
            out_ += R"({"role":"assistant","content":null,"refusal":null})";
            hits_.add(response_rule::message_repair);
        }
        if (!saw_logprobs) {
            begin_member(out_, first, "logprobs");
            out_ += "null";
            hits_.add(response_rule::message_repair);
        }
        out_ += '}';
        return true;
    }

    bool write_message(od::object message, std::uint64_t choice_position) {
        // Does the message carry tool calls? content "" becomes null then.
        bool has_tool_calls = false;
        {
            od::array calls;
            if (message.find_field_unordered("tool_calls").get_array().get(calls) == simdjson::SUCCESS) {
                for (auto call : calls) {
                    (void)call;
                    has_tool_calls = true;
                    break;
                }
            }
            if (message.reset().error() != simdjson::SUCCESS) {
                return false;
            }
        }
        out_ += '{';
        bool first = true;
        bool saw_role = false;
        bool saw_content = false;
        bool saw_refusal = false;
        for (auto field : message) {
            std::string_view key;
            if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                return false;
            }
            od::value value = field.value();
            od::json_type type;
            if (value.type().get(type) != simdjson::SUCCESS) {
                return false;
            }
            saw_role = saw_role || key == "role";
            saw_content = saw_content || key == "content";
            saw_refusal = saw_refusal || key == "refusal";
            if (key == "content" && type == od::json_type::string) {
                std::string_view raw;
                if (!raw_value(value, raw)) {
                    return false;
                }
                begin_member(out_, first, key);
                if (raw == R"("")" && has_tool_calls) {
                    out_ += "null";
                    hits_.add(response_rule::message_repair);
                } else {
                    out_ += raw;
                }
            } else if (key == "content" && type == od::json_type::array) {
                od::array chunks;
                std::string text;
                std::string reasoning;
                if (value.get_array().get(chunks) != simdjson::SUCCESS ||
                    !detail::write_flattened_content(out_, first, chunks, text, reasoning, has_tool_calls)) {
                    return false;
                }
                hits_.add(response_rule::reasoning);
            } else if (key == "tool_calls" && type == od::json_type::array) {
                od::array calls;
                if (value.get_array().get(calls) != simdjson::SUCCESS) {
                    return false;
                }
                begin_member(out_, first, key);
                if (!write_tool_calls(calls, choice_position)) {
                    return false;
                }
            } else if (key == "prefix" || (key == "tool_calls" && type == od::json_type::null)) {
                // prefix is Mistral-only; OpenAI's tool_calls is an array or absent, never null.
                hits_.add(response_rule::message_repair);
            } else if (!copy_member(out_, first, key, value)) {
                return false;
            }
        }
        // OpenAI's message requires role, content and refusal (null when none);
        // Mistral's may leave out role and content, and has no refusal.
        if (!saw_role) {
            begin_member(out_, first, "role");
            out_ += R"("assistant")";
            hits_.add(response_rule::message_repair);
        }
        if (!saw_content) {
            begin_member(out_, first, "content");
            out_ += "null";
            hits_.add(response_rule::message_repair);
        }
        if (!saw_refusal) {
            begin_member(out_, first, "refusal");
            out_ += "null";
            hits_.add(response_rule::message_repair);
        }
        out_ += '}';
        return true;
    }

    bool write_tool_calls(od::array calls, std::uint64_t choice_position) {
        out_ += '[';
        std::uint64_t position = 0;
        for (auto element : calls) {
            od::object call;
            if (element.get_object().get(call) != simdjson::SUCCESS) {
                return false;
            }
            if (position != 0) {
                out_ += ',';
            }
            out_ += '{';
            bool first = true;
            bool saw_id = false;
            bool saw_type = false;
            for (auto field : call) {
                std::string_view key;
                if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                    return false;
                }
                od::value value = field.value();
                if (key == "id") {
                    std::string_view id;
                    if (value.get_string().get(id) == simdjson::SUCCESS && !detail::is_placeholder_id(id)) {
                        begin_member(out_, first, key);
                        errors::append_json_string(out_, id);
                        saw_id = true;
                    }
                } else if (key == "type") {
                    std::string_view type;
                    if (value.get_string().get(type) == simdjson::SUCCESS) {
                        begin_member(out_, first, key);
                        errors::append_json_string(out_, type);
                        saw_type = true;
                    }
                } else if (key == "function") {
                    od::object function;
                    bool has_name = false;
                    bool repaired = false;
                    begin_member(out_, first, key);
                    if (value.get_object().get(function) != simdjson::SUCCESS ||
                        !detail::write_function(out_, function, has_name, repaired)) {
                        return false;
                    }
                    if (repaired) {
                        hits_.add(response_rule::message_repair);
                    }
                } else {
                    hits_.add(response_rule::message_repair);  // index and anything else Mistral-only
                }
            }
            if (!saw_id) {
                begin_member(out_, first, "id");
                out_ += '"';
                detail::append_tool_call_id(out_, answer_id_, choice_position, position);
                out_ += '"';
                hits_.add(response_rule::message_repair);
            }
            if (!saw_type) {
                begin_member(out_, first, "type");
                out_ += R"("function")";
                hits_.add(response_rule::message_repair);
            }
            out_ += '}';
            ++position;
        }
        out_ += ']';
        return true;
    }

    bool write_text_choice(od::object choice, std::uint64_t position) {
        std::string_view index_raw;
        std::string_view text_raw;
        std::string text;
        bool flattened = false;
        std::string finish = "null";
        for (auto field : choice) {
            std::string_view key;
            if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
                return false;
            }
            od::value value = field.value();
            if (key == "index") {
                if (!raw_value(value, index_raw)) {
                    return false;
                }
            } else if (key == "finish_reason") {
                finish.clear();
                write_finish_reason(value, finish);
            } else if (key == "message") {
                od::object message;
                if (value.get_object().get(message) != simdjson::SUCCESS) {
                    continue;
                }
                od::value content;
                if (message.find_field_unordered("content").get(content) != simdjson::SUCCESS) {
                    continue;
                }
                od::json_type type;
                if (content.type().get(type) != simdjson::SUCCESS) {
                    return false;
                }
                if (type == od::json_type::string) {
                    if (!raw_value(content, text_raw)) {
                        return false;
                    }
                } else if (type == od::json_type::array) {
                    od::array chunks;
                    std::string reasoning;
                    bool any_text = false;
                    bool any_reasoning = false;
                    if (content.get_array().get(chunks) != simdjson::SUCCESS ||
                        !detail::flatten_content(chunks, text, reasoning, any_text, any_reasoning)) {
                        return false;
                    }
                    flattened = true;
                }
            }
        }
        out_ += R"({"text":)";
        if (flattened) {
            errors::append_json_string(out_, text);
        } else if (!text_raw.empty()) {
            out_ += text_raw;
        } else {
            out_ += R"("")";
        }
        out_ += R"(,"index":)";
        if (!index_raw.empty()) {
            out_ += index_raw;
        } else {
            append_uint(out_, position);
        }
        out_ += R"(,"logprobs":null,"finish_reason":)";
        out_ += finish;
        out_ += '}';
        return true;
    }

    const response_rules& rules_;
    target_shape shape_;
    std::string out_;
    std::string answer_id_;
    rule_hits hits_;
    bool generation_error_ = false;
};

}  // namespace

body_result transform_chat_response(std::string_view body, const response_rules& rules) {
    return rewriter(rules, target_shape::chat_completion).run(body);
}

body_result chat_to_text_completion(std::string_view body, const response_rules& rules) {
    return rewriter(rules, target_shape::text_completion).run(body);
}

}  // namespace mistral_proxy::responses
