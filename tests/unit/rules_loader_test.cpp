// The rule file format beyond `models:` (rules/README.md): every kind of entry
// loads, later files override, and each error kind names FILE:LINE:COL.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "config/config.hpp"
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

const fs::path root = fs::path(MISTRAL_PROXY_SOURCE_DIR);

}  // namespace

TEST_CASE("the shipped rules: every kind of entry") {
    const auto set = load_rule_files({(root / "rules" / "mistral.yaml").string()});
    for (std::size_t i = 0; i < rule_count; ++i) {
        CHECK(set->enabled(static_cast<rule_id>(i)));
    }
    REQUIRE(set->find_rewrite("mistral-tiny") != nullptr);
    CHECK(set->find_rewrite("mistral-tiny")->target == "open-mistral-nemo");
    CHECK(set->find_rewrite("mistral-small")->target == "mistral-small-latest");
    CHECK(set->find_rewrite("mistral-medium")->target == "mistral-small-latest");
    CHECK(set->find_rewrite("mistral-large-latest") == nullptr);
    CHECK(set->find_alias("gpt-4o")->target == "mistral-large-latest");
    CHECK(set->find_alias("gpt-4o-mini")->target == "mistral-small-latest");
    CHECK(set->find_alias("gpt-4.1-2025-04-14")->target == "mistral-large-latest");
    CHECK(set->find_alias("text-embedding-3-large")->target == "mistral-embed");
    CHECK(set->find_alias("mistral-small-latest") == nullptr);
    CHECK(set->is_codestral_model("codestral-latest"));
    CHECK_FALSE(set->is_codestral_model("codestral-embed"));
    CHECK(set->in_class(set->tool_capable.class_index, "open-mistral-nemo"));
    CHECK_FALSE(set->in_class(set->tool_capable.class_index, "mistral-small-latest"));
    CHECK(set->in_class(set->vision_route.class_index, "pixtral-12b-2409"));
    CHECK(set->vision_route.action == capability_action::reroute);
    CHECK(set->vision_route.reroute_to == "pixtral-12b-2409");
    CHECK(set->tool_capable.action == capability_action::deny);
    REQUIRE(set->find_range("temperature") != nullptr);
    CHECK(set->find_range("temperature")->max_text == "1.5");
    REQUIRE(set->finish_reason_for("model_length") != nullptr);
    CHECK(*set->finish_reason_for("model_length") == "length");
    CHECK_FALSE(set->json_mode_hint_text.empty());
    CHECK(set->schema.present);
    CHECK(set->schema.chat.find("random_seed") != nullptr);
    CHECK(set->schema.chat.find("user") == nullptr);
    CHECK(contains(set->schema.tool_message, "name"));
    CHECK_FALSE(contains(set->schema.user_message, "name"));
    CHECK(set->renames_for(schema_target::embeddings).at(0).second == "output_dimension");
    CHECK(set->document_types == std::vector<std::string>{"application/pdf"});
    CHECK(set->image_types == std::vector<std::string>{"image/png", "image/jpeg", "image/webp", "image/gif"});
    CHECK(rule_name(rule_id::documents) == "documents");
}

TEST_CASE("documents: media types replace the list, lower-cased; a bad one is an error") {
    const auto set = parse_rule_texts({
        {"a.yaml", "switches: {documents: false}\ndocuments: {document_types: [application/pdf]}\n"},
        {"b.yaml", "documents:\n  document_types: [Application/PDF, text/plain]\n"},
    });
    CHECK_FALSE(set->enabled(rule_id::documents));
    CHECK(set->document_types == std::vector<std::string>{"application/pdf", "text/plain"});
    CHECK(set->image_types.size() == 4);  // not named: the default list
    CHECK(error_of("documents: {image_types: [png]}\n") ==
          "r.yaml:1:27: documents.image_types[0]: 'png' is not a media type (type/subtype, e.g. application/pdf)");
    CHECK(error_of("documents: {pdf: true}\n").rfind("r.yaml:1:13: unknown key 'pdf' in documents", 0) == 0);
    CHECK(error_of("documents: {document_types: application/pdf}\n").rfind(
              "r.yaml:1:29: documents.document_types must be a list of strings", 0) == 0);
}

TEST_CASE("a later file overrides an earlier one's entries") {
    const auto set = parse_rule_texts({
        {"a.yaml", "switches: {params: false, ranges: false}\nmodel_rewrite: {old: new1, other: x}\n"
                   "model_alias: {'gpt-*': a}\nranges: {temperature: {max: 1}}\n"
                   "model_classes: {c: [a*]}\nvision_route: {models_with_vision: c, action: reroute, reroute_to: v1}\n"},
        {"b.yaml", "switches: {params: true}\nmodel_rewrite: {old: new2}\nmodel_alias: {'gpt-4*': b}\n"
                   "ranges: {temperature: {max: 1.5}}\nvision_route: {reroute_to: v2}\n"},
    });
    CHECK(set->enabled(rule_id::params));
    CHECK_FALSE(set->enabled(rule_id::ranges));
    CHECK(set->find_rewrite("old")->target == "new2");
    CHECK(set->find_rewrite("other")->target == "x");
    CHECK(set->find_alias("gpt-4o")->target == "b");
    CHECK(set->find_alias("gpt-3")->target == "a");
    CHECK(set->find_range("temperature")->max_text == "1.5");
    CHECK(set->vision_route.reroute_to == "v2");
    CHECK(set->vision_route.action == capability_action::reroute);
}

