#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "config/config.hpp"
#include "config/duration.hpp"

using namespace mistral_proxy::config;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string test_file = "/etc/mp/conf/t.yaml";

std::string error_of(std::string_view yaml) {
    try {
        parse_config(yaml, test_file);
    } catch (const config_error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("durations") {
    struct row {
        std::string_view text;
        std::optional<duration> expected;
    };
    const row rows[] = {
        {"250ms", 250ms},
        {"0ms", 0ms},
        {"30s", 30s},
        {"5m", 5min},
        {"0s", 0ms},
        {"30", {}},
        {"", {}},
        {"s", {}},
        {"1.5s", {}},
        {"-1s", {}},
        {"+1s", {}},
        {"1h", 1h},
        {"2h", 2h},
        {"30d", 24h * 30},
        {"0d", 0ms},
        {"1D", {}},
        {"1H", {}},
        {"1w", {}},
        {"1.5h", {}},
        {"106751991168d", {}},  // past the milliseconds' range: refused, not wrapped
        {" 1s", {}},
        {"1s ", {}},
        {"1S", {}},
        {"1 s", {}},
        {"10msx", {}},
        {"99999999999999999999s", {}},
        {"153722867280913m", {}},
    };
    for (const auto& r : rows) {
        CAPTURE(r.text);
        CHECK(parse_duration(r.text) == r.expected);
    }
    CHECK(format_duration(1500ms) == "1.5s");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(30s) == "30s");
    CHECK(format_duration(5min) == "5m");
    CHECK(format_duration(1005ms) == "1.005s");
    CHECK(format_duration(0ms) == "0ms");
    CHECK(format_duration(2h) == "2h");
    CHECK(format_duration(24h * 30) == "30d");
    CHECK(format_duration(90min) == "90m");
}

TEST_CASE("sizes") {
    struct row {
        std::string_view text;
        std::optional<std::uint64_t> expected;
    };
    const row rows[] = {
        {"0", 0},
        {"1000", 1000},
        {"100B", 100},
        {"64KB", 64 * 1024},
        {"512MB", 512ULL << 20U},
        {"1GB", 1ULL << 30U},
        {"16384GB", 16384ULL << 30U},
        {"", {}},
        {"GB", {}},
        {"1gb", {}},
        {"1Gb", {}},
        {"1 GB", {}},
        {"1.5GB", {}},
        {"-1GB", {}},
        {"1TB", {}},
        {"1K", {}},
        {"1GiB", {}},
        {"17179869184GB", {}},  // 2^34 GB = 2^64 bytes: overflow, refused
        {"99999999999999999999", {}},
    };
    for (const auto& r : rows) {
        CAPTURE(r.text);
        CHECK(parse_size(r.text) == r.expected);
    }
}

TEST_CASE("parse_listen") {
    std::string host;
    std::uint16_t port = 1;
    parse_listen("127.0.0.1:8080", host, port);
    CHECK(host == "127.0.0.1");
    CHECK(port == 8080);
    parse_listen("127.0.0.1:0", host, port);
    CHECK(port == 0);
    parse_listen("[::1]:9000", host, port);
    CHECK(host == "::1");
    CHECK(port == 9000);
    parse_listen("localhost:65535", host, port);
    CHECK(host == "localhost");
    CHECK(port == 65535);
    for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
                            "::1:8080", "[::1]8080", "[::1", "[]:80", "host name:80", ""}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_listen(bad, host, port), std::invalid_argument);
    }
}

