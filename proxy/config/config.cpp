// Loading the config file (SPEC §2) into an immutable proxy_config, strictly:
// unknown keys, duplicates and bad types are FILE:LINE:COL errors. Long
// because every key's validation and message lives here, in the order of
// the file's sections; each section's parser is a function of its own.
#include "config/config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/yaml_strict.hpp"

// ---------------------------------------------------------------------------
// The config file.

namespace mistral_proxy::config {

namespace fs = std::filesystem;
using namespace yaml_strict;

namespace {

// Appended piece by piece: GCC 12 reports a false -Wrestrict inside
// libstdc++'s operator+(const char*, std::string&&) (GCC bug 105329) when it
// inlines ":" + std::to_string(...) into config_error's constructor.
std::string where_text(const std::string& file, int line, int column) {
    std::string out = file.empty() ? std::string("<config>") : file;
    if (line > 0) {
        out += ':';
        out += std::to_string(line);
        if (column > 0) {
            out += ':';
            out += std::to_string(column);
        }
    }
    return out;
}

bool is_plain_number_text(const YAML::Node& value) {
    // Quoted ("5") or !!str-tagged scalars are strings, not numbers.
    return value.IsScalar() && value.Tag() != "!" && value.Tag() != "tag:yaml.org,2002:str";
}

bool is_host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
}

bool is_ipv6_char(char c) {
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
           c == '%' || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '-' || c == '_';
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
    std::uint64_t value = 0;
    if (text.empty() || text.front() < '0' || text.front() > '9') {
        return std::nullopt;
    }
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// Splits "HOST:PORT" / "[V6]:PORT"; `what` names the thing in messages.
void split_host_port(std::string_view text, std::string_view what, std::string& host, std::string_view& port_text,
                     bool& has_port) {
    has_port = false;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': missing ']'");
        }
        const std::string_view inner = text.substr(1, close - 1);
        if (inner.empty() || inner.find(':') == std::string_view::npos ||
            std::find_if_not(inner.begin(), inner.end(), is_ipv6_char) != inner.end()) {
            throw std::invalid_argument(std::string(what) + " '" + std::string(text) +
                                        "': bad IPv6 address in brackets");
        }
        host = std::string(inner);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                throw std::invalid_argument(std::string(what) + " '" + std::string(text) +
                                            "': expected ':PORT' after ']'");
            }
            port_text = rest.substr(1);
            has_port = true;
        }
        return;
    }
    const auto colon = text.rfind(':');
    const std::string_view host_text = colon == std::string_view::npos ? text : text.substr(0, colon);
    if (host_text.find(':') != std::string_view::npos) {
        throw std::invalid_argument(std::string(what) + " '" + std::string(text) +
                                    "': write IPv6 addresses in brackets, e.g. [::1]:8080");
    }
    if (host_text.empty()) {
        throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': missing host");
    }
    if (std::find_if_not(host_text.begin(), host_text.end(), is_host_char) != host_text.end()) {
        throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': bad host '" +
                                    std::string(host_text) + "'");
    }
    host = std::string(host_text);
    if (colon != std::string_view::npos) {
        port_text = text.substr(colon + 1);
        has_port = true;
    }
}

std::uint16_t parse_port(std::string_view port_text, std::string_view what, std::string_view text, bool allow_zero) {
    const auto port = parse_unsigned(port_text);
    if (!port || *port > 65535 || (!allow_zero && *port == 0)) {
        throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': port must be a number from " +
                                    (allow_zero ? "0" : "1") + " to 65535");
    }
    return static_cast<std::uint16_t>(*port);
}

