#include "http/server.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "http/downstream_session.hpp"
#include "log/log.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

struct server::impl {
    std::shared_ptr<const runtime_state> state;
    tls_contexts tls;
    // One io_context per worker thread, each running alone: a connection lives
    // on one thread for its whole life, so sessions and pools need no locks.
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    std::vector<std::unique_ptr<worker_context>> workers;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::unique_ptr<asio::signal_set> signals;
    std::size_t next_worker = 0;  // only touched by the accept loop

    explicit impl(std::shared_ptr<const runtime_state> s) : state(std::move(s)), tls(state->config) {
        auto threads = state->config.server.threads;
        if (threads == 0) {
            threads = std::max(1u, std::thread::hardware_concurrency());
        }
        for (unsigned i = 0; i < threads; ++i) {
            contexts.push_back(std::make_unique<asio::io_context>(1));
            workers.push_back(std::make_unique<worker_context>(
                worker_context{state, upstream_pool(*contexts.back(), state->config, tls)}));
            guards.push_back(asio::make_work_guard(*contexts.back()));
        }
    }

    awaitable<void> accept_loop() {
        for (;;) {
            const auto index = next_worker++ % workers.size();
            auto [ec, socket] = co_await acceptor->async_accept(*contexts[index], as_result);
            if (ec == asio::error::operation_aborted) {
                co_return;
            }
            if (ec) {
                // Out of descriptors and the like: say so, breathe, keep serving.
                log_line(log_level::error, "accept failed: " + ec.message());
                asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(50));
                co_await pause.async_wait(as_result);
                continue;
            }
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

    void stop() {
        asio::post(*contexts[0], [this] {
            boost::system::error_code ignored;
            if (acceptor) {
                acceptor->close(ignored);
            }
            if (signals) {
                signals->cancel(ignored);
            }
            for (auto& context : contexts) {
                context->stop();
            }
        });
    }
};

server::server(std::shared_ptr<const runtime_state> state) : impl_(std::make_unique<impl>(std::move(state))) {}

server::~server() = default;

std::string server::bind() {
    const auto& config = impl_->state->config;
    boost::system::error_code ec;
    auto address = asio::ip::make_address(config.listen_host, ec);
    if (ec) {
        tcp::resolver resolver(*impl_->contexts[0]);
        auto results = resolver.resolve(config.listen_host, std::to_string(config.listen_port));
        address = results.begin()->endpoint().address();
    }
    const tcp::endpoint endpoint(address, config.listen_port);
    auto acceptor = std::make_unique<tcp::acceptor>(*impl_->contexts[0]);
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
    impl_->signals = std::make_unique<asio::signal_set>(first, SIGINT, SIGTERM);
    impl_->signals->async_wait([this](const boost::system::error_code& ec, int signal_number) {
        if (!ec) {
            log_line(log_level::info, "signal " + std::to_string(signal_number) + ": stopping");
            impl_->stop();
        }
    });
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

void server::stop() { impl_->stop(); }

}  // namespace mistral_proxy::http