TEST_CASE("parse_redis_backend") {
    auto ep = parse_redis_backend("redis://127.0.0.1:6379/2");
    REQUIRE(ep);
    CHECK(ep->host == "127.0.0.1");
    CHECK(ep->port == 6379);
    CHECK(ep->db == 2);
    ep = parse_redis_backend("redis://cache:7000");
    REQUIRE(ep);
    CHECK(ep->db == 0);
    ep = parse_redis_backend("redis://[::1]:6379");
    REQUIRE(ep);
    CHECK(ep->host == "::1");
    for (const char* bad : {"memory", "redis://", "redis://host", "redis://host:0", "redis://:6379", "redis://h:1/x",
                            "redis://h:1/", "rediss://h:1", "http://h:1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_redis_backend(bad));
    }
}

TEST_CASE("empty config gives every default") {
    for (std::string_view text : {"", "# only a comment\n", "---\n"}) {
        const auto c = parse_config(text, test_file);
        CHECK(c.file == test_file);
        CHECK(c.listen_host == "127.0.0.1");
        CHECK(c.listen_port == 8080);
        REQUIRE(c.rule_files.size() == 1);
        CHECK(c.rule_files[0] == "/etc/mp/rules/mistral.yaml");
        CHECK(c.region == region_kind::global);
        CHECK_FALSE(c.eu_strict);
        REQUIRE(c.upstreams.size() == 3);
        const auto& m = c.upstreams.at("mistral");
        CHECK(m.name == "mistral");
        CHECK(m.base_url == "https://api.mistral.ai/v1");
        CHECK(m.tls);
        CHECK(m.host == "api.mistral.ai");
        CHECK(m.port == 443);
        CHECK(m.base_path == "/v1");
        CHECK(m.api_key_env == "MISTRAL_API_KEY");
        CHECK(m.ca_file.empty());
        CHECK(m.connect_timeout == 5s);
        CHECK(m.read_timeout == 120s);
        CHECK(m.max_connections == 1024);
        CHECK(c.upstreams.at("mistral_eu").host == "api.eu.mistral.ai");
        CHECK(c.upstreams.at("mistral_eu").api_key_env == "MISTRAL_API_KEY");
        CHECK(c.upstreams.at("codestral").host == "codestral.mistral.ai");
        CHECK(c.upstreams.at("codestral").api_key_env == "CODESTRAL_API_KEY");
        CHECK(c.limits.buckets.empty());
        CHECK(c.limits.max_queue_wait == 30s);
        CHECK(c.limits.backend == "memory");
        CHECK(c.retry.max_retries == 3);
        CHECK(c.retry.backoff == std::vector<duration>{1s, 2s, 4s});
        CHECK(c.retry.max_retry_after == 30s);
        CHECK(c.breaker.failures == 5);
        CHECK(c.breaker.cooldown == 30s);
        CHECK(c.responses.store == "embedded");
        CHECK(c.responses.max_age == 24h * 30);
        CHECK(c.responses.max_bytes == 1ULL << 30U);
        CHECK(c.state_dir == "/etc/mp/conf/state");
        CHECK(c.client_keys_env.empty());
        CHECK(c.server.max_header_bytes == 16 * 1024);
        CHECK(c.server.max_body_bytes == 32 * 1024 * 1024);
        CHECK(c.server.max_upload_bytes == 512ULL * 1024 * 1024);
        CHECK(c.server.threads == 0);
    }
}

TEST_CASE("full config: every key read") {
    const auto c = parse_config(R"(
listen: 0.0.0.0:0
rules: [a.yaml, /abs/b.yaml, ../x/./c.yaml]
region: eu
eu_strict: true
upstreams:
  mistral: {base_url: "http://127.0.0.1:9000/", api_key_env: FAKE_KEY, ca_file: certs/ca.pem,
            connect_timeout: 250ms, read_timeout: 2m, max_connections: 3}
  codestral:
    base_url: https://[::1]:8443/api/v1//
limits:
  buckets:
    mistral:   {requests_per_second: 0.5, tokens_per_minute: 2000, tokens_per_month: 500000}
    codestral: {requests_per_second: 2}
  max_queue_wait: 0s
  backend: redis://127.0.0.1:6379/1
retry:
  max_retries: 0
  backoff: [100ms]
  max_retry_after: 1m
state_dir: /var/lib/mp
client_keys_env: PROXY_KEYS
server:
  max_header_bytes: 8192
  max_body_bytes: 1000
  max_upload_bytes: 2000
  header_timeout: 1s
  body_timeout: 2s
  idle_timeout: 3s
  write_timeout: 4s
  threads: 2
)",
                                test_file);
    CHECK(c.listen_host == "0.0.0.0");
    CHECK(c.listen_port == 0);
    CHECK(c.rule_files == std::vector<std::string>{"/etc/mp/conf/a.yaml", "/abs/b.yaml", "/etc/mp/x/c.yaml"});
    CHECK(c.region == region_kind::eu);
    CHECK(c.eu_strict);
    const auto& m = c.upstreams.at("mistral");
    CHECK(m.base_url == "http://127.0.0.1:9000/");
    CHECK_FALSE(m.tls);
    CHECK(m.host == "127.0.0.1");
    CHECK(m.port == 9000);
    CHECK(m.base_path == "");
    CHECK(m.api_key_env == "FAKE_KEY");
    CHECK(m.ca_file == "/etc/mp/conf/certs/ca.pem");
    CHECK(m.connect_timeout == 250ms);
    CHECK(m.read_timeout == 2min);
    CHECK(m.max_connections == 3);
    const auto& cs = c.upstreams.at("codestral");
    CHECK(cs.tls);
    CHECK(cs.host == "::1");
    CHECK(cs.port == 8443);
    CHECK(cs.base_path == "/api/v1");
    CHECK(cs.api_key_env == "CODESTRAL_API_KEY");  // per-key override keeps the rest
    CHECK(c.upstreams.at("mistral_eu").base_url == "https://api.eu.mistral.ai/v1");
    REQUIRE(c.limits.buckets.size() == 2);
    CHECK(c.limits.buckets.at("mistral").requests_per_second == 0.5);
    CHECK(c.limits.buckets.at("mistral").tokens_per_minute == 2000);
    CHECK(c.limits.buckets.at("mistral").tokens_per_month == 500000);
    CHECK(c.limits.buckets.at("codestral").requests_per_second == 2);
    CHECK(c.limits.buckets.at("codestral").tokens_per_minute == 0);
    CHECK(c.limits.max_queue_wait == 0ms);
    CHECK(c.limits.backend == "redis://127.0.0.1:6379/1");
    CHECK(c.retry.max_retries == 0);
    CHECK(c.retry.backoff == std::vector<duration>{100ms});
    CHECK(c.retry.max_retry_after == 1min);
    CHECK(c.state_dir == "/var/lib/mp");
    CHECK(c.client_keys_env == "PROXY_KEYS");
    CHECK(c.server.max_header_bytes == 8192);
    CHECK(c.server.max_body_bytes == 1000);
    CHECK(c.server.max_upload_bytes == 2000);
    CHECK(c.server.header_timeout == 1s);
    CHECK(c.server.body_timeout == 2s);
    CHECK(c.server.idle_timeout == 3s);
    CHECK(c.server.write_timeout == 4s);
    CHECK(c.server.threads == 2);
}