TEST_CASE("chains resolve to their end at load time") {
    const auto set = parse_rule_text("model_rewrite: {a: b, b: c}\nmodel_alias: {'x*': a, 'keep*': keep-latest}\n", "r.yaml");
    CHECK(set->find_rewrite("a")->target == "c");
    CHECK(set->find_alias("x1")->target == "c");
    CHECK(set->find_alias("x1")->via_rewrite);
    CHECK(set->find_alias("x1")->via_alias);
    CHECK(set->find_alias("keep-1")->target == "keep-latest");  // matches its own glob: a fixed point, no loop
}

TEST_CASE("rule file errors, one per kind, at FILE:LINE:COL") {
    struct row {
        std::string_view yaml;
        std::string_view expected;
    };
    const row rows[] = {
        // unknown keys
        {"switches: {tool_choise_any: true}\n", "r.yaml:1:12: unknown key 'tool_choise_any' in switches"},
        {"tool_capable: {model_without_tools: c}\n", "r.yaml:1:16: unknown key 'model_without_tools' in tool_capable"},
        {"ranges: {temperature: {maximum: 2}}\n", "r.yaml:1:24: unknown key 'maximum' in ranges.temperature"},
        {"params: {rename: {chats: {}}}\n", "r.yaml:1:19: unknown key 'chats' in params.rename"},
        {"schema: {chat: []}\n", "r.yaml:1:10: unknown key 'chat' in schema"},
        // duplicate keys
        {"model_rewrite:\n  a: b\n  a: c\n", "r.yaml:3:3: duplicate key 'a' in model_rewrite (first defined at line 2)"},
        {"switches: {params: true, params: false}\n", "r.yaml:1:26: duplicate key 'params' in switches"},
        // bad globs
        {"model_alias: {'gpt-[45]*': x}\n", "r.yaml:1:15: model_alias.gpt-[45]*: bad glob 'gpt-[45]*'"},
        {"model_classes: {c: ['a\\\\b']}\n", "r.yaml:1:21: model_classes.c[0]: bad glob"},
        // loops
        {"model_rewrite:\n  a: b\n  b: a\n", "r.yaml:2:3: model_rewrite 'a' -> 'b' -> 'a' loops"},
        {"model_alias:\n  'x*': y1\n  'y*': x1\n", "r.yaml:2:3: model_alias 'x*' -> 'y1' -> 'x1' -> 'y1' loops"},
        // undefined classes
        {"models:\n  - {class: nope, host: codestral}\n", "r.yaml:2:13: undefined model class 'nope'; model_classes defines: (none)"},
        {"model_classes: {a: [x]}\ntool_capable: {models_without_tools: b}\n",
         "r.yaml:2:38: undefined model class 'b'; model_classes defines: a"},
        // wrong values
        {"switches: {params: yes}\n", "r.yaml:1:20: switches.params must be true or false"},
        {"tool_capable: {action: maybe}\n", "r.yaml:1:24: tool_capable.action must be 'deny' or 'reroute', got 'maybe'"},
        {"vision_route: {action: reroute}\n", "r.yaml:1:15: vision_route: action reroute needs reroute_to: MODEL"},
        {"ranges: {top_p: {min: low}}\n", "r.yaml:1:23: ranges.top_p.min must be a number"},
        {"ranges: {top_p: {min: 2, max: 1}}\n", "r.yaml:1:17: ranges.top_p: min is greater than max"},
        {"include: mistral-schema.yaml\n", "r.yaml:1:10: include must be a list of rule files, got a scalar"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.yaml);
        const std::string what = error_of(r.yaml);
        CHECK_MESSAGE(what.rfind(std::string(r.expected), 0) == 0, what);
    }
}

TEST_CASE("include: relative to the including file; loops and missing files reported") {
    const fs::path dir = fs::temp_directory_path() / "mp_rules_loader_test";
    fs::create_directories(dir);
    std::ofstream(dir / "base.yaml") << "model_rewrite: {a: b}\n";
    std::ofstream(dir / "top.yaml") << "include: [base.yaml]\nmodel_rewrite: {a: c}\n";
    CHECK(load_rule_files({(dir / "top.yaml").string()})->find_rewrite("a")->target == "c");

    std::ofstream(dir / "loop1.yaml") << "include: [loop2.yaml]\n";
    std::ofstream(dir / "loop2.yaml") << "include: [loop1.yaml]\n";
    try {
        load_rule_files({(dir / "loop1.yaml").string()});
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()).find("include loop") != std::string::npos);
    }
    std::ofstream(dir / "missing.yaml") << "include:\n  - nowhere.yaml\n";
    try {
        load_rule_files({(dir / "missing.yaml").string()});
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(e.line() == 2);
        CHECK(std::string(e.what()).find("nowhere.yaml") != std::string::npos);
    }
    fs::remove_all(dir);
}


