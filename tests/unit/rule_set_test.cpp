#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "rules/glob.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy::rules;
using mistral_proxy::config::config_error;
namespace fs = std::filesystem;

namespace {

std::string error_of(std::string_view yaml) {
    try {
        parse_rule_text(yaml, "r.yaml");
    } catch (const config_error& e) {
        return e.what();
    }
    return "(no error)";
}

void write_file(const fs::path& path, std::string_view text) {
    std::ofstream out(path);
    out << text;
}

}  // namespace

TEST_CASE("glob_match") {
    struct row {
        std::string_view pattern;
        std::string_view text;
        bool expected;
    };
    const row rows[] = {
        {"codestral-*", "codestral-latest", true},
        {"codestral-*", "codestral-", true},
        {"codestral-*", "codestral", false},
        {"codestral-*", "Codestral-latest", false},  // case-sensitive
        {"codestral-*", "xcodestral-latest", false},
        {"*", "", true},
        {"*", "anything", true},
        {"", "", true},
        {"", "a", false},
        {"a?c", "abc", true},
        {"a?c", "ac", false},
        {"*-latest", "mistral-large-latest", true},
        {"*large*", "mistral-large-latest", true},
        {"*large*", "mistral-small-latest", false},
        {"a*b*c", "aXbYbZc", true},
        {"a*b*c", "aXbYbZ", false},
        {"**a", "bbba", true},
        {"exact", "exact", true},
        {"exact", "exactly", false},
        {"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},  // no blow-up
    };
    for (const auto& r : rows) {
        CAPTURE(r.pattern);
        CAPTURE(r.text);
        CHECK(glob_match(r.pattern, r.text) == r.expected);
    }
}

TEST_CASE("glob_set matches when glob_match says one of its globs does") {
    const std::vector<std::vector<std::string>> sets = {
        {"open-mistral-nemo*", "mistral-embed*", "codestral-embed*", "mistral-moderation*", "mistral-ocr*",
         "open-mistral-7b", "open-mixtral-8x7b"},  // the shipped without_tools class
        {"pixtral-*", "mistral-small-latest", "magistral-*-latest", "ministral-*-2512"},
        {"*", "exact"},
        {"", "a?c", "**a", "*-latest"},
        {"a*b*c", "codestral-*"},
        {},
    };
    const std::string_view texts[] = {
        "", "a", "abc", "ac", "bbba", "exact", "exactly", "exac",
        "mistral-small-latest", "mistral-small-2503", "mistral-embed", "mistral-embed-2312", "mistral-embe",
        "open-mistral-7b", "open-mistral-7b-x", "open-mixtral-8x7b", "pixtral-", "pixtral",
        "magistral-medium-latest", "magistral--latest", "magistral-latest", "ministral-8b-2512",
        "codestral-", "codestral", "aXbYbZc", "aXbYbZ", "Mistral-embed",
    };
    for (const auto& patterns : sets) {
        const glob_set set(patterns);
        CHECK(set.patterns() == patterns);
        for (const auto text : texts) {
            CAPTURE(text);
            const bool any = std::any_of(patterns.begin(), patterns.end(),
                                         [&](const std::string& pattern) { return glob_match(pattern, text); });
            CHECK(set.matches(text) == any);
        }
    }
    // Not vacuous: the shipped class matches its own members and nothing else here.
    const glob_set without_tools(sets[0]);
    CHECK(without_tools.matches("mistral-embed-2312"));
    CHECK(without_tools.matches("open-mistral-7b"));
    CHECK_FALSE(without_tools.matches("open-mistral-7b-x"));
    CHECK_FALSE(without_tools.matches("mistral-small-latest"));
}

TEST_CASE("glob_is_valid") {
    CHECK(glob_is_valid("codestral-*"));
    CHECK(glob_is_valid("?"));
    CHECK_FALSE(glob_is_valid(""));
    CHECK_FALSE(glob_is_valid("[ab]*"));
    CHECK_FALSE(glob_is_valid("a]"));
    CHECK_FALSE(glob_is_valid("a\\*"));
}

TEST_CASE("rule text: models in order, first match wins") {
    const auto set = parse_rule_text(R"(
models:
  - match: "codestral-mamba-*"
    host: mistral
  - match: "codestral-*"
    host: codestral
  - match: "my-fim-model"
    host: codestral
  - match: "open-*"
)",
                                     "r.yaml");
    REQUIRE(set->models.size() == 4);
    CHECK(set->models[3].host == model_host::mistral);  // host defaults to mistral
    CHECK(set->is_codestral_model("codestral-latest"));
    CHECK(set->is_codestral_model("codestral-2405"));
    CHECK(set->is_codestral_model("my-fim-model"));
    CHECK_FALSE(set->is_codestral_model("codestral-mamba-latest"));
    CHECK_FALSE(set->is_codestral_model("mistral-large-latest"));
    CHECK_FALSE(set->is_codestral_model(""));
}

