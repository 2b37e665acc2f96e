#pragma once
// What the rule file loader (rule_set.cpp) shares with the rule units that
// parse their own section of a rule file (normalize/rules/*.cpp,
// responses/response_rules.cpp): the builder every file is applied to, the
// section a parser is handed, and the strict scalar/list readers that report
// FILE:LINE:COL. Internal to the loading of rule files; the hot path never
// includes it.
#include <yaml-cpp/yaml.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/yaml_strict.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::rules::load {

namespace ys = config::yaml_strict;

// Where a node stood, kept for checks that can only run once every file is read.
struct position {
    std::string file;
    int line = 0;
    int column = 0;
};

position position_of(const std::string& file, const YAML::Node& node);
[[noreturn]] void fail_at(const position& where, const std::string& message);

std::string scalar(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path);
std::string non_empty(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                      const std::string& path);
bool boolean(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path);
double number(const std::string& file, const YAML::Node& key, const YAML::Node& value, const std::string& path);
void check_glob(const std::string& file, const YAML::Node& node, const std::string& text, const std::string& path);
std::vector<std::string> string_list(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                                     const std::string& path);

// Sets `from`'s entry of a (from, to) list: a later file's entry replaces an
// earlier one's in its place, a new one goes last.
void set_pair(std::vector<std::pair<std::string, std::string>>& list, const std::string& from, std::string to);

// A name that must later match an entry of `model_classes:`.
struct class_ref {
    std::string name;
    position where;
};

struct pending_mapping {
    std::string pattern;
    std::string target;
    position where;
    bool is_rewrite = false;
};

// One top-level entry of a rule file, as handed to its section's parser
// (rules/registry.hpp, yaml_sections).
struct section {
    const std::string& file;
    const std::string& key;
    const YAML::Node& key_node;
    const YAML::Node& value;
};

// Everything read so far; files are applied in order, a later one overriding.
struct builder {
    std::shared_ptr<rule_set> set = std::make_shared<rule_set>();
    std::vector<std::optional<class_ref>> model_refs;  // parallel to set->models
    std::optional<class_ref> tool_capable_ref;
    std::optional<class_ref> vision_ref;
    std::map<std::string, std::vector<std::string>> classes;
    std::map<std::string, pending_mapping> rewrites;
    std::vector<pending_mapping> aliases;  // later files first
    std::vector<std::pair<fallback_entry, position>> fallbacks;  // later files first
    std::vector<std::string> include_stack;

    void apply_text(std::string_view yaml_text, const std::string& file);
    void apply_file(const std::string& path);
    std::shared_ptr<const rule_set> finish();

    void parse_models(const std::string& file, const YAML::Node& key, const YAML::Node& list);
    void parse_capability(const std::string& file, const YAML::Node& map, const std::string& where,
                          capability_rule& rule, std::optional<class_ref>& ref, std::string_view class_key,
                          std::string_view keys);
    void parse_schema(const std::string& file, const YAML::Node& map);
    void parse_moderation_categories(const std::string& file, const YAML::Node& map);
};

}  // namespace mistral_proxy::rules::load
