// The listener, its worker threads (one io_context each), start-up of the
// shared state (ledger, limiter, responses store), signals, reload and drain.
#include "http/server.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/detail/thread_context.hpp>
#include <boost/asio/detail/thread_info_base.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/version.hpp>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/downstream_session.hpp"
#include "http/http_util.hpp"
#include "log/access_log.hpp"
#include "log/log.hpp"
#include "rules/glob.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

namespace {

// Descriptors kept for everything but client and upstream sockets: the
// listener, the ledger, logs, the resolver, Redis clients, a refusal in flight.
constexpr std::size_t reserved_descriptors = 64;

// The soft RLIMIT_NOFILE raised to the hard one; returns the limit in force.
std::size_t raise_descriptor_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return 1024;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            limit = raised;
        }
    }
    return limit.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20 : static_cast<std::size_t>(limit.rlim_cur);
}

// The answer to a connection the proxy cannot take: whole, so that it can be
// written without a session, in OpenAI's error shape.
std::string refusal_answer(std::string message) {
    const auto body = errors::to_json(errors::make_error(503, std::move(message), "too_many_connections"));
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nRetry-After: 1\r\nx-request-id: " + new_request_id() +
           "\r\nx-mistral-proxy-rules: \r\nConnection: close\r\n\r\n" + body;
}

// Answers 503 on a connection over the cap, then closes it once the client has
// had a moment to read it (closing with its request unread would reset the
// connection and could destroy the answer in flight).
awaitable<void> refuse_connection(tcp_socket socket, std::string answer) {
    boost::system::error_code ignored;
    tcp_stream stream(std::move(socket));
    stream.expires_after(std::chrono::seconds(1));
    auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(answer), as_result);
    if (!write_ec) {
        stream.socket().shutdown(tcp_socket::shutdown_send, ignored);
        std::array<char, 1024> discard{};
        for (std::size_t total = 0; total < 64 * 1024;) {
            auto [ec, n] = co_await stream.async_read_some(asio::buffer(discard), as_result);
            if (ec) {
                break;
            }
            total += n;
        }
    }
    stream.close();
}

}  // namespace

std::shared_ptr<const runtime_state> make_runtime_state(config::proxy_config config,
                                                        std::shared_ptr<const rules::rule_set> rules,
                                                        routing::key_store keys) {
    auto state = std::make_shared<runtime_state>();
    state->tls = std::make_shared<const tls_contexts>(config);
    state->access_log = std::make_shared<const logging::access_log>(config.log.access);
    state->retry = limits::retry_schedule(config.retry);
    state->response_rules = responses::response_rules::from(*rules);  // finish_reason, moderation categories
    state->model_aliases = plan::derive_model_aliases(*rules);
    state->config = std::move(config);
    state->rules = std::move(rules);
    state->keys = std::move(keys);
    return state;
}

void worker_context::install(std::shared_ptr<const runtime_state> next) {
    pool.rebind(next->config, *next->tls);
    const auto& now = breakers.settings();
    const auto& wanted = next->config.breaker;
    if (now.failures != wanted.failures || now.cooldown != wanted.cooldown) {
        breakers.reset(wanted);  // new thresholds: every breaker starts closed
        for (auto& open : metrics.breakers_open) {
            open.store(0, std::memory_order_relaxed);
        }
    }
    state = std::move(next);
}

// Under AddressSanitizer, malloc is ASan's own: glibc's arenas were never set
// up, and malloc_trim walks them (a SEGV at address 0x8 in mtrim).
#if defined(__SANITIZE_ADDRESS__)
#define MISTRAL_PROXY_GLIBC_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MISTRAL_PROXY_GLIBC_MALLOC 0
#endif
#endif
#ifndef MISTRAL_PROXY_GLIBC_MALLOC
#define MISTRAL_PROXY_GLIBC_MALLOC 1
#endif

void worker_context::return_memory_when_idle() {
    if constexpr (!MISTRAL_PROXY_GLIBC_MALLOC) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_trim < std::chrono::seconds(1)) {
        return;
    }
    last_trim = now;
#if BOOST_VERSION == 108100
    // The coroutine frames this thread keeps for reuse (third_party/asio-short-read's
    // thread_info_base.hpp) first: held, they would keep their pages from the trim.
    boost::asio::detail::thread_info_base::release_cached(
        boost::asio::detail::thread_context::top_of_thread_call_stack());
#endif
    malloc_trim(0);
}

