// Compiling rule files (rules/README.md) into an immutable rule_set, strictly:
// FILE:LINE:COL for every mistake. The top-level keys and the function that
// reads each come from the registry (rules/registry.hpp, yaml_sections); a
// rule's own section is read in the rule's unit (normalize/rules/*.cpp). Here:
// the sections no single rule owns (switches, models, model classes, the
// schema, moderation categories), the strict readers of loader.hpp, and what
// can only be checked once every file is read (finish(): model classes
// resolved, rewrite/alias chains and fallback chains followed for loops).
// Over 600 lines because of those: the schema section's many key lists and
// finish()'s chain walks, with their error messages, are most of it.
#include "rules/rule_set.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.hpp"
#include "config/yaml_strict.hpp"
#include "rules/glob.hpp"
#include "rules/loader.hpp"

namespace mistral_proxy::rules {

namespace load {

// "a, b, c": the keys an unknown-key message offers.
template <std::size_t N>
std::string joined_keys(const std::array<std::string_view, N>& names) {
    std::string out;
    for (const auto name : names) {
        if (!out.empty()) {
            out += ", ";
        }
        out += name;
    }
    return out;
}

constexpr std::string_view model_keys = "match, class, host";
constexpr std::string_view schema_keys =
    "chat_request, fim_request, embedding_request, system_message, user_message, assistant_message, tool_message, "
    "content_parts, system_content_part_types, image_url, tool, function, tool_call, function_call, tool_choice, "
    "tool_choice_values, response_format, response_format_types, json_schema, moderation_request, "
    "transcription_request, speech_request";

position position_of(const std::string& file, const YAML::Node& node) {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) {
        return {file, 0, 0};
    }
    return {file, mark.line + 1, mark.column + 1};
}

[[noreturn]] void fail_at(const position& where, const std::string& message) {
    throw config::config_error(where.file, where.line, where.column, message);
}

std::string scalar(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path) {
    if (!value.IsScalar()) {
        ys::fail_at_value(file, key, value, path + " must be a string, got " + ys::kind_of(value));
    }
    return value.Scalar();
}

std::string non_empty(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                      const std::string& path) {
    std::string text = scalar(file, key, value, path);
    if (text.empty()) {
        ys::fail_at_value(file, key, value, path + " must not be empty");
    }
    return text;
}

void set_pair(std::vector<std::pair<std::string, std::string>>& list, const std::string& from, std::string to) {
    auto it = std::find_if(list.begin(), list.end(), [&](const auto& p) { return p.first == from; });
    if (it != list.end()) {
        it->second = std::move(to);
    } else {
        list.emplace_back(from, std::move(to));
    }
}

bool boolean(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path) {
    // Only true/false: YAML 1.1's yes/no/on/off are refused like in the config.
    if (value.IsScalar() && value.Tag() != "!" && (value.Scalar() == "true" || value.Scalar() == "false")) {
        return value.Scalar() == "true";
    }
    ys::fail_at_value(file, key, value, path + " must be true or false");
}

double number(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path) {
    const std::string text = value.IsScalar() && value.Tag() != "!" ? value.Scalar() : std::string();
    double result = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), result);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        ys::fail_at_value(file, key, value, path + " must be a number");
    }
    return result;
}

void check_glob(const std::string& file, const YAML::Node& node, const std::string& text, const std::string& path) {
    if (!glob_is_valid(text)) {
        ys::fail(file, node,
                 path + ": bad glob '" + text + "'; use '*' and '?' only ('[', ']' and '\\' are not supported)");
    }
}

std::vector<std::string> string_list(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                                     const std::string& path) {
    if (!value.IsSequence()) {
        ys::fail_at_value(file, key, value, path + " must be a list of strings, got " + ys::kind_of(value));
    }
    std::vector<std::string> items;
    for (std::size_t i = 0; i < value.size(); ++i) {
        items.push_back(scalar(file, value[i], value[i], path + "[" + std::to_string(i) + "]"));
    }
    return items;
}


void parse_models_section(builder& b, const section& s) {
    const std::string& file = s.file;
    const YAML::Node& key_node = s.key_node;
    const YAML::Node& value = s.value;
    b.parse_models(file, key_node, value);
}

