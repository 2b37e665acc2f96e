#include <doctest/doctest.h>

#include <map>
#include <string>

#include "config/config.hpp"
#include "routing/keys.hpp"

using namespace mistral_proxy;
using routing::key_store;
using routing::upstream_id;

namespace {

using env_table = std::map<std::string, std::string>;

key_store make_store(const env_table& env, std::string_view extra_yaml = "") {
    const auto config = config::parse_config(extra_yaml, "/tmp/c.yaml");
    return key_store::from_environment(config, [&env](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

// No message of the store may contain a secret.
void check_no_leak(const key_store& store, const std::optional<errors::openai_error>& error) {
    if (!error) {
        return;
    }
    const std::string json = errors::to_json(*error);
    for (const auto& secret : store.secrets_for_leak_checks()) {
        CHECK_MESSAGE(json.find(secret) == std::string::npos, json);
    }
}

}  // namespace

TEST_CASE("bearer_token") {
    struct row {
        std::string_view header;
        std::optional<std::string_view> expected;
    };
    const row rows[] = {
        {"Bearer abc", "abc"},
        {"bearer abc", "abc"},
        {"BEARER  abc ", "abc"},
        {"Bearer\tabc", "abc"},
        {"Bearer ", {}},
        {"Bearer", {}},
        {"Bearerabc", {}},
        {"Basic abc", {}},
        {"", {}},
        {"abc", {}},
        {"  Bearer x", "x"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.header);
        CHECK(routing::bearer_token(r.header) == r.expected);
    }
}

TEST_CASE("without client keys every caller passes") {
    const auto store = make_store({{"MISTRAL_API_KEY", "mk"}});
    CHECK_FALSE(store.client_keys_configured());
    CHECK_FALSE(store.check_client(std::nullopt));
    CHECK_FALSE(store.check_client("anything"));
    CHECK_FALSE(store.check_client(""));
}

TEST_CASE("client keys: comma-separated, trimmed, empty entries ignored") {
    const auto store = make_store({{"PROXY_KEYS", " k1 ,,k2,\tk3-long-key ,"}}, "client_keys_env: PROXY_KEYS");
    CHECK(store.client_keys_configured());
    struct row {
        std::optional<std::string_view> bearer;
        bool allowed;
        std::string_view code;
    };
    const row rows[] = {
        {"k1", true, ""},
        {"k2", true, ""},
        {"k3-long-key", true, ""},
        {"k3", false, "invalid_api_key"},
        {"k1 ", true, ""},  // trimmed like the configured keys
        {"k", false, "invalid_api_key"},
        {"k1k1", false, "invalid_api_key"},
        {"K1", false, "invalid_api_key"},
        {"", false, "missing_api_key"},
        {std::nullopt, false, "missing_api_key"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.bearer.value_or("(none)"));
        const auto error = store.check_client(r.bearer);
        CHECK(error.has_value() != r.allowed);
        if (error) {
            CHECK(error->status == 401);
            CHECK(error->type == "authentication_error");
            CHECK(error->code == std::string(r.code));
            check_no_leak(store, error);
        }
    }
    const auto secrets = store.secrets_for_leak_checks();
    CHECK(std::find(secrets.begin(), secrets.end(), "k1") != secrets.end());
    CHECK(std::find(secrets.begin(), secrets.end(), "k3-long-key") != secrets.end());
}

TEST_CASE("client_keys_env named but unset or empty refuses everyone, naming the variable") {
    for (const env_table& env : {env_table{}, env_table{{"PROXY_KEYS", ""}}, env_table{{"PROXY_KEYS", " , ,"}}}) {
        const auto store = make_store(env, "client_keys_env: PROXY_KEYS");
        CHECK(store.client_keys_configured());
        for (const std::optional<std::string_view> bearer :
             {std::optional<std::string_view>{}, std::optional<std::string_view>{"k1"},
              std::optional<std::string_view>{""}}) {
            const auto error = store.check_client(bearer);
            REQUIRE(error);
            CHECK(error->status == 401);
            CHECK(error->message.find("PROXY_KEYS") != std::string::npos);
        }
    }
}

TEST_CASE("upstream keys (SPEC §3)") {
    struct row {
        std::string_view name;
        env_table env;
        std::string_view yaml;
        upstream_id upstream;
        std::optional<std::string_view> client_bearer;
        std::string_view expected_auth;  // "" = 401 expected
        std::string_view env_named;      // variable the 401 must name
    };
    const row rows[] = {
        {"own key wins over the bearer",
         {{"MISTRAL_API_KEY", "mk"}},
         "",
         upstream_id::mistral,
         "cb-7Qz",
         "Bearer mk",
         ""},
        {"own key, no bearer", {{"MISTRAL_API_KEY", "mk"}}, "", upstream_id::mistral, std::nullopt, "Bearer mk", ""},
        {"eu uses its env var",
         {{"MISTRAL_API_KEY", "mk"}},
         "",
         upstream_id::mistral_eu,
         std::nullopt,
         "Bearer mk",
         ""},
        {"eu with its own var",
         {{"MISTRAL_API_KEY", "mk"}, {"EU_KEY", "ek"}},
         "upstreams: {mistral_eu: {api_key_env: EU_KEY}}",
         upstream_id::mistral_eu,
         std::nullopt,
         "Bearer ek",
         ""},
        {"codestral own key", {{"CODESTRAL_API_KEY", "ck"}}, "", upstream_id::codestral, "cb-7Qz", "Bearer ck", ""},
        {"value is trimmed", {{"MISTRAL_API_KEY", " mk\n"}}, "", upstream_id::mistral, std::nullopt, "Bearer mk", ""},
        {"unset: bearer passed to mistral", {}, "", upstream_id::mistral, "cb-7Qz", "Bearer cb-7Qz", ""},
        {"unset: bearer passed to mistral_eu", {}, "", upstream_id::mistral_eu, "cb-7Qz", "Bearer cb-7Qz", ""},
        {"empty var counts as unset",
         {{"MISTRAL_API_KEY", ""}},
         "",
         upstream_id::mistral,
         "cb-7Qz",
         "Bearer cb-7Qz",
         ""},
        {"unset: the bearer is trimmed", {}, "", upstream_id::mistral, " cb-7Qz\t", "Bearer cb-7Qz", ""},
        {"unset, a blank bearer", {}, "", upstream_id::mistral, "  ", "", "MISTRAL_API_KEY"},
        {"unset, no bearer", {}, "", upstream_id::mistral, std::nullopt, "", "MISTRAL_API_KEY"},
        {"unset, empty bearer", {}, "", upstream_id::mistral, "", "", "MISTRAL_API_KEY"},
        {"bearer never goes to codestral",
         {{"MISTRAL_API_KEY", "mk"}},
         "",
         upstream_id::codestral,
         "cb-7Qz",
         "",
         "CODESTRAL_API_KEY"},
        {"codestral without anything", {}, "", upstream_id::codestral, std::nullopt, "", "CODESTRAL_API_KEY"},
        {"client keys configured: bearer is not forwarded",
         {{"PROXY_KEYS", "cb-7Qz"}},
         "client_keys_env: PROXY_KEYS",
         upstream_id::mistral,
         "cb-7Qz",
         "",
         "MISTRAL_API_KEY"},
        {"client keys configured, own key used",
         {{"PROXY_KEYS", "cb-7Qz"}, {"MISTRAL_API_KEY", "mk"}},
         "client_keys_env: PROXY_KEYS",
         upstream_id::mistral,
         "cb-7Qz",
         "Bearer mk",
         ""},
        {"client keys named but unset: still not forwarded",
         {},
         "client_keys_env: PROXY_KEYS",
         upstream_id::mistral_eu,
         "cb-7Qz",
         "",
         "MISTRAL_API_KEY"},
        {"custom env var named in the 401",
         {},
         "upstreams: {codestral: {api_key_env: MY_CODESTRAL}}",
         upstream_id::codestral,
         std::nullopt,
         "",
         "MY_CODESTRAL"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const auto store = make_store(r.env, r.yaml);
        const auto choice = store.upstream_authorization(r.upstream, r.client_bearer);
        // The request path's form of the same choice, into a string that held
        // the last request's value.
        std::string reused = "Bearer the-last-request-s-value";
        CHECK(store.can_authorize(r.upstream, r.client_bearer) == !r.expected_auth.empty());
        CHECK(store.authorization_into(r.upstream, r.client_bearer, 0, reused) == !r.expected_auth.empty());
        CHECK(reused == r.expected_auth);
        if (!r.expected_auth.empty()) {
            CHECK(choice.authorization == r.expected_auth);
            CHECK_FALSE(choice.error);
        } else {
            CHECK(choice.authorization.empty());
            REQUIRE(choice.error);
            CHECK(choice.error->status == 401);
            CHECK(choice.error->type == "authentication_error");
            CHECK(choice.error->code == "missing_api_key");
            CHECK(choice.error->message.find(r.env_named) != std::string::npos);
            CHECK(choice.error->message.find(routing::upstream_name(r.upstream)) != std::string::npos);
            check_no_leak(store, choice.error);
            if (r.client_bearer && !r.client_bearer->empty()) {
                CHECK(choice.error->message.find(*r.client_bearer) == std::string::npos);
            }
        }
    }
}

TEST_CASE("the codestral 401 message reads as documented") {
    const auto store = make_store({});
    const auto choice = store.upstream_authorization(upstream_id::codestral, std::nullopt);
    REQUIRE(choice.error);
    CHECK(choice.error->message.rfind(
              "no API key for upstream codestral: set the environment variable CODESTRAL_API_KEY", 0) == 0);
}

TEST_CASE("secrets_for_leak_checks lists every key held and nothing else") {
    const auto store = make_store({{"MISTRAL_API_KEY", "mk"}, {"CODESTRAL_API_KEY", "ck"}, {"PROXY_KEYS", "a,b"}},
                                  "client_keys_env: PROXY_KEYS");
    auto secrets = store.secrets_for_leak_checks();
    std::sort(secrets.begin(), secrets.end());
    // mistral and mistral_eu share MISTRAL_API_KEY, so "mk" is held twice.
    CHECK(secrets == std::vector<std::string>{"a", "b", "ck", "mk", "mk"});
}

TEST_CASE("redactor_for hides every key held, and the client's bearer when it went upstream") {
    const std::string echoed = "sent: mk ck a b client-token";
    // Env keys and client keys: the bearer is one of the client keys, already listed.
    auto store = make_store({{"MISTRAL_API_KEY", "mk"}, {"CODESTRAL_API_KEY", "ck"}, {"PROXY_KEYS", "a,b"}},
                            "client_keys_env: PROXY_KEYS");
    CHECK(store.redactor_for(upstream_id::mistral, "a")(echoed) ==
          "sent: [redacted] [redacted] [redacted] [redacted] client-token");
    // No keys at all: the client's bearer is what mistral gets, so it is hidden too ...
    store = make_store({});
    CHECK(store.redactor_for(upstream_id::mistral, " client-token ")(echoed) == "sent: mk ck a b [redacted]");
    CHECK(store.redactor_for(upstream_id::mistral_eu, "client-token")(echoed) == "sent: mk ck a b [redacted]");
    CHECK(store.redactor_for(upstream_id::mistral, std::nullopt).empty());
    // ... but codestral never gets it.
    CHECK(store.redactor_for(upstream_id::codestral, "client-token").empty());
    // An env key wins over the bearer: the bearer never left the proxy.
    store = make_store({{"MISTRAL_API_KEY", "mk"}});
    CHECK(store.redactor_for(upstream_id::mistral, "client-token")(echoed) == "sent: [redacted] ck a b client-token");
}