void worker_context::drain() {
    draining = true;
    for (auto& slot : sessions) {
        if (slot.idle && slot.socket != nullptr) {
            boost::system::error_code ignored;
            slot.socket->cancel(ignored);  // its pending read ends, and the session closes
        }
    }
}

struct server::impl {
    std::shared_ptr<const runtime_state> state;
    reloader reload;
    metrics::registry registry;
    upstream_socket_counts upstream_sockets;
    // One io_context per worker thread, each running alone: a connection lives
    // on one thread for its whole life, so sessions and pools need no locks.
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    std::vector<std::unique_ptr<worker_context>> workers;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::unique_ptr<tcp_acceptor> acceptor;
    std::unique_ptr<asio::signal_set> signals;
    std::unique_ptr<steady_timer> drain_deadline;
    // Keeps each worker's earliest timer deadline at most a second away, so
    // that the deadlines requests set (idle, header, read and write timeouts,
    // seconds to minutes away) never become the earliest one: Asio re-arms a
    // worker's timerfd (a system call) only when its earliest deadline moves,
    // and at low concurrency each request moved it twice (the client's idle
    // wait, the upstream's header read). The anchor's own re-arming costs one
    // call a second. One per worker, touched on its worker's thread only;
    // stopped when the last session has ended (finish_stop).
    struct deadline_anchor {
        explicit deadline_anchor(asio::io_context& context) : timer(context.get_executor()) {}
        steady_timer timer;
        bool stopped = false;
    };
    std::vector<std::unique_ptr<deadline_anchor>> anchors;
    std::atomic<std::size_t> open_sessions{0};
    limits_runtime limits;
    bool stopping = false;        // only touched on contexts[0]
    std::size_t next_worker = 0;  // only touched by the accept loop
    // server.max_connections, lowered when the descriptor limit cannot hold it.
    std::size_t max_connections = 0;
    std::atomic<std::size_t> refusals_in_flight{0};
    // Held in reserve: when accept() fails for want of a descriptor, this one is
    // closed to accept and refuse the waiting connection, then taken back, so
    // the listener never spins on EMFILE with connections piling up.
    int spare_descriptor = -1;
    std::chrono::steady_clock::time_point last_refusal_log{};

    impl(std::shared_ptr<const runtime_state> s, reloader r) : state(std::move(s)), reload(std::move(r)) {
        size_connections();
        open_limits();
        auto threads = state->config.server.threads;
        if (threads == 0) {
            threads = std::max(1u, std::thread::hardware_concurrency());
        }
        for (unsigned i = 0; i < threads; ++i) {
            // One thread runs each context, and every socket is used on its
            // context's thread only (the accept loop opens a socket for another
            // worker, then hands it over with a post; drains are posted): the
            // reactor's per-socket lock, taken and released several times per
            // request, guards nothing. The scheduler keeps its lock: other
            // threads post to it (the accept loop, the resolver, stop and reload).
            contexts.push_back(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
            auto& context = *contexts.back();
            workers.push_back(std::unique_ptr<worker_context>(new worker_context{
                state, upstream_pool(context, state->config, *state->tls, upstream_sockets), registry.add_shard(), registry, limits, {},
                false, &open_sessions, [this] { asio::post(*contexts[0], [this] { finish_stop(); }); }, {}, nullptr,
                {}, limits::breaker_board{config::breaker_settings{}}, {}, {}}));
        }
        for (auto& worker : workers) {
            worker->pool.count_handshakes_in(&worker->metrics.tls_handshakes, &worker->metrics.tls_resumed);
            worker->breakers.reset(state->config.breaker);
            if (limits.limiter) {
                worker->limiter_client = make_embedded_limits_client(*limits.limiter);
            }
        }
        connect_shared_limits();
        connect_response_stores();
        for (auto& context : contexts) {
            guards.push_back(asio::make_work_guard(*context));
            anchors.push_back(std::make_unique<deadline_anchor>(*context));
        }
        // Installed before the listening socket exists, so that a stop signal
        // sent as soon as the proxy says it listens is never lost to the default action.
        signals = std::make_unique<asio::signal_set>(*contexts[0], SIGINT, SIGTERM, SIGHUP);
    }

    ~impl() {
        if (spare_descriptor >= 0) {
            ::close(spare_descriptor);
        }
    }

