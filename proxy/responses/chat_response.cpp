// Whole chat answers rewritten for OpenAI clients, and the legacy
// text_completion shape (see chat_response.hpp).
#include "responses/chat_response.hpp"

#include "responses/choice_rewriter.hpp"
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
        // Room for what the rules add: a quarter more covers the arguments
        // objects turned into JSON strings (each quote escaped), so the
        // answer is written into one block instead of growing three times.
        out_.reserve(body.size() + body.size() / 4 + 256);
        out_ += '{';
        bool first = true;
        bool saw_object = false;
        bool saw_choices = false;
        for (auto field : root) {
            std::string_view key;
            od::value value;
            if (!detail::member_of(field, key, value)) {
                return failed(result);
            }
            bool ok = true;
            if (key == "choices") {
                od::array choices;
                if (value.get_array().get(choices) != simdjson::SUCCESS) {
                    return failed(result);
                }
                saw_choices = true;
                begin_member(out_, first, "choices");
                ok = write_choices(choices);
            } else if (key == "object" && shape_ == target_shape::text_completion) {
                begin_member(out_, first, "object");
                out_ += R"("text_completion")";
                saw_object = true;
            } else if (key == "usage") {
                std::string_view raw;
                usage_counts counts;
                const auto usage = detail::read_usage_value(value, raw, counts);
                if (usage == detail::usage_read::read) {
                    result.usage = counts;
                    begin_member(out_, first, "usage");
                    out_ += raw;
                } else {
                    ok = usage == detail::usage_read::not_object && copy_member(out_, first, key, value);
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
        const detail::choice_shape shape =
            shape_ == target_shape::chat_completion ? detail::choice_shape::chat : detail::choice_shape::text;
        std::uint64_t position = 0;
        for (auto element : choices) {
            od::object choice;
            if (element.get_object().get(choice) != simdjson::SUCCESS) {
                return false;
            }
            if (position != 0) {
                out_ += ',';
            }
            detail::finish_kind finish = detail::finish_kind::none;
            if (!choice_.write_whole(choice, position, shape, answer_id_, out_, finish)) {
                return false;
            }
            generation_error_ = generation_error_ || finish == detail::finish_kind::error;
            ++position;
        }
        out_ += ']';
        return true;
    }

    const response_rules& rules_;
    target_shape shape_;
    std::string out_;
    std::string_view answer_id_;  // raw, a view of the body run() reads
    rule_hits hits_;
    detail::choice_rewriter choice_{rules_, hits_};  // after hits_: it keeps a reference
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