// Fills the parsed parts of an upstream from its base_url.
void apply_base_url(upstream_settings& upstream, std::string_view url) {
    std::string_view rest;
    const auto starts_with_ci = [&](std::string_view prefix) {
        if (url.size() < prefix.size()) {
            return false;
        }
        for (std::size_t i = 0; i < prefix.size(); ++i) {
            const char c = url[i];
            const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
            if (lower != prefix[i]) {
                return false;
            }
        }
        return true;
    };
    bool tls = false;
    if (starts_with_ci("https://")) {
        tls = true;
        rest = url.substr(8);
    } else if (starts_with_ci("http://")) {
        rest = url.substr(7);
    } else {
        throw std::invalid_argument("base_url '" + std::string(url) + "' must start with http:// or https://");
    }
    if (rest.find_first_of("?#") != std::string_view::npos) {
        throw std::invalid_argument("base_url '" + std::string(url) + "' must not have a query or fragment");
    }
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (authority.find('@') != std::string_view::npos) {
        // Credentials in a URL end up in logs; keys belong in api_key_env.
        throw std::invalid_argument(
            "base_url must not contain user info ('user@'); name the key's env var in "
            "api_key_env");
    }
    if (authority.empty()) {
        throw std::invalid_argument("base_url '" + std::string(url) + "' has no host");
    }
    std::string host;
    std::string_view port_text;
    bool has_port = false;
    split_host_port(authority, "base_url host", host, port_text, has_port);
    std::uint16_t port = tls ? 443 : 80;
    if (has_port) {
        port = parse_port(port_text, "base_url", url, false);
    }
    while (!path.empty() && path.back() == '/') {
        path.remove_suffix(1);
    }
    if (path.find(' ') != std::string_view::npos) {
        throw std::invalid_argument("base_url '" + std::string(url) + "' has a space in its path");
    }
    upstream.base_url = std::string(url);
    upstream.tls = tls;
    upstream.host = std::move(host);
    upstream.port = port;
    upstream.base_path = std::string(path);
}

upstream_settings default_upstream(const std::string& name, std::string_view url, std::string key_env) {
    upstream_settings upstream;
    upstream.name = name;
    apply_base_url(upstream, url);
    upstream.api_key_envs = {key_env};
    upstream.api_key_env = std::move(key_env);
    return upstream;
}

