#pragma once
// One client connection: HTTP/1.1 keep-alive loop, each request answered
// locally or proxied to its Mistral upstream.
#include <memory>

#include "http/asio_fwd.hpp"
#include "http/server.hpp"
#include "http/upstream_pool.hpp"

namespace mistral_proxy::http {

// Per worker thread; only touched from that thread.
struct worker_context {
    std::shared_ptr<const runtime_state> state;
    upstream_pool pool;
};

awaitable<void> run_downstream_session(tcp::socket socket, worker_context& worker);

}  // namespace mistral_proxy::http
