#pragma once
// The listener and its worker threads. Light header on purpose: main.cpp and
// the commands include it without pulling in Asio or Beast.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/retry.hpp"
#include "responses/models.hpp"
#include "responses/response_rules.hpp"
#include "routing/keys.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::logging {
class access_log;
}

namespace mistral_proxy::http {

class tls_contexts;

// Everything a request reads and nobody writes: compiled once at start-up and
// again on reload. A request keeps the state it started with to its end.
struct runtime_state {
    config::proxy_config config;
    std::shared_ptr<const rules::rule_set> rules;
    routing::key_store keys;
    std::shared_ptr<const tls_contexts> tls;
    std::shared_ptr<const logging::access_log> access_log;
    // Derived once from the rules and config for the response side.
    responses::response_rules response_rules;
    std::vector<responses::model_alias> model_aliases;  // the rule files' exact (non-glob) aliases
    limits::retry_schedule retry{config::retry_settings{}};
};

// Builds the TLS client contexts, opens the access log and derives the
// response-side tables. Throws std::runtime_error (unreadable ca_file, access
// log path) with a clear message.
std::shared_ptr<const runtime_state> make_runtime_state(config::proxy_config config,
                                                        std::shared_ptr<const rules::rule_set> rules,
                                                        routing::key_store keys);

class server {
public:
    // Builds a new state from the files on SIGHUP; throws (config_error,
    // std::runtime_error) when they are broken, and the running state stays.
    using reloader = std::function<std::shared_ptr<const runtime_state>()>;

    // Opens the month ledger in state_dir when a bucket has a monthly budget;
    // throws std::runtime_error when it is unreadable, corrupt or foreign.
    server(std::shared_ptr<const runtime_state> state, reloader reload = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds and listens on config.listen (port 0 picks a free port); returns the
    // bound address as "HOST:PORT". Throws std::system_error when it cannot bind.
    std::string bind();

    // Serves on one worker thread per configured thread (default: per core)
    // until stopped. SIGHUP reloads; SIGTERM/SIGINT stop accepting, let requests
    // in flight finish within server.drain_timeout, then return; a second
    // SIGTERM/SIGINT stops at once.
    void run();

    // Same as SIGTERM. Safe from any thread.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace mistral_proxy::http
