#pragma once
// The compiled, immutable form of the rule files. Built once at start-up (and on
// reload), shared by every request through std::shared_ptr<const rule_set>.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mistral_proxy::rules {

// Which upstream family a model belongs to.
enum class model_host { mistral, codestral };

struct model_class {
    std::string pattern;  // glob over the model id
    model_host host = model_host::mistral;
};

class rule_set {
public:
    // First matching class wins; later rule files are placed before earlier ones
    // so that they override.
    std::vector<model_class> models;

    bool is_codestral_model(std::string_view model) const noexcept;
};

// Loads the files in order; throws config::config_error ("FILE:LINE:COL: message")
// on unknown keys, duplicate keys, wrong types, bad globs.
std::shared_ptr<const rule_set> load_rule_files(const std::vector<std::string>& files);

// For tests: one file's text.
std::shared_ptr<const rule_set> parse_rule_text(std::string_view yaml_text, const std::string& file);

}  // namespace mistral_proxy::rules