TEST_CASE("per-key overrides leave other keys at their defaults") {
    struct row {
        std::string_view yaml;
        std::function<bool(const proxy_config&)> check;
    };
    const row rows[] = {
        {"listen: 127.0.0.1:9999",
         [](const proxy_config& c) { return c.listen_port == 9999 && c.region == region_kind::global; }},
        {"region: eu", [](const proxy_config& c) { return c.region == region_kind::eu && !c.eu_strict; }},
        {"eu_strict: True", [](const proxy_config& c) { return c.eu_strict; }},
        {"eu_strict: FALSE", [](const proxy_config& c) { return !c.eu_strict; }},
        {"upstreams: {mistral_eu: {api_key_env: EU_KEY}}",
         [](const proxy_config& c) {
             const auto& u = c.upstreams.at("mistral_eu");
             return u.api_key_env == "EU_KEY" && u.host == "api.eu.mistral.ai" && u.read_timeout == 120s;
         }},
        {"upstreams: {mistral: {api_key_env: [KEY_A, KEY_B]}}",
         [](const proxy_config& c) {
             const auto& u = c.upstreams.at("mistral");
             return u.api_key_env == "KEY_A" && u.api_key_envs == std::vector<std::string>{"KEY_A", "KEY_B"} &&
                    c.upstreams.at("mistral_eu").api_key_envs == std::vector<std::string>{"MISTRAL_API_KEY"};
         }},
        {"upstreams: {mistral: {base_url: 'HTTP://h'}}",
         [](const proxy_config& c) {
             const auto& u = c.upstreams.at("mistral");
             return !u.tls && u.port == 80 && u.host == "h" && u.base_path.empty();
         }},
        {"limits: {max_queue_wait: 5s}",
         [](const proxy_config& c) { return c.limits.max_queue_wait == 5s && c.limits.backend == "memory"; }},
        {"retry: {max_retries: 7}",
         [](const proxy_config& c) { return c.retry.max_retries == 7 && c.retry.backoff.size() == 3; }},
        {"breaker: {failures: 2, cooldown: 300ms}",
         [](const proxy_config& c) { return c.breaker.failures == 2 && c.breaker.cooldown == 300ms; }},
        {"breaker: {cooldown: 1m}",
         [](const proxy_config& c) { return c.breaker.failures == 5 && c.breaker.cooldown == 1min; }},
        {"server: {threads: 4}",
         [](const proxy_config& c) { return c.server.threads == 4 && c.server.idle_timeout == 75s; }},
        {"client_keys_env: ~", [](const proxy_config& c) { return c.client_keys_env.empty(); }},
        {"client_keys_env: \"\"", [](const proxy_config& c) { return c.client_keys_env.empty(); }},
        {"state_dir: ./s/../t", [](const proxy_config& c) { return c.state_dir == "/etc/mp/conf/t"; }},
    };
    for (const auto& r : rows) {
        CAPTURE(r.yaml);
        CHECK(r.check(parse_config(r.yaml, test_file)));
    }
}

