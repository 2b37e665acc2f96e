// The upstream exchange of a whole-body request (upstream_exchange.hpp), the
// session's answer to what it returns, and the exchange's I/O helpers the
// session shares: the circuit breaker's refusal, watching the client while
// waiting, reading an answer's head past 1xx, giving connections back.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/upstream_exchange.hpp"
#include "limits/retry.hpp"
#include "log/log.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

exchange_result downstream_session::open_breaker_refusal(const request_context& context,
                                                        routing::upstream_id upstream,
                                                        limits::time_point retry_at) const {
    const auto now = limits::clock::now();
    const auto wait = limits::ceil_ms(retry_at - now);
    const auto name = routing::upstream_name(upstream);
    exchange_result result;
    result.what = exchange_result::outcome::refused;
    result.error = errors::make_error(
        503,
        "upstream " + std::string(name) + " is failing " +
            (context.model_sent.empty() ? std::string("for passthrough requests")
                                        : "for model '" + context.model_sent + "'") +
            " (circuit breaker open after " + std::to_string(worker_.breakers.settings().failures) +
            " consecutive failures); it will be tried again in " + config::format_duration(wait) + ", at " +
            limits::format_utc(retry_at),
        "upstream_circuit_open");
    result.headers = limits::client_retry_headers(wait, true);
    return result;
}

awaitable<bool> downstream_session::refuse_open_breaker(request_context& context, routing::upstream_id upstream,
                                                        limits::time_point retry_at) {
    co_return co_await answer_refusal(context, open_breaker_refusal(context, upstream, retry_at));
}

awaitable<bool> downstream_session::answer_refusal(request_context& context, const exchange_result& refusal) {
    context.upstream_refused = true;
    co_return co_await send_error(context, *refusal.error, context.client_keep_alive, &refusal.headers);
}

void downstream_session::note_try_outcome(routing::upstream_id upstream, std::string_view model, bool failed) {
    const auto index = static_cast<std::size_t>(upstream);
    const auto now = coarse_system_now();  // a breaker's times are seconds
    const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    if (failed) {
        if (worker_.breakers.on_failure(index, model, now)) {
            worker_.metrics.breaker_opened_ns[index].store(now_ns, std::memory_order_relaxed);
            log_line(log_level::warn, "upstream " + std::string(routing::upstream_name(upstream)) + ", model '" +
                                          std::string(model) + "': circuit breaker open for " +
                                          config::format_duration(worker_.breakers.settings().cooldown));
        }
    } else {
        worker_.breakers.on_success(index, model, now);
        worker_.metrics.upstream_ok_ns[index].store(now_ns, std::memory_order_relaxed);
    }
    worker_.metrics.breakers_open[index].store(static_cast<std::int64_t>(worker_.breakers.tripped(index)),
                                               std::memory_order_relaxed);
}

awaitable<bool> downstream_session::exchange_buffered(request_context& context, routing::upstream_id upstream,
                                                      upstream_request& request,
                                                      const answer_plan& plan, bool* fall_back) {
    std::optional<response_parser> parser;
    auto result = co_await upstream_exchange(*this, context, upstream).run(request, fall_back != nullptr, parser);
    switch (result.what) {
        case exchange_result::outcome::answer:
            co_return co_await relay_response(*result.connection, result.connection, *parser, context, plan);
        case exchange_result::outcome::refused:
            co_return co_await answer_refusal(context, result);
        case exchange_result::outcome::fall_back:
            *fall_back = true;
            co_return true;
        case exchange_result::outcome::switch_key:
            context.switch_key = true;
            co_return true;
        case exchange_result::outcome::client_gone:
            break;
    }
    co_return false;
}

awaitable<bool> upstream_exchange::wait_before_retry(limits::milliseconds delay, metrics::retry_cause cause) {
    auto& worker = session_.worker_;
    ++context_.retries;
    metrics::shard::add(worker.metrics.retries[index_][static_cast<std::size_t>(cause)]);
    auto ready = limits::clock::now() + delay;
    if (context_.reservation) {
        ready = co_await session_.limits_retry(*context_.reservation, delay);
    }
    co_return co_await session_.wait_watching_client(ready);
}

