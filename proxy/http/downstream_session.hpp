#pragma once
// One client connection: HTTP/1.1 keep-alive loop, each request answered
// locally or proxied to its Mistral upstream.
#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>

#include "http/asio_fwd.hpp"
#include "http/limits_client.hpp"
#include "http/server.hpp"
#include "http/upstream_pool.hpp"
#include "limits/breaker.hpp"
#include "limits/ledger.hpp"
#include "limits/io/redis_limiter.hpp"
#include "limits/key_pool.hpp"
#include "limits/limiter.hpp"
#include "metrics/metrics.hpp"
#include "openai_responses/ids.hpp"
#include "plan/request_plan.hpp"
#include "store/io/store_client.hpp"

namespace mistral_proxy::http {

// What a worker knows of one of its sessions, so that a drain can close the
// idle ones at once and let the busy ones finish.
struct session_slot {
    tcp_socket* socket = nullptr;
    bool idle = true;  // waiting for a request to start
};

// The rate limiter shared by all workers (thread-safe), and its ledger.
struct limits_runtime {
    std::unique_ptr<limits::month_ledger> ledger;  // null when no bucket has a monthly budget
    std::unique_ptr<limits::limiter> limiter;      // embedded backend; null when nothing is limited
    bool shared = false;                           // limits.backend is Redis: each worker has its client
    config::limits_settings settings;
    limits::key_pools key_pools;  // key pools' turns and keys out of rotation (with or without buckets)
    bool active() const noexcept { return limiter != nullptr || shared; }
};

// Per worker thread; only touched from that thread (the metrics shard is read
// by scrapes through relaxed atomics).
struct worker_context {
    std::shared_ptr<const runtime_state> state;
    upstream_pool pool;
    metrics::shard& metrics;
    const metrics::registry& registry;
    limits_runtime& limits;
    std::list<session_slot> sessions;
    bool draining = false;
    std::atomic<std::size_t>* open_sessions = nullptr;  // across all workers, for the drain
    std::function<void()> on_last_session_closed;      // called when open_sessions hits 0
    plan::plan_scratch plan_scratch;                   // reused by every request of this worker
    // The rate limiter this worker's sessions call (null when nothing is
    // limited): the embedded one shared by all workers, or with limits.backend
    // redis this worker's own client (reconnected after a failure).
    std::unique_ptr<limits_client> limiter_client;

    // Installs a reloaded state: requests in flight keep theirs.
    void install(std::shared_ptr<const runtime_state> next);
    // Stops keep-alive and closes idle connections.
    void drain();
    // A burst of streams leaves freed memory in malloc's arenas: when the
    // worker has no connection left, give it back to the system (at most once
    // a second, so that a client opening a connection per request pays nothing).
    void return_memory_when_idle();
    std::chrono::steady_clock::time_point last_trim{};
    // Circuit breakers per (upstream, model), this worker's own: each worker
    // counts failures and trips on its own, like its connection pool.
    limits::breaker_board breakers{config::breaker_settings{}};
    // Stored Responses API objects (responses.store): the embedded store
    // shared by all workers, or this worker's Redis connection.
    store::io::store_client store;
    openai_responses::random_ids response_ids;  // resp_/msg_/fc_ ids of this worker's answers
    // Sessions waiting for a kept-alive client's next request
    // (settle_client_watch): when all of them are, the one whose request came
    // goes on at once (upstream_exchange.cpp, client_watch_completion).
    std::size_t sessions_between_requests = 0;
};

awaitable<void> run_downstream_session(tcp_socket socket, worker_context& worker);

}  // namespace mistral_proxy::http
