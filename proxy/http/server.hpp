#pragma once
// The listener and its worker threads. Light header on purpose: main.cpp and
// the commands include it without pulling in Asio or Beast.
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "routing/keys.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::http {

// Everything a request reads and nobody writes: compiled once at start-up.
struct runtime_state {
    config::proxy_config config;
    std::shared_ptr<const rules::rule_set> rules;
    routing::key_store keys;
};

class server {
public:
    explicit server(std::shared_ptr<const runtime_state> state);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds and listens on config.listen (port 0 picks a free port); returns the
    // bound address as "HOST:PORT". Throws std::system_error when it cannot bind.
    std::string bind();

    // Serves on one worker thread per configured thread (default: per core)
    // until SIGINT/SIGTERM or stop(). Returns when every worker has stopped.
    void run();

    // Safe from any thread.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace mistral_proxy::http
