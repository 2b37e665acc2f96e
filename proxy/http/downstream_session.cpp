// The request side of a client connection: the HTTP/1.1 keep-alive loop, local
// answers, reading and normalizing request bodies, routing, keys, the rate
// limiter and the retries of SPEC §8. The answer itself is response_relay.cpp.
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/session.hpp"
#include "limits/estimate.hpp"
#include "limits/retry.hpp"
#include "log/access_log.hpp"
#include "log/log.hpp"
#include "normalize/normalizer.hpp"
#include "responses/embeddings.hpp"
#include "responses/legacy_completions.hpp"
#include "routing/keys.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

namespace {

using namespace std::chrono_literals;
using logging::log_level;
using logging::log_line;

errors::openai_error local_rate_limit_error(const limits::refusal& refusal) {
    return errors::make_error(429, refusal.message, std::string(limits::to_string(refusal.limit)));
}

metrics::local_limit metric_of(limits::limit_kind kind) {
    switch (kind) {
        case limits::limit_kind::requests_per_second:
            return metrics::local_limit::requests_per_second;
        case limits::limit_kind::tokens_per_minute:
            return metrics::local_limit::tokens_per_minute;
        case limits::limit_kind::tokens_per_month:
            return metrics::local_limit::tokens_per_month;
    }
    return metrics::local_limit::requests_per_second;
}

}  // namespace

// ---------------------------------------------------------------- shared bits

// A client too slow with its request: the stream's timer has already closed the
// connection (as nginx does), so there is no one to answer; the access log and
// the metrics still record it as a 408.
void downstream_session::note_client_timeout(request_context& context, std::string message) {
    context.status = 408;
    context.error_message = std::move(message);
    log_line(log_level::info, "request " + context.id + ": " + context.error_message + ", connection closed");
}

void downstream_session::set_proxy_fields(bhttp::fields& fields, const request_context& context) const {
    fields.set("x-request-id", context.id);
    if (context.upstream) {
        fields.set("x-mistral-proxy-upstream", routing::upstream_name(*context.upstream));
    }
    fields.set("x-mistral-proxy-rules", context.rules);
    if (!context.fallback.empty()) {
        fields.set("x-mistral-proxy-fallback", context.fallback);
    }
}

std::string downstream_session::upstream_target(routing::upstream_id upstream, std::string_view path_after_v1,
                                                std::string_view query) const {
    // The client's "/v1" prefix is replaced by the upstream's own base path.
    std::string target = worker_.pool.settings(upstream).base_path;
    target.append(path_after_v1);
    target.append(query);
    return target;
}

void downstream_session::log_failure(const request_context& context, const errors::openai_error& error) const {
    log_line(log_level::warn, "request " + context.id + " " + std::string(context.method) + " " + context.path +
                                  " -> " + std::to_string(error.status) + ": " + error.message);
}

void downstream_session::finish(request_context& context) {
    const auto elapsed = std::chrono::steady_clock::now() - context.started;
    auto& metrics = worker_.metrics;
    const auto upstream_label = context.upstream ? static_cast<std::size_t>(*context.upstream) : metrics::no_upstream;
    // A client gone before any answer is counted as 499, as nginx does.
    const unsigned status = context.status == 0 ? 499 : context.status;
    metrics.count_request(context.endpoint->label, upstream_label, status);
    metrics.count_rules(context.rules);
    metrics::shard::add(metrics.bytes_received, context.bytes_received);
    metrics::shard::add(metrics.bytes_sent, context.bytes_sent);
    metrics.request_duration.observe(elapsed);

    const auto& log = *state_->access_log;
    if (!log.enabled()) {
        return;
    }
    logging::access_record record;
    record.request_id = context.id;
    record.method = context.method;
    record.path = context.path;
    record.model_requested = context.model_requested;
    record.model_sent = context.model_sent;
    record.upstream = context.upstream ? routing::upstream_name(*context.upstream) : std::string_view{};
    record.status = status;
    record.duration_ms = std::chrono::duration<double, std::milli>(elapsed).count();
    record.bytes_received = context.bytes_received;
    record.bytes_sent = context.bytes_sent;
    record.rules = context.rules;
    record.fallback = context.fallback;
    record.retries = context.retries;
    record.stream = context.stream;
    if (context.usage) {
        record.prompt_tokens = static_cast<std::int64_t>(context.usage->prompt_tokens);
        record.completion_tokens = static_cast<std::int64_t>(context.usage->completion_tokens);
    }
    record.error = context.error_message;
    log.write(record);
}

awaitable<bool> downstream_session::send_json(request_context& context, unsigned status, std::string body,
                                              bool keep_alive, const limits::header_list* extra_headers,
                                              std::string_view content_type) {
    bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(status), 11};
    if (extra_headers != nullptr) {
        for (const auto& [name, value] : *extra_headers) {
            response.set(name, value);
        }
    }
    context.status = status;
    context.bytes_sent = body.size();
    keep_alive = keep_alive && !worker_.draining;
    response.set(bhttp::field::content_type, content_type);
    set_proxy_fields(response.base(), context);
    response.body() = std::move(body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    client_.expires_after(server_settings().write_timeout);
    auto [ec, written] = co_await bhttp::async_write(client_, response, as_result);
    co_return !ec && keep_alive;
}

awaitable<void> downstream_session::send_continue_if_expected(const request_parser& parser) {
    if (iequals(parser.get()[bhttp::field::expect], "100-continue")) {
        static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
        client_.expires_after(server_settings().write_timeout);
        co_await asio::async_write(client_, asio::buffer(interim.data(), interim.size()), as_result);
    }
}

