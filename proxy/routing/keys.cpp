// Upstream keys from the environment and the client gate (SPEC §3; see keys.hpp).
#include "routing/keys.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

namespace mistral_proxy::routing {

namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Constant time in the contents of `expected`: every byte of `given` is
// compared, whatever matched before. Only the lengths (the caller's own, and
// whether they differ) can show in timing.
bool constant_time_equal(std::string_view expected, std::string_view given) noexcept {
    std::uint64_t diff = static_cast<std::uint64_t>(expected.size() ^ given.size());
    const std::size_t n = expected.size();
    for (std::size_t i = 0; i < given.size(); ++i) {
        const auto e = static_cast<std::uint8_t>(n == 0 ? 0 : expected[i % n]);
        diff |= static_cast<std::uint64_t>(e ^ static_cast<std::uint8_t>(given[i]));
    }
    return diff == 0;
}

std::optional<std::string> read_env(const std::function<const char*(const char*)>& getenv_fn, const std::string& name) {
    if (name.empty()) {
        return std::nullopt;
    }
    const char* value = getenv_fn(name.c_str());
    if (value == nullptr) {
        return std::nullopt;
    }
    // A trailing newline from `export K="$(cat key.txt)"`-style setups must not break the header.
    const std::string_view trimmed = trim(value);
    if (trimmed.empty()) {
        return std::nullopt;
    }
    return std::string(trimmed);
}

// A key goes into a header line: a CR, LF or any byte outside visible ASCII
// would end that line early and let the environment write headers of its own.
void require_header_safe(const std::optional<std::string>& key, const std::string& env_name) {
    if (!key) {
        return;
    }
    for (const char c : *key) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x21 || byte > 0x7e) {
            throw std::runtime_error("the environment variable " + env_name +
                                     " holds a key with a byte that cannot be sent in an HTTP header (a control "
                                     "character, space or non-ASCII byte): check how it was set");
        }
    }
}

// The limiter's bucket of an upstream's key: mistral_eu shares mistral's.
std::string bucket_of(upstream_id upstream) {
    return upstream == upstream_id::mistral_eu ? std::string("mistral") : std::string(upstream_name(upstream));
}

}  // namespace

void key_store::load(const config::proxy_config& config, const std::function<const char*(const char*)>& getenv_fn) {
    for (std::size_t i = 0; i < upstream_count; ++i) {
        const std::string name(upstream_name(static_cast<upstream_id>(i)));
        const auto it = config.upstreams.find(name);
        if (it == config.upstreams.end()) {
            continue;
        }
        const auto& names = it->second.api_key_envs;
        pooled_[i] = names.size() > 1;
        const std::string bucket = bucket_of(static_cast<upstream_id>(i));
        for (const auto& env : names) {
            upstream_key_env_[i] += (upstream_key_env_[i].empty() ? "" : " or ") + env;
            auto key = read_env(getenv_fn, env);
            require_header_safe(key, env);
            if (!key) {
                if (pooled_[i]) {
                    unset_pool_members_.push_back(name + ": " + env);
                }
                continue;
            }
            pools_[i].push_back({env, pooled_[i] ? bucket + "/" + env : bucket});
            upstream_bearers_[i].push_back("Bearer " + *key);
            upstream_keys_[i].push_back(std::move(*key));
        }
    }
    client_keys_env_ = config.client_keys_env;
    if (client_keys_env_.empty()) {
        return;
    }
    if (const auto value = read_env(getenv_fn, client_keys_env_)) {
        std::string_view rest = *value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const std::string_view entry = trim(rest.substr(0, comma));
            if (!entry.empty()) {
                client_keys_.emplace_back(entry);
            }
            if (comma == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(comma + 1);
        }
    }
    // Named but empty: failing closed beats silently letting everyone in.
    client_keys_required_ = client_keys_.empty();
}

std::optional<errors::openai_error> key_store::check_client(std::optional<std::string_view> bearer) const {
    if (!client_keys_configured()) {
        return std::nullopt;
    }
    if (client_keys_.empty()) {
        return errors::make_error(401,
                                  "this proxy requires client keys, but the environment variable " + client_keys_env_ +
                                      " named by client_keys_env is unset or empty; set it to a comma-separated "
                                      "list of keys and restart the proxy",
                                  "client_keys_unset");
    }
    const std::string_view given = bearer ? trim(*bearer) : std::string_view();
    if (given.empty()) {
        return errors::make_error(
            401, "missing API key: send one of this proxy's client keys as 'Authorization: Bearer <key>'",
            "missing_api_key");
    }
    bool matched = false;
    for (const auto& key : client_keys_) {
        // No early exit: the time taken does not tell which key (if any) matched.
        matched = constant_time_equal(key, given) || matched;
    }
    if (!matched) {
        return errors::make_error(401, "invalid API key: the bearer sent is not one of this proxy's client keys",
                                  "invalid_api_key");
    }
    return std::nullopt;
}

