#pragma once
// The compiled, immutable form of the rule files (format: rules/README.md).
// Built once at start-up (and on reload), shared by every request through
// std::shared_ptr<const rule_set>; the hot path only reads it and never
// allocates through it.
#include <array>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/glob.hpp"
#include "rules/registry.hpp"

namespace mistral_proxy::rules {

// Which upstream family a model belongs to.
enum class model_host { mistral, codestral };

// One entry of `models:` (host routing). Either a glob or a named class.
struct model_class {
    std::string pattern;   // glob over the model id ("" when class_index is set)
    int class_index = -1;  // index into rule_set::classes, or -1
    model_host host = model_host::mistral;
};

// A named set of globs (`model_classes:`), referenced by name elsewhere.
struct named_class {
    std::string name;
    glob_set globs;
};

// A `model_rewrite` (exact id) or `model_alias` (glob) entry, with its target
// resolved through every later rewrite/alias at load time.
struct model_mapping {
    std::string pattern;
    std::string target;  // final model id after the whole chain
    bool via_rewrite = false;  // the chain used a model_rewrite entry
    bool via_alias = false;    // the chain used a model_alias entry
};

// A `fallbacks:` entry (SPEC §6 `fallback`): models matching `pattern` (a glob,
// over the model after model_rewrite/model_alias) fall back to `models` in order.
struct fallback_entry {
    std::string pattern;
    std::vector<std::string> models;
};

enum class capability_action { deny, reroute };

// `tool_capable:` / `vision_route:`.
struct capability_rule {
    int class_index = -1;  // tool_capable: models WITHOUT tools; vision_route: models WITH vision
    capability_action action = capability_action::deny;
    std::string reroute_to;            // with action reroute
    std::vector<std::string> suggest;  // named in the deny message
};

// `ranges:` entry: values outside [min, max] are replaced by the bound, written
// as the bound's text in the rule file (so "1.5" stays "1.5").
struct range_rule {
    std::string field;
    std::optional<double> min;
    std::optional<double> max;
    std::string min_text;
    std::string max_text;
};

// JSON kinds a top-level request field accepts (bit mask), from the schema file.
enum json_kind : std::uint8_t {
    kind_string = 1,
    kind_number = 2,  // integer or number
    kind_boolean = 4,
    kind_object = 8,
    kind_array = 16,
    kind_null = 32,
    kind_any = 63,
};

struct field_spec {
    std::string name;
    std::uint8_t kinds = kind_any;
    std::vector<std::string> enum_values;  // non-empty: a string value must be one of these
};

using key_list = std::vector<std::string>;
bool contains(const key_list& list, std::string_view key) noexcept;

// The request schemas the normalizer targets (`schema:` of rules/mistral-schema.yaml,
// generated from Mistral's OpenAPI by rules/gen-schema.mjs).
struct request_schema {
    std::vector<field_spec> fields;
    // The field named `name`, or null. Asked for every top-level member of
    // every request: by hash once index() ran (the loader runs it), a linear
    // search otherwise.
    const field_spec* find(std::string_view name) const noexcept;
    // Builds find()'s table from `fields`; again after `fields` changes.
    void index();

private:
    std::vector<std::uint16_t> slots_;  // open addressing: field position + 1, 0 = empty
};

struct content_part_spec {
    std::string type;  // "text", "image_url", ...
    key_list keys;
};

struct schema_set {
    bool present = false;  // some rule file had a `schema:` section
    request_schema chat;
    request_schema fim;
    request_schema embeddings;
    request_schema moderations;  // moderation_request: POST /v1/moderations (ClassificationRequest)
    request_schema transcriptions;  // transcription_request: the form fields of POST /v1/audio/transcriptions
    request_schema speech;          // speech_request: POST /v1/audio/speech (SpeechRequest)
    key_list system_message;
    key_list user_message;
    key_list assistant_message;
    key_list tool_message;
    std::vector<content_part_spec> content_parts;  // parts of user/assistant/tool content
    key_list system_content_part_types;            // part types a system message may hold
    key_list image_url;
    key_list tool;
    key_list function;
    key_list tool_call;
    key_list function_call;
    key_list tool_choice;
    key_list tool_choice_values;
    key_list response_format;
    key_list response_format_types;
    key_list json_schema;
    const content_part_spec* part(std::string_view type) const noexcept;
};

enum class schema_target { chat, fim, embeddings, moderations, transcriptions, speech };
inline constexpr std::size_t schema_target_count = 6;

// OpenAI's moderation categories, in the order of its CreateModerationResponse
// (every one is a required member of `categories`, `category_scores` and
// `category_applied_input_types`). `moderation_categories:` in a rule file maps
// each to the Mistral categories it is built from.
inline constexpr std::array<std::string_view, 13> openai_moderation_categories{"hate",
                                                                               "hate/threatening",
                                                                               "harassment",
                                                                               "harassment/threatening",
                                                                               "illicit",
                                                                               "illicit/violent",
                                                                               "self-harm",
                                                                               "self-harm/intent",
                                                                               "self-harm/instructions",
                                                                               "sexual",
                                                                               "sexual/minors",
                                                                               "violence",
                                                                               "violence/graphic"};

class rule_set {
public:
    std::array<bool, rule_count> enabled_{};  // all true unless a file switches one off (switchable ids only)
    // First matching class wins; later rule files are placed before earlier ones
    // so that they override.
    std::vector<model_class> models;
    std::vector<named_class> classes;
    std::vector<model_mapping> rewrites;  // sorted by pattern (exact lookup)
    std::vector<model_mapping> aliases;   // first match wins, later files first
    std::vector<fallback_entry> fallbacks;  // first match wins, later files first; loop-free (checked at load)
    // Upstream statuses that send a request to its next fallback model (a
    // connection failure or a timeout always does). `fallback_statuses:` in a
    // rule file replaces the list; Mistral answers 429 when a model's capacity
    // or the account's limit is exhausted, 5xx when a model's servers fail.
    std::vector<unsigned> fallback_statuses{429, 500, 502, 503, 504};
    bool falls_back_on(unsigned status) const noexcept {
        return std::find(fallback_statuses.begin(), fallback_statuses.end(), status) != fallback_statuses.end();
    }
    capability_rule tool_capable;
    capability_rule vision_route;
    // params.rename per target: (from, to)
    std::array<std::vector<std::pair<std::string, std::string>>, schema_target_count> renames;
    std::vector<range_rule> ranges;
    std::string json_mode_hint_text;
    std::string assistant_bridge_text;  // role_order: content of the inserted assistant message
    std::string missing_tool_result_text;  // role_order: content of a synthesized tool result
    std::vector<std::pair<std::string, std::string>> finish_reasons;  // upstream -> OpenAI
    // documents: media types (lower case) of OpenAI file parts' data URLs that go
    // to Mistral as a document_url part, and as an image_url part.
    std::vector<std::string> document_types{"application/pdf"};
    std::vector<std::string> image_types{"image/png", "image/jpeg", "image/webp", "image/gif"};
    // POST /v1/moderations answers: per OpenAI category (the index into
    // openai_moderation_categories), the Mistral categories it is built from
    // (responses/moderations.hpp). Empty: no counterpart, always false and 0.
    std::array<std::vector<std::string>, openai_moderation_categories.size()> moderation_categories;
    // POST /v1/audio/speech: OpenAI voice name -> Mistral voice_id (`speech_voices:`),
    // in the order the files gave them (a later file replaces an entry in its place).
    std::vector<std::pair<std::string, std::string>> speech_voices;
    schema_set schema;