    // Each client connection may hold one upstream socket too: the configured
    // cap is lowered (with a warning) when the descriptor limit, raised to its
    // hard maximum first, could not serve that many.
    void size_connections() {
        const auto descriptors = raise_descriptor_limit();
        const auto configured = state->config.server.max_connections;
        const auto room = descriptors > 2 * reserved_descriptors ? (descriptors - reserved_descriptors) / 2 : 16;
        max_connections = std::min(configured, room);
        if (max_connections < configured) {
            log_line(log_level::warn, "server.max_connections " + std::to_string(configured) + " lowered to " +
                                          std::to_string(max_connections) + ": the descriptor limit is " +
                                          std::to_string(descriptors) +
                                          " (each client connection may need an upstream one too); raise it "
                                          "with ulimit -n or LimitNOFILE=");
        }
        spare_descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }

    // Over the cap: a 503 instead of a session. Bounded too, so that a flood of
    // connections cannot turn refusals into the new way to run out of descriptors.
    void refuse(tcp_socket socket, std::size_t worker_index, const char* why) {
        metrics::shard::add(workers[0]->metrics.refused_connections);
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log >= std::chrono::seconds(1)) {
            last_refusal_log = now;
            log_line(log_level::warn, std::string("connection refused with 503: ") + why);
        }
        if (refusals_in_flight.load(std::memory_order_relaxed) >= reserved_descriptors / 2) {
            return;  // the socket closes here
        }
        refusals_in_flight.fetch_add(1, std::memory_order_relaxed);
        asio::co_spawn(*contexts[worker_index], refuse_connection(std::move(socket), refusal_answer(
                                                                  "the proxy has " + std::to_string(max_connections) +
                                                                  " client connections open, the most it takes "
                                                                  "(server.max_connections); close idle connections "
                                                                  "or retry shortly")),
                       [this](std::exception_ptr) { refusals_in_flight.fetch_sub(1, std::memory_order_relaxed); });
    }

