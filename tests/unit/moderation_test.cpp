// POST /v1/moderations: OpenAI's request -> Mistral's
// moderation body (responses/moderations.hpp, then the plan's model rules),
// Mistral's answer -> OpenAI's CreateModerationResponse through the rule
// files' moderation_categories table, and that table's loading.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "normalizer_support.hpp"
#include "plan_support.hpp"
#include "plan/request_plan.hpp"
#include "responses/moderations.hpp"
#include "responses/response_rules.hpp"
#include "rules/rule_set.hpp"

namespace {

using namespace mistral_proxy;
using normalizer_test::config_with;
using normalizer_test::shipped;
const auto error_of = normalizer_test::rule_error_of;


using plan_test::planned;

std::unique_ptr<planned> plan_moderation(std::string json, const config::proxy_config& config,
                                         std::string_view model_override = {}) {
    return plan_test::plan_with(config, "/v1/moderations", std::move(json), "POST", model_override);
}

// `"name":["text"]` for every OpenAI category, as the answer writes them.
std::string applied_types() {
    std::string out = "{";
    for (const auto name : rules::openai_moderation_categories) {
        out += out.size() > 1 ? ",\"" : "\"";
        out += name;
        out += "\":[\"text\"]";
    }
    return out + "}";
}

constexpr std::string_view inline_table = R"(
moderation_categories:
  hate: [hate_and_discrimination]
  illicit: [dangerous, criminal]
  sexual: [sexual]
  violence: [violence_and_threats]
)";

}  // namespace

TEST_CASE("moderation request: every input shape -> Mistral's {model, input}") {
    struct row {
        std::string_view name;
        std::string_view in;
        std::string_view out;
    };
    const row rows[] = {
        {"a string", R"({"model":"omni-moderation-latest","input":"I want to kill them."})",
         R"({"model":"omni-moderation-latest","input":"I want to kill them."})"},
        {"an array of strings, spaces and escapes as written, members reordered",
         R"({ "input" : [ "a" , "b\"c\u00e9" ] , "model" : "text-moderation-stable" })",
         R"({"model":"text-moderation-stable","input":["a","b\"c\u00e9"]})"},
        {"text parts -> their texts, whatever the members' order",
         R"({"model":"omni-moderation-2024-09-26","input":[{"type":"text","text":"one"},{"text":"two","type":"text"}]})",
         R"({"model":"omni-moderation-2024-09-26","input":["one","two"]})"},
        {"strings and text parts mixed", R"({"model":"m","input":["one",{"type":"text","text":"two"}]})",
         R"({"model":"m","input":["one","two"]})"},
        {"no model: OpenAI's default", R"({"input":"x"})", R"({"model":"omni-moderation-latest","input":"x"})"},
        {"model null: OpenAI's default", R"({"model":null,"input":"x"})",
         R"({"model":"omni-moderation-latest","input":"x"})"},
        {"members Mistral's schema forbids are dropped", R"({"input":"x","user":"u","metadata":{"a":1},"model":"m"})",
         R"({"model":"m","input":"x"})"},
        {"duplicate keys: the last wins", R"({"input":"first","model":"a","input":["second"],"model":"b"})",
         R"({"model":"b","input":["second"]})"},
        {"an escaped key is the key it spells", R"({"inp\u0075t":"x","m\u006fdel":"m"})",
         R"({"model":"m","input":"x"})"},
        {"an empty string is text to classify", R"({"input":""})", R"({"model":"omni-moderation-latest","input":""})"},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        const auto mapped = responses::map_moderation_request(r.in);
        REQUIRE_FALSE(mapped.error);
        CHECK(mapped.body == r.out);
    }
}