void parse_switches(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    auto& set = b.set;
    ys::for_each_field(file, value, key, [&](const std::string& id, const YAML::Node& id_key,
                                             const YAML::Node& on) {
        const auto rule = rule_from_name(id);
        if (!rule || !has_flag(*rule, switchable)) {
            ys::fail_unknown_key(file, id_key, id, key, joined_keys(switch_names));
        }
        set->enabled_[static_cast<std::size_t>(*rule)] = boolean(file, id_key, on, ys::path_of(key, id));
    });
}

void parse_model_classes(builder& b, const section& s) {
    const std::string& file = s.file;
    const std::string& key = s.key;
    const YAML::Node& value = s.value;
    ys::for_each_field(file, value, key, [&](const std::string& name, const YAML::Node& name_key,
                                             const YAML::Node& globs) {
        const std::string path = ys::path_of(key, name);
        auto list = string_list(file, name_key, globs, path);
        for (std::size_t i = 0; i < list.size(); ++i) {
            check_glob(file, globs[i], list[i], path + "[" + std::to_string(i) + "]");
        }
        b.classes[name] = std::move(list);
    });
}







void parse_moderation_categories_section(builder& b, const section& s) {
    const std::string& file = s.file;
    const YAML::Node& value = s.value;
    b.parse_moderation_categories(file, value);
}

// `speech_voices:` OpenAI voice name -> Mistral voice_id (POST /v1/audio/speech).
// Both must be non-empty strings; a later file replaces an earlier one's entry.
void parse_speech_voices_section(builder& b, const section& s) {
    ys::for_each_field(s.file, s.value, s.key,
                       [&](const std::string& name, const YAML::Node& name_key, const YAML::Node& value) {
                           if (name.empty()) {
                               ys::fail(s.file, name_key, s.key + ": a voice name must not be empty");
                           }
                           set_pair(b.set->speech_voices, name,
                                    non_empty(s.file, name_key, value, ys::path_of(s.key, name)));
                       });
}

void parse_schema_section(builder& b, const section& s) {
    const std::string& file = s.file;
    const YAML::Node& value = s.value;
    b.parse_schema(file, value);
}


std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw config::config_error(path, 0, 0, std::string("cannot read rule file: ") + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw config::config_error(path, 0, 0, "cannot read rule file");
    }
    return text.str();
}

void builder::parse_models(const std::string& file, const YAML::Node& key_node, const YAML::Node& list) {
    if (!list.IsSequence()) {
        ys::fail_at_value(file, key_node, list,
                          "models must be a list of {match, host} entries, got " + ys::kind_of(list));
    }
    std::vector<model_class> models;
    std::vector<std::optional<class_ref>> refs;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const YAML::Node entry = list[i];
        const std::string where = "models[" + std::to_string(i) + "]";
        model_class model;
        std::optional<class_ref> ref;
        bool has_match = false;
        ys::for_each_field(
            file, entry, where, [&](const std::string& key, const YAML::Node& field_key, const YAML::Node& value) {
                const std::string path = ys::path_of(where, key);
                const std::string text = scalar(file, field_key, value, path);
                if (key == "match") {
                    check_glob(file, value, text, path);
                    model.pattern = text;
                    has_match = true;
                } else if (key == "class") {
                    ref = class_ref{text, position_of(file, value)};
                    has_match = true;
                } else if (key == "host") {
                    if (text == "mistral") {
                        model.host = model_host::mistral;
                    } else if (text == "codestral") {
                        model.host = model_host::codestral;
                    } else {
                        ys::fail(file, value, path + " must be 'mistral' or 'codestral', got '" + text + "'");
                    }
                } else {
                    ys::fail_unknown_key(file, field_key, key, where, model_keys);
                }
            });
        if (!has_match) {
            ys::fail(file, entry, where + " needs a 'match' glob, e.g. match: \"codestral-*\" (or a 'class')");
        }
        models.push_back(std::move(model));
        refs.push_back(std::move(ref));
    }
    // Later files override: their entries go first, since the first match wins.
    set->models.insert(set->models.begin(), models.begin(), models.end());
    model_refs.insert(model_refs.begin(), refs.begin(), refs.end());
}