    // accept() failed for want of a descriptor: give the spare one up to take
    // the oldest waiting connection, refuse it, and take the spare back.
    void refuse_without_descriptors() {
        if (spare_descriptor < 0) {
            return;
        }
        ::close(spare_descriptor);
        spare_descriptor = -1;
        const int fd = ::accept4(acceptor->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            static const std::string answer = refusal_answer(
                "the proxy is out of file descriptors (see the descriptor limit, ulimit -n); retry shortly");
            // Best effort, never waiting: a descriptor this scarce is not held for a client.
            [[maybe_unused]] const auto sent = ::send(fd, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            ::shutdown(fd, SHUT_WR);
            ::close(fd);
            metrics::shard::add(workers[0]->metrics.refused_connections);
        }
        spare_descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }

    // The buckets live as long as the process (a reload keeps them); the month
    // ledger is opened only when some bucket has a monthly budget.
    void open_limits() {
        const auto& settings = state->config.limits;
        if (settings.buckets.empty()) {
            return;
        }
        limits.settings = settings;
        if (settings.backend != "memory") {
            limits.shared = true;  // each worker connects its own client, see connect_shared_limits
            return;
        }
        bool month_budget = false;
        for (const auto& [name, bucket] : settings.buckets) {
            month_budget = month_budget || bucket.tokens_per_month > 0;
        }
        if (month_budget) {
            auto opened = limits::month_ledger::open(state->config.state_dir);
            if (!opened.ledger) {
                throw std::runtime_error("month ledger: " + opened.error);
            }
            if (!opened.warning.empty()) {
                log_line(log_level::warn, "month ledger: " + opened.warning);
            }
            limits.ledger = std::move(opened.ledger);
        }
        limits.limiter = std::make_unique<limits::limiter>(settings, limits.ledger.get());
    }

    // With limits.backend redis, every worker gets its client before the
    // first connection is accepted, so a wrong address stops the start with a
    // clear error. The clients reconnect by themselves after a failure.
    void connect_shared_limits() {
        if (!limits.shared) {
            return;
        }
        for (std::size_t i = 0; i < workers.size(); ++i) {
            auto& context = *contexts[i];
            std::string error;
            bool done = false;
            asio::co_spawn(
                context,
                [&, worker = workers[i].get()]() -> awaitable<void> {
                    auto [client, message] =
                        co_await limits::io::redis_limiter::connect(context.get_executor(), limits.settings);
                    error = client ? std::string{} : message;
                    if (client) {
                        worker->limiter_client = make_redis_limits_client(std::move(client));
                    }
                    done = true;
                },
                asio::detached);
            // Until the connect finished: the client keeps a read pending, so
            // run() would not return. (The connect has its own timeout.)
            while (!done && context.run_one() > 0) {
            }
            context.restart();
            if (!error.empty()) {
                throw std::runtime_error(error);
            }
        }
    }

    // responses.store: the embedded store is opened once and shared; with
    // Redis every worker connects its own client before the first connection
    // is accepted, so a broken store stops the start with a clear error.
    void connect_response_stores() {
        std::string error;
        auto shared = store::io::open_shared_store(state->config, error);
        if (!error.empty()) {
            throw std::runtime_error("responses store: " + error);
        }
        for (std::size_t i = 0; i < workers.size(); ++i) {
            auto& context = *contexts[i];
            bool done = false;
            asio::co_spawn(
                context,
                [&, worker = workers[i].get()]() -> awaitable<void> {
                    auto [client, message] =
                        co_await store::io::make_store_client(context.get_executor(), state->config, shared);
                    worker->store = std::move(client);
                    error = message;
                    done = true;
                },
                asio::detached);
            while (!done && context.run_one() > 0) {
            }
            context.restart();
            if (!error.empty()) {
                throw std::runtime_error("responses store: " + error);
            }
        }
    }

    awaitable<void> accept_loop() {
        while (!stopping) {
            const auto index = next_worker++ % workers.size();
            auto [ec, socket] = co_await acceptor->async_accept(*contexts[index], as_result);
            // A stop closes the listener: whatever the accept then says, the loop is over.
            if (ec == asio::error::operation_aborted || stopping || !acceptor->is_open()) {
                co_return;
            }
            if (ec) {
                const bool out_of_descriptors =
                    ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space;
                const auto now = std::chrono::steady_clock::now();
                if (now - last_refusal_log >= std::chrono::seconds(1)) {
                    last_refusal_log = now;
                    log_line(log_level::error, "accept failed: " + ec.message());
                }
                if (out_of_descriptors) {
                    refuse_without_descriptors();
                }
                // Breathe before the next try: the failure is seldom gone at once.
                steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(10));
                co_await pause.async_wait(as_result);
                continue;
            }
            if (open_sessions.load(std::memory_order_relaxed) >= max_connections) {
                refuse(std::move(socket), index, "server.max_connections reached");
                continue;
            }
            open_sessions.fetch_add(1, std::memory_order_relaxed);
            asio::co_spawn(*contexts[index], run_downstream_session(std::move(socket), *workers[index]),
                           [](std::exception_ptr failure) {
                               if (!failure) {
                                   return;
                               }
                               try {
                                   std::rethrow_exception(failure);
                               } catch (const std::exception& e) {
                                   log_line(log_level::error, std::string("connection ended by an exception: ") + e.what());
                               }
                           });
        }
    }

    void wait_for_signal() {
        signals->async_wait([this](const boost::system::error_code& ec, int signal_number) {
            if (ec) {
                return;
            }
            if (signal_number == SIGHUP) {
                reload_now();
                wait_for_signal();
                return;
            }
            if (stopping) {
                log_line(log_level::warn, "second stop signal: stopping at once");
                stop_now();
                return;
            }
            log_line(log_level::info, "signal " + std::to_string(signal_number) + ": draining");
            wait_for_signal();  // armed first: a drain that ends at once cancels it
            begin_stop();
        });
    }

    void reload_now() {
        if (!reload) {
            return;
        }
        std::shared_ptr<const runtime_state> next;
        try {
            next = reload();
        } catch (const std::exception& e) {
            log_line(log_level::error, std::string("reload refused, keeping the running config: ") + e.what());
            return;
        }
        const auto& now = state->config;
        if (next->config.listen_host != now.listen_host || next->config.listen_port != now.listen_port) {
            log_line(log_level::error, "reload refused: `listen` changed (" + now.listen_host + ":" +
                                           std::to_string(now.listen_port) + " -> " + next->config.listen_host + ":" +
                                           std::to_string(next->config.listen_port) +
                                           "); restart the proxy to move it");
            return;
        }
        if (next->config.server.threads != now.server.threads) {
            log_line(log_level::warn, "reload: server.threads changes only on restart");
        }
        state = next;
        logging::set_min_level(logging::parse_log_level(next->config.log.level));
        for (std::size_t i = 0; i < workers.size(); ++i) {
            asio::post(*contexts[i], [worker = workers[i].get(), next] { worker->install(next); });
        }
        log_line(log_level::info, "reloaded " + next->config.file + " and " +
                                      std::to_string(next->config.rule_files.size()) + " rule file(s)");
    }

