#include <doctest/doctest.h>

#include "config/config.hpp"
#include "routing/route.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;
using routing::upstream_id;

namespace {

config::proxy_config make_config(config::region_kind region, bool eu_strict) {
    auto config = config::parse_config("", "/tmp/c.yaml");
    config.region = region;
    config.eu_strict = eu_strict;
    return config;
}

}  // namespace

TEST_CASE("upstream names") {
    CHECK(routing::upstream_name(upstream_id::mistral) == "mistral");
    CHECK(routing::upstream_name(upstream_id::mistral_eu) == "mistral_eu");
    CHECK(routing::upstream_name(upstream_id::codestral) == "codestral");
}

TEST_CASE("choose_upstream (SPEC §5)") {
    const auto rules = rules::parse_rule_text("models:\n  - {match: 'codestral-*', host: codestral}\n", "r.yaml");
    using config::region_kind;
    struct row {
        region_kind region;
        bool eu_strict;
        std::string_view path;
        std::string_view model;
        std::optional<upstream_id> expected;  // nullopt = 403 eu_residency_required
    };
    const row rows[] = {
        {region_kind::global, false, "/v1/chat/completions", "mistral-small-latest", upstream_id::mistral},
        {region_kind::global, false, "/v1/chat/completions", "", upstream_id::mistral},
        {region_kind::global, false, "/v1/chat/completions", "codestral-latest", upstream_id::codestral},
        {region_kind::global, false, "/v1/completions", "codestral-latest", upstream_id::codestral},
        {region_kind::global, false, "/v1/fim/completions", "", upstream_id::codestral},
        {region_kind::global, false, "/v1/fim/completions", "mistral-small-latest", upstream_id::codestral},
        {region_kind::global, true, "/v1/fim/completions", "codestral-latest", upstream_id::codestral},
        {region_kind::global, false, "/v1/embeddings", "mistral-embed", upstream_id::mistral},
        {region_kind::global, false, "/v1/models", "", upstream_id::mistral},
        {region_kind::global, false, "/v1/fim/completionsx", "", upstream_id::mistral},
        {region_kind::eu, false, "/v1/chat/completions", "mistral-small-latest", upstream_id::mistral_eu},
        {region_kind::eu, true, "/v1/chat/completions", "mistral-small-latest", upstream_id::mistral_eu},
        {region_kind::eu, false, "/v1/chat/completions", "codestral-latest", upstream_id::codestral},
        {region_kind::eu, false, "/v1/fim/completions", "", upstream_id::codestral},
        {region_kind::eu, true, "/v1/chat/completions", "codestral-latest", std::nullopt},
        {region_kind::eu, true, "/v1/fim/completions", "", std::nullopt},
        {region_kind::eu, true, "/v1/fim/completions", "codestral-2405", std::nullopt},
        {region_kind::eu, true, "/v1/files", "", upstream_id::mistral_eu},
    };
    for (const auto& r : rows) {
        CAPTURE(r.path);
        CAPTURE(r.model);
        CAPTURE(static_cast<int>(r.region));
        CAPTURE(r.eu_strict);
        const auto config = make_config(r.region, r.eu_strict);
        const auto result = routing::choose_upstream(config, *rules, routing::find_endpoint("POST", r.path), r.model);
        if (r.expected) {
            CHECK(result.upstream == r.expected);
            CHECK_FALSE(result.error);
        } else {
            CHECK_FALSE(result.upstream);
            REQUIRE(result.error);
            CHECK(result.error->status == 403);
            CHECK(result.error->type == "permission_error");
            CHECK(result.error->code == "eu_residency_required");
            CHECK(result.error->message.find("no EU endpoint") != std::string::npos);
            CHECK(result.error->message.find("nothing was sent") != std::string::npos);
        }
    }
}

TEST_CASE("without rules only the FIM path goes to codestral") {
    const rules::rule_set empty;
    const auto config = make_config(config::region_kind::global, false);
    CHECK(routing::choose_upstream(config, empty, routing::find_endpoint("POST", "/v1/chat/completions"), "codestral-latest").upstream ==
          upstream_id::mistral);
    CHECK(routing::choose_upstream(config, empty, routing::find_endpoint("POST", "/v1/fim/completions"), "codestral-latest").upstream ==
          upstream_id::codestral);
}
