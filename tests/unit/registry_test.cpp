// The rule registry (rules/registry.hpp) and what is derived from it stay in
// step: README.md's rule table, the loader's top-level keys and switches, the
// metrics labels, the answer side's ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "responses/response_rules.hpp"
#include "rules/registry.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;
using rules::rule_id;

namespace {

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The ids in the first column of the table under `heading` ("| `id` | ... |").
std::vector<std::string> table_ids(const std::string& markdown, const std::string& heading) {
    std::vector<std::string> ids;
    const auto start = markdown.find("\n" + heading + "\n");
    REQUIRE(start != std::string::npos);
    std::istringstream lines(markdown.substr(start + heading.size() + 2));
    std::string line;
    bool in_table = false;
    while (std::getline(lines, line)) {
        if (line.rfind("## ", 0) == 0 || line.rfind("# ", 0) == 0) {
            break;
        }
        if (line.rfind("| `", 0) == 0) {
            in_table = true;
            const auto end = line.find('`', 3);
            ids.push_back(line.substr(3, end - 3));
        } else if (in_table && line.rfind("|", 0) != 0) {
            break;
        }
    }
    return ids;
}

std::string error_of(const std::string& yaml) {
    try {
        rules::parse_rule_text(yaml, "r.yaml");
    } catch (const config::config_error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("registry: README's rule table lists exactly the switchable ids") {
    const auto readme = read_text(std::filesystem::path(MISTRAL_PROXY_SOURCE_DIR) / "README.md");
    const auto listed = table_ids(readme, "## Rule files: what gets rewritten");
    std::multiset<std::string> in_readme(listed.begin(), listed.end());
    std::multiset<std::string> in_registry(rules::switch_names.begin(), rules::switch_names.end());
    CHECK(in_readme == in_registry);
}

TEST_CASE("registry: names, count and flags") {
    CHECK(rules::rule_count == rules::registry.size());
    CHECK(rules::rule_name(rule_id::documents) == "documents");
    for (const auto& row : rules::registry) {
        CHECK(rules::rule_from_name(row.name) == row.id);
        // Every id changes requests or answers (or both).
        CHECK((row.flags & (rules::request_side | rules::answer_side)) != 0);
    }
    CHECK_FALSE(rules::rule_from_name("nope").has_value());
    CHECK(rules::has_flag(rule_id::finish_reason, rules::answer_side));
    CHECK(rules::has_flag(rule_id::model_alias, rules::answer_side));
    CHECK_FALSE(rules::has_flag(rule_id::stream_repair, rules::shown));
    CHECK_FALSE(rules::has_flag(rule_id::errors, rules::switchable));
    // The answer side speaks the same vocabulary.
    CHECK(responses::rule_id(responses::response_rule::text_completion) == "text_completion");
}

TEST_CASE("registry: the metrics labels are the shown ids, then other") {
    std::vector<std::string_view> shown;
    for (const auto& row : rules::registry) {
        if ((row.flags & rules::shown) != 0) {
            shown.push_back(row.name);
        }
    }
    REQUIRE(metrics::rule_ids.size() == shown.size() + 1);
    CHECK(std::equal(shown.begin(), shown.end(), metrics::rule_ids.begin()));
    CHECK(metrics::rule_ids.back() == "other");
    CHECK(metrics::rule_index("stream_repair") == metrics::rule_ids.size() - 1);
    CHECK(metrics::rule_index("errors") < metrics::rule_ids.size() - 1);
}

TEST_CASE("registry: every top-level key is read by the loader, and no other") {
    for (const auto& section : rules::yaml_sections) {
        // An empty map or list is accepted by every section, or refused for its
        // shape — never as an unknown key.
        const std::string key(section.key);
        CAPTURE(key);
        CHECK(error_of(key + ": {}\n").find("unknown key") == std::string::npos);
    }
    CHECK(error_of("nope: {}\n").find("unknown key 'nope'") != std::string::npos);
}

TEST_CASE("registry: switches accepts the switchable ids only") {
    for (const auto& row : rules::registry) {
        const std::string yaml = "switches:\n  " + std::string(row.name) + ": false\n";
        CAPTURE(yaml);
        if ((row.flags & rules::switchable) != 0) {
            const auto set = rules::parse_rule_text(yaml, "r.yaml");
            CHECK_FALSE(set->enabled(row.id));
        } else {
            CHECK(error_of(yaml).find("unknown key") != std::string::npos);
        }
    }
}