TEST_CASE("moderation request: what Mistral cannot classify is a 400 naming it") {
    struct row {
        std::string_view in;
        std::string_view param;  // "": null
        std::string_view says;
    };
    const row rows[] = {
        {R"({"model":"m","input":["a",{"type":"image_url","image_url":{"url":"https://x/y.png"}}]})", "input[1]",
         "'input[1]' is an image_url part: Mistral's moderation classifies text only"},
        {R"({"input":[{"type":"input_audio","input_audio":{}}]})", "input[0]", "a part of type 'input_audio'"},
        {R"({"input":[{"text":"no type"}]})", "input[0]", "a part of type (none)"},
        {R"({"input":[{"type":"text","text":5}]})", "input[0].text", "'input[0].text' must be a string"},
        {R"({"input":[{"type":"text"}]})", "input[0].text", "must be a string"},
        {R"({"input":[1,2]})", "input[0]", "must be a string or a"},
        {R"({"input":["a",null]})", "input[1]", "must be a string or a"},
        {R"({"input":[["nested"]]})", "input[0]", "must be a string or a"},
        {R"({"input":[]})", "input", "empty array"},
        {R"({"input":42})", "input", "'input' must be a string, an array of strings"},
        {R"({"input":null})", "input", "'input' must be"},
        {R"({"model":"m"})", "input", "you must provide 'input'"},
        {R"({"model":5,"input":"x"})", "model", "'model' must be a string"},
        {R"(["input"])", "", "must be a JSON object"},
        {R"({"input":"x")", "", "not valid JSON"},
        {R"({"input":"x"}})", "", "not valid JSON"},
        {R"({"input":[tru],"x":1})", "", "not valid JSON"},
        {"", "", "must be a JSON object"},
    };
    for (const row& r : rows) {
        CAPTURE(r.in);
        const auto mapped = responses::map_moderation_request(r.in);
        REQUIRE(mapped.error);
        CHECK(mapped.body.empty());
        CHECK(mapped.error->status == 400);
        CHECK(mapped.error->type == "invalid_request_error");
        CHECK(mapped.error->param == (r.param.empty() ? std::nullopt : std::optional<std::string>(r.param)));
        CHECK_MESSAGE(mapped.error->message.find(r.says) != std::string::npos, mapped.error->message);
    }
    const auto image = responses::map_moderation_request(R"({"input":[{"type":"image_url","image_url":{"url":"u"}}]})");
    REQUIRE(image.error);
    CHECK(image.error->code == std::string("unsupported_content"));
}

TEST_CASE("moderation plan: OpenAI model names through model_alias, Mistral's moderation endpoint, answer rewritten") {
    static const auto global = config_with();
    struct row {
        std::string_view in;
        std::string_view body;
        std::string_view rules;
    };
    const row rows[] = {
        {R"({"model":"omni-moderation-latest","input":"hi"})", R"({"model":"mistral-moderation-latest","input":"hi"})",
         "model_alias"},
        {R"({"input":["a","b"]})", R"({"model":"mistral-moderation-latest","input":["a","b"]})", "model_alias"},
        {R"({"model":"text-moderation-stable","input":[{"type":"text","text":"t"}]})",
         R"({"model":"mistral-moderation-latest","input":["t"]})", "model_alias"},
        {R"({"model":"text-moderation-007","input":"x"})", R"({"model":"mistral-moderation-latest","input":"x"})",
         "model_alias"},
        {R"({"model":"omni-moderation-2024-09-26","input":"x"})",
         R"({"model":"mistral-moderation-latest","input":"x"})", "model_alias"},
        // Mistral's own model: nothing to change, no rule named.
        {R"({"model":"mistral-moderation-2411","input":"x"})", R"({"model":"mistral-moderation-2411","input":"x"})",
         ""},
    };
    for (const row& r : rows) {
        CAPTURE(r.in);
        const auto p = plan_moderation(std::string(r.in), global);
        REQUIRE(p->result.ok());
        const auto& plan = *p->result.plan;
        CHECK(p->body == r.body);
        CHECK(p->rules == r.rules);
        CHECK(plan.upstream == routing::upstream_id::mistral);
        CHECK(plan.upstream_path == "/moderations");
        CHECK_FALSE(plan.relay_body);
        CHECK_FALSE(plan.stream);
        CHECK(plan.answer.mode == plan::answer_mode::whole);
        CHECK(plan.answer.whole == plan::whole_kind::moderation);
        // The prompt alone: a moderation generates no completion.
        CHECK(plan.estimate.tokens == (p->body.size() + 3) / 4);
        CHECK(plan.estimate.unreported == plan.estimate.tokens);
    }

    // The model the client asked for, and the one sent.
    const auto named = plan_moderation(R"({"model":"omni-moderation-latest","input":"hi"})", global);
    REQUIRE(named->result.ok());
    CHECK(named->result.plan->model_requested == "omni-moderation-latest");
    CHECK(named->result.plan->model_sent == "mistral-moderation-latest");

    // EU pin: the region's mistral upstream.
    static const auto eu = config_with("region: eu\n");
    const auto pinned = plan_moderation(R"({"input":"x"})", eu);
    REQUIRE(pinned->result.ok());
    CHECK(pinned->result.plan->upstream == routing::upstream_id::mistral_eu);
    CHECK(pinned->result.plan->upstream_path == "/moderations");

    // A fallback model replaces the aliased one (SPEC §6 fallback).
    const auto fallback = plan_moderation(R"({"input":"x"})", global, "mistral-moderation-2411");
    REQUIRE(fallback->result.ok());
    CHECK(fallback->body == R"({"model":"mistral-moderation-2411","input":"x"})");
    CHECK(fallback->rules == "model_alias,fallback");

    // Refusals come before anything is planned.
    const auto image = plan_moderation(R"({"input":[{"type":"image_url","image_url":{"url":"u"}}]})", global);
    REQUIRE_FALSE(image->result.ok());
    CHECK(image->result.error->status == 400);
    CHECK(image->result.error->param == std::string("input[0]"));
}