    // Stop accepting; idle connections close now, busy ones after their answer.
    void begin_stop() {
        if (stopping) {
            return;
        }
        stopping = true;
        boost::system::error_code ignored;
        acceptor->close(ignored);
        for (auto& guard : guards) {
            guard.reset();
        }
        for (std::size_t i = 0; i < workers.size(); ++i) {
            asio::post(*contexts[i], [worker = workers[i].get()] { worker->drain(); });
        }
        const auto timeout = state->config.server.drain_timeout;
        drain_deadline = std::make_unique<steady_timer>(*contexts[0], timeout);
        drain_deadline->async_wait([this, timeout](const boost::system::error_code& ec) {
            if (!ec) {
                log_line(log_level::warn, "drain_timeout (" + config::format_duration(timeout) +
                                              ") reached with requests still in flight: closing them");
                stop_now();
            }
        });
        if (open_sessions.load() == 0) {
            finish_stop();
        }
    }

    static void tick(deadline_anchor& anchor) {
        if (anchor.stopped) {
            return;
        }
        anchor.timer.expires_after(std::chrono::seconds(1));
        anchor.timer.async_wait([&anchor](const boost::system::error_code&) { tick(anchor); });
    }
    void start_anchors() {
        for (std::size_t i = 0; i < contexts.size(); ++i) {
            asio::post(*contexts[i], [anchor = anchors[i].get()] { tick(*anchor); });
        }
    }

    // Every session has ended: nothing keeps the io_contexts busy any more.
    void finish_stop() {
        if (!stopping || open_sessions.load() != 0) {
            return;
        }
        boost::system::error_code ignored;
        if (drain_deadline) {
            drain_deadline->cancel();
        }
        signals->cancel(ignored);
        // A Redis client (limits.backend, responses.store) keeps a read pending
        // on its worker's io_context, and an idle upstream connection may keep
        // its deadline's timer (wait_deadline.hpp): close them, or run()
        // never returns and SIGTERM ends in the supervisor's SIGKILL.
        for (std::size_t i = 0; i < workers.size(); ++i) {
            asio::post(*contexts[i], [worker = workers[i].get(), anchor = anchors[i].get(), shared = limits.shared] {
                if (shared) {
                    worker->limiter_client.reset();
                }
                worker->store = store::io::store_client();
                worker->pool.close_idle();
                anchor->stopped = true;
                anchor->timer.cancel();
            });
        }
    }

    void stop_now() {
        for (auto& context : contexts) {
            context->stop();
        }
    }
};

server::server(std::shared_ptr<const runtime_state> state, reloader reload)
    : impl_(std::make_unique<impl>(std::move(state), std::move(reload))) {}

server::~server() = default;

std::string server::bind() {
    const auto& config = impl_->state->config;
    boost::system::error_code ec;
    auto address = asio::ip::make_address(config.listen_host, ec);
    if (ec) {
        tcp_resolver resolver(*impl_->contexts[0]);
        auto results = resolver.resolve(config.listen_host, std::to_string(config.listen_port));
        address = results.begin()->endpoint().address();
    }
    const tcp::endpoint endpoint(address, config.listen_port);
    auto acceptor = std::make_unique<tcp_acceptor>(*impl_->contexts[0]);
    acceptor->open(endpoint.protocol());
    acceptor->set_option(asio::socket_base::reuse_address(true));
    acceptor->bind(endpoint);
    acceptor->listen(asio::socket_base::max_listen_connections);
    impl_->acceptor = std::move(acceptor);
    const auto bound = impl_->acceptor->local_endpoint();
    const auto host = bound.address().to_string();
    return (bound.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(bound.port());
}

void server::run() {
    auto& first = *impl_->contexts[0];
    impl_->wait_for_signal();
    impl_->start_anchors();
    asio::co_spawn(first, impl_->accept_loop(), asio::detached);

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < impl_->contexts.size(); ++i) {
        threads.emplace_back([context = impl_->contexts[i].get()] { context->run(); });
    }
    first.run();
    for (auto& thread : threads) {
        thread.join();
    }
}

void server::stop() {
    asio::post(*impl_->contexts[0], [this] { impl_->begin_stop(); });
}

}  // namespace mistral_proxy::http