bool is_env_name(std::string_view name) {
    if (name.empty() || (name.front() >= '0' && name.front() <= '9')) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

constexpr std::string_view top_keys =
    "listen, rules, region, eu_strict, upstreams, limits, retry, breaker, responses, state_dir, client_keys_env, server, "
    "log";
constexpr std::string_view upstream_keys =
    "base_url, api_key_env, ca_file, connect_timeout, read_timeout, max_connections, max_idle_connections";
constexpr std::string_view upstream_names = "mistral, mistral_eu, codestral";
constexpr std::string_view limits_keys = "buckets, max_queue_wait, backend";
constexpr std::string_view bucket_keys = "requests_per_second, tokens_per_minute, tokens_per_month";
constexpr std::string_view retry_keys = "max_retries, backoff, max_retry_after";
constexpr std::string_view breaker_keys = "failures, cooldown";
constexpr std::string_view responses_keys = "store, max_age, max_bytes";
constexpr std::string_view server_keys =
    "max_connections, max_header_bytes, max_body_bytes, max_upload_bytes, header_timeout, body_timeout, idle_timeout, write_timeout, "
    "threads, "
    "drain_timeout";
constexpr std::string_view log_keys = "level, access";

// Typed reads of one value; every failure names the key path and points at the value.
class reader {
public:
    reader(std::string file, fs::path folder) : file_(std::move(file)), folder_(std::move(folder)) {}

    const std::string& file() const { return file_; }

    [[noreturn]] void fail_value(const YAML::Node& key, const YAML::Node& value, const std::string& message) const {
        fail_at_value(file_, key, value, message);
    }

    void require_map(const std::string& path, const YAML::Node& key, const YAML::Node& value) const {
        if (!value.IsMap()) {
            fail_value(key, value, path + " must be a map, got " + kind_of(value));
        }
    }

    std::string string(const std::string& path, const YAML::Node& key, const YAML::Node& value) const {
        if (!value.IsScalar()) {
            fail_value(key, value, path + " must be a string, got " + kind_of(value));
        }
        return value.Scalar();
    }

    bool boolean(const std::string& path, const YAML::Node& key, const YAML::Node& value) const {
        if (is_plain_number_text(value)) {
            const std::string& s = value.Scalar();
            if (s == "true" || s == "True" || s == "TRUE") {
                return true;
            }
            if (s == "false" || s == "False" || s == "FALSE") {
                return false;
            }
        }
        fail_value(
            key, value,
            path + " must be true or false, got " + (value.IsScalar() ? "'" + value.Scalar() + "'" : kind_of(value)));
    }

    std::uint64_t integer(const std::string& path, const YAML::Node& key, const YAML::Node& value, std::uint64_t min,
                          std::uint64_t max) const {
        std::optional<std::uint64_t> parsed;
        if (is_plain_number_text(value)) {
            parsed = parse_unsigned(value.Scalar());
        }
        if (!parsed || *parsed < min || *parsed > max) {
            fail_value(key, value,
                       path + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                           ", got " + (value.IsScalar() ? "'" + value.Scalar() + "'" : kind_of(value)));
        }
        return *parsed;
    }

    double number(const std::string& path, const YAML::Node& key, const YAML::Node& value) const {
        if (is_plain_number_text(value)) {
            const std::string& s = value.Scalar();
            double parsed = 0;
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
            if (ec == std::errc{} && end == s.data() + s.size() && std::isfinite(parsed) && parsed >= 0) {
                return parsed;
            }
        }
        fail_value(
            key, value,
            path + " must be a number >= 0, got " + (value.IsScalar() ? "'" + value.Scalar() + "'" : kind_of(value)));
    }

    duration time(const std::string& path, const YAML::Node& key, const YAML::Node& value, bool allow_zero) const {
        const std::string text = string(path, key, value);
        const auto parsed = parse_duration(text);
        if (!parsed) {
            fail_value(key, value,
                       path + ": bad duration '" + text +
                           "'; expected an integer followed by ms, s, m, h or d (e.g. 250ms, 30s, 5m, 2h, 30d)");
        }
        if (!allow_zero && parsed->count() == 0) {
            fail_value(key, value, path + " must be longer than 0");
        }
        return *parsed;
    }

    std::uint64_t size(const std::string& path, const YAML::Node& key, const YAML::Node& value, std::uint64_t min) const {
        const std::string text = string(path, key, value);
        const auto parsed = parse_size(text);
        if (!parsed) {
            fail_value(key, value,
                       path + ": bad size '" + text +
                           "'; expected an integer of bytes, or followed by B, KB, MB or GB (e.g. 64KB, 512MB, 1GB)");
        }
        if (*parsed < min) {
            fail_value(key, value, path + " must be at least " + std::to_string(min) + " bytes, got '" + text + "'");
        }
        return *parsed;
    }

    std::string path(const std::string& path_name, const YAML::Node& key, const YAML::Node& value) const {
        const std::string text = string(path_name, key, value);
        if (text.empty()) {
            fail_value(key, value, path_name + " must not be empty");
        }
        return resolve(text);
    }

    std::string resolve(const std::string& text) const {
        fs::path p(text);
        if (p.is_relative()) {
            p = folder_ / p;
        }
        return p.lexically_normal().string();
    }

    // One env var name, or a key pool: a list of distinct names (each at most
    // 200 bytes, so that "<upstream>/<name>" fits a ledger key).
    std::vector<std::string> env_names(const std::string& path, const YAML::Node& key, const YAML::Node& value) const {
        if (!value.IsSequence()) {
            return {env_name(path, key, value, false)};
        }
        constexpr std::size_t max_pool = 32;
        if (value.size() == 0 || value.size() > max_pool) {
            fail_value(key, value,
                       path + " must name an environment variable or be a list of 1 to " + std::to_string(max_pool) +
                           " of them (a key pool), got a list of " + std::to_string(value.size()));
        }
        std::vector<std::string> names;
        for (std::size_t i = 0; i < value.size(); ++i) {
            const std::string item_path = path + "[" + std::to_string(i) + "]";
            std::string name = env_name(item_path, value[i], value[i], false);
            if (name.size() > 200) {
                fail_value(value[i], value[i], item_path + " is longer than 200 bytes");
            }
            if (std::find(names.begin(), names.end(), name) != names.end()) {
                fail_value(value[i], value[i], item_path + ": " + name + " is already in the pool");
            }
            names.push_back(std::move(name));
        }
        return names;
    }

    std::string env_name(const std::string& path, const YAML::Node& key, const YAML::Node& value,
                         bool allow_empty) const {
        if (allow_empty && value.IsNull()) {
            return {};
        }
        const std::string name = string(path, key, value);
        if (name.empty() && allow_empty) {
            return name;
        }
        if (!is_env_name(name)) {
            // The value is not echoed: someone may have pasted the key itself here.
            fail_value(key, value,
                       path +
                           " must name an environment variable (letters, digits and '_', e.g. MISTRAL_API_KEY), "
                           "not hold a key");
        }
        return name;
    }

private:
    std::string file_;
    fs::path folder_;
};

void read_upstream(const reader& r, const std::string& where, const YAML::Node& map, upstream_settings& upstream) {
    for_each_field(
        r.file(), map, where, [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const std::string path = path_of(where, key);
            if (key == "base_url") {
                const std::string url = r.string(path, key_node, value);
                try {
                    apply_base_url(upstream, url);
                } catch (const std::invalid_argument& e) {
                    r.fail_value(key_node, value, path + ": " + e.what());
                }
            } else if (key == "api_key_env") {
                upstream.api_key_envs = r.env_names(path, key_node, value);
                upstream.api_key_env = upstream.api_key_envs.front();
            } else if (key == "ca_file") {
                upstream.ca_file = r.path(path, key_node, value);
            } else if (key == "connect_timeout") {
                upstream.connect_timeout = r.time(path, key_node, value, false);
            } else if (key == "read_timeout") {
                upstream.read_timeout = r.time(path, key_node, value, false);
            } else if (key == "max_connections") {
                upstream.max_connections = static_cast<unsigned>(r.integer(path, key_node, value, 1, 100000));
            } else if (key == "max_idle_connections") {
                upstream.max_idle_connections = static_cast<unsigned>(r.integer(path, key_node, value, 0, 100000));
            } else {
                fail_unknown_key(r.file(), key_node, key, where, upstream_keys);
            }
        });
}

void read_upstreams(const reader& r, const YAML::Node& map, proxy_config& config) {
    for_each_field(
        r.file(), map, "upstreams", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const auto it = config.upstreams.find(key);
            if (it == config.upstreams.end()) {
                fail(r.file(), key_node,
                     "unknown upstream '" + key + "' in upstreams; expected one of: " + std::string(upstream_names));
            }
            r.require_map("upstreams." + key, key_node, value);
            read_upstream(r, "upstreams." + key, value, it->second);
        });
}

