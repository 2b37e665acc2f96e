#pragma once
// Keys (SPEC §3): which credential goes upstream, and whether the client may
// call at all. Values are read from the environment once, at start-up; they are
// never printed, logged or put in an error.
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::routing {

class key_store {
public:
    // Reads every upstream's api_key_env and client_keys_env through `getenv_fn`
    // (std::getenv in production, a table in tests). Empty values count as unset.
    // Throws std::runtime_error naming the variable (never the value) when an
    // upstream key holds a byte that cannot go into a header line.
    template <class Getenv>
    static key_store from_environment(const config::proxy_config& config, Getenv&& getenv_fn);

    // Client gate. Without client keys configured every caller passes; with them,
    // `bearer` must equal one of them (constant-time comparison).
    // Returns the 401 to answer when refused.
    std::optional<errors::openai_error> check_client(std::optional<std::string_view> bearer) const;

    struct choice {
        std::string authorization;  // full header value, "Bearer ..."
        std::optional<errors::openai_error> error;  // 401 naming the env var when no key can be used
    };
    // Upstream key = the value of the env var of pool member `member` (0 for
    // a single key). When no env var of the upstream is set and client keys
    // are not configured, the client's bearer is used for mistral/mistral_eu
    // only, never for codestral.
    choice upstream_authorization(upstream_id upstream, std::optional<std::string_view> client_bearer,
                                  std::size_t member = 0) const;
    // The same choice without building the error or a new string, for the
    // request path: whether a key can be used, and its Authorization value
    // written into `out` (its capacity reused; left empty when none can).
    bool can_authorize(upstream_id upstream, std::optional<std::string_view> client_bearer) const noexcept;
    bool authorization_into(upstream_id upstream, std::optional<std::string_view> client_bearer, std::size_t member,
                            std::string& out) const;

    // The upstream's keys from the environment, in the order api_key_env
    // lists them (an env var that is unset is left out). Empty: no key of its
    // own (the client's bearer may be forwarded, see above).
    struct pool_member {
        std::string env;     // the env var's name (never its value)
        std::string bucket;  // the limiter's bucket key: "mistral", or "mistral/ENV" in a pool
    };
    const std::vector<pool_member>& pool(upstream_id upstream) const noexcept;
    // api_key_env listed more than one name: keys rotate, each on its own bucket.
    bool is_pool(upstream_id upstream) const noexcept;
    // The pool's env vars that are named but unset, for a start-up warning.
    std::vector<std::string> unset_pool_members() const;

    bool client_keys_configured() const noexcept { return !client_keys_.empty() || client_keys_required_; }

    // Every secret value held, for tests that grep logs and answers for leaks.
    std::vector<std::string> secrets_for_leak_checks() const;

    // Hides every key held here in upstream text the proxy relays or logs, and
    // the client's bearer when it is what `upstream` is sent (no env key): an
    // upstream may echo the Authorization header. Valid while this store and
    // the bearer's text live (the request's runtime state and its header).
    errors::redactor redactor_for(upstream_id upstream, std::optional<std::string_view> client_bearer) const noexcept;

private:
    // Per upstream: its members and, at the same index, their keys.
    std::array<std::vector<pool_member>, upstream_count> pools_;
    std::array<std::vector<std::string>, upstream_count> upstream_keys_;
    // The same keys as Authorization values ("Bearer " + key), made once.
    std::array<std::vector<std::string>, upstream_count> upstream_bearers_;
    std::array<std::string, upstream_count> upstream_key_env_;  // the names, for the 401's message
    std::array<bool, upstream_count> pooled_{};
    std::vector<std::string> unset_pool_members_;
    std::vector<std::string> client_keys_;
    bool client_keys_required_ = false;  // client_keys_env named but empty: refuse everyone
    std::string client_keys_env_;
    std::vector<std::string> secrets_;  // every key above, for redactor_for()

    void load(const config::proxy_config& config, const std::function<const char*(const char*)>& getenv_fn);
    // Where the key for `upstream` comes from (the rules of upstream_authorization).
    enum class key_source { own, client_bearer, none };
    key_source source_of(upstream_id upstream, std::optional<std::string_view> client_bearer) const noexcept;
};

// "Bearer abc" -> "abc"; anything else -> nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization_header) noexcept;

template <class Getenv>
key_store key_store::from_environment(const config::proxy_config& config, Getenv&& getenv_fn) {
    key_store store;
    store.load(config, std::function<const char*(const char*)>(std::forward<Getenv>(getenv_fn)));
    store.secrets_ = store.secrets_for_leak_checks();
    return store;
}

}  // namespace mistral_proxy::routing
