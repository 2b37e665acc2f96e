#pragma once
// The one list of rule ids (SPEC §6 and the answer side's repairs): every
// other list of rules is derived from the `registry` table below — the names,
// the count, the ids `switches:` accepts, the metrics' `rule` labels, the ids
// x-mistral-proxy-rules and `explain` may name, and the rule file's top-level
// keys with the rule that owns each. The static_asserts at the bottom and
// tests/unit/registry_test.cpp (which also reads README.md's rule table) keep
// them in step. Adding a rule: rules/README.md, "Adding a rule".
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mistral_proxy::rules {

// In registry order, which is SPEC order: lists of fired ids are reported in it.
enum class rule_id : std::uint8_t {
    model_rewrite,
    model_alias,
    tool_choice_any,
    params,
    ranges,
    messages,
    tool_call_ids,
    role_order,
    tools,
    tool_capable,
    json_mode_hint,
    vision_route,
    finish_reason,
    documents,
    fallback,
    errors,
    stream_repair,
    message_repair,
    reasoning,
    embeddings_base64,
    text_completion,
};

// What a rule is, as bits of rule_info::flags.
enum rule_flag : std::uint8_t {
    // A SPEC §6 id: named in x-mistral-proxy-rules and `explain` when it fires,
    // and a `rule` label of mistral_proxy_rules_fired_total. The other ids are
    // routine repairs of every answer, kept out of the header (they would be in
    // every one) and told apart only inside the proxy.
    shown = 1,
    request_side = 2,  // changes requests (normalizer, planning)
    answer_side = 4,   // changes answers (responses/)
    switchable = 8,    // `switches:` may turn it off; README.md's rule table lists exactly these
};

struct rule_info {
    rule_id id;
    std::string_view name;
    std::uint8_t flags;
};

// The table. One row per id, in enum order (checked below).
inline constexpr std::array registry{
    rule_info{rule_id::model_rewrite, "model_rewrite", shown | request_side | switchable},
    rule_info{rule_id::model_alias, "model_alias", shown | request_side | answer_side | switchable},
    rule_info{rule_id::tool_choice_any, "tool_choice_any", shown | request_side | switchable},
    rule_info{rule_id::params, "params", shown | request_side | switchable},
    rule_info{rule_id::ranges, "ranges", shown | request_side | switchable},
    rule_info{rule_id::messages, "messages", shown | request_side | switchable},
    rule_info{rule_id::tool_call_ids, "tool_call_ids", shown | request_side | switchable},
    rule_info{rule_id::role_order, "role_order", shown | request_side | switchable},
    rule_info{rule_id::tools, "tools", shown | request_side | switchable},
    rule_info{rule_id::tool_capable, "tool_capable", shown | request_side | switchable},
    rule_info{rule_id::json_mode_hint, "json_mode_hint", shown | request_side | switchable},
    rule_info{rule_id::vision_route, "vision_route", shown | request_side | switchable},
    rule_info{rule_id::finish_reason, "finish_reason", shown | answer_side | switchable},
    rule_info{rule_id::documents, "documents", shown | request_side | switchable},
    rule_info{rule_id::fallback, "fallback", shown | request_side | switchable},
    rule_info{rule_id::errors, "errors", shown | answer_side},
    // Repairs of every answer (no SPEC id, never switched off):
    rule_info{rule_id::stream_repair, "stream_repair", answer_side},    // role added, tool call index/type/id filled, usage moved to the final chunk
    rule_info{rule_id::message_repair, "message_repair", answer_side},  // content "" -> null next to tool_calls, Mistral-only keys dropped, arguments as string
    rule_info{rule_id::reasoning, "reasoning", answer_side},            // thinking chunks -> content + reasoning_content
    rule_info{rule_id::embeddings_base64, "embeddings_base64", answer_side},  // floats encoded as base64 float32
    rule_info{rule_id::text_completion, "text_completion", answer_side},      // chat or FIM answer -> legacy text_completion
};

inline constexpr std::size_t rule_count = registry.size();

constexpr const rule_info& info(rule_id id) noexcept { return registry[static_cast<std::size_t>(id)]; }
constexpr std::string_view rule_name(rule_id id) noexcept { return info(id).name; }
constexpr bool has_flag(rule_id id, rule_flag flag) noexcept { return (info(id).flags & flag) != 0; }

constexpr std::optional<rule_id> rule_from_name(std::string_view name) noexcept {
    for (const auto& row : registry) {
        if (row.name == name) {
            return row.id;
        }
    }
    return std::nullopt;
}

// How many rows carry `flag`.
constexpr std::size_t count_with(rule_flag flag) noexcept {
    std::size_t n = 0;
    for (const auto& row : registry) {
        n += (row.flags & flag) != 0 ? 1 : 0;
    }
    return n;
}

// The names of the rows carrying `flag`, in registry order.
template <rule_flag Flag>
constexpr auto names_with() noexcept {
    std::array<std::string_view, count_with(Flag)> names{};
    std::size_t n = 0;
    for (const auto& row : registry) {
        if ((row.flags & Flag) != 0) {
            names[n++] = row.name;
        }
    }
    return names;
}

// The ids `switches:` accepts, in registry order.
inline constexpr auto switch_names = names_with<switchable>();

// The top-level keys of a rule file, in the order error messages list them,
// each with the rule whose settings it holds (none: shared by several rules or
// by the endpoints: include, switches, the model classes, the schema, ...) and
// the function that reads it into the rule set (in the owning rule's unit where
// it has one; see rules/README.md). `include:` is read before the others.
namespace load {
struct builder;
struct section;
using section_parser = void (*)(builder&, const section&);
// rules/rule_set.cpp
void parse_switches(builder&, const section&);
void parse_models_section(builder&, const section&);
void parse_model_classes(builder&, const section&);
void parse_schema_section(builder&, const section&);
void parse_moderation_categories_section(builder&, const section&);
void parse_speech_voices_section(builder&, const section&);
// the rules' own units
void parse_model_rewrite(builder&, const section&);   // normalize/rules/model_mapping.cpp
void parse_model_alias(builder&, const section&);     // normalize/rules/model_mapping.cpp
void parse_tool_capable(builder&, const section&);    // normalize/rules/tool_capable.cpp
void parse_vision_route(builder&, const section&);    // normalize/rules/vision_route.cpp
void parse_fallbacks(builder&, const section&);       // normalize/rules/fallback.cpp
void parse_fallback_statuses(builder&, const section&);  // normalize/rules/fallback.cpp
void parse_params(builder&, const section&);          // normalize/rules/params.cpp
void parse_ranges(builder&, const section&);          // normalize/rules/ranges.cpp
void parse_json_mode_hint(builder&, const section&);  // normalize/rules/json_mode_hint.cpp
void parse_role_order(builder&, const section&);      // normalize/rules/role_order.cpp
void parse_documents(builder&, const section&);       // normalize/rules/documents.cpp
void parse_finish_reason(builder&, const section&);   // responses/response_rules.cpp
}  // namespace load

struct yaml_section {
    std::string_view key;
    std::optional<rule_id> owner;
    load::section_parser parse;
};

inline constexpr std::array yaml_sections{
    yaml_section{"include", std::nullopt, nullptr},
    yaml_section{"switches", std::nullopt, &load::parse_switches},
    yaml_section{"models", std::nullopt, &load::parse_models_section},         // host routing (SPEC §5)
    yaml_section{"model_classes", std::nullopt, &load::parse_model_classes},  // named globs for models, tool_capable, vision_route
    yaml_section{"model_rewrite", rule_id::model_rewrite, &load::parse_model_rewrite},
    yaml_section{"model_alias", rule_id::model_alias, &load::parse_model_alias},
    yaml_section{"tool_capable", rule_id::tool_capable, &load::parse_tool_capable},
    yaml_section{"vision_route", rule_id::vision_route, &load::parse_vision_route},
    yaml_section{"params", rule_id::params, &load::parse_params},
    yaml_section{"ranges", rule_id::ranges, &load::parse_ranges},
    yaml_section{"json_mode_hint", rule_id::json_mode_hint, &load::parse_json_mode_hint},
    yaml_section{"role_order", rule_id::role_order, &load::parse_role_order},
    yaml_section{"finish_reason", rule_id::finish_reason, &load::parse_finish_reason},
    yaml_section{"documents", rule_id::documents, &load::parse_documents},
    yaml_section{"schema", std::nullopt, &load::parse_schema_section},  // Mistral's request schemas (params, messages, tools, ...)
    yaml_section{"fallbacks", rule_id::fallback, &load::parse_fallbacks},
    yaml_section{"fallback_statuses", rule_id::fallback, &load::parse_fallback_statuses},
    yaml_section{"moderation_categories", std::nullopt, &load::parse_moderation_categories_section},  // the moderation endpoint's answer
    yaml_section{"speech_voices", std::nullopt, &load::parse_speech_voices_section},  // the speech endpoint's voice_id
};

constexpr auto section_keys() noexcept {
    std::array<std::string_view, yaml_sections.size()> keys{};
    for (std::size_t i = 0; i < yaml_sections.size(); ++i) {
        keys[i] = yaml_sections[i].key;
    }
    return keys;
}

// Keeping the lists in step.
namespace detail {
constexpr bool rows_in_enum_order() noexcept {
    for (std::size_t i = 0; i < registry.size(); ++i) {
        if (static_cast<std::size_t>(registry[i].id) != i) {
            return false;
        }
    }
    return true;
}
constexpr bool names_unique() noexcept {
    for (std::size_t i = 0; i < registry.size(); ++i) {
        for (std::size_t j = i + 1; j < registry.size(); ++j) {
            if (registry[i].name == registry[j].name) {
                return false;
            }
        }
    }
    return true;
}
constexpr bool shown_rows_first() noexcept {
    // The header and the metrics list SPEC ids in registry order; the repairs come after them.
    bool seen_hidden = false;
    for (const auto& row : registry) {
        if ((row.flags & shown) == 0) {
            seen_hidden = true;
        } else if (seen_hidden) {
            return false;
        }
    }
    return true;
}
constexpr bool sections_parsed() noexcept {
    for (std::size_t i = 0; i < yaml_sections.size(); ++i) {
        if ((yaml_sections[i].parse == nullptr) != (yaml_sections[i].key == "include")) {
            return false;
        }
    }
    return true;
}
constexpr bool sections_owned_by_switchable_rules() noexcept {
    for (const auto& section : yaml_sections) {
        if (section.owner && (info(*section.owner).flags & switchable) == 0) {
            return false;
        }
    }
    return true;
}
}  // namespace detail

static_assert(detail::rows_in_enum_order(), "registry rows must be in rule_id order");
static_assert(detail::names_unique(), "every rule name once");
static_assert(detail::shown_rows_first(), "SPEC ids (shown) come before the answer repairs");
static_assert(detail::sections_owned_by_switchable_rules(), "a rule with settings can be switched off");
static_assert(detail::sections_parsed(), "every section but include: has its parser");
static_assert(rule_count == static_cast<std::size_t>(rule_id::text_completion) + 1, "one row per rule_id");
static_assert(rule_count <= 32, "fired-rule sets are 32-bit masks");

}  // namespace mistral_proxy::rules