void read_limits(const reader& r, const YAML::Node& map, limits_settings& limits) {
    for_each_field(
        r.file(), map, "limits", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const std::string path = path_of("limits", key);
            if (key == "buckets") {
                r.require_map(path, key_node, value);
                limits.buckets.clear();
                for_each_field(
                    r.file(), value, path,
                    [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& bucket_node) {
                        if (name != "mistral" && name != "mistral_eu" && name != "codestral") {
                            fail(r.file(), name_node,
                                 "unknown upstream '" + name +
                                     "' in limits.buckets; expected one of: " + std::string(upstream_names));
                        }
                        const std::string where = path_of(path, name);
                        r.require_map(where, name_node, bucket_node);
                        bucket_settings bucket;
                        for_each_field(
                            r.file(), bucket_node, where,
                            [&](const std::string& field, const YAML::Node& field_node, const YAML::Node& field_value) {
                                const std::string field_path = path_of(where, field);
                                if (field == "requests_per_second") {
                                    bucket.requests_per_second = r.number(field_path, field_node, field_value);
                                } else if (field == "tokens_per_minute") {
                                    bucket.tokens_per_minute =
                                        r.integer(field_path, field_node, field_value, 0, UINT64_MAX);
                                } else if (field == "tokens_per_month") {
                                    bucket.tokens_per_month =
                                        r.integer(field_path, field_node, field_value, 0, UINT64_MAX);
                                } else {
                                    fail_unknown_key(r.file(), field_node, field, where, bucket_keys);
                                }
                            });
                        limits.buckets[name] = bucket;
                    });
            } else if (key == "max_queue_wait") {
                limits.max_queue_wait = r.time(path, key_node, value, true);
            } else if (key == "backend") {
                const std::string backend = r.string(path, key_node, value);
                if (backend != "memory" && !parse_redis_backend(backend)) {
                    r.fail_value(key_node, value,
                                 path + " must be 'memory' or 'redis://HOST:PORT[/DB]', got '" + backend + "'");
                }
                limits.backend = backend;
            } else {
                fail_unknown_key(r.file(), key_node, key, "limits", limits_keys);
            }
        });
}