// After refusing a body that is still arriving: closing at once would reset the
// connection and the client could lose the answer before reading it. Stop
// sending, then discard what arrives for a short, bounded time.
// Bounded as nginx's lingering close is: each read within 1 s, 5 s and 64 MB
// in all. A client still pushing a large body when the socket closes would
// get a reset, and a reset can destroy the answer before the client reads it.
awaitable<void> downstream_session::linger_and_close() {
    boost::system::error_code ignored;
    client_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    const auto until = std::chrono::steady_clock::now() + 5s;
    std::size_t discarded = 0;
    while (discarded < 64 * 1024 * 1024 && std::chrono::steady_clock::now() < until) {
        client_.expires_after(1s);
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(relay_buffer(), relay_buffer_bytes), as_result);
        if (ec) {
            break;
        }
        discarded += n;
    }
    client_.close();
}

awaitable<bool> downstream_session::refuse_malformed(request_context& context, const boost::system::error_code& ec) {
    co_await send_error(context, errors::make_error(400, "malformed HTTP request body: " + ec.message(), "malformed_request"),
                        false);
    co_await linger_and_close();
    co_return false;
}

// ---------------------------------------------------------------- connection loop

awaitable<void> downstream_session::run() {
    boost::system::error_code ignored;
    client_.socket().set_option(tcp::no_delay(true), ignored);
    worker_.sessions.push_front(session_slot{&client_.socket(), true});
    const auto slot = worker_.sessions.begin();
    metrics::shard::add(worker_.metrics.open_connections, 1);
    bool first_request = true;
    for (;;) {
        if (buffer_.size() == 0) {
            if (worker_.draining) {
                break;
            }
            // Waiting for a request to start: a new connection gets the header
            // timeout, a kept-alive one the (longer) idle timeout. A drain
            // cancels this wait.
            slot->idle = true;
            client_.expires_after(first_request ? server_settings().header_timeout : server_settings().idle_timeout);
            auto [ec, n] = co_await client_.async_read_some(buffer_.prepare(4096), as_result);
            slot->idle = false;
            if (ec) {
                break;
            }
            buffer_.commit(n);
        }
        slot->idle = false;
        state_ = worker_.state;
        request_parser parser;
        parser.header_limit(static_cast<std::uint32_t>(server_settings().max_header_bytes));
        parser.body_limit(boost::none);  // checked by the proxy itself, to answer 413 in OpenAI shape
        client_.expires_after(server_settings().header_timeout);
        auto [ec, n] = co_await bhttp::async_read_header(client_, buffer_, parser, as_result);
        if (ec) {
            request_context context;
            context.id = new_request_id();
            context.method = "-";
            context.path = "-";
            context.client_keep_alive = false;
            if (ec == bhttp::error::header_limit) {
                co_await send_error(context,
                                    errors::make_error(431, "request headers exceed the limit of " +
                                                                std::to_string(server_settings().max_header_bytes) +
                                                                " bytes (server.max_header_bytes)"),
                                    false);
            } else if (ec == beast::error::timeout) {
                note_client_timeout(context, "request headers not received within " +
                                                 config::format_duration(server_settings().header_timeout) +
                                                 " (server.header_timeout)");
            } else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
                       ec != asio::error::connection_reset) {
                co_await send_error(context, errors::make_error(400, "malformed HTTP request: " + ec.message(), "malformed_request"),
                                    false);
            }
            if (context.status != 0) {
                finish(context);
            }
            break;
        }
        const bool keep_alive = co_await handle(parser);
        if (!keep_alive) {
            break;
        }
        first_request = false;
    }
    client_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    client_.close();
    metrics::shard::add(worker_.metrics.open_connections, -1);
    worker_.sessions.erase(slot);
    if (worker_.sessions.empty()) {
        worker_.return_memory_when_idle();
    }
    if (worker_.open_sessions != nullptr && worker_.open_sessions->fetch_sub(1) == 1 &&
        worker_.on_last_session_closed) {
        worker_.on_last_session_closed();
    }
}

awaitable<bool> downstream_session::handle(request_parser& parser) {
    const auto target = std::string_view(parser.get().target());
    request_context context;
    context.id = new_request_id();
    context.method = parser.get().method_string();
    auto canonical = routing::canonical_path(target.substr(0, target.find('?')));
    context.path = std::move(canonical.path);
    context.path_refusal = std::move(canonical.error);
    if (context.path_refusal.empty()) {
        context.endpoint = &routing::find_endpoint(context.method, context.path);
    }
    context.client_keep_alive = parser.get().keep_alive() && !worker_.draining;
    const bool keep_alive = co_await handle_request(parser, context);
    if (context.reservation) {
        co_await limits_settle(context);
    }
    finish(context);
    co_return keep_alive && !worker_.draining;
}