    rule_set() { enabled_.fill(true); }

    bool enabled(rule_id id) const noexcept { return enabled_[static_cast<std::size_t>(id)]; }
    bool is_codestral_model(std::string_view model) const noexcept;
    bool in_class(int class_index, std::string_view model) const noexcept;
    const model_mapping* find_rewrite(std::string_view model) const noexcept;
    const model_mapping* find_alias(std::string_view model) const noexcept;
    const fallback_entry* find_fallbacks(std::string_view model) const noexcept;
    // The models `model` falls back to, in the order they are tried: the models
    // of its entry, then the models of theirs (breadth first), without repeats
    // and without `model` itself. Empty when no entry matches.
    std::vector<std::string> fallback_chain(std::string_view model) const;
    const range_rule* find_range(std::string_view field) const noexcept;
    const std::vector<std::pair<std::string, std::string>>& renames_for(schema_target target) const noexcept {
        return renames[static_cast<std::size_t>(target)];
    }
    const request_schema& request_schema_for(schema_target target) const noexcept;
    // nullptr when the upstream reason has no mapping.
    const std::string* finish_reason_for(std::string_view upstream_reason) const noexcept;
};

// Loads the files in order (each file's `include:` list first, relative to it);
// throws config::config_error ("FILE:LINE:COL: message") on unknown keys,
// duplicate keys, wrong types, bad globs, rewrite/alias chains that loop,
// fallback chains that come back to where they started,
// references to undefined model classes, include loops.
std::shared_ptr<const rule_set> load_rule_files(const std::vector<std::string>& files);

// For tests: one file's text (an `include:` resolves against `file`'s folder).
std::shared_ptr<const rule_set> parse_rule_text(std::string_view yaml_text, const std::string& file);

// For tests: several texts as if they were files loaded in that order.
std::shared_ptr<const rule_set> parse_rule_texts(const std::vector<std::pair<std::string, std::string>>& file_and_text);

}  // namespace mistral_proxy::rules