void read_retry(const reader& r, const YAML::Node& map, retry_settings& retry) {
    for_each_field(
        r.file(), map, "retry", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const std::string path = path_of("retry", key);
            if (key == "max_retries") {
                retry.max_retries = static_cast<unsigned>(r.integer(path, key_node, value, 0, 100));
            } else if (key == "backoff") {
                if (!value.IsSequence() || value.size() == 0) {
                    r.fail_value(key_node, value,
                                 path + " must be a non-empty list of durations, e.g. [1s, 2s, 4s], got " +
                                     (value.IsSequence() ? std::string("an empty list") : kind_of(value)));
                }
                std::vector<duration> backoff;
                for (std::size_t i = 0; i < value.size(); ++i) {
                    backoff.push_back(r.time(path + "[" + std::to_string(i) + "]", value[i], value[i], true));
                }
                retry.backoff = std::move(backoff);
            } else if (key == "max_retry_after") {
                retry.max_retry_after = r.time(path, key_node, value, true);
            } else {
                fail_unknown_key(r.file(), key_node, key, "retry", retry_keys);
            }
        });
}

void read_breaker(const reader& r, const YAML::Node& map, breaker_settings& breaker) {
    for_each_field(
        r.file(), map, "breaker", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const std::string path = path_of("breaker", key);
            if (key == "failures") {
                breaker.failures = static_cast<unsigned>(r.integer(path, key_node, value, 1, 1000000));
            } else if (key == "cooldown") {
                breaker.cooldown = r.time(path, key_node, value, false);
            } else {
                fail_unknown_key(r.file(), key_node, key, "breaker", breaker_keys);
            }
        });
}

void read_responses(const reader& r, const YAML::Node& map, responses_settings& responses) {
    for_each_field(
        r.file(), map, "responses", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            const std::string path = path_of("responses", key);
            if (key == "store") {
                // A YAML `off` is the string "off" to yaml-cpp (no implicit booleans in Scalar()).
                const std::string store = r.string(path, key_node, value);
                if (store != "embedded" && store != "off" && !parse_redis_backend(store)) {
                    r.fail_value(key_node, value,
                                 path + " must be 'embedded', 'off' or 'redis://HOST:PORT[/DB]', got '" + store + "'");
                }
                responses.store = store;
            } else if (key == "max_age") {
                responses.max_age = r.time(path, key_node, value, false);
                if (responses.max_age < std::chrono::seconds(1)) {
                    // Stored rows are dated in whole seconds (created_at), and Redis TTLs too.
                    r.fail_value(key_node, value, path + " must be at least 1s");
                }
            } else if (key == "max_bytes") {
                responses.max_bytes = r.size(path, key_node, value, 1);
            } else {
                fail_unknown_key(r.file(), key_node, key, "responses", responses_keys);
            }
        });
}

