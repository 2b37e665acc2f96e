#pragma once
// What the response side needs from the rule files, and how it reports which
// response rules changed an answer (x-mistral-proxy-rules, metrics). Pure.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/registry.hpp"

namespace mistral_proxy::rules {
class rule_set;
}

namespace mistral_proxy::responses {

struct response_rules {
    // finish_reason values rewritten in answers, whole and streamed (rule id
    // `finish_reason`). A value not listed passes unchanged. "error" is never
    // mapped to a finish_reason: it becomes an OpenAI error (see chat_response.hpp).
    // Empty by default: the values come from the rule files (rules/mistral.yaml).
    std::vector<std::pair<std::string, std::string>> finish_reasons;

    // POST /v1/moderations answers: per OpenAI category (index into
    // rules::openai_moderation_categories), the Mistral categories it is built
    // from (`moderation_categories:` of the rule files; moderations.hpp).
    std::vector<std::vector<std::string>> moderation_categories;

    // The answer side of a loaded rule set: its finish_reason table, or none when
    // the rule files switch `finish_reason` off, and its moderation categories.
    // (Tests build it from the real rules/mistral.yaml this way; there is no
    // hard-coded copy of it.)
    static response_rules from(const rules::rule_set& set);

    // The mapping for `from`, or `from` itself when none applies.
    std::string_view map_finish_reason(std::string_view from) const noexcept;
};

// The answer side's rule ids are rows of the one registry (rules/registry.hpp):
// finish_reason, errors and model_alias are SPEC §6 ids (flag `shown`), the
// others (stream_repair, message_repair, reasoning, embeddings_base64,
// text_completion) tell the routine repairs apart inside the proxy.
using response_rule = rules::rule_id;

inline std::string_view rule_id(response_rule rule) noexcept { return rules::rule_name(rule); }

// A small set of response_rule values: cheap to copy, no allocation.
class rule_hits {
public:
    void add(response_rule rule) noexcept { bits_ |= bit(rule); }
    void merge(rule_hits other) noexcept { bits_ |= other.bits_; }
    bool has(response_rule rule) const noexcept { return (bits_ & bit(rule)) != 0; }
    bool empty() const noexcept { return bits_ == 0; }

    // Appends the ids in registry order, each preceded by `separator` unless `out`
    // is empty: rule_hits.append_ids(header_value, ",") extends the request's list.
    void append_ids(std::string& out, std::string_view separator = ",") const;

    template <typename F>
    void for_each(F&& visit) const {
        for (std::size_t i = 0; i < rules::rule_count; ++i) {
            if ((bits_ & (1U << i)) != 0) {
                visit(static_cast<response_rule>(i));
            }
        }
    }

private:
    static constexpr std::uint32_t bit(response_rule rule) noexcept { return 1U << static_cast<unsigned>(rule); }
    std::uint32_t bits_ = 0;
};

// Token counts of an answer, for the limiter's correction (SPEC §8).
struct usage_counts {
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::uint64_t total_tokens = 0;
};

}  // namespace mistral_proxy::responses