// A new connection into `connection`, or why there is none into `failure`:
// in a frame of its own, since its result is large and most requests reuse
// a pooled connection.
awaitable<void> upstream_exchange::connect(connection_ptr& connection, std::optional<errors::openai_error>& failure) {
    auto acquired = co_await session_.worker_.pool.connect(upstream_);
    connection = std::move(acquired.connection);
    failure = std::move(acquired.error);
}

// What the socket did not take at once, in a frame of its own (a rare path).
awaitable<boost::system::error_code> upstream_exchange::write_rest(upstream_connection& connection,
                                                                   std::array<asio::const_buffer, 2> pieces,
                                                                   std::size_t sent, config::duration timeout) {
    beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(pieces);
    rest.consume(sent);
    connection.begin_wait(timeout);
    auto [ec, written] =
        co_await connection.visit([&](auto& stream) { return asio::async_write(stream, rest, as_result); });
    connection.end_wait(ec);
    co_return ec;
}

awaitable<exchange_result> upstream_exchange::run(upstream_request& request,
                                                  bool may_fall_back, std::optional<response_parser>& parser) {
    using outcome_kind = exchange_result::outcome;
    auto& worker = session_.worker_;
    const auto& settings = worker.pool.settings(upstream_);
    // Where, for a failure's message only: not built for every request.
    const auto endpoint = [&] { return worker.pool.endpoint_text(upstream_); };
    const auto& schedule = session_.state_->retry;
    unsigned tries = 0;
    bool fresh_connection = false;

    // A probe the breaker let through that ends without an outcome (the client
    // went away) frees the half-open slot for the next request.
    struct probe_guard {
        limits::breaker_board& board;
        std::size_t upstream;
        std::string_view model;
        bool pending = false;
        ~probe_guard() {
            if (pending) {
                board.on_abandoned(upstream, model);
            }
        }
    } probe{worker.breakers, index_, context_.model_sent};
    auto outcome = [&](bool failed) {
        probe.pending = false;
        session_.note_try_outcome(upstream_, context_.model_sent, failed);
    };

    for (;;) {
        ++tries;
        if (!fresh_connection) {
            const auto admission = worker.breakers.admit(index_, context_.model_sent, coarse_system_now());
            if (!admission.allowed) {
                co_return session_.open_breaker_refusal(context_, upstream_, admission.retry_at);
            }
            probe.pending = admission.probe;
        }
        std::optional<errors::openai_error> failure;  // the try got no HTTP answer at all
        connection_ptr connection = worker.pool.take_idle(upstream_, fresh_connection);
        if (!connection) {
            co_await connect(connection, failure);
        }
        fresh_connection = false;
        if (!failure) {
            const auto sent_at = std::chrono::steady_clock::now();
            // Sent at once when the socket takes it all (a connection with
            // room: nearly always), else the rest asynchronously.
            format_upstream_head(request, session_.head_);
            boost::system::error_code ec;
            const auto pieces = upstream_request_pieces(request, session_.head_);
            const std::size_t sent = connection->plain() ? write_at_once(connection->tcp().socket(), pieces, ec)
                                                         : connection->tls()->write_at_once(pieces, ec);
            if (!ec && sent < session_.head_.size() + request.body.size()) {
                ec = co_await write_rest(*connection, pieces, sent, settings.read_timeout);
            }
            parser.reset();
            bool client_gone = false;
            if (!ec) {
                ec = co_await session_.read_upstream_header(*connection, parser, false, settings.read_timeout,
                                                            client_gone);
            }
            if (client_gone) {
                connection->abort();
                co_return with(outcome_kind::client_gone);
            }
            // Closed before any byte of an answer: what a kept-alive connection
            // the server closed just as it was taken looks like (not garbage, not a timeout).
            const bool closed_unused = ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                                       ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                                       ec == ssl::error::stream_truncated;
            if (closed_unused && connection->reused()) {
                // A kept-alive connection the server closed just as it was taken:
                // the body is still here, so try again on a new one, for free.
                connection->abort();
                fresh_connection = true;
                --tries;
                continue;
            }
            if (ec) {
                connection->abort();
                failure = ec == beast::error::timeout
                              ? upstream_failure(routing::upstream_name(upstream_), endpoint(),
                                                 "no answer within " + config::format_duration(settings.read_timeout) +
                                                     " (read_timeout)",
                                                 ec)
                          : (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                             ec == asio::error::connection_reset || ec == ssl::error::stream_truncated)
                              ? upstream_failure(routing::upstream_name(upstream_), endpoint(), "closed the connection before answering", ec)
                              : upstream_failure(routing::upstream_name(upstream_), endpoint(), "sent an invalid HTTP answer", ec);
            } else {
                worker.metrics.upstream_latency.observe(std::chrono::steady_clock::now() - sent_at);
                const auto status = parser->get().result_int();
                outcome(status >= 500 || status == 429);
                if (status == 401 && co_await session_.take_key_out(context_, upstream_)) {
                    // A key pool's key Mistral refused: the request goes again on another.
                    co_await session_.discard_refusal(upstream_, connection, *parser);
                    co_return with(outcome_kind::switch_key);
                }
                if (may_fall_back && session_.state_->rules->falls_back_on(status)) {
                    co_await session_.discard_refusal(upstream_, connection, *parser);
                    log_line(log_level::info, "request " + context_.id + ": upstream " + std::string(routing::upstream_name(upstream_)) +
                                                  " answered " + std::to_string(status) + " for model " +
                                                  context_.model_sent);
                    co_return with(outcome_kind::fall_back);
                }
                if (limits::is_retryable_status(status)) {
                    const auto wish = limits::upstream_retry_after(limit_headers_of(parser->get().base()), limits::clock::now());
                    const auto decision = schedule.after_failure(tries, true, wish);
                    if (decision.retry) {
                        co_await session_.discard_refusal(upstream_, connection, *parser);
                        log_line(log_level::info, "request " + context_.id + ": upstream " + std::string(routing::upstream_name(upstream_)) +
                                                      " answered " + std::to_string(status) + ", retry " +
                                                      std::to_string(tries) + " in " +
                                                      config::format_duration(decision.delay));
                        if (!co_await wait_before_retry(decision.delay, status == 429 ? metrics::retry_cause::status_429
                                                                                      : metrics::retry_cause::status_5xx)) {
                            co_return with(outcome_kind::client_gone);
                        }
                        continue;
                    }
                }
                co_return answered(std::move(connection));
            }
        }

        metrics::shard::add(worker.metrics.upstream_failures[index_]);
        if (failure->code != "upstream_connections_exhausted") {
            outcome(true);
        } else if (probe.pending) {  // the proxy's own limit says nothing of the upstream's health
            worker.breakers.on_abandoned(index_, context_.model_sent);
            probe.pending = false;
        }
        if (may_fall_back && failure->code != "upstream_connections_exhausted") {
            log_line(log_level::info, "request " + context_.id + ": " + failure->message);
            co_return with(outcome_kind::fall_back);
        }
        const auto decision = schedule.after_failure(tries, true, std::nullopt);
        if (decision.retry) {
            log_line(log_level::info, "request " + context_.id + ": " + failure->message + "; retry " +
                                          std::to_string(tries) + " in " + config::format_duration(decision.delay));
            if (!co_await wait_before_retry(decision.delay, metrics::retry_cause::connect_error)) {
                co_return with(outcome_kind::client_gone);
            }
            continue;
        }
        session_.log_failure(context_, *failure);
        co_return refused(std::move(failure),
                          limits::client_retry_headers(schedule.client_retry_after(std::nullopt), true));
    }
}

