#pragma once
// Strict reading of YAML shared by the config and rule-file loaders (internal to
// mp_core). yaml-cpp is only forward-declared so this header stays light.
//
// Why not yaml-cpp's own accessors: yaml-cpp 0.7 keeps both pairs of a
// duplicate key (iteration yields each, lookups see only one), and as<T>()
// accepts YAML 1.1 booleans (yes/on/y) and quoted numbers. The helpers here
// refuse those and throw config_error at the offending node.
#include <functional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace YAML {
class Node;
}

namespace mistral_proxy::config::yaml_strict {

// Parses one YAML document; a parse error or a second document throws
// config_error at its position. An empty text gives a Null node.
YAML::Node load(std::string_view text, const std::string& file);

// Throws config_error "FILE:LINE:COL: message" at `node` (or at `key` when
// `node` is an empty value, whose mark points past the key's line).
[[noreturn]] void fail(const std::string& file, const YAML::Node& node, const std::string& message);
[[noreturn]] void fail_at_value(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                                const std::string& message);

// "a map", "a list", "a string", "null".
std::string kind_of(const YAML::Node& node);

// Visits every key of a map in file order. Non-map values, keys that are not
// plain strings and duplicate keys throw. `where` is the dotted path used in
// messages ("" for the top level).
void for_each_field(
    const std::string& file, const YAML::Node& map, const std::string& where,
    const std::function<void(const std::string& key, const YAML::Node& key_node, const YAML::Node& value)>& visit);

// Throws the "unknown key" error listing the keys allowed at `where`.
[[noreturn]] void fail_unknown_key(const std::string& file, const YAML::Node& key_node, const std::string& key,
                                   const std::string& where, std::string_view allowed);

// "where.key" or "key" at the top level.
std::string path_of(const std::string& where, const std::string& key);

}  // namespace mistral_proxy::config::yaml_strict