void builder::parse_capability(const std::string& file, const YAML::Node& map, const std::string& where,
                               capability_rule& rule, std::optional<class_ref>& ref, std::string_view class_key,
                               std::string_view keys) {
    ys::for_each_field(file, map, where,
                       [&](const std::string& key, const YAML::Node& field_key, const YAML::Node& value) {
                           const std::string path = ys::path_of(where, key);
                           if (key == class_key) {
                               ref = class_ref{non_empty(file, field_key, value, path), position_of(file, value)};
                           } else if (key == "action") {
                               const std::string text = scalar(file, field_key, value, path);
                               if (text == "deny") {
                                   rule.action = capability_action::deny;
                               } else if (text == "reroute") {
                                   rule.action = capability_action::reroute;
                               } else {
                                   ys::fail(file, value, path + " must be 'deny' or 'reroute', got '" + text + "'");
                               }
                           } else if (key == "reroute_to") {
                               rule.reroute_to = non_empty(file, field_key, value, path);
                           } else if (key == "suggest") {
                               rule.suggest = string_list(file, field_key, value, path);
                           } else {
                               ys::fail_unknown_key(file, field_key, key, where, keys);
                           }
                       });
    if (rule.action == capability_action::reroute && rule.reroute_to.empty()) {
        ys::fail(file, map, where + ": action reroute needs reroute_to: MODEL");
    }
}

std::uint8_t kind_bits(const std::string& file, const YAML::Node& node, const std::string& path) {
    std::uint8_t bits = 0;
    for (const auto& name : string_list(file, node, node, path)) {
        if (name == "string") {
            bits |= kind_string;
        } else if (name == "number" || name == "integer") {
            bits |= kind_number;
        } else if (name == "boolean") {
            bits |= kind_boolean;
        } else if (name == "object") {
            bits |= kind_object;
        } else if (name == "array") {
            bits |= kind_array;
        } else if (name == "null") {
            bits |= kind_null;
        } else if (name == "any") {
            bits |= kind_any;
        } else {
            ys::fail(file, node, path + ": unknown JSON kind '" + name + "'");
        }
    }
    return bits;
}

request_schema parse_request_schema(const std::string& file, const YAML::Node& map, const std::string& where) {
    request_schema schema;
    ys::for_each_field(file, map, where,
                       [&](const std::string& key, const YAML::Node&, const YAML::Node& value) {
                           const std::string path = ys::path_of(where, key);
                           field_spec spec;
                           spec.name = key;
                           ys::for_each_field(
                               file, value, path,
                               [&](const std::string& sub, const YAML::Node& sub_key, const YAML::Node& sub_value) {
                                   if (sub == "kinds") {
                                       spec.kinds = kind_bits(file, sub_value, ys::path_of(path, sub));
                                   } else if (sub == "enum") {
                                       spec.enum_values = string_list(file, sub_key, sub_value, ys::path_of(path, sub));
                                   } else {
                                       ys::fail_unknown_key(file, sub_key, sub, path, "kinds, enum");
                                   }
                               });
                           schema.fields.push_back(std::move(spec));
                       });
    schema.index();
    return schema;
}