// ---------------------------------------------------------------- watching the client

// The watch read's completion handler. Destroyed without having run (its
// worker's io_context destroyed with the read pending), it lets go of the
// coroutine waiting on the read: that coroutine holds the session, which
// holds this state, a cycle nothing else would break.
struct downstream_session::client_watch_completion {
    std::shared_ptr<client_watch_state> watch;
    io_executor executor;  // the session's

    client_watch_completion(std::shared_ptr<client_watch_state> w, io_executor e)
        : watch(std::move(w)), executor(std::move(e)) {}
    client_watch_completion(client_watch_completion&&) noexcept = default;
    client_watch_completion& operator=(client_watch_completion&&) = delete;
    ~client_watch_completion() {
        if (watch) {
            watch->resume = nullptr;
        }
    }

    void operator()(const boost::system::error_code& ec, std::size_t n) {
        const auto state = std::move(watch);
        state->pending = false;
        state->bytes = n;
        state->aborted = ec == asio::error::operation_aborted;
        if (n == 0 && !state->aborted) {
            state->gone = true;
            if (state->connection != nullptr) {
                state->connection->abort();  // the upstream read ends at once
            }
        }
        if (state->waiter != nullptr) {
            state->waiter->cancel();
        }
        if (state->resume) {
            go_on(*state);
        }
    }