TEST_CASE("moderation answer: Mistral's categories -> OpenAI's through the rule file's table") {
    const auto set = rules::parse_rule_text(inline_table, "r.yaml");
    const auto table = responses::response_rules::from(*set);
    const std::string_view mistral =
        R"({"id":"mod-1","model":"mistral-moderation-latest","results":[{"categories":{"sexual":false,"hate_and_discrimination":false,"violence_and_threats":true,"dangerous":false,"criminal":true,"pii":true},"category_scores":{"sexual":0.001,"hate_and_discrimination":2.5e-05,"violence_and_threats":0.97,"dangerous":0.2,"criminal":0.61,"pii":0.9}}]})";
    const auto answer = responses::transform_moderation_response(mistral, table);
    REQUIRE_FALSE(answer.error);
    CHECK_FALSE(answer.unchanged);
    // illicit: any of dangerous/criminal, the larger score; a category with no
    // counterpart (harassment, sexual/minors, ...) false and 0; pii shown nowhere.
    const std::string expected =
        R"({"id":"mod-1","model":"mistral-moderation-latest","results":[{"flagged":true,"categories":{"hate":false,"hate/threatening":false,"harassment":false,"harassment/threatening":false,"illicit":true,"illicit/violent":false,"self-harm":false,"self-harm/intent":false,"self-harm/instructions":false,"sexual":false,"sexual/minors":false,"violence":true,"violence/graphic":false},"category_scores":{"hate":2.5e-05,"hate/threatening":0,"harassment":0,"harassment/threatening":0,"illicit":0.61,"illicit/violent":0,"self-harm":0,"self-harm/intent":0,"self-harm/instructions":0,"sexual":0.001,"sexual/minors":0,"violence":0.97,"violence/graphic":0},"category_applied_input_types":)" +
        applied_types() + "}]}";
    CHECK(answer.body == expected);
    CHECK(answer.body.find("pii") == std::string::npos);
}