TEST_CASE("error text is exactly FILE:LINE:COL: message") {
    CHECK(error_of("listen: 127.0.0.1:8080\nbogus: 1\n") ==
          "/etc/mp/conf/t.yaml:2:1: unknown key 'bogus'; expected one of: listen, rules, region, eu_strict, "
          "upstreams, limits, retry, breaker, responses, state_dir, client_keys_env, server, log");
    CHECK(error_of("region: eu\nregion: global\n") ==
          "/etc/mp/conf/t.yaml:2:1: duplicate key 'region' (first defined at line 1)");
    CHECK(error_of("retry:\n  backoff: [1s, 2x]\n") ==
          "/etc/mp/conf/t.yaml:2:17: retry.backoff[1]: bad duration '2x'; expected an integer followed by ms, s, m, h "
          "or d (e.g. 250ms, 30s, 5m, 2h, 30d)");
    CHECK(error_of("upstreams:\n  mistral:\n    base_url: ftp://x/v1\n") ==
          "/etc/mp/conf/t.yaml:3:15: upstreams.mistral.base_url: base_url 'ftp://x/v1' must start with http:// or "
          "https://");
    CHECK(error_of("eu_strict: yes\n") == "/etc/mp/conf/t.yaml:1:12: eu_strict must be true or false, got 'yes'");
}