void builder::parse_schema(const std::string& file, const YAML::Node& map) {
    schema_set& schema = set->schema;
    schema.present = true;
    ys::for_each_field(file, map, "schema",
                       [&](const std::string& key, const YAML::Node& field_key, const YAML::Node& value) {
                           const std::string path = ys::path_of("schema", key);
                           auto list = [&](key_list& target) { target = string_list(file, field_key, value, path); };
                           if (key == "chat_request") {
                               schema.chat = parse_request_schema(file, value, path);
                           } else if (key == "fim_request") {
                               schema.fim = parse_request_schema(file, value, path);
                           } else if (key == "embedding_request") {
                               schema.embeddings = parse_request_schema(file, value, path);
                           } else if (key == "moderation_request") {
                               schema.moderations = parse_request_schema(file, value, path);
                           } else if (key == "transcription_request") {
                               schema.transcriptions = parse_request_schema(file, value, path);
                           } else if (key == "speech_request") {
                               schema.speech = parse_request_schema(file, value, path);
                           } else if (key == "content_parts") {
                               schema.content_parts.clear();
                               ys::for_each_field(file, value, path,
                                                  [&](const std::string& type, const YAML::Node& type_key,
                                                      const YAML::Node& keys) {
                                                      schema.content_parts.push_back(
                                                          {type, string_list(file, type_key, keys,
                                                                             ys::path_of(path, type))});
                                                  });
                           } else if (key == "system_message") {
                               list(schema.system_message);
                           } else if (key == "user_message") {
                               list(schema.user_message);
                           } else if (key == "assistant_message") {
                               list(schema.assistant_message);
                           } else if (key == "tool_message") {
                               list(schema.tool_message);
                           } else if (key == "system_content_part_types") {
                               list(schema.system_content_part_types);
                           } else if (key == "image_url") {
                               list(schema.image_url);
                           } else if (key == "tool") {
                               list(schema.tool);
                           } else if (key == "function") {
                               list(schema.function);
                           } else if (key == "tool_call") {
                               list(schema.tool_call);
                           } else if (key == "function_call") {
                               list(schema.function_call);
                           } else if (key == "tool_choice") {
                               list(schema.tool_choice);
                           } else if (key == "tool_choice_values") {
                               list(schema.tool_choice_values);
                           } else if (key == "response_format") {
                               list(schema.response_format);
                           } else if (key == "response_format_types") {
                               list(schema.response_format_types);
                           } else if (key == "json_schema") {
                               list(schema.json_schema);
                           } else {
                               ys::fail_unknown_key(file, field_key, key, "schema", schema_keys);
                           }
                       });
}

// `moderation_categories:` OpenAI category -> list of Mistral categories. A
// later file replaces an earlier one's entry; a category no file names has no
// counterpart. Mistral's names are not checked against a list: its moderation
// models add categories (mistral-moderation-2603 splits
// dangerous_and_criminal_content into dangerous and criminal).
void builder::parse_moderation_categories(const std::string& file, const YAML::Node& map) {
    static const std::string key = "moderation_categories";
    ys::for_each_field(
        file, map, key, [&](const std::string& name, const YAML::Node& name_key, const YAML::Node& value) {
            const auto& known = openai_moderation_categories;
            const auto it = std::find(known.begin(), known.end(), name);
            if (it == known.end()) {
                std::string list;
                for (const auto category : known) {
                    list += (list.empty() ? "" : ", ") + std::string(category);
                }
                ys::fail(file, name_key, key + ": '" + name + "' is not an OpenAI moderation category; known: " + list);
            }
            const std::string path = ys::path_of(key, name);
            auto mistral = string_list(file, name_key, value, path);
            for (std::size_t i = 0; i < mistral.size(); ++i) {
                if (mistral[i].empty()) {
                    ys::fail(file, value[i], path + "[" + std::to_string(i) + "] must not be empty");
                }
                if (std::find(mistral.begin(), mistral.begin() + static_cast<std::ptrdiff_t>(i), mistral[i]) !=
                    mistral.begin() + static_cast<std::ptrdiff_t>(i)) {
                    ys::fail(file, value[i],
                             path + "[" + std::to_string(i) + "]: '" + mistral[i] + "' is listed twice");
                }
            }
            set->moderation_categories[static_cast<std::size_t>(it - known.begin())] = std::move(mistral);
        });
}

void builder::apply_file(const std::string& path) {
    const std::string absolute = std::filesystem::absolute(path).lexically_normal().string();
    if (std::find(include_stack.begin(), include_stack.end(), absolute) != include_stack.end()) {
        throw config::config_error(path, 0, 0, "include loop: this file includes itself (directly or not)");
    }
    include_stack.push_back(absolute);
    apply_text(read_file(path), path);
    include_stack.pop_back();
}

