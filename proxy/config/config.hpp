#pragma once
// The proxy's configuration, parsed and validated once at start-up into plain
// immutable values. Loading is strict: an unknown key, a duplicate key or a
// wrong type throws config_error whose what() is "FILE:LINE:COL: message".
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/duration.hpp"

namespace mistral_proxy::config {

class config_error : public std::runtime_error {
public:
    // line and column are 1-based; 0 means "not known" (then they are left out of what()).
    config_error(std::string file, int line, int column, const std::string& message);
    const std::string& file() const noexcept { return file_; }
    int line() const noexcept { return line_; }
    int column() const noexcept { return column_; }

private:
    std::string file_;
    int line_;
    int column_;
};

struct upstream_settings {
    std::string name;         // "mistral", "mistral_eu" or "codestral"
    std::string base_url;     // as written, e.g. https://api.mistral.ai/v1
    bool tls = true;          // https:// -> true, http:// -> false
    std::string host;         // host name or IP literal (no brackets)
    std::uint16_t port = 443; // explicit or scheme default
    std::string base_path;    // path part without trailing '/', e.g. "/v1" ("" for none)
    std::string api_key_env;  // name of the env var holding the key (never the key); the first of a pool
    // Every env var named: one for a single key, several for a key pool (SPEC
    // §2), each key with its own buckets and ledger entry.
    std::vector<std::string> api_key_envs;
    std::string ca_file;      // absolute path, or empty for the system store
    duration connect_timeout{std::chrono::seconds(5)};  // TCP connect + TLS handshake
    duration read_timeout{std::chrono::seconds(120)};   // first byte, and each gap between reads
    // Upstream sockets open at once to this upstream (all workers together); a
    // request that would open one more gets a 503.
    unsigned max_connections = 1024;
    // Idle keep-alive connections kept per worker: more concurrent requests
    // than this close a connection after each answer and open a new one
    // (a TCP connect and a TLS handshake) for the next.
    unsigned max_idle_connections = 256;
};

struct bucket_settings {
    double requests_per_second = 0;    // 0 = unlimited
    std::uint64_t tokens_per_minute = 0;
    std::uint64_t tokens_per_month = 0;
};

struct limits_settings {
    std::map<std::string, bucket_settings> buckets;  // keyed by upstream name ("mistral", "codestral")
    duration max_queue_wait{std::chrono::seconds(30)};
    std::string backend = "memory";  // "memory" or "redis://HOST:PORT[/DB]"
};

struct retry_settings {
    unsigned max_retries = 3;
    std::vector<duration> backoff{std::chrono::seconds(1), std::chrono::seconds(2), std::chrono::seconds(4)};
    duration max_retry_after{std::chrono::seconds(30)};
};

// SPEC §2 `breaker:`: per upstream and model, fail fast after consecutive failures.
struct breaker_settings {
    unsigned failures = 5;                               // consecutive failures that open a breaker
    duration cooldown{std::chrono::seconds(30)};         // open this long, then one probe (half-open)
};

// Extension of SPEC §2 under the key `server:`: limits and timeouts of the client side.
struct server_settings {
    // Client connections open at once; past it a new connection gets a 503 and is
    // closed. Lowered at start when the descriptor limit cannot hold it (see main.cpp).
    std::size_t max_connections = 4096;
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 32 * 1024 * 1024;  // a body read whole (JSON)
    // A multipart upload rewritten as it streams (POST /v1/audio/transcriptions):
    // never held whole, so its bound is Mistral's file size limit, 512 MB.
    std::size_t max_upload_bytes = std::size_t{512} * 1024 * 1024;
    duration header_timeout{std::chrono::seconds(10)};  // from first byte of a request to end of headers
    duration body_timeout{std::chrono::seconds(60)};    // reading a whole request body
    duration idle_timeout{std::chrono::seconds(75)};    // keep-alive wait for the next request
    duration write_timeout{std::chrono::seconds(60)};   // each write to a slow client
    unsigned threads = 0;                                // 0 = one per core
    duration drain_timeout{std::chrono::seconds(30)};   // on SIGTERM: longest wait for requests in flight
};

// Extension of SPEC §2 under the key `log:`.
struct log_settings {
    std::string level = "info";     // debug | info | warn | error (operational lines on stderr)
    std::string access = "stderr";  // off | stderr | stdout | a file path (absolute): one JSON line per request
};

// SPEC §2 `responses:`: where stored Responses API objects live (store: true,
// previous_response_id, GET/DELETE /v1/responses/{id}), and how long.
struct responses_settings {
    // "embedded" (SQLite file in state_dir, see store/response_store.hpp),
    // "redis://HOST:PORT[/DB]" (parse with parse_redis_backend; shared by
    // several proxies) or "off" (nothing is kept; store: true is ignored).
    std::string store = "embedded";
    duration max_age{std::chrono::hours(24 * 30)};  // older stored responses are deleted (Redis: the keys' TTL)
    std::uint64_t max_bytes = std::uint64_t{1} << 30U;  // embedded only: total bound, oldest deleted first
};

enum class region_kind { global, eu };

struct proxy_config {
    std::string file;         // absolute path of the loaded file ("" when parsed from text without one)
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 8080;
    std::vector<std::string> rule_files;  // absolute paths, in order
    region_kind region = region_kind::global;
    bool eu_strict = false;
    // Always holds exactly "mistral", "mistral_eu" and "codestral"; entries
    // absent from the file get SPEC §2 defaults, present ones override per key.
    std::map<std::string, upstream_settings> upstreams;
    limits_settings limits;
    retry_settings retry;
    breaker_settings breaker;
    responses_settings responses;
    std::string state_dir;        // absolute path
    std::string client_keys_env;  // "" = no client keys
    server_settings server;
    log_settings log;
};

// Reads and validates a config file. Relative paths in it resolve against its folder.
proxy_config load_config_file(const std::string& path);

// Same, from text. `file` names the source in messages and anchors relative
// paths (its folder); it does not need to exist.
proxy_config parse_config(std::string_view yaml_text, const std::string& file);

// "HOST:PORT", "[v6]:PORT". Throws std::invalid_argument with a readable message.
void parse_listen(std::string_view text, std::string& host, std::uint16_t& port);

// limits.backend "redis://HOST:PORT[/DB]" split up; nullopt for any other text
// (including "memory"). HOST may be a name, an IPv4 or a bracketed IPv6 literal.
struct redis_endpoint {
    std::string host;
    std::uint16_t port = 6379;
    unsigned db = 0;
};
std::optional<redis_endpoint> parse_redis_backend(std::string_view backend);

}  // namespace mistral_proxy::config