awaitable<bool> downstream_session::handle_request(request_parser& parser, request_context& context) {
    auto& request = parser.get();
    // Without the body read, the connection cannot carry another request.
    const bool can_reuse = parser.is_done() && context.client_keep_alive;

    // Framing first: with a body whose end the proxy cannot tell, nothing on
    // this connection can be trusted any more (the rest could be read as a request).
    if (const auto why = framing_error(request.base()); !why.empty()) {
        co_await send_error(context, errors::make_error(400, "malformed HTTP request: " + why, "malformed_request"),
                            false);
        co_return false;
    }
    if (!context.path_refusal.empty()) {
        co_return co_await send_error(
            context,
            routing::refused_path_error(request.target().substr(0, request.target().find('?')), context.path_refusal),
            can_reuse);
    }
    const auto& endpoint = *context.endpoint;
    if (endpoint.kind == routing::endpoint_kind::healthz) {
        co_return co_await send_json(context, 200, R"({"status":"ok"})", can_reuse);
    }
    if (endpoint.kind == routing::endpoint_kind::readyz) {
        // Ready when one upstream requests can be routed to has a usable key and
        // is not tripped (a breaker open and no success since, on every worker).
        const auto main = state_->config.region == config::region_kind::eu ? routing::upstream_id::mistral_eu
                                                                           : routing::upstream_id::mistral;
        std::string down;
        bool ready = false;
        for (const auto upstream : {main, routing::upstream_id::codestral}) {
            const auto name = routing::upstream_name(upstream);
            if (state_->keys.upstream_authorization(upstream, std::string_view("client")).error) {
                down += (down.empty() ? "" : ", ") + std::string(name) + " has no key";
            } else if (worker_.registry.upstream_tripped(static_cast<std::size_t>(upstream))) {
                down += (down.empty() ? "" : ", ") + std::string(name) + " has its circuit breaker open";
            } else {
                ready = true;
            }
        }
        if (ready) {
            co_return co_await send_json(context, 200, R"({"status":"ready"})", can_reuse);
        }
        co_return co_await send_error(
            context, errors::make_error(503, "not ready: no upstream can be used (" + down + ")", "not_ready"),
            can_reuse);
    }
    if (endpoint.kind == routing::endpoint_kind::response_object) {
        if (auto refusal = state_->keys.check_client(routing::bearer_token(request[bhttp::field::authorization]))) {
            co_return co_await send_error(context, *refusal, can_reuse);
        }
        const auto target = std::string_view(request.target());
        const auto query = target.substr(std::min(target.size(), target.find('?')));
        co_return co_await answer_response_object(context, context.method, query, can_reuse);
    }
    if (endpoint.kind == routing::endpoint_kind::metrics) {
        const auto extra = co_await month_usage_metrics();
        co_return co_await send_json(context, 200, worker_.registry.render(extra), can_reuse, nullptr,
                                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (endpoint.kind == routing::endpoint_kind::unknown) {
        co_return co_await send_error(context, routing::unknown_endpoint_error(context.method, context.path), can_reuse);
    }

    const auto bearer = routing::bearer_token(request[bhttp::field::authorization]);
    context.client_bearer = bearer;  // a view of the header: redacted from upstream errors (keys.hpp)
    if (auto refusal = state_->keys.check_client(bearer)) {
        co_return co_await send_error(context, *refusal, can_reuse);
    }

    const auto content_length = parser.content_length();
    if (content_length && *content_length > server_settings().max_body_bytes) {
        co_await send_error(context,
                            errors::make_error(413, "request body of " + std::to_string(*content_length) +
                                                        " bytes exceeds the limit of " +
                                                        std::to_string(server_settings().max_body_bytes) +
                                                        " bytes (server.max_body_bytes)"),
                            false);
        co_await linger_and_close();
        co_return false;
    }

    if (endpoint.body == routing::body_mode::buffered) {
        co_return co_await proxy_buffered(parser, context, bearer);
    }
    co_return co_await proxy_streamed(parser, context, bearer);
}

// ---------------------------------------------------------------- whole-body endpoints

awaitable<bool> downstream_session::proxy_buffered(request_parser& parser, request_context& context,
                                                   std::optional<std::string_view> bearer) {
    co_await send_continue_if_expected(parser);

    padded_body body;
    const auto content_length = parser.content_length();
    const auto max_body = server_settings().max_body_bytes;
    // Room for one byte past the limit is what reveals an oversized chunked body.
    const auto room_limit = max_body + 1;
    body.reserve(content_length ? static_cast<std::size_t>(*content_length)
                                : std::min<std::size_t>(16 * 1024, room_limit));
    // One deadline for the whole body: a client that trickles it is cut off.
    client_.expires_after(server_settings().body_timeout);
    while (!parser.is_done()) {
        if (body.free_bytes() == 0) {
            body.reserve(std::min(room_limit, std::max<std::size_t>(body.size() * 2, 16 * 1024)));
        }
        parser.get().body().data = body.free_space();
        parser.get().body().size = body.free_bytes();
        const auto offered = body.free_bytes();
        auto [ec, n] = co_await bhttp::async_read(client_, buffer_, parser, as_result);
        body.commit(offered - parser.get().body().size);
        if (body.size() > max_body) {
            co_await send_error(context,
                                errors::make_error(413, "request body exceeds the limit of " + std::to_string(max_body) +
                                                            " bytes (server.max_body_bytes)"),
                                false);
            co_await linger_and_close();
            co_return false;
        }
        if (ec == bhttp::error::need_buffer) {
            continue;
        }
        if (ec == beast::error::timeout) {
            note_client_timeout(context, "request body not received within " +
                                             config::format_duration(server_settings().body_timeout) +
                                             " (server.body_timeout)");
            co_return false;
        }
        if (is_malformed_http(ec)) {
            co_return co_await refuse_malformed(context, ec);
        }
        if (ec) {
            co_return false;  // the client went away mid-body: nobody to answer
        }
    }
    body.zero_padding();
    context.bytes_received = body.size();
    const auto body_ready = std::chrono::steady_clock::now();

    // POST /v1/responses continues a stored conversation: read it first.
    std::vector<std::pair<std::string, std::string>> stored_items;
    openai_responses::history history;
    const bool responses_api = context.endpoint->kind == routing::endpoint_kind::responses;
    if (responses_api) {
        if (!co_await load_responses_history(context, body.view(), stored_items)) {
            co_return context.client_keep_alive;
        }
        history.previous_items = context.responses_previous;
        history.find_item = [&stored_items](std::string_view id) -> std::string_view {
            for (const auto& [known, json] : stored_items) {
                if (known == id) {
                    return json;
                }
            }
            return {};
        };
    }
    const auto history_of_request = responses_api ? &history : nullptr;

    // Plan (plan/request_plan.hpp): the same pure function explain calls.
    const plan::plan_inputs inputs{state_->config, *state_->rules, state_->model_aliases};
    auto planned = plan::plan_request(
        inputs, {*context.endpoint, context.path, body.view(), {}, history_of_request, &worker_.response_ids},
        worker_.plan_scratch);
    if (!planned.ok()) {
        co_return co_await send_error(context, *planned.error, context.client_keep_alive);
    }
    context.model_requested = std::string(planned.plan->model_requested);

    // SPEC §6 `fallback`: the models to re-plan for when the upstream fails
    // before any byte reached the client. Never from the EU host to another.
    const auto first_upstream = planned.plan->upstream;
    std::vector<std::string> fallbacks;
    if (state_->rules->enabled(rules::rule_id::fallback) &&
        !beast::iequals(parser.get()["x-mistral-proxy-fallback"], "off")) {
        fallbacks = state_->rules->fallback_chain(planned.plan->model_sent);
    }
    std::size_t next_fallback = 0;
    std::string first_model;
    const auto target = std::string_view(parser.get().target());
    const auto query = target.substr(std::min(target.size(), target.find('?')));

    for (;;) {
        const auto& out = *planned.plan;
        // The rewritten body lives in this worker's scratch, which the next request
        // planned on this thread reuses while this one waits for its limiter or
        // its connection: the request keeps its own copy (the client's body is
        // already its own).
        std::string own_body;
        std::string_view to_send = out.body;
        const auto client_bytes = body.view();
        if (!std::less_equal<const char*>{}(client_bytes.data(), to_send.data()) ||
            !std::less_equal<const char*>{}(to_send.data() + to_send.size(),
                                            client_bytes.data() + client_bytes.size())) {
            own_body.assign(to_send);
            to_send = own_body;
        }
        context.rules.clear();
        out.fired.append_names(context.rules);
        context.model_sent = std::string(out.model_sent);
        if (first_model.empty()) {
            first_model = context.model_sent;
        }
        context.stream = out.stream;
        auto plan = out.answer;
        plan.created_at = unix_now();
        if (plan.mode == answer_mode::whole && plan.whole == whole_kind::usage_only && !worker_.limits.active()) {
            // Only the limiter needs the usage of an answer that is not rewritten.
            plan.mode = answer_mode::relay;
        }
        const auto upstream = out.upstream;
        context.upstream = upstream;
        auto key = state_->keys.upstream_authorization(upstream, bearer);
        if (key.error) {
            co_return co_await send_error(context, *key.error, context.client_keep_alive);
        }

        const auto& settings = worker_.pool.settings(upstream);
        bhttp::request<bhttp::span_body<const char>> upstream_request{
            bhttp::verb::post, upstream_target(upstream, out.upstream_path, query), 11};
        copy_end_to_end_request_fields(parser.get().base(), upstream_request.base());
        upstream_request.erase("x-mistral-proxy-fallback");  // the proxy's own, not Mistral's
        upstream_request.set(bhttp::field::host, settings.host);
        upstream_request.set(bhttp::field::authorization, key.authorization);
        upstream_request.set(bhttp::field::accept_encoding, "identity");
        upstream_request.set(bhttp::field::content_type, "application/json");
        upstream_request.keep_alive(true);
        upstream_request.body() = boost::beast::span<const char>(to_send.data(), to_send.size());
        upstream_request.prepare_payload();
        worker_.metrics.proxy_overhead.observe(std::chrono::steady_clock::now() - body_ready);

        // The next model that may serve it: one whose plan succeeds (its rules
        // accept the request) and that stays on the EU host when the request
        // is pinned there. Planned here only to know; planned again when used.
        auto viable_fallback = [&]() -> std::optional<std::size_t> {
            for (std::size_t i = next_fallback; i < fallbacks.size(); ++i) {
                const auto next = plan::plan_request(inputs,
                                                     {*context.endpoint, context.path, body.view(), fallbacks[i],
                                                      history_of_request, &worker_.response_ids},
                                                     worker_.plan_scratch);
                if (!next.ok()) {
                    log_line(log_level::debug, "request " + context.id + ": fallback " + fallbacks[i] +
                                                   " cannot take it: " + next.error->message);
                } else if (first_upstream == routing::upstream_id::mistral_eu &&
                           next.plan->upstream != routing::upstream_id::mistral_eu) {
                    log_line(log_level::debug, "request " + context.id + ": fallback " + fallbacks[i] +
                                                   " would leave the EU host");
                } else {
                    return i;
                }
            }
            return std::nullopt;
        };
        auto fall_back_to = [&](std::size_t index) {
            next_fallback = index + 1;
            planned = plan::plan_request(inputs,
                                         {*context.endpoint, context.path, body.view(), fallbacks[index],
                                          history_of_request, &worker_.response_ids},
                                         worker_.plan_scratch);
            context.fallback = first_model + "->" + fallbacks[index];
            log_line(log_level::info, "request " + context.id + ": falling back " + context.fallback);
        };
        const auto candidate = next_fallback < fallbacks.size() ? viable_fallback() : std::nullopt;

        bool keep_alive = context.client_keep_alive;
        const auto& estimate = out.estimate;
        context.unreported_tokens = estimate.unreported;
        // An open breaker answers before a rate-limit token is taken (nothing
        // is sent), or the request falls back at once.
        if (const auto look = worker_.breakers.check(static_cast<std::size_t>(upstream), context.model_sent,
                                                     limits::clock::now());
            !look.allowed) {
            if (candidate) {
                fall_back_to(*candidate);
                continue;
            }
            co_return co_await refuse_open_breaker(context, upstream, look.retry_at);
        }
        if (!co_await wait_for_limits(context, upstream, estimate.tokens, keep_alive)) {
            co_return keep_alive;
        }
        bool fall_back = false;
        keep_alive = co_await exchange_buffered(context, upstream, upstream_request, plan,
                                                candidate ? &fall_back : nullptr);
        if (!fall_back) {
            co_return keep_alive;
        }
        // Nothing reached the client: the failed try's reservation books
        // nothing (it generated nothing), and the next model asks the limiter again.
        if (context.reservation) {
            context.upstream_refused = true;
            co_await limits_settle(context);
            context.upstream_refused = false;
        }
        fall_back_to(*candidate);
    }
}

// ---------------------------------------------------------------- limits and retries

awaitable<bool> downstream_session::wait_for_limits(request_context& context, routing::upstream_id upstream,
                                                    std::uint64_t tokens, bool& keep_alive) {
    if (!worker_.limits.active()) {
        co_return true;
    }
    const auto name = routing::upstream_name(upstream);
    context.estimated_tokens = tokens;
    std::string backend_error;
    auto reserved = co_await limits_reserve(name, tokens, backend_error);
    if (!backend_error.empty()) {
        // Fail closed: without the shared budget nobody can tell whether the call is allowed.
        keep_alive = co_await send_error(
            context,
            errors::make_error(503, "rate limit backend unavailable, nothing was sent: " + backend_error,
                               "limits_backend_unavailable"),
            keep_alive);
        co_return false;
    }
    if (reserved.refused) {
        const auto& refusal = *reserved.refused;
        metrics::shard::add(worker_.metrics.local_rate_limited[static_cast<std::size_t>(metric_of(refusal.limit))]);
        const bool month = refusal.limit == limits::limit_kind::tokens_per_month;
        auto headers = limits::client_retry_headers(refusal.retry_after, !month);
        if (auto* limiter = worker_.limits.limiter.get()) {
            for (auto& header : limits::openai_ratelimit_headers({}, limiter->snapshot(name, limits::clock::now()))) {
                headers.push_back(std::move(header));
            }
        }
        keep_alive = co_await send_error(context, local_rate_limit_error(refusal), keep_alive, &headers);
        co_return false;
    }
    context.reservation = std::move(reserved.granted);
    const auto waited_from = std::chrono::steady_clock::now();
    if (!co_await wait_watching_client(context.reservation->ready_at)) {
        co_await limits_cancel(*context.reservation);
        context.reservation.reset();
        keep_alive = false;
        co_return false;
    }
    worker_.metrics.queue_wait.observe(std::chrono::steady_clock::now() - waited_from);
    co_return true;
}

awaitable<limits::reserve_result> downstream_session::limits_reserve(std::string_view upstream, std::uint64_t tokens,
                                                                    std::string& backend_error) {
    if (auto* limiter = worker_.limits.limiter.get()) {
        co_return limiter->reserve(upstream, limits::clock::now(), tokens);
    }
    if (!worker_.redis) {
        backend_error = "no client";
        co_return limits::reserve_result{};
    }
    auto shared = co_await worker_.redis->reserve(upstream, limits::clock::now(), tokens);
    backend_error = std::move(shared.backend_error);
    co_return std::move(shared.result);
}

awaitable<limits::time_point> downstream_session::limits_retry(limits::reservation& reservation,
                                                               limits::milliseconds delay) {
    const auto now = limits::clock::now();
    if (auto* limiter = worker_.limits.limiter.get()) {
        co_return limiter->reserve_retry(reservation, now, now + delay);
    }
    if (worker_.redis) {
        auto shared = co_await worker_.redis->reserve_retry(reservation, now, delay);
        if (shared.backend_error.empty()) {
            co_return shared.ready_at;
        }
        log_line(log_level::error, "rate limit backend: " + shared.backend_error);
    }
    co_return now + delay;
}

awaitable<void> downstream_session::limits_cancel(const limits::reservation& reservation) {
    if (auto* limiter = worker_.limits.limiter.get()) {
        limiter->cancel(reservation);
    } else if (worker_.redis) {
        const auto error = co_await worker_.redis->cancel(reservation);
        if (!error.empty()) {
            log_line(log_level::error, "rate limit backend: " + error);
        }
    }
}

awaitable<void> downstream_session::limits_settle(request_context& context) {
    // Mistral's usage replaces the estimate; a refused call generated
    // nothing; a stream cut short books a bounded estimate (usage unknown).
    const std::uint64_t actual =
        limits::tokens_to_book(context.usage ? std::optional<std::uint64_t>(context.usage->total_tokens) : std::nullopt,
                               context.upstream_refused, context.estimated_tokens, context.unreported_tokens);
    const auto reservation = std::move(*context.reservation);
    context.reservation.reset();
    if (auto* limiter = worker_.limits.limiter.get()) {
        const auto settled = limiter->settle(reservation, limits::clock::now(), actual);
        if (settled.ledger_error) {
            log_line(log_level::error, "month ledger: cannot record usage of request " + context.id + ": " +
                                           settled.ledger_error.message());
        }
    } else if (worker_.redis) {
        const auto settled = co_await worker_.redis->settle(reservation, actual);
        if (!settled.backend_error.empty()) {
            log_line(log_level::error, "rate limit backend: cannot record usage of request " + context.id + ": " +
                                           settled.backend_error);
        }
    }
}

awaitable<std::string> downstream_session::month_usage_metrics() {
    if (!worker_.limits.active()) {
        co_return std::string{};
    }
    std::string extra =
        "# HELP mistral_proxy_month_tokens_used Tokens used this calendar month (UTC), by upstream key.\n"
        "# TYPE mistral_proxy_month_tokens_used gauge\n";
    for (const char* key : {"mistral", "codestral"}) {
        std::optional<std::uint64_t> used;
        if (auto* limiter = worker_.limits.limiter.get()) {
            used = limiter->month_used(key, limits::clock::now());
        } else if (worker_.redis) {
            used = co_await worker_.redis->month_used(key);
        }
        if (used) {
            extra += "mistral_proxy_month_tokens_used{key=\"" + std::string(key) + "\"} " + std::to_string(*used) + "\n";
        }
    }
    co_return extra;
}

awaitable<bool> downstream_session::wait_watching_client(limits::time_point until) {
    const auto delay = until - limits::clock::now();
    if (delay <= limits::clock::duration::zero()) {
        co_return true;
    }
    using namespace asio::experimental::awaitable_operators;
    bool client_gone = false;
    auto sleep = [&]() -> awaitable<void> {
        co_await asio::this_coro::throw_if_cancelled(false);
        asio::steady_timer timer(co_await asio::this_coro::executor,
                                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
        co_await timer.async_wait(as_result);
    };
    co_await (sleep() || watch_client(nullptr, client_gone));
    co_return !client_gone;
}

awaitable<bool> downstream_session::refuse_open_breaker(request_context& context, routing::upstream_id upstream,
                                                        limits::time_point retry_at) {
    const auto now = limits::clock::now();
    const auto wait = limits::ceil_ms(retry_at - now);
    const auto name = routing::upstream_name(upstream);
    auto error = errors::make_error(
        503,
        "upstream " + std::string(name) + " is failing " +
            (context.model_sent.empty() ? std::string("for passthrough requests")
                                        : "for model '" + context.model_sent + "'") +
            " (circuit breaker open after " + std::to_string(worker_.breakers.settings().failures) +
            " consecutive failures); it will be tried again in " + config::format_duration(wait) + ", at " +
            limits::format_utc(retry_at),
        "upstream_circuit_open");
    context.upstream_refused = true;
    const auto headers = limits::client_retry_headers(wait, true);
    co_return co_await send_error(context, error, context.client_keep_alive, &headers);
}

void downstream_session::note_try_outcome(routing::upstream_id upstream, std::string_view model, bool failed) {
    const auto index = static_cast<std::size_t>(upstream);
    const auto now = limits::clock::now();
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
                                                      bhttp::request<bhttp::span_body<const char>>& request,
                                                      const answer_plan& plan, bool* fall_back) {
    const auto& settings = worker_.pool.settings(upstream);
    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    const auto& schedule = state_->retry;
    const auto upstream_index = static_cast<std::size_t>(upstream);
    unsigned tries = 0;
    bool fresh_connection = false;

    // Between tries: the backoff, taking a request token again (SPEC §8).
    auto wait_before_retry = [&](limits::milliseconds delay, metrics::retry_cause cause) -> awaitable<bool> {
        ++context.retries;
        metrics::shard::add(worker_.metrics.retries[upstream_index][static_cast<std::size_t>(cause)]);
        auto ready = limits::clock::now() + delay;
        if (context.reservation) {
            ready = co_await limits_retry(*context.reservation, delay);
        }
        co_return co_await wait_watching_client(ready);
    };

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
    } probe{worker_.breakers, upstream_index, context.model_sent};
    auto outcome = [&](bool failed) {
        probe.pending = false;
        note_try_outcome(upstream, context.model_sent, failed);
    };

    for (;;) {
        ++tries;
        if (!fresh_connection) {
            const auto admission = worker_.breakers.admit(upstream_index, context.model_sent, limits::clock::now());
            if (!admission.allowed) {
                co_return co_await refuse_open_breaker(context, upstream, admission.retry_at);
            }
            probe.pending = admission.probe;
        }
        auto acquired = co_await worker_.pool.acquire(upstream, fresh_connection);
        fresh_connection = false;
        std::optional<errors::openai_error> failure;  // the try got no HTTP answer at all
        if (acquired.error) {
            failure = std::move(acquired.error);
        } else {
            auto connection = std::move(acquired.connection);
            const auto sent_at = std::chrono::steady_clock::now();
            connection->tcp().expires_after(settings.read_timeout);
            auto [write_ec, written] = co_await connection->visit(
                [&](auto& stream) { return bhttp::async_write(stream, request, as_result); });
            std::optional<response_parser> parser;
            boost::system::error_code ec = write_ec;
            bool client_gone = false;
            if (!ec) {
                ec = co_await read_upstream_header(*connection, parser, false, settings.read_timeout, client_gone);
            }
            if (client_gone) {
                connection->abort();
                co_return false;
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
                              ? upstream_failure(name, endpoint,
                                                 "no answer within " + config::format_duration(settings.read_timeout) +
                                                     " (read_timeout)",
                                                 ec)
                          : (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                             ec == asio::error::connection_reset || ec == ssl::error::stream_truncated)
                              ? upstream_failure(name, endpoint, "closed the connection before answering", ec)
                              : upstream_failure(name, endpoint, "sent an invalid HTTP answer", ec);
            } else {
                worker_.metrics.upstream_latency.observe(std::chrono::steady_clock::now() - sent_at);
                const auto status = parser->get().result_int();
                outcome(status >= 500 || status == 429);
                if (fall_back != nullptr && state_->rules->falls_back_on(status)) {
                    co_await discard_refusal(upstream, connection, *parser);
                    log_line(log_level::info, "request " + context.id + ": upstream " + std::string(name) +
                                                  " answered " + std::to_string(status) + " for model " +
                                                  context.model_sent);
                    *fall_back = true;
                    co_return true;
                }
                if (limits::is_retryable_status(status)) {
                    const auto wish = limits::upstream_retry_after(limit_headers_of(parser->get()), limits::clock::now());
                    const auto decision = schedule.after_failure(tries, true, wish);
                    if (decision.retry) {
                        co_await discard_refusal(upstream, connection, *parser);
                        log_line(log_level::info, "request " + context.id + ": upstream " + std::string(name) +
                                                      " answered " + std::to_string(status) + ", retry " +
                                                      std::to_string(tries) + " in " +
                                                      config::format_duration(decision.delay));
                        if (!co_await wait_before_retry(decision.delay, status == 429 ? metrics::retry_cause::status_429
                                                                                      : metrics::retry_cause::status_5xx)) {
                            co_return false;
                        }
                        continue;
                    }
                }
                co_return co_await relay_response(*connection, connection, *parser, context, plan);
            }
        }

        metrics::shard::add(worker_.metrics.upstream_failures[upstream_index]);
        if (failure->code != "upstream_connections_exhausted") {
            outcome(true);
        } else if (probe.pending) {  // the proxy's own limit says nothing of the upstream's health
            worker_.breakers.on_abandoned(upstream_index, context.model_sent);
            probe.pending = false;
        }
        if (fall_back != nullptr && failure->code != "upstream_connections_exhausted") {
            log_line(log_level::info, "request " + context.id + ": " + failure->message);
            *fall_back = true;
            co_return true;
        }
        const auto decision = schedule.after_failure(tries, true, std::nullopt);
        if (decision.retry) {
            log_line(log_level::info, "request " + context.id + ": " + failure->message + "; retry " +
                                          std::to_string(tries) + " in " + config::format_duration(decision.delay));
            if (!co_await wait_before_retry(decision.delay, metrics::retry_cause::connect_error)) {
                co_return false;
            }
            continue;
        }
        log_failure(context, *failure);
        context.upstream_refused = true;
        const auto headers = limits::client_retry_headers(schedule.client_retry_after(std::nullopt), true);
        co_return co_await send_error(context, *failure, context.client_keep_alive, &headers);
    }
}

// ---------------------------------------------------------------- streamed passthrough

awaitable<bool> downstream_session::proxy_streamed(request_parser& parser, request_context& context,
                                                   std::optional<std::string_view> bearer) {
    // The body is not read yet, so a refusal must close the connection unless there is none.
    const bool can_reuse = parser.is_done() && context.client_keep_alive;
    const plan::plan_inputs inputs{state_->config, *state_->rules, state_->model_aliases};
    auto planned = plan::plan_request(inputs, {*context.endpoint, context.path, {}}, worker_.plan_scratch);
    if (!planned.ok()) {
        co_return co_await send_error(context, *planned.error, can_reuse);
    }
    const auto& out = *planned.plan;
    auto upstream = out.upstream;
    context.upstream = upstream;
    out.fired.append_names(context.rules);
    auto key = state_->keys.upstream_authorization(upstream, bearer);
    if (key.error) {
        co_return co_await send_error(context, *key.error, can_reuse);
    }

    auto& request = parser.get();
    const auto client_target = std::string_view(request.target());
    const auto query = client_target.substr(std::min(client_target.size(), client_target.find('?')));
    const std::string& path_after_v1 = out.upstream_path;
    const answer_plan& plan = out.answer;

    // SPEC §8: every request that goes upstream takes its request from the key's
    // bucket, passthrough included. Its tokens are unknown: none are estimated.
    bool keep_alive = can_reuse;
    if (!co_await wait_for_limits(context, upstream, 0, keep_alive)) {
        co_return keep_alive;
    }

    const auto& settings = worker_.pool.settings(upstream);
    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    // Passthrough has its own breaker per upstream (model ""): files, batches,
    // OCR, ... fail fast too while the host is failing.
    const auto upstream_index = static_cast<std::size_t>(upstream);
    const auto admission = worker_.breakers.admit(upstream_index, {}, limits::clock::now());
    if (!admission.allowed) {
        co_return co_await refuse_open_breaker(context, upstream, admission.retry_at);
    }
    struct probe_guard {  // a probe that ends without an outcome frees the half-open slot
        limits::breaker_board& board;
        std::size_t upstream;
        bool pending;
        ~probe_guard() {
            if (pending) {
                board.on_abandoned(upstream, {});
            }
        }
    } probe{worker_.breakers, upstream_index, admission.probe};
    auto outcome = [&](bool failed) {
        probe.pending = false;
        note_try_outcome(upstream, {}, failed);
    };
    auto acquired = co_await worker_.pool.acquire(upstream);
    if (acquired.error) {
        log_failure(context, *acquired.error);
        metrics::shard::add(worker_.metrics.upstream_failures[upstream_index]);
        if (acquired.error->code != "upstream_connections_exhausted") {
            outcome(true);
        }
        context.upstream_refused = true;
        co_return co_await send_error(context, *acquired.error, can_reuse);
    }
    auto connection = std::move(acquired.connection);

    bhttp::request<bhttp::buffer_body> upstream_request;
    make_passthrough_head(parser, upstream_target(upstream, path_after_v1, query), settings.host, key.authorization,
                          upstream_request);
    const bool has_body = !parser.is_done();

    co_await send_continue_if_expected(parser);

    bhttp::request_serializer<bhttp::buffer_body> serializer{upstream_request};
    connection->tcp().expires_after(settings.read_timeout);
    auto [header_ec, header_bytes] =
        co_await connection->visit([&](auto& stream) { return bhttp::async_write_header(stream, serializer, as_result); });
    if (header_ec) {
        auto failure = upstream_failure(name, endpoint, "failed while sending the request", header_ec);
        connection->abort();
        outcome(true);
        log_failure(context, failure);
        co_return co_await send_error(context, failure, false);
    }

    // Relay the body as it arrives, never holding more than one buffer of it.
    std::uint64_t body_bytes = 0;
    const auto max_body = server_settings().max_body_bytes;
    while (has_body) {
        char* chunk = relay_buffer();
        request.body().data = chunk;
        request.body().size = relay_buffer_bytes;
        client_.expires_after(server_settings().body_timeout);  // the longest gap between body bytes
        auto [read_ec, read] = co_await bhttp::async_read_some(client_, buffer_, parser, as_result);
        if (read_ec && read_ec != bhttp::error::need_buffer) {
            // The upstream has part of a body that will never end: that request is abandoned with its connection.
            connection->abort();
            context.upstream_refused = true;
            if (is_malformed_http(read_ec)) {
                co_return co_await refuse_malformed(context, read_ec);
            }
            if (read_ec == beast::error::timeout) {
                note_client_timeout(context, "request body stalled for " +
                                                 config::format_duration(server_settings().body_timeout) +
                                                 " (server.body_timeout)");
            }
            co_return false;
        }
        const auto got = relay_buffer_bytes - request.body().size;
        body_bytes += got;
        context.bytes_received = body_bytes;
        if (body_bytes > max_body) {
            connection->abort();
            co_await send_error(context,
                                errors::make_error(413, "request body exceeds the limit of " + std::to_string(max_body) +
                                                            " bytes (server.max_body_bytes)"),
                                false);
            co_await linger_and_close();
            co_return false;
        }
        offer_body_piece(upstream_request.body(), chunk, got, parser.is_done());
        if (got == 0 && !parser.is_done()) {
            continue;
        }
        connection->tcp().expires_after(settings.read_timeout);
        auto [write_ec, written] =
            co_await connection->visit([&](auto& stream) { return bhttp::async_write(stream, serializer, as_result); });
        if (write_ec && write_ec != bhttp::error::need_buffer) {
            auto failure = upstream_failure(name, endpoint, "failed while receiving the request body", write_ec);
            connection->abort();
            outcome(true);
            log_failure(context, failure);
            co_return co_await send_error(context, failure, false);
        }
        if (parser.is_done()) {
            break;
        }
    }

    std::optional<response_parser> upstream_parser;
    bool client_gone = false;
    const auto sent_at = std::chrono::steady_clock::now();
    const auto read_ec = co_await read_upstream_header(*connection, upstream_parser,
                                                       request.method() == bhttp::verb::head, settings.read_timeout,
                                                       client_gone);
    if (client_gone) {
        connection->abort();
        co_return false;
    }
    if (read_ec) {
        auto failure = read_ec == beast::error::timeout
                           ? upstream_failure(name, endpoint,
                                              "no answer within " + config::format_duration(settings.read_timeout) +
                                                  " (read_timeout)",
                                              read_ec)
                           : upstream_failure(name, endpoint, "failed before answering", read_ec);
        connection->abort();
        log_failure(context, failure);
        metrics::shard::add(worker_.metrics.upstream_failures[upstream_index]);
        outcome(true);
        co_return co_await send_error(context, failure, context.client_keep_alive);
    }
    worker_.metrics.upstream_latency.observe(std::chrono::steady_clock::now() - sent_at);
    const auto status = upstream_parser->get().result_int();
    outcome(status >= 500 || status == 429);
    co_return co_await relay_response(*connection, connection, *upstream_parser, context, plan);
}

// ---------------------------------------------------------------- watching the client

awaitable<void> downstream_session::watch_client(upstream_connection* connection, bool& client_gone) {
    auto& socket = client_.socket();
    for (;;) {
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, as_result);
        if (wait_ec == asio::error::operation_aborted) {
            co_return;  // the work beside finished first
        }
        char byte = 0;
        const auto peeked = wait_ec ? -1 : ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (peeked > 0) {
            // A pipelined next request: the client is alive; stop watching until cancelled.
            asio::steady_timer parked(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
            co_await parked.async_wait(as_result);
            co_return;
        }
        if (peeked < 0 && !wait_ec && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        client_gone = true;
        if (connection != nullptr) {
            connection->abort();
        }
        co_return;
    }
}

awaitable<boost::system::error_code> downstream_session::read_upstream_header(
    upstream_connection& connection, std::optional<response_parser>& parser, bool head_request,
    config::duration timeout, bool& client_gone) {
    using namespace asio::experimental::awaitable_operators;
    auto read = [&]() -> awaitable<boost::system::error_code> {
        co_await asio::this_coro::throw_if_cancelled(false);
        // A few interim answers are fine; an endless run of them is not an answer.
        for (int interim = 0; interim < 8; ++interim) {
            // The header goes into a header-only parser: an interim answer is
            // then dropped whole, and a final one moved into the body parser
            // before any of its body is read (Beast's pattern for 1xx).
            bhttp::response_parser<bhttp::empty_body> head;
            head.header_limit(upstream_header_limit);
            head.body_limit(boost::none);
            head.skip(head_request);
            connection.tcp().expires_after(timeout);
            auto [ec, n] = co_await connection.visit([&](auto& stream) {
                return bhttp::async_read_header(stream, connection.read_buffer(), head, as_result);
            });
            if (ec) {
                co_return ec;
            }
            const auto status = head.get().result_int();
            if (status == 101) {
                co_return bhttp::error::bad_status;
            }
            if (status >= 100 && status < 200) {
                continue;
            }
            parser.emplace(std::move(head));
            parser->body_limit(boost::none);
            co_return boost::system::error_code{};
        }
        co_return bhttp::error::bad_status;
    };
    auto result = co_await (read() || watch_client(&connection, client_gone));
    if (result.index() == 1 || client_gone) {
        client_gone = true;
        co_return asio::error::operation_aborted;
    }
    co_return std::get<0>(result);
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
    connection.tcp().expires_after(std::chrono::seconds(1));
    while (!parser.is_done() && discarded < max_discarded) {
        char* chunk = relay_buffer();
        parser.get().body().data = chunk;
        parser.get().body().size = relay_buffer_bytes;
        auto [ec, n] = co_await connection.visit(
            [&](auto& stream) { return bhttp::async_read_some(stream, connection.read_buffer(), parser, as_result); });
        discarded += relay_buffer_bytes - parser.get().body().size;
        if (ec && ec != bhttp::error::need_buffer) {
            connection.abort();
            co_return;
        }
    }
}

awaitable<void> run_downstream_session(tcp::socket socket, worker_context& worker) {
    downstream_session session(std::move(socket), worker);
    co_await session.run();
}

}  // namespace mistral_proxy::http