key_store::choice key_store::upstream_authorization(upstream_id upstream,
                                                    std::optional<std::string_view> client_bearer,
                                                    std::size_t member) const {
    choice result;
    const auto index = static_cast<std::size_t>(upstream);
    if (index >= upstream_count) {
        result.error = errors::make_error(500, "unknown upstream", "internal_error");
        return result;
    }
    if (authorization_into(upstream, client_bearer, member, result.authorization)) {
        return result;
    }

    const std::string& env = upstream_key_env_[index];
    std::string message = "no API key for upstream " + std::string(upstream_name(upstream)) +
                          ": set the environment variable " + (env.empty() ? std::string("(none configured)") : env);
    if (upstream == upstream_id::codestral) {
        message += " (Codestral needs its own key; the client's bearer is never forwarded to it)";
    } else if (client_keys_configured()) {
        message += " (with client_keys_env set, the client's bearer is a proxy key and is not forwarded)";
    } else {
        message += ", or send your Mistral key as 'Authorization: Bearer <key>'";
    }
    result.error = errors::make_error(401, std::move(message), "missing_api_key");
    return result;
}

key_store::key_source key_store::source_of(upstream_id upstream,
                                           std::optional<std::string_view> client_bearer) const noexcept {
    const auto index = static_cast<std::size_t>(upstream);
    if (index >= upstream_count) {
        return key_source::none;
    }
    if (!upstream_keys_[index].empty()) {
        return key_source::own;
    }
    const bool may_forward = upstream != upstream_id::codestral && !client_keys_configured();
    return may_forward && client_bearer && !trim(*client_bearer).empty() ? key_source::client_bearer
                                                                         : key_source::none;
}

bool key_store::can_authorize(upstream_id upstream, std::optional<std::string_view> client_bearer) const noexcept {
    return source_of(upstream, client_bearer) != key_source::none;
}

bool key_store::authorization_into(upstream_id upstream, std::optional<std::string_view> client_bearer,
                                   std::size_t member, std::string& out) const {
    out.clear();
    switch (source_of(upstream, client_bearer)) {
        case key_source::own: {
            const auto& bearers = upstream_bearers_[static_cast<std::size_t>(upstream)];
            out.assign(bearers[std::min(member, bearers.size() - 1)]);
            return true;
        }
        case key_source::client_bearer:
            out.assign("Bearer ");
            out.append(trim(*client_bearer));
            return true;
        case key_source::none:
            break;
    }
    return false;
}

const std::vector<key_store::pool_member>& key_store::pool(upstream_id upstream) const noexcept {
    return pools_[std::min(static_cast<std::size_t>(upstream), upstream_count - 1)];
}

bool key_store::is_pool(upstream_id upstream) const noexcept {
    const auto index = static_cast<std::size_t>(upstream);
    return index < upstream_count && pooled_[index];
}

std::vector<std::string> key_store::unset_pool_members() const { return unset_pool_members_; }

std::vector<std::string> key_store::secrets_for_leak_checks() const {
    std::vector<std::string> out;
    for (const auto& keys : upstream_keys_) {
        out.insert(out.end(), keys.begin(), keys.end());
    }
    out.insert(out.end(), client_keys_.begin(), client_keys_.end());
    return out;
}

errors::redactor key_store::redactor_for(upstream_id upstream,
                                        std::optional<std::string_view> client_bearer) const noexcept {
    const bool bearer_sent = source_of(upstream, client_bearer) == key_source::client_bearer;
    return errors::redactor(secrets_, bearer_sent ? trim(*client_bearer) : std::string_view());
}

std::optional<std::string_view> bearer_token(std::string_view authorization_header) noexcept {
    std::string_view header = trim(authorization_header);
    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size()) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        const char c = header[i];
        const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lower != scheme[i]) {
            return std::nullopt;
        }
    }
    if (header[scheme.size()] != ' ' && header[scheme.size()] != '\t') {
        return std::nullopt;  // "Bearerabc" is not a bearer
    }
    const std::string_view token = trim(header.substr(scheme.size()));
    if (token.empty()) {
        return std::nullopt;
    }
    return token;
}

}  // namespace mistral_proxy::routing