TEST_CASE("every config error points at the offending key or value") {
    struct row {
        std::string_view yaml;
        std::string_view where;    // "LINE:COL"
        std::string_view message;  // a part of the message
    };
    const row rows[] = {
        // Unknown keys, at every level.
        {"bogus: 1", "1:1", "unknown key 'bogus'"},
        {"upstreams:\n  mistral: {base_url: http://h, colour: red}", "2:33",
         "unknown key 'colour' in upstreams.mistral"},
        {"upstreams:\n  openai: {base_url: http://h}", "2:3", "unknown upstream 'openai'"},
        {"limits:\n  bucket: {}", "2:3", "unknown key 'bucket' in limits"},
        {"limits:\n  buckets:\n    mistral: {rps: 1}", "3:15", "unknown key 'rps' in limits.buckets.mistral"},
        {"limits:\n  buckets:\n    openai: {}", "3:5", "unknown upstream 'openai' in limits.buckets"},
        {"retry:\n  retries: 3", "2:3", "unknown key 'retries' in retry"},
        {"server:\n  timeout: 3s", "2:3", "unknown key 'timeout' in server"},
        {"breaker:\n  threshold: 3", "2:3", "unknown key 'threshold' in breaker; expected one of: failures, cooldown"},
        // Duplicate keys, at every level.
        {"listen: 127.0.0.1:1\nlisten: 127.0.0.1:2", "2:1", "duplicate key 'listen'"},
        {"upstreams:\n  mistral: {api_key_env: A, api_key_env: B}", "2:29",
         "duplicate key 'api_key_env' in upstreams.mistral"},
        {"upstreams:\n  mistral: {}\n  mistral: {}", "3:3", "duplicate key 'mistral' in upstreams"},
        {"limits:\n  buckets:\n    mistral: {tokens_per_minute: 1, tokens_per_minute: 2}", "3:37", "duplicate key"},
        {"retry:\n  max_retries: 1\n  max_retries: 2", "3:3", "duplicate key 'max_retries' in retry"},
        {"server: {threads: 1, threads: 2}", "1:22", "duplicate key 'threads' in server"},
        // Wrong types.
        {"listen: [1, 2]", "1:9", "listen must be a string, got a list"},
        {"rules: a.yaml", "1:8", "rules must be a non-empty list"},
        {"rules: []", "1:8", "got an empty list"},
        {"rules: [{a: 1}]", "1:9", "rules[0] must be a string, got a map"},
        {"rules: ['']", "1:9", "rules[0] must not be empty"},
        {"region: mars", "1:9", "region must be 'global' or 'eu', got 'mars'"},
        {"region: [eu]", "1:9", "region must be a string"},
        {"eu_strict: 1", "1:12", "eu_strict must be true or false"},
        {"eu_strict: 'true'", "1:12", "eu_strict must be true or false"},
        {"eu_strict:\nregion: eu", "1:1", "eu_strict must be true or false, got nothing"},
        {"upstreams: []", "1:12", "upstreams must be a map, got a list"},
        {"upstreams:\nregion: eu", "1:1", "upstreams must be a map, got nothing"},
        {"upstreams:\n  mistral: http://h", "2:12", "upstreams.mistral must be a map"},
        {"upstreams:\n  mistral: {max_connections: -1}", "2:30",
         "upstreams.mistral.max_connections must be an integer"},
        {"upstreams:\n  mistral: {max_connections: '3'}", "2:30", "must be an integer"},
        {"upstreams:\n  mistral: {max_connections: 3.5}", "2:30", "must be an integer"},
        {"upstreams:\n  mistral: {api_key_env: {A: 1}}", "2:26", "api_key_env must be a string"},
        {"upstreams:\n  mistral: {api_key_env: []}", "2:26", "or be a list of 1 to 32 of them"},
        {"upstreams:\n  mistral: {api_key_env: [A, sk-1]}", "2:30", "api_key_env[1] must name an environment variable"},
        {"upstreams:\n  mistral: {api_key_env: [A, B, A]}", "2:33", "api_key_env[2]: A is already in the pool"},
        {"upstreams:\n  mistral: {api_key_env: [[A]]}", "2:27", "api_key_env[0] must be a string"},
        {"upstreams:\n  mistral: {api_key_env: ''}", "2:26", "must name an environment variable"},
        {"upstreams:\n  mistral: {api_key_env: sk-abc123}", "2:26", "must name an environment variable"},
        {"upstreams:\n  mistral: {ca_file: ''}", "2:22", "ca_file must not be empty"},
        {"limits: 5", "1:9", "limits must be a map"},
        {"limits:\n  buckets: [mistral]", "2:12", "limits.buckets must be a map"},
        {"limits:\n  buckets:\n    mistral: 5", "3:14", "limits.buckets.mistral must be a map"},
        {"limits:\n  buckets:\n    mistral: {requests_per_second: -1}", "3:36", "must be a number >= 0, got '-1'"},
        {"limits:\n  buckets:\n    mistral: {requests_per_second: .inf}", "3:36", "must be a number >= 0"},
        {"limits:\n  buckets:\n    mistral: {requests_per_second: fast}", "3:36", "must be a number >= 0"},
        {"limits:\n  buckets:\n    mistral: {tokens_per_minute: 1.5}", "3:34", "tokens_per_minute must be an integer"},
        {"limits:\n  buckets:\n    mistral: {tokens_per_month: -5}", "3:33", "tokens_per_month must be an integer"},
        {"limits:\n  buckets:\n    mistral: {tokens_per_month: 1e6}", "3:33", "must be an integer"},
        {"limits:\n  backend: redis", "2:12", "must be 'memory' or 'redis://HOST:PORT[/DB]'"},
        {"limits:\n  backend: redis://host", "2:12", "must be 'memory' or 'redis://HOST:PORT[/DB]'"},
        {"limits:\n  backend: redis://host:99999/0", "2:12", "must be 'memory'"},
        {"limits:\n  backend: redis://host:6379/zero", "2:12", "must be 'memory'"},
        {"retry: []", "1:8", "retry must be a map"},
        {"retry:\n  max_retries: many", "2:16", "retry.max_retries must be an integer from 0 to 100"},
        {"retry:\n  backoff: []", "2:12", "non-empty list of durations"},
        {"retry:\n  backoff: 1s", "2:12", "non-empty list of durations"},
        {"retry:\n  backoff: [[1s]]", "2:13", "retry.backoff[0] must be a string, got a list"},
        {"breaker: []", "1:10", "breaker must be a map"},
        {"breaker:\n  failures: 0", "2:13", "breaker.failures must be an integer from 1"},
        {"breaker:\n  failures: many", "2:13", "breaker.failures must be an integer"},
        {"breaker:\n  cooldown: 0s", "2:13", "breaker.cooldown must be longer than 0"},
        {"breaker:\n  cooldown: 30", "2:13", "breaker.cooldown: bad duration '30'"},
        {"breaker:\n  failures: 1\n  failures: 2", "3:3", "duplicate key 'failures' in breaker"},
        {"server: {max_body_bytes: 0}", "1:26", "server.max_body_bytes must be an integer from 1"},
        {"server: {threads: lots}", "1:19", "server.threads must be an integer"},
        {"state_dir: {}", "1:12", "state_dir must be a string"},
        {"state_dir: ''", "1:12", "state_dir must not be empty"},
        {"client_keys_env: 'my key'", "1:18", "client_keys_env must name an environment variable"},
        // Bad durations, everywhere they are read.
        {"limits:\n  max_queue_wait: 30", "2:19", "limits.max_queue_wait: bad duration '30'"},
        {"retry:\n  max_retry_after: 1w", "2:20", "bad duration '1w'"},
        {"upstreams:\n  codestral: {connect_timeout: 1.5s}", "2:32",
         "upstreams.codestral.connect_timeout: bad duration"},
        {"upstreams:\n  codestral: {read_timeout: 0s}", "2:29",
         "upstreams.codestral.read_timeout must be longer than 0"},
        {"server:\n  header_timeout: 10", "2:19", "server.header_timeout: bad duration '10'"},
        {"server:\n  body_timeout: -1s", "2:17", "bad duration"},
        {"server:\n  idle_timeout: 0ms", "2:17", "must be longer than 0"},
        {"server:\n  write_timeout: [1s]", "2:18", "server.write_timeout must be a string"},
        // Bad listen.
        {"listen: 127.0.0.1", "1:9", "needs a port"},
        {"listen: 127.0.0.1:99999", "1:9", "port must be a number from 0 to 65535"},
        {"listen: ':8080'", "1:9", "missing host"},
        {"listen: '::1:8080'", "1:9", "IPv6 addresses in brackets"},
        {"listen: 8080", "1:9", "needs a port"},
        // Bad base_url.
        {"upstreams:\n  mistral: {base_url: api.mistral.ai/v1}", "2:23", "must start with http:// or https://"},
        {"upstreams:\n  mistral: {base_url: 'ws://h/v1'}", "2:23", "must start with http:// or https://"},
        {"upstreams:\n  mistral: {base_url: 'https:///v1'}", "2:23", "has no host"},
        {"upstreams:\n  mistral: {base_url: 'https://'}", "2:23", "has no host"},
        {"upstreams:\n  mistral: {base_url: 'https://h:0/v1'}", "2:23", "port must be a number from 1 to 65535"},
        {"upstreams:\n  mistral: {base_url: 'https://h:/v1'}", "2:23", "port must be"},
        {"upstreams:\n  mistral: {base_url: 'https://u:p@h/v1'}", "2:23", "must not contain user info"},
        {"upstreams:\n  mistral: {base_url: 'https://h/v1?x=1'}", "2:23", "must not have a query"},
        {"upstreams:\n  mistral: {base_url: 'https://[::1/v1'}", "2:23", "missing ']'"},
        // Keys must be strings, one document per file.
        {"[a]: 1", "1:1", "keys must be plain strings"},
        {"- listen", "1:1", "the file must be a map, got a list"},
        {"just text", "1:1", "the file must be a map, got a scalar"},
        {"listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "3:1", "only one YAML document"},
        // Merge keys are not expanded by yaml-cpp: refusing beats ignoring.
        {"base: &b {threads: 1}\nserver:\n  <<: *b", "1:1", "unknown key 'base'"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.yaml);
        const std::string text = error_of(r.yaml);
        const std::string prefix = test_file + ":" + std::string(r.where) + ": ";
        CHECK_MESSAGE(text.rfind(prefix, 0) == 0, text);
        CHECK_MESSAGE(text.find(r.message) != std::string::npos, text);
    }
}

TEST_CASE("YAML syntax errors become config_error with position") {
    try {
        parse_config("listen: [1, 2\nregion: eu\n", test_file);
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(e.file() == test_file);
        CHECK(e.line() >= 1);
        CHECK(e.column() >= 1);
        CHECK(std::string(e.what()).find("YAML syntax error") != std::string::npos);
    }
    CHECK(error_of("a: *nope\n").rfind(test_file + ":1:4: YAML syntax error: ", 0) == 0);
    CHECK(error_of("a: 1\n b: 2\n").find("YAML syntax error") != std::string::npos);
}

TEST_CASE("config_error without a position leaves it out") {
    CHECK(std::string(config_error("f.yaml", 0, 0, "boom").what()) == "f.yaml: boom");
    CHECK(std::string(config_error("f.yaml", 3, 0, "boom").what()) == "f.yaml:3: boom");
    CHECK(std::string(config_error("f.yaml", 3, 7, "boom").what()) == "f.yaml:3:7: boom");
}

TEST_CASE("relative paths resolve against the folder of a relative config path") {
    const auto c = parse_config("rules: [r.yaml]\nstate_dir: st\n", "sub/dir/c.yaml");
    const fs::path base = fs::current_path() / "sub" / "dir";
    CHECK(c.file == (base / "c.yaml").lexically_normal().string());
    CHECK(c.rule_files.at(0) == (base / "r.yaml").lexically_normal().string());
    CHECK(c.state_dir == (base / "st").lexically_normal().string());
}

TEST_CASE("load_config_file reads the shipped configs and reports unreadable files") {
    const fs::path dir = fs::temp_directory_path() / "mp_config_test";
    fs::create_directories(dir);
    const fs::path file = dir / "c.yaml";
    {
        std::ofstream out(file);
        out << "listen: 127.0.0.1:0\nrules: [../rules/x.yaml]\n";
    }
    const auto c = load_config_file(file.string());
    CHECK(c.listen_port == 0);
    CHECK(c.file == file.lexically_normal().string());
    CHECK(c.rule_files.at(0) == (dir.parent_path() / "rules" / "x.yaml").lexically_normal().string());
    fs::remove_all(dir);

    const std::string missing = (dir / "nope.yaml").string();
    try {
        load_config_file(missing);
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()).rfind(missing + ": cannot read config file: ", 0) == 0);
        CHECK(e.line() == 0);
    }
}