void builder::apply_text(std::string_view yaml_text, const std::string& file) {
    const YAML::Node root = ys::load(yaml_text, file);
    if (root.IsNull()) {
        return;  // an empty rule file adds nothing
    }
    // Included files come first so that this file's own entries override them.
    if (root.IsMap()) {
        if (const YAML::Node includes = root["include"]; includes) {
            const auto base = std::filesystem::path(file).parent_path();
            if (!includes.IsSequence()) {
                ys::fail(file, includes, "include must be a list of rule files, got " + ys::kind_of(includes));
            }
            for (std::size_t i = 0; i < includes.size(); ++i) {
                const std::string name = scalar(file, includes[i], includes[i], "include[" + std::to_string(i) + "]");
                const auto included = std::filesystem::path(name).is_absolute() ? std::filesystem::path(name)
                                                                                 : base / name;
                try {
                    apply_file(included.string());
                } catch (const config::config_error& e) {
                    if (e.line() == 0 && e.file() == included.string()) {
                        // Say which include named the unreadable file.
                        ys::fail(file, includes[i], "include '" + name + "': " + e.what());
                    }
                    throw;
                }
            }
        }
    }
    ys::for_each_field(file, root, "", [&](const std::string& key, const YAML::Node& key_node,
                                           const YAML::Node& value) {
        if (key == "include") {
            return;  // done above
        }
        const auto* entry = std::find_if(yaml_sections.begin(), yaml_sections.end(),
                                         [&](const yaml_section& section) { return section.key == key; });
        if (entry == yaml_sections.end()) {
            ys::fail_unknown_key(file, key_node, key, "", joined_keys(section_keys()));
        }
        entry->parse(*this, section{file, key, key_node, value});
    });
}

int resolve_class(const builder& b, const rule_set& set, const class_ref& ref) {
    (void)b;
    for (std::size_t i = 0; i < set.classes.size(); ++i) {
        if (set.classes[i].name == ref.name) {
            return static_cast<int>(i);
        }
    }
    std::string known;
    for (const auto& c : set.classes) {
        known += (known.empty() ? "" : ", ") + c.name;
    }
    fail_at(ref.where, "undefined model class '" + ref.name + "'; model_classes defines: " +
                           (known.empty() ? std::string("(none)") : known));
}