void read_server(const reader& r, const YAML::Node& map, server_settings& server) {
    for_each_field(r.file(), map, "server",
                   [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
                       const std::string path = path_of("server", key);
                       if (key == "max_connections") {
                           server.max_connections =
                               static_cast<std::size_t>(r.integer(path, key_node, value, 1, 1024 * 1024));
                       } else if (key == "max_header_bytes") {
                           server.max_header_bytes =
                               static_cast<std::size_t>(r.integer(path, key_node, value, 1, 1024 * 1024 * 1024));
                       } else if (key == "max_body_bytes") {
                           server.max_body_bytes =
                               static_cast<std::size_t>(r.integer(path, key_node, value, 1, std::uint64_t{1} << 40));
                       } else if (key == "max_upload_bytes") {
                           server.max_upload_bytes =
                               static_cast<std::size_t>(r.integer(path, key_node, value, 1, std::uint64_t{1} << 40));
                       } else if (key == "header_timeout") {
                           server.header_timeout = r.time(path, key_node, value, false);
                       } else if (key == "body_timeout") {
                           server.body_timeout = r.time(path, key_node, value, false);
                       } else if (key == "idle_timeout") {
                           server.idle_timeout = r.time(path, key_node, value, false);
                       } else if (key == "write_timeout") {
                           server.write_timeout = r.time(path, key_node, value, false);
                       } else if (key == "threads") {
                           server.threads = static_cast<unsigned>(r.integer(path, key_node, value, 0, 1024));
                       } else if (key == "drain_timeout") {
                           server.drain_timeout = r.time(path, key_node, value, true);
                       } else {
                           fail_unknown_key(r.file(), key_node, key, "server", server_keys);
                       }
                   });
}

void read_log(const reader& r, const YAML::Node& map, log_settings& log) {
    for_each_field(r.file(), map, "log", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        const std::string path = path_of("log", key);
        if (key == "level") {
            const auto level = r.string(path, key_node, value);
            if (level != "debug" && level != "info" && level != "warn" && level != "error") {
                r.fail_value(key_node, value, "log.level must be debug, info, warn or error, got '" + level + "'");
            }
            log.level = level;
        } else if (key == "access") {
            const auto access = r.string(path, key_node, value);
            if (access.empty()) {
                r.fail_value(key_node, value, "log.access must be off, stderr, stdout or a file path");
            }
            log.access = (access == "off" || access == "stderr" || access == "stdout") ? access : r.resolve(access);
        } else {
            fail_unknown_key(r.file(), key_node, key, "log", log_keys);
        }
    });
}

fs::path folder_of(const std::string& file) {
    if (file.empty()) {
        return fs::current_path();
    }
    return fs::absolute(fs::path(file)).lexically_normal().parent_path();
}

}  // namespace

config_error::config_error(std::string file, int line, int column, const std::string& message)
    : std::runtime_error(where_text(file, line, column) + ": " + message),
      file_(std::move(file)),
      line_(line),
      column_(column) {}

void parse_listen(std::string_view text, std::string& host, std::uint16_t& port) {
    std::string parsed_host;
    std::string_view port_text;
    bool has_port = false;
    split_host_port(text, "listen address", parsed_host, port_text, has_port);
    if (!has_port) {
        throw std::invalid_argument("listen address '" + std::string(text) + "' needs a port, e.g. 127.0.0.1:8080");
    }
    port = parse_port(port_text, "listen address", text, true);
    host = std::move(parsed_host);
}

std::optional<redis_endpoint> parse_redis_backend(std::string_view backend) {
    constexpr std::string_view scheme = "redis://";
    if (backend.substr(0, scheme.size()) != scheme) {
        return std::nullopt;
    }
    std::string_view rest = backend.substr(scheme.size());
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    redis_endpoint endpoint;
    try {
        std::string_view port_text;
        bool has_port = false;
        split_host_port(authority, "backend", endpoint.host, port_text, has_port);
        if (!has_port) {
            return std::nullopt;
        }
        endpoint.port = parse_port(port_text, "backend", backend, false);
    } catch (const std::invalid_argument&) {
        return std::nullopt;
    }
    if (slash != std::string_view::npos) {
        const auto db = parse_unsigned(rest.substr(slash + 1));
        if (!db || *db > 1000000) {
            return std::nullopt;
        }
        endpoint.db = static_cast<unsigned>(*db);
    }
    return endpoint;
}