TEST_CASE("moderation answer: flagged only by mapped categories; several results; members copied through") {
    const auto set = rules::parse_rule_text(inline_table, "r.yaml");
    const auto table = responses::response_rules::from(*set);
    // Result 0: only pii (no OpenAI counterpart) is true: not flagged. Result 1:
    // no categories at all. Result 2: sexual true with its score.
    const std::string_view mistral = R"({ "model" : "mistral-moderation-2411" , "id":"mod-2", "results" : [
        {"category_scores":{"pii":0.99,"sexual":1e-3},"categories":{"pii":true,"sexual":false}},
        {},
        {"categories":{"sexual":true,"hate_and_discrimination":null},"category_scores":{"sexual":1}}
    ], "usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}})";
    const auto answer = responses::transform_moderation_response(mistral, table);
    REQUIRE_FALSE(answer.error);
    const std::string& body = answer.body;
    CHECK(body.starts_with(R"({"model":"mistral-moderation-2411","id":"mod-2","results":[{"flagged":false,)"));
    CHECK(body.find(R"("sexual":1e-3,)") != std::string::npos);
    CHECK(body.find(R"(]}},{"flagged":false,"categories":{"hate":false,)") != std::string::npos);
    CHECK(body.find(R"({"flagged":true,"categories":{"hate":false,)") != std::string::npos);
    CHECK(body.find(R"("sexual":true,)") != std::string::npos);
    CHECK(body.find(R"("sexual":1,"sexual/minors":0,)") != std::string::npos);
    CHECK(body.ends_with(R"(]}}],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}})"));
    REQUIRE(answer.usage);
    CHECK(answer.usage->total_tokens == 7);

    // No table at all (a rule file without moderation_categories): every
    // category false and 0, nothing flagged, every member still present.
    const auto none = responses::transform_moderation_response(
        R"({"id":"m","model":"x","results":[{"categories":{"sexual":true},"category_scores":{"sexual":0.9}}]})",
        responses::response_rules{});
    REQUIRE_FALSE(none.error);
    CHECK(none.body.find(R"("flagged":false)") != std::string::npos);
    CHECK(none.body.find("true") == std::string::npos);
    CHECK(none.body.find(R"("sexual":0,)") != std::string::npos);
    CHECK(none.body.find(applied_types()) != std::string::npos);
}

TEST_CASE("moderation answer: the shipped table") {
    const auto table = responses::response_rules::from(shipped());
    const std::string_view mistral =
        R"({"id":"4d71ae510af942108ef7344f903e2b88","model":"mistral-moderation-latest","results":[{"categories":{"sexual":false,"hate_and_discrimination":true,"violence_and_threats":false,"dangerous_and_criminal_content":true,"selfharm":true,"health":true,"financial":false,"law":false,"pii":false},"category_scores":{"sexual":0.0011335690505802631,"hate_and_discrimination":0.83,"violence_and_threats":0.0003569706459529698,"dangerous_and_criminal_content":0.7,"selfharm":0.66,"health":0.9,"financial":8.481103577651083e-05,"law":4.539786823443137e-05,"pii":0.0023967307060956955}}]})";
    const auto answer = responses::transform_moderation_response(mistral, table);
    REQUIRE_FALSE(answer.error);
    const std::string& body = answer.body;
    CHECK(
        body.find(
            R"({"flagged":true,"categories":{"hate":true,"hate/threatening":false,"harassment":false,"harassment/threatening":false,"illicit":true,"illicit/violent":false,"self-harm":true,"self-harm/intent":false,"self-harm/instructions":false,"sexual":false,"sexual/minors":false,"violence":false,"violence/graphic":false})") !=
        std::string::npos);
    CHECK(
        body.find(
            R"("category_scores":{"hate":0.83,"hate/threatening":0,"harassment":0,"harassment/threatening":0,"illicit":0.7,"illicit/violent":0,"self-harm":0.66,"self-harm/intent":0,"self-harm/instructions":0,"sexual":0.0011335690505802631,"sexual/minors":0,"violence":0.0003569706459529698,"violence/graphic":0})") !=
        std::string::npos);
    CHECK(body.find("health") == std::string::npos);
}

TEST_CASE("moderation answer: a body that is not a moderation response is a 502") {
    const auto table = responses::response_rules::from(shipped());
    for (std::string_view bad : {
             R"(not json)",
             R"([])",
             R"({"id":"m","model":"x"})",
             R"({"model":"x","results":[]})",
             R"({"id":"m","results":[]})",
             R"({"id":5,"model":"x","results":[]})",
             R"({"id":"m","model":"x","results":{}})",
             R"({"id":"m","model":"x","results":["a"]})",
             R"({"id":"m","model":"x","results":[{"categories":[]}]})",
             R"({"id":"m","model":"x","results":[{"categories":{"sexual":"yes"}}]})",
             R"({"id":"m","model":"x","results":[{"category_scores":{"sexual":"0.5"}}]})",
             R"({"id":"m","model":"x","results":[{"category_scores":{"sexual":0.5}}]}})",
         }) {
        CAPTURE(bad);
        const auto answer = responses::transform_moderation_response(bad, table);
        REQUIRE(answer.error);
        CHECK(answer.error->status == 502);
        CHECK(answer.body.empty());
    }
    // An empty result list is a valid answer (nothing was classified).
    const auto empty = responses::transform_moderation_response(R"({"id":"m","model":"x","results":[]})", table);
    REQUIRE_FALSE(empty.error);
    CHECK(empty.body == R"({"id":"m","model":"x","results":[]})");
}