std::shared_ptr<const rule_set> builder::finish() {
    rule_set& out = *set;
    for (auto& [name, globs] : classes) {
        out.classes.push_back({name, glob_set(globs)});
    }
    for (std::size_t i = 0; i < out.models.size(); ++i) {
        if (model_refs[i]) {
            out.models[i].class_index = resolve_class(*this, out, *model_refs[i]);
        }
    }
    if (tool_capable_ref) {
        out.tool_capable.class_index = resolve_class(*this, out, *tool_capable_ref);
    }
    if (vision_ref) {
        out.vision_route.class_index = resolve_class(*this, out, *vision_ref);
    }

    // One step of the chain: the rewrite of exactly `model`, else the first alias matching it.
    auto step = [&](const std::string& model) -> const pending_mapping* {
        if (auto it = rewrites.find(model); it != rewrites.end()) {
            return &it->second;
        }
        for (const auto& alias : aliases) {
            if (glob_match(alias.pattern, model)) {
                return &alias;
            }
        }
        return nullptr;
    };
    auto resolve = [&](const pending_mapping& entry) {
        model_mapping mapping;
        mapping.pattern = entry.pattern;
        mapping.via_rewrite = entry.is_rewrite;
        mapping.via_alias = !entry.is_rewrite;
        // A rewrite's own id starts the chain, so "a: b, b: a" reads a -> b -> a.
        std::vector<std::string> chain;
        if (entry.is_rewrite) {
            chain.push_back(entry.pattern);
        }
        chain.push_back(entry.target);
        std::string current = entry.target;
        for (;;) {
            const pending_mapping* next = step(current);
            if (next == nullptr || next->target == current) {
                break;  // a fixed point (an alias whose target matches its own glob) ends the chain
            }
            chain.push_back(next->target);
            if (std::find(chain.begin(), chain.end() - 1, next->target) != chain.end() - 1) {
                std::string path = entry.is_rewrite ? "model_rewrite" : "model_alias '" + entry.pattern + "'";
                for (std::size_t i = 0; i < chain.size(); ++i) {
                    path += (i == 0 && entry.is_rewrite ? " '" : " -> '") + chain[i] + "'";
                }
                fail_at(entry.where, path + " loops; a rewrite/alias chain must end at a model that maps nowhere");
            }
            mapping.via_rewrite = mapping.via_rewrite || next->is_rewrite;
            mapping.via_alias = mapping.via_alias || !next->is_rewrite;
            current = next->target;
        }
        mapping.target = current;
        return mapping;
    };
    for (const auto& [from, entry] : rewrites) {
        out.rewrites.push_back(resolve(entry));  // std::map order: sorted, as find_rewrite needs
    }
    for (const auto& entry : aliases) {
        out.aliases.push_back(resolve(entry));
    }

    // Fallback chains: following the models an entry names (and the models the
    // entry of each of those names, and so on) must never come back to a model
    // already on the way, or a failing model would be tried again. A model is
    // never its own fallback (pixtral-*: [pixtral-12b-2409] is fine). Checked from
    // every entry, and reported at the entry the loop starts from.
    auto first_fallback = [&](std::string_view model) -> const fallback_entry* {
        for (const auto& [entry, where] : fallbacks) {
            if (glob_match(entry.pattern, model)) {
                return &entry;
            }
        }
        return nullptr;
    };
    std::vector<std::string> trail;  // concrete models on the way
    auto walk = [&](auto& self, const fallback_entry& entry, std::string_view from, const fallback_entry& start,
                    const position& where) -> void {
        for (const auto& model : entry.models) {
            if (model == from) {
                continue;
            }
            if (std::find(trail.begin(), trail.end(), model) != trail.end()) {
                std::string path = "fallbacks '" + start.pattern + "'";
                const bool literal = start.pattern.find_first_of("*?") == std::string::npos;
                for (std::size_t i = literal ? 1 : 0; i < trail.size(); ++i) {
                    path += " -> '" + trail[i] + "'";
                }
                fail_at(where, path + " -> '" + model +
                                   "' loops; a fallback chain must not come back to a model it left");
            }
            trail.push_back(model);
            if (const fallback_entry* next = first_fallback(model)) {
                self(self, *next, model, start, where);
            }
            trail.pop_back();
        }
    };
    for (const auto& [entry, where] : fallbacks) {
        trail.clear();
        if (entry.pattern.find_first_of("*?") == std::string::npos) {
            trail.push_back(entry.pattern);  // an exact id: coming back to it is a loop too
        }
        walk(walk, entry, entry.pattern, entry, where);
        out.fallbacks.push_back(entry);
    }
    return set;
}

bool equal_key(const std::string& a, std::string_view b) noexcept { return a == b; }

}  // namespace load

bool contains(const key_list& list, std::string_view key) noexcept {
    return std::any_of(list.begin(), list.end(), [&](const std::string& item) { return load::equal_key(item, key); });
}

namespace {

// Length and three bytes: distinct for nearly every pair of OpenAI's and
// Mistral's parameter names, and cheap; collisions are probed past.
std::size_t schema_hash(std::string_view name) noexcept {
    if (name.empty()) {
        return 0;
    }
    const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(name[i])); };
    return name.size() * 0x9E37 ^ byte(0) * 0x85EB ^ byte(name.size() / 2) * 0xC2B3 ^ byte(name.size() - 1);
}

}  // namespace

void request_schema::index() {
    slots_.clear();
    if (fields.empty() || fields.size() >= 0x7FFF) {
        return;  // find() searches
    }
    std::size_t size = 8;
    while (size < fields.size() * 4) {
        size *= 2;
    }
    slots_.assign(size, 0);
    for (std::size_t i = 0; i < fields.size(); ++i) {
        std::size_t at = schema_hash(fields[i].name) & (size - 1);
        while (slots_[at] != 0) {
            at = (at + 1) & (size - 1);
        }
        slots_[at] = static_cast<std::uint16_t>(i + 1);
    }
}

const field_spec* request_schema::find(std::string_view name) const noexcept {
    if (slots_.empty()) {
        for (const auto& field : fields) {
            if (field.name == name) {
                return &field;
            }
        }
        return nullptr;
    }
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t at = schema_hash(name) & mask; slots_[at] != 0; at = (at + 1) & mask) {
        const field_spec& field = fields[slots_[at] - 1];
        if (field.name.size() == name.size() && std::memcmp(field.name.data(), name.data(), name.size()) == 0) {
            return &field;
        }
    }
    return nullptr;
}