proxy_config parse_config(std::string_view yaml_text, const std::string& file) {
    proxy_config config;
    const fs::path folder = folder_of(file);
    const reader r(file, folder);
    if (!file.empty()) {
        config.file = fs::absolute(fs::path(file)).lexically_normal().string();
    }
    // SPEC §2 defaults.
    config.upstreams.emplace("mistral", default_upstream("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"));
    config.upstreams.emplace("mistral_eu",
                             default_upstream("mistral_eu", "https://api.eu.mistral.ai/v1", "MISTRAL_API_KEY"));
    config.upstreams.emplace("codestral",
                             default_upstream("codestral", "https://codestral.mistral.ai/v1", "CODESTRAL_API_KEY"));
    config.rule_files = {r.resolve("../rules/mistral.yaml")};
    config.state_dir = r.resolve("state");

    const YAML::Node root = yaml_strict::load(yaml_text, file);
    if (root.IsNull()) {
        return config;  // an empty file: every default
    }
    for_each_field(file, root, "", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        if (key == "listen") {
            const std::string text = r.string(key, key_node, value);
            try {
                parse_listen(text, config.listen_host, config.listen_port);
            } catch (const std::invalid_argument& e) {
                r.fail_value(key_node, value, std::string("listen: ") + e.what());
            }
        } else if (key == "rules") {
            if (!value.IsSequence() || value.size() == 0) {
                r.fail_value(key_node, value,
                             "rules must be a non-empty list of rule files, got " +
                                 (value.IsSequence() ? std::string("an empty list") : kind_of(value)));
            }
            std::vector<std::string> files;
            for (std::size_t i = 0; i < value.size(); ++i) {
                files.push_back(r.path("rules[" + std::to_string(i) + "]", value[i], value[i]));
            }
            config.rule_files = std::move(files);
        } else if (key == "region") {
            const std::string region = r.string(key, key_node, value);
            if (region == "global") {
                config.region = region_kind::global;
            } else if (region == "eu") {
                config.region = region_kind::eu;
            } else {
                r.fail_value(key_node, value, "region must be 'global' or 'eu', got '" + region + "'");
            }
        } else if (key == "eu_strict") {
            config.eu_strict = r.boolean(key, key_node, value);
        } else if (key == "upstreams") {
            r.require_map(key, key_node, value);
            read_upstreams(r, value, config);
        } else if (key == "limits") {
            r.require_map(key, key_node, value);
            read_limits(r, value, config.limits);
        } else if (key == "retry") {
            r.require_map(key, key_node, value);
            read_retry(r, value, config.retry);
        } else if (key == "breaker") {
            r.require_map(key, key_node, value);
            read_breaker(r, value, config.breaker);
        } else if (key == "responses") {
            r.require_map(key, key_node, value);
            read_responses(r, value, config.responses);
        } else if (key == "state_dir") {
            config.state_dir = r.path(key, key_node, value);
        } else if (key == "client_keys_env") {
            config.client_keys_env = r.env_name(key, key_node, value, true);
        } else if (key == "server") {
            r.require_map(key, key_node, value);
            read_server(r, value, config.server);
        } else if (key == "log") {
            r.require_map(key, key_node, value);
            read_log(r, value, config.log);
        } else {
            fail_unknown_key(file, key_node, key, "", top_keys);
        }
    });
    return config;
}

proxy_config load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw config_error(path, 0, 0, std::string("cannot read config file: ") + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw config_error(path, 0, 0, "cannot read config file");
    }
    return parse_config(text.str(), path);
}

}  // namespace mistral_proxy::config