TEST_CASE("moderation_categories: loaded strictly, later files override an entry") {
    const auto set = rules::parse_rule_text(inline_table, "r.yaml");
    const auto index = [](std::string_view name) {
        for (std::size_t i = 0; i < rules::openai_moderation_categories.size(); ++i) {
            if (rules::openai_moderation_categories[i] == name) {
                return i;
            }
        }
        FAIL("no such category");
        return std::size_t{0};
    };
    CHECK((set->moderation_categories[index("illicit")] == std::vector<std::string>{"dangerous", "criminal"}));
    CHECK(set->moderation_categories[index("harassment")].empty());

    const auto layered = rules::parse_rule_texts(
        {{"a.yaml", std::string(inline_table)},
         {"b.yaml", "moderation_categories:\n  illicit: []\n  harassment: [hate_and_discrimination]\n"}});
    CHECK(layered->moderation_categories[index("illicit")].empty());
    CHECK(layered->moderation_categories[index("harassment")] == std::vector<std::string>{"hate_and_discrimination"});
    CHECK(layered->moderation_categories[index("sexual")] == std::vector<std::string>{"sexual"});

    // The shipped file maps every OpenAI category explicitly.
    CHECK(shipped().moderation_categories[index("violence")] == std::vector<std::string>{"violence_and_threats"});
    CHECK(shipped().moderation_categories[index("sexual/minors")].empty());

    CHECK(error_of("moderation_categories:\n  harrassment: [hate_and_discrimination]\n") ==
          "r.yaml:2:3: moderation_categories: 'harrassment' is not an OpenAI moderation category; known: hate, "
          "hate/threatening, harassment, harassment/threatening, illicit, illicit/violent, self-harm, "
          "self-harm/intent, self-harm/instructions, sexual, sexual/minors, violence, violence/graphic");
    CHECK(error_of("moderation_categories:\n  hate: hate_and_discrimination\n").starts_with("r.yaml:2:"));
    CHECK(error_of("moderation_categories:\n  hate: hate_and_discrimination\n").find("must be a list of strings") !=
          std::string::npos);
    CHECK(error_of("moderation_categories:\n  hate: [\"\"]\n") ==
          "r.yaml:2:10: moderation_categories.hate[0] must not be empty");
    CHECK(error_of("moderation_categories:\n  hate: [a, a]\n") ==
          "r.yaml:2:13: moderation_categories.hate[1]: 'a' is listed twice");
    CHECK(error_of("moderation_categories: [hate]\n").starts_with("r.yaml:1:"));
    CHECK(error_of("moderation_categories:\n  hate: [a]\n  hate: [b]\n").find("duplicate") != std::string::npos);
}

TEST_CASE("moderation: every prefix of a request and of an answer is translated or refused, never more") {
    const std::string request =
        R"({"model":"omni-moderation-latest","input":["a \"quoted\" text",{"type":"text","text":"caf\u00e9"}],"user":null})";
    for (std::size_t n = 0; n <= request.size(); ++n) {
        const auto prefix = std::string_view(request).substr(0, n);
        CAPTURE(prefix);
        const auto mapped = responses::map_moderation_request(prefix);
        CHECK(mapped.error.has_value() == (n != request.size()));
        CHECK(mapped.body.empty() == mapped.error.has_value());
        if (mapped.error) {
            CHECK(mapped.error->status == 400);
        }
    }
    const auto table = responses::response_rules::from(shipped());
    const std::string answer =
        R"({"id":"mod-1","model":"mistral-moderation-latest","results":[{"categories":{"sexual":true,"selfharm":false},"category_scores":{"sexual":0.75,"selfharm":1.5e-3}}]})";
    for (std::size_t n = 0; n <= answer.size(); ++n) {
        const auto prefix = std::string_view(answer).substr(0, n);
        CAPTURE(prefix);
        const auto out = responses::transform_moderation_response(prefix, table);
        CHECK(out.error.has_value() == (n != answer.size()));
        CHECK(out.body.empty() == out.error.has_value());
        if (out.error) {
            CHECK(out.error->status == 502);
        }
    }
}