const content_part_spec* schema_set::part(std::string_view type) const noexcept {
    for (const auto& spec : content_parts) {
        if (spec.type == type) {
            return &spec;
        }
    }
    return nullptr;
}

bool rule_set::in_class(int class_index, std::string_view model) const noexcept {
    if (class_index < 0 || static_cast<std::size_t>(class_index) >= classes.size()) {
        return false;
    }
    return classes[static_cast<std::size_t>(class_index)].globs.matches(model);
}

bool rule_set::is_codestral_model(std::string_view model) const noexcept {
    for (const auto& model_class : models) {
        const bool match = model_class.class_index >= 0 ? in_class(model_class.class_index, model)
                                                        : glob_match(model_class.pattern, model);
        if (match) {
            return model_class.host == model_host::codestral;
        }
    }
    return false;
}

const model_mapping* rule_set::find_rewrite(std::string_view model) const noexcept {
    auto it = std::lower_bound(rewrites.begin(), rewrites.end(), model,
                               [](const model_mapping& m, std::string_view key) { return m.pattern < key; });
    return it != rewrites.end() && it->pattern == model ? &*it : nullptr;
}

const model_mapping* rule_set::find_alias(std::string_view model) const noexcept {
    for (const auto& alias : aliases) {
        if (glob_match(alias.pattern, model)) {
            return &alias;
        }
    }
    return nullptr;
}

const fallback_entry* rule_set::find_fallbacks(std::string_view model) const noexcept {
    for (const auto& entry : fallbacks) {
        if (glob_match(entry.pattern, model)) {
            return &entry;
        }
    }
    return nullptr;
}

std::vector<std::string> rule_set::fallback_chain(std::string_view model) const {
    // Breadth first: what the entry lists comes before what those models list.
    // The load-time check rules out loops; the repeat check keeps a model reached
    // along two branches from being tried twice.
    std::vector<std::string> chain;
    // A view: read only before this turn's push_back can move chain's strings.
    std::string_view from = model;
    for (std::size_t next = 0;; ++next) {
        if (const fallback_entry* entry = find_fallbacks(from)) {
            for (const auto& candidate : entry->models) {
                if (candidate != model && std::find(chain.begin(), chain.end(), candidate) == chain.end()) {
                    chain.push_back(candidate);
                }
            }
        }
        if (next >= chain.size()) {
            break;
        }
        from = chain[next];
    }
    return chain;
}

const range_rule* rule_set::find_range(std::string_view field) const noexcept {
    for (const auto& range : ranges) {
        if (range.field == field) {
            return &range;
        }
    }
    return nullptr;
}

const request_schema& rule_set::request_schema_for(schema_target target) const noexcept {
    switch (target) {
        case schema_target::fim:
            return schema.fim;
        case schema_target::embeddings:
            return schema.embeddings;
        case schema_target::moderations:
            return schema.moderations;
        case schema_target::transcriptions:
            return schema.transcriptions;
        case schema_target::speech:
            return schema.speech;
        case schema_target::chat:
            break;
    }
    return schema.chat;
}

const std::string* rule_set::finish_reason_for(std::string_view upstream_reason) const noexcept {
    for (const auto& [from, to] : finish_reasons) {
        if (from == upstream_reason) {
            return &to;
        }
    }
    return nullptr;
}

std::shared_ptr<const rule_set> load_rule_files(const std::vector<std::string>& files) {
    load::builder b;
    for (const auto& file : files) {
        b.apply_file(file);
    }
    return b.finish();
}

std::shared_ptr<const rule_set> parse_rule_text(std::string_view yaml_text, const std::string& file) {
    load::builder b;
    b.apply_text(yaml_text, file);
    return b.finish();
}

std::shared_ptr<const rule_set> parse_rule_texts(const std::vector<std::pair<std::string, std::string>>& file_and_text) {
    load::builder b;
    for (const auto& [file, text] : file_and_text) {
        b.apply_text(text, file);
    }
    return b.finish();
}

}  // namespace mistral_proxy::rules