TEST_CASE("the shipped configs load") {
    // CMake compiles with absolute source paths, so the checkout is found from here.
    const fs::path root = fs::path(MISTRAL_PROXY_SOURCE_DIR);
    const auto global = load_config_file((root / "config" / "mistral-proxy.yaml").string());
    CHECK(global.region == region_kind::global);
    CHECK(global.rule_files == std::vector<std::string>{(root / "rules" / "mistral.yaml").lexically_normal().string()});
    CHECK(global.state_dir == (root / "state").lexically_normal().string());
    CHECK(global.limits.buckets.at("mistral").tokens_per_month == 500000);
    CHECK(global.server.max_body_bytes == 33554432);
    CHECK(global.server.max_upload_bytes == 536870912);
    CHECK(global.responses.store == "embedded");
    CHECK(global.responses.max_age == 24h * 30);
    CHECK(global.responses.max_bytes == 1ULL << 30U);

    const auto eu = load_config_file((root / "config" / "mistral-proxy-eu.yaml").string());
    CHECK(eu.region == region_kind::eu);
    CHECK(eu.eu_strict);
}

TEST_CASE("log section and drain_timeout") {
    SUBCASE("defaults") {
        const auto config = parse_config("{}", test_file);
        CHECK(config.log.level == "info");
        CHECK(config.log.access == "stderr");
        CHECK(config.server.drain_timeout == 30s);
    }
    SUBCASE("values, with a relative access log path resolved against the config folder") {
        const auto config = parse_config("log: {level: warn, access: logs/access.jsonl}\nserver: {drain_timeout: 5s}\n",
                                         test_file);
        CHECK(config.log.level == "warn");
        CHECK(config.log.access == "/etc/mp/conf/logs/access.jsonl");
        CHECK(config.server.drain_timeout == 5s);
        CHECK(parse_config("log: {access: off}", test_file).log.access == "off");
    }
    SUBCASE("errors") {
        CHECK(error_of("log: {level: loud}") ==
              "/etc/mp/conf/t.yaml:1:14: log.level must be debug, info, warn or error, got 'loud'");
        CHECK(error_of("log: {colour: red}").starts_with("/etc/mp/conf/t.yaml:1:7: "));
        CHECK(error_of("log: 3").starts_with("/etc/mp/conf/t.yaml:1:6: log must be a map"));
    }
}