TEST_CASE("fallbacks: globs, first match wins, later files first, chains followed without repeats") {
    const auto set = parse_rule_texts({{"a.yaml", R"(
fallbacks:
  mistral-large-*: [mistral-medium-latest, mistral-small-latest]
  mistral-medium-*: [mistral-small-latest, open-mistral-nemo]
  codestral-*: [codestral-2501]
  codestral-2501: [mistral-small-latest]
  mistral-*: [mistral-small-latest]
)"},
                                        {"b.yaml", R"(
fallbacks:
  pixtral-*: [pixtral-12b-2409]
)"}});
    CHECK(set->fallback_chain("mistral-large-latest") ==
          std::vector<std::string>{"mistral-medium-latest", "mistral-small-latest", "open-mistral-nemo"});
    CHECK(set->fallback_chain("mistral-medium-latest") ==
          std::vector<std::string>{"mistral-small-latest", "open-mistral-nemo"});
    CHECK(set->fallback_chain("mistral-small-latest").empty());  // mistral-*: only itself
    CHECK(set->fallback_chain("mistral-tiny") == std::vector<std::string>{"mistral-small-latest"});
    // codestral-2501 matches codestral-* first (first match wins), which lists itself: skipped.
    CHECK(set->fallback_chain("codestral-latest") == std::vector<std::string>{"codestral-2501"});
    REQUIRE(set->find_fallbacks("pixtral-large") != nullptr);
    CHECK(set->fallbacks.front().pattern == "pixtral-*");  // the later file first
    CHECK(set->fallback_chain("pixtral-large") == std::vector<std::string>{"pixtral-12b-2409"});
    CHECK(set->fallback_chain("pixtral-12b-2409").empty());  // only itself
    CHECK(set->find_fallbacks("gpt-4o") == nullptr);
}

TEST_CASE("fallbacks: the shipped rules have none") {
    const auto set = load_rule_files({(root / "rules" / "mistral.yaml").string()});
    CHECK(set->fallback_chain("mistral-large-latest").empty());
}

TEST_CASE("fallbacks: loops and bad entries are refused at FILE:LINE:COL") {
    CHECK(error_of("fallbacks:\n  a: [b]\n  b: [a]\n") ==
          "r.yaml:2:3: fallbacks 'a' -> 'b' -> 'a' loops; a fallback chain must not come back to a model it left");
    CHECK(error_of("fallbacks:\n  mistral-*: [mistral-small-latest, mistral-tiny]\n").find(
              "r.yaml:2:3: fallbacks 'mistral-*' -> 'mistral-small-latest' -> 'mistral-tiny' -> "
              "'mistral-small-latest' loops") == 0);
    CHECK(error_of("fallbacks:\n  a: [a]\n") == "(no error)");  // never its own fallback
    CHECK(error_of("fallbacks:\n  x: [y]\n  y: [z, w]\n  w: [x]\n").find("r.yaml:2:3: fallbacks 'x' -> 'y' -> 'w' -> 'x' loops") ==
          0);
    CHECK(error_of("fallbacks:\n  a: b\n").find("r.yaml:2:6: fallbacks.a must be a non-empty list of models") == 0);
    CHECK(error_of("fallbacks:\n  a: []\n").find("r.yaml:2:6: fallbacks.a must be a non-empty list of models, got an empty list") == 0);
    CHECK(error_of("fallbacks:\n  a: [b*]\n").find("r.yaml:2:7: fallbacks.a[0]: 'b*' must be a model id, not a glob") == 0);
    CHECK(error_of("fallbacks:\n  a: [b, b]\n").find("r.yaml:2:10: fallbacks.a[1]: 'b' is listed twice") == 0);
    CHECK(error_of("fallbacks:\n  a: [b]\n  a: [c]\n").find("r.yaml:3:3: duplicate key 'a' in fallbacks") == 0);
    CHECK(error_of("fallbacks:\n  'a[': [b]\n").find("bad glob") != std::string::npos);
    CHECK(error_of("fallbacks: [a]\n").find("r.yaml:1:12: fallbacks must be a map") == 0);
    // Not a loop: two branches reaching the same model; tried once, breadth first.
    CHECK(error_of("fallbacks:\n  a: [b, c]\n  b: [d]\n  c: [d]\n") == "(no error)");
    const auto set = parse_rule_text("fallbacks:\n  a: [b, c]\n  b: [d]\n  c: [d, e]\n", "r.yaml");
    CHECK(set->fallback_chain("a") == std::vector<std::string>{"b", "c", "d", "e"});
    CHECK(set->fallback_chain("c") == std::vector<std::string>{"d", "e"});
}
