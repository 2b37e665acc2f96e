#pragma once
// Helpers for the normalizer tests: the shipped rule files (found from this
// source file's path, so the tests need no working directory), an override
// rule file written to a temp folder, and one call of normalize_request.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "normalize/normalizer.hpp"
#include "rules/rule_set.hpp"

namespace normalizer_test {

namespace fs = std::filesystem;
using namespace mistral_proxy;

inline fs::path repo_root() { return fs::path(MISTRAL_PROXY_SOURCE_DIR); }

inline std::string shipped_rules() { return (repo_root() / "rules" / "mistral.yaml").string(); }

// The shipped rules plus `override_yaml` as a later rule file.
inline std::shared_ptr<const rules::rule_set> rules_with(std::string_view override_yaml) {
    std::vector<std::string> files{shipped_rules()};
    if (!override_yaml.empty()) {
        const fs::path dir = fs::temp_directory_path() / "mp_normalizer_test";
        fs::create_directories(dir);
        static int counter = 0;
        const fs::path file = dir / ("override-" + std::to_string(++counter) + ".yaml");
        std::ofstream(file) << override_yaml;
        files.push_back(file.string());
    }
    return rules::load_rule_files(files);
}

inline const rules::rule_set& shipped() {
    static const auto set = rules_with("");
    return *set;
}

// The FILE:LINE:COL message loading `yaml` as the rule file r.yaml gives, or "(no error)".
inline std::string rule_error_of(std::string_view yaml) {
    try {
        rules::parse_rule_text(yaml, "r.yaml");
    } catch (const config::config_error& e) {
        return e.what();
    }
    return "(no error)";
}

inline config::proxy_config config_with(std::string_view yaml = "") {
    return config::parse_config(yaml, (fs::temp_directory_path() / "mp_normalizer_test" / "c.yaml").string());
}

struct outcome {
    bool ok = false;
    std::string body;
    std::string rules;  // comma-separated fired ids
    std::string upstream;
    std::string path;
    std::string model_sent;
    unsigned status = 0;
    std::string message;
    std::string code;
    std::string param;
    normalize::normalized_request request;  // views not valid after the call
};

inline outcome run(std::string_view json, normalize::endpoint which = normalize::endpoint::chat_completions,
                   const rules::rule_set& set = shipped(), const config::proxy_config* config = nullptr) {
    static const config::proxy_config default_config = config_with();
    static normalize::normalize_scratch scratch;
    std::string buffer(json);
    buffer.append(normalize::body_padding, '\0');
    const auto result = normalize::normalize_request(set, config != nullptr ? *config : default_config, which,
                                                     std::string_view(buffer.data(), json.size()), scratch);
    outcome out;
    out.ok = result.ok();
    if (result.ok()) {
        out.body = std::string(result.request->body);
        result.request->fired.append_names(out.rules);
        out.upstream = std::string(routing::upstream_name(result.request->upstream));
        out.path = std::string(result.request->upstream_path);
        out.model_sent = std::string(result.request->model_sent);
        out.request = *result.request;
    } else {
        out.status = result.error->status;
        out.message = result.error->message;
        out.code = result.error->code.value_or("");
        out.param = result.error->param.value_or("");
    }
    return out;
}

}  // namespace normalizer_test