TEST_CASE("responses store section") {
    SUBCASE("values") {
        auto c = parse_config("responses: {store: off, max_age: 2h, max_bytes: 64MB}", test_file);
        CHECK(c.responses.store == "off");
        CHECK(c.responses.max_age == 2h);
        CHECK(c.responses.max_bytes == 64ULL << 20U);
        c = parse_config("responses:\n  store: redis://127.0.0.1:6379/2\n  max_age: 7d\n  max_bytes: 1000\n",
                         test_file);
        CHECK(c.responses.store == "redis://127.0.0.1:6379/2");
        CHECK(c.responses.max_age == 24h * 7);
        CHECK(c.responses.max_bytes == 1000);
        c = parse_config("responses: {store: embedded}", test_file);
        CHECK(c.responses.store == "embedded");
        CHECK(c.responses.max_age == 24h * 30);  // the other keys keep their defaults
    }
    SUBCASE("errors point at the key or value") {
        struct row {
            std::string_view yaml;
            std::string_view where;
            std::string_view message;
        };
        const row rows[] = {
            {"responses: {store: sqlite}", "1:20",
             "responses.store must be 'embedded', 'off' or 'redis://HOST:PORT[/DB]', got 'sqlite'"},
            {"responses: {store: 'redis://h'}", "1:20", "responses.store must be"},
            {"responses: {store: [embedded]}", "1:20", "responses.store must be a string"},
            {"responses:\n  max_age: 30", "2:12", "responses.max_age: bad duration '30'"},
            {"responses:\n  max_age: 0d", "2:12", "responses.max_age must be longer than 0"},
            {"responses:\n  max_age: 500ms", "2:12", "responses.max_age must be at least 1s"},
            {"responses:\n  max_bytes: 1gb", "2:14",
             "responses.max_bytes: bad size '1gb'; expected an integer of bytes, or followed by B, KB, MB or GB"},
            {"responses:\n  max_bytes: 0", "2:14", "responses.max_bytes must be at least 1 bytes"},
            {"responses:\n  max_bytes: 1.5GB", "2:14", "bad size '1.5GB'"},
            {"responses:\n  ttl: 1d", "2:3",
             "unknown key 'ttl' in responses; expected one of: store, max_age, max_bytes"},
            {"responses:\n  store: off\n  store: embedded", "3:3", "duplicate key 'store' in responses"},
            {"responses: embedded", "1:12", "responses must be a map, got a scalar"},
        };
        for (const auto& r : rows) {
            CAPTURE(r.yaml);
            const std::string text = error_of(r.yaml);
            const std::string prefix = test_file + ":" + std::string(r.where) + ": ";
            CHECK_MESSAGE(text.rfind(prefix, 0) == 0, text);
            CHECK_MESSAGE(text.find(r.message) != std::string::npos, text);
        }
    }
}