    // settle_client_watch goes on. When every session of the worker is between
    // requests (one client, or a quiet moment), at once, here: posting it would
    // make the worker poll epoll once more before running it, a system call a
    // request at c=1. Otherwise posted, behind what the worker's last poll
    // brought: the requests that came together are all read before any is sent
    // upstream, so the upstream (and the clients) are woken once for a burst, not
    // once a request. Run at once at c=32, each request's forwarding went out
    // between the next request's reads, and the proxy's kernel time (the wake-ups
    // each send pays) rose by about 2 µs a request (utime+stime from /proc,
    // alternated builds; bench/README.md).
    void go_on(client_watch_state& state) {
        auto resume = std::move(state.resume);
        const auto& worker = *state.worker;
        if (worker.sessions_between_requests == worker.sessions.size()) {
            std::move(resume)();
            return;
        }
        asio::post(executor, [resume = std::move(resume)]() mutable { std::move(resume)(); });
    }
};

void downstream_session::start_client_watch(upstream_connection* connection) {
    static constexpr std::size_t watch_read_bytes = 4096;
    auto& state = *client_watch_;
    state.connection = connection;
    if (state.pending) {
        return;  // the read in flight since an earlier wait watches for this one too
    }
    if (state.bytes > 0) {
        // A pipelined next request: its first bytes, kept for the next parse.
        buffer_.commit(state.bytes);
        state.bytes = 0;
    }
    state.pending = true;
    state.gone = false;
    state.aborted = false;
    // The handler holds the state, not the session: it may run after the
    // session ended (its socket closed, the read aborted).
    client_.socket().async_read_some(
        buffer_.prepare(watch_read_bytes),
        asio::bind_cancellation_slot(state.cancel.slot(),
                                     client_watch_completion(client_watch_, client_.get_executor())));
}

void downstream_session::stop_client_watch() noexcept { client_watch_->connection = nullptr; }

awaitable<bool> downstream_session::settle_client_watch(std::chrono::steady_clock::time_point deadline) {
    auto& state = *client_watch_;
    state.connection = nullptr;
    if (state.pending) {
        const auto now = coarse_steady_now();  // the deadline is one too
        if (deadline <= now) {
            state.cancel.emit(asio::cancellation_type::terminal);  // the read must not touch buffer_ now
        } else {
            if (!idle_deadline_) {
                idle_deadline_ = std::make_shared<wait_deadline>(
                    client_.get_executor(),
                    [](void* owner) {
                        auto& watch = *static_cast<client_watch_state*>(owner);
                        if (watch.pending) {
                            watch.cancel.emit(asio::cancellation_type::terminal);  // no byte before the deadline
                        }
                    },
                    &state);
            }
            idle_deadline_->begin(deadline - now);
        }
        ++worker_.sessions_between_requests;
        co_await asio::async_initiate<decltype(as_result), void()>(
            [&state](auto resume) {
                // Not a move-assignment: Boost 1.81's recurses without end (it
                // wraps the handler it is given in another, and again).
                asio::any_completion_handler<void()>(std::move(resume)).swap(state.resume);
            },
            as_result);
        --worker_.sessions_between_requests;
        if (idle_deadline_) {
            idle_deadline_->end();
        }
    }
    const bool got_bytes = state.bytes > 0;
    if (got_bytes) {
        buffer_.commit(state.bytes);
        state.bytes = 0;
    }
    co_return got_bytes || (!state.gone && !state.aborted);
}

