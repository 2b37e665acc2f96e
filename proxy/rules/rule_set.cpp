#include "rules/rule_set.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config.hpp"
#include "config/yaml_strict.hpp"
#include "rules/glob.hpp"

namespace mistral_proxy::rules {

namespace ys = config::yaml_strict;

namespace {

constexpr std::string_view top_keys = "models";
constexpr std::string_view model_keys = "match, host";

// One file's classes, in file order.
std::vector<model_class> parse_models(const YAML::Node& list, const YAML::Node& key_node, const std::string& file) {
    if (!list.IsSequence()) {
        ys::fail_at_value(file, key_node, list,
                          "models must be a list of {match, host} entries, got " + ys::kind_of(list));
    }
    std::vector<model_class> models;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const YAML::Node entry = list[i];
        const std::string where = "models[" + std::to_string(i) + "]";
        model_class model;
        bool has_match = false;
        ys::for_each_field(
            file, entry, where, [&](const std::string& key, const YAML::Node& field_key, const YAML::Node& value) {
                const std::string path = ys::path_of(where, key);
                if (!value.IsScalar()) {
                    ys::fail_at_value(file, field_key, value, path + " must be a string, got " + ys::kind_of(value));
                }
                const std::string& text = value.Scalar();
                if (key == "match") {
                    if (!glob_is_valid(text)) {
                        ys::fail(file, value,
                                 path + ": bad glob '" + text +
                                     "'; use '*' and '?' only ('[', ']' and '\\' are not supported)");
                    }
                    model.pattern = text;
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
            ys::fail(file, entry, where + " needs a 'match' glob, e.g. match: \"codestral-*\"");
        }
        models.push_back(std::move(model));
    }
    return models;
}

std::vector<model_class> parse_file_models(std::string_view yaml_text, const std::string& file) {
    const YAML::Node root = ys::load(yaml_text, file);
    std::vector<model_class> models;
    if (root.IsNull()) {
        return models;  // an empty rule file adds nothing
    }
    ys::for_each_field(file, root, "",
                       [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
                           if (key == "models") {
                               models = parse_models(value, key_node, file);
                           } else {
                               ys::fail_unknown_key(file, key_node, key, "", top_keys);
                           }
                       });
    return models;
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

}  // namespace

bool rule_set::is_codestral_model(std::string_view model) const noexcept {
    for (const auto& model_class : models) {
        if (glob_match(model_class.pattern, model)) {
            return model_class.host == model_host::codestral;
        }
    }
    return false;
}

std::shared_ptr<const rule_set> load_rule_files(const std::vector<std::string>& files) {
    auto set = std::make_shared<rule_set>();
    // Later files override earlier ones: their classes go first, since the first match wins.
    for (auto it = files.rbegin(); it != files.rend(); ++it) {
        auto models = parse_file_models(read_file(*it), *it);
        set->models.insert(set->models.end(), std::make_move_iterator(models.begin()),
                           std::make_move_iterator(models.end()));
    }
    return set;
}

std::shared_ptr<const rule_set> parse_rule_text(std::string_view yaml_text, const std::string& file) {
    auto set = std::make_shared<rule_set>();
    set->models = parse_file_models(yaml_text, file);
    return set;
}

}  // namespace mistral_proxy::rules