TEST_CASE("empty rule texts give an empty set") {
    for (std::string_view text : {"", "# nothing\n", "models: []\n"}) {
        CAPTURE(text);
        CHECK(parse_rule_text(text, "r.yaml")->models.empty());
    }
}

TEST_CASE("rule file errors point at the offending node") {
    struct row {
        std::string_view yaml;
        std::string_view expected;  // whole what()
    };
    const row rows[] = {
        {"model:\n  - match: a\n", "r.yaml:1:1: unknown key 'model'; expected one of: include, switches, models, model_classes, model_rewrite, "
         "model_alias, tool_capable, vision_route, params, ranges, json_mode_hint, role_order, finish_reason, documents, schema, fallbacks, fallback_statuses, moderation_categories, speech_voices"},
        {"models: []\nmodels: []\n", "r.yaml:2:1: duplicate key 'models' (first defined at line 1)"},
        {"models: {match: a}\n", "r.yaml:1:9: models must be a list of {match, host} entries, got a map"},
        {"models:\n", "r.yaml:1:1: models must be a list of {match, host} entries, got nothing (null)"},
        {"models:\n  - codestral-*\n", "r.yaml:2:5: models[0] must be a map, got a scalar"},
        {"models:\n  - {match: a, hots: codestral}\n",
         "r.yaml:2:16: unknown key 'hots' in models[0]; expected one of: match, class, host"},
        {"models:\n  - {match: a, match: b}\n",
         "r.yaml:2:16: duplicate key 'match' in models[0] (first defined at line 2)"},
        {"models:\n  - {host: codestral}\n", "r.yaml:2:5: models[0] needs a 'match' glob, e.g. match: \"codestral-*\" (or a 'class')"},
        {"models:\n  - {match: [a]}\n", "r.yaml:2:13: models[0].match must be a string, got a list"},
        {"models:\n  - {match: '[ab]'}\n",
         "r.yaml:2:13: models[0].match: bad glob '[ab]'; use '*' and '?' only ('[', ']' and '\\' are not supported)"},
        {"models:\n  - {match: ''}\n",
         "r.yaml:2:13: models[0].match: bad glob ''; use '*' and '?' only ('[', ']' and '\\' are not supported)"},
        {"models:\n  - {match: a}\n  - {match: b, host: openai}\n",
         "r.yaml:3:22: models[1].host must be 'mistral' or 'codestral', got 'openai'"},
        {"- a\n", "r.yaml:1:1: the file must be a map, got a list"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.yaml);
        CHECK(error_of(r.yaml) == r.expected);
    }
    CHECK(error_of("models: [\n").rfind("r.yaml:", 0) == 0);
    CHECK(error_of("models: [\n").find("YAML syntax error") != std::string::npos);
}

TEST_CASE("load_rule_files: later files take precedence, missing files are reported") {
    const fs::path dir = fs::temp_directory_path() / "mp_rule_set_test";
    fs::create_directories(dir);
    write_file(dir / "base.yaml", "models:\n  - {match: 'codestral-*', host: codestral}\n");
    write_file(dir / "local.yaml",
               "models:\n  - {match: 'codestral-mamba*', host: mistral}\n  - {match: 'my-coder', host: codestral}\n");
    const auto set = load_rule_files({(dir / "base.yaml").string(), (dir / "local.yaml").string()});
    REQUIRE(set->models.size() == 3);
    CHECK(set->models[0].pattern == "codestral-mamba*");
    CHECK(set->models[1].pattern == "my-coder");
    CHECK(set->models[2].pattern == "codestral-*");
    CHECK_FALSE(set->is_codestral_model("codestral-mamba-latest"));
    CHECK(set->is_codestral_model("codestral-latest"));
    CHECK(set->is_codestral_model("my-coder"));

    CHECK(load_rule_files({})->models.empty());

    write_file(dir / "bad.yaml", "models:\n  - {match: a, colour: red}\n");
    try {
        load_rule_files({(dir / "base.yaml").string(), (dir / "bad.yaml").string()});
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(e.file() == (dir / "bad.yaml").string());
        CHECK(e.line() == 2);
        CHECK(e.column() == 16);
    }

    const std::string missing = (dir / "missing.yaml").string();
    try {
        load_rule_files({missing});
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()).rfind(missing + ": cannot read rule file: ", 0) == 0);
    }
    fs::remove_all(dir);
}

TEST_CASE("the shipped rule file loads and marks codestral-*") {
    const fs::path root = fs::path(MISTRAL_PROXY_SOURCE_DIR);
    const auto set = load_rule_files({(root / "rules" / "mistral.yaml").string()});
    CHECK(set->is_codestral_model("codestral-latest"));
    CHECK_FALSE(set->is_codestral_model("mistral-small-latest"));
    CHECK_FALSE(set->is_codestral_model("codestral-embed"));  // served by api.mistral.ai
}