downstream_session::~downstream_session() {
    if (idle_deadline_) {
        idle_deadline_->stop();  // its timer would otherwise hold the worker up to the idle timeout
    }
}

awaitable<boost::system::error_code> downstream_session::read_upstream_header(
    upstream_connection& connection, std::optional<response_parser>& parser, bool head_request,
    config::duration timeout, bool& client_gone) {
    start_client_watch(&connection);
    boost::system::error_code result = bhttp::error::bad_status;
    // A few interim answers are fine; an endless run of them is not an answer.
    for (int interim = 0; interim < 8; ++interim) {
        // Each head gets a new parser, read to the end of its head only: an
        // interim answer is then dropped whole, and a final one's body is
        // read by the caller from that parser.
        auto& head = parser.emplace();
        head.header_limit(upstream_header_limit);
        head.body_limit(boost::none);
        head.skip(head_request);
        // Beast's async_read_header, without its three nested composed
        // operations around each read: what the buffer holds is parsed first
        // (the rest of an earlier read, an answer after an interim one), then
        // each read as it comes, with Beast's end-of-input rules (parse_read).
        boost::system::error_code ec;
        auto& buffer = connection.read_buffer();
        connection.begin_wait(timeout);
        while (!parse_buffered(head, buffer, parse_part::head, ec)) {
            const std::size_t room = beast::read_size(buffer, 65536);
            if (room == 0) {
                ec = bhttp::error::buffer_overflow;
                break;
            }
            auto [read_ec, n] = co_await connection.read_some(buffer.prepare(room));
            buffer.commit(n);
            if (parse_read(head, buffer, read_ec, parse_part::head, ec)) {
                break;
            }
        }
        connection.end_wait(ec);
        if (ec) {
            result = ec;
            break;
        }
        const auto status = head.get().result_int();
        if (status == 101) {
            result = bhttp::error::bad_status;
            break;
        }
        if (status >= 100 && status < 200) {
            continue;
        }
        result = {};
        break;
    }
    if (result) {
        parser.reset();  // only a final answer's head leaves a parser behind
    }
    stop_client_watch();
    if (client_watch_->gone) {
        client_gone = true;
        co_return asio::error::operation_aborted;
    }
    co_return result;
}

awaitable<void> downstream_session::discard_refusal(routing::upstream_id upstream, connection_ptr& owned,
                                                    response_parser& parser) {
    padded_body discarded;
    bool complete = false;
    const auto read_ec = co_await read_rest(*owned, parser, discarded, max_error_body_bytes, complete);
    if (read_ec || !complete) {
        owned->abort();
    }
    release_or_close(upstream, owned, parser);
}

void downstream_session::release_or_close(routing::upstream_id upstream, connection_ptr& owned,
                                          const response_parser& parser) {
    if (!owned) {
        return;
    }
    worker_.pool.release(upstream, std::move(owned), parser.is_done() && parser.keep_alive());
}

awaitable<void> downstream_session::finish_upstream_body(upstream_connection& connection, response_parser& parser) {
    // Bounded in time and bytes: a client waits on this before its next request.
    static constexpr std::size_t max_discarded = 64 * 1024;
    std::size_t discarded = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!parser.is_done() && discarded < max_discarded) {
        const auto left = until - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
            connection.abort();
            co_return;
        }
        char* chunk = relay_buffer();
        parser.get().body().data = chunk;
        parser.get().body().size = relay_buffer_bytes;
        connection.begin_wait(left);
        auto [ec, n] = co_await connection.visit(
            [&](auto& stream) { return bhttp::async_read_some(stream, connection.read_buffer(), parser, as_result); });
        connection.end_wait(ec);
        discarded += relay_buffer_bytes - parser.get().body().size;
        if (ec && ec != bhttp::error::need_buffer) {
            connection.abort();
            co_return;
        }
    }
}

}  // namespace mistral_proxy::http
