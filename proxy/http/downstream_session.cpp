// The request side of a client connection, as Beast's examples shape a
// session: the HTTP/1.1 keep-alive loop, local answers, reading a request
// body, planning it (plan/request_plan.hpp) and following the fallback chain.
// The rest of the way has a file each: limits_wait.cpp (the rate limiter),
// upstream_exchange.cpp (send, read the head while watching the client,
// retry), passthrough.cpp (bodies relayed unread), response_relay.cpp (the
// answer), responses_store_io.cpp (stored Responses API objects).
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "batches/file_registry.hpp"
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

template <class Fields>
void downstream_session::set_proxy_fields(Fields& fields, const request_context& context) const {
    fields.set(std::string_view("x-request-id"), context.id);
    if (context.upstream) {
        fields.set(std::string_view("x-mistral-proxy-upstream"), routing::upstream_name(*context.upstream));
    }
    fields.set(std::string_view("x-mistral-proxy-rules"), context.rules);
    if (!context.fallback.empty()) {
        fields.set(std::string_view("x-mistral-proxy-fallback"), context.fallback);
    }
}
template void downstream_session::set_proxy_fields(bhttp::fields&, const request_context&) const;
template void downstream_session::set_proxy_fields(head_fields&, const request_context&) const;

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
    set_proxy_fields<bhttp::fields>(response.base(), context);
    response.body() = std::move(body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    format_head(response.base(), head_);
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_.data(), head_.size()),
                                                   asio::buffer(response.body().data(), response.body().size())};
    const auto ec = co_await write_all(client_, pieces, server_settings().write_timeout);
    co_return !ec && keep_alive;
}

bool downstream_session::expects_continue(const request_parser& parser) {
    return iequals(field_value(parser.get().base(), bhttp::field::expect), "100-continue");
}

awaitable<void> downstream_session::send_continue() {
    static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
    expire_in(client_, server_settings().write_timeout);
    co_await asio::async_write(client_, asio::buffer(interim.data(), interim.size()), as_result);
}

// After refusing a body that is still arriving: closing at once would reset the
// connection and the client could lose the answer before reading it. Stop
// sending, then discard what arrives for a short, bounded time.
// Bounded as nginx's lingering close is: each read within 1 s, 5 s and 64 MB
// in all. A client still pushing a large body when the socket closes would
// get a reset, and a reset can destroy the answer before the client reads it.
awaitable<void> downstream_session::linger_and_close() {
    boost::system::error_code ignored;
    client_.socket().shutdown(tcp_socket::shutdown_send, ignored);
    const auto until = std::chrono::steady_clock::now() + 5s;
    std::size_t discarded = 0;
    while (discarded < 64 * 1024 * 1024 && std::chrono::steady_clock::now() < until) {
        expire_in(client_, 1s);
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(relay_buffer(), relay_buffer_bytes), as_result);
        if (ec) {
            break;
        }
        discarded += n;
    }
    client_.close();
}

awaitable<bool> downstream_session::refuse_too_large(request_context& context) {
    const bool upload = context.endpoint->body == routing::body_mode::form;
    const auto max_body = upload ? server_settings().max_upload_bytes : server_settings().max_body_bytes;
    co_await send_error(context,
                        errors::make_error(413, "request body exceeds the limit of " + std::to_string(max_body) +
                                                    (upload ? " bytes (server.max_upload_bytes)"
                                                            : " bytes (server.max_body_bytes)")),
                        false);
    co_await linger_and_close();
    co_return false;
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
    make_write_at_once_ready(client_.socket());
    worker_.sessions.push_front(session_slot{&client_.socket(), true});
    const auto slot = worker_.sessions.begin();
    metrics::shard::add(worker_.metrics.open_connections, 1);
    bool first_request = true;
    for (;;) {
        // Waiting for a request to start: a new connection gets the header
        // timeout, a kept-alive one the (longer) idle timeout. A drain
        // cancels this wait.
        const auto wait_limit = first_request ? server_settings().header_timeout : server_settings().idle_timeout;
        if (client_watch_unsettled()) {
            // The last request's client watch is still reading: it is the wait
            // for this one. When this one is here already (pipelined), the read
            // is stopped first: buffer_ is not touched while it is in flight.
            slot->idle = buffer_.size() == 0;
            const bool open = co_await settle_client_watch(
                buffer_.size() == 0 ? coarse_steady_now() + wait_limit : coarse_steady_now());
            slot->idle = false;
            if (!open && buffer_.size() == 0) {
                break;  // hung up, or no request within the wait
            }
        }
        if (buffer_.size() == 0) {
            if (worker_.draining) {
                break;
            }
            slot->idle = true;
            expire_in(client_, wait_limit);
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
        boost::system::error_code ec;
        if (!parse_buffered(parser, buffer_, parse_part::head, ec)) {
            // The rest of the head, read by the parser's own put (Beast's
            // async_read_header would call Beast's), with Beast's rules for
            // a full buffer and for the end of the input (parse_read).
            expire_in(client_, server_settings().header_timeout);
            for (;;) {
                const std::size_t room = beast::read_size(buffer_, 65536);
                if (room == 0) {
                    ec = bhttp::error::buffer_overflow;
                    break;
                }
                auto [read_ec, n] = co_await client_.async_read_some(buffer_.prepare(room), as_result);
                buffer_.commit(n);
                if (parse_read(parser, buffer_, read_ec, parse_part::head, ec)) {
                    break;
                }
            }
        }
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
    client_.socket().shutdown(tcp_socket::shutdown_both, ignored);
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
    request_context& context = context_;
    context.reset();
    new_request_id(context.id);
    context.method = parser.get().method_string();
    routing::canonical_path(target.substr(0, target.find('?')), context.path, context.path_refusal);
    if (context.path_refusal.empty()) {
        context.endpoint = &routing::find_endpoint(context.method, context.path);
    }
    context.client_keep_alive = parser.keep_alive() && !worker_.draining;
    const bool keep_alive = co_await handle_request(parser, context);
    if (context.reservation) {
        co_await limits_settle(context);
    }
    finish(context);
    // What the request was planned with is not held while the connection
    // waits for the next one (a Response's translated conversation may be large).
    plan_state_.planned.plan.reset();
    plan_state_.reset();
    co_return keep_alive && !worker_.draining;
}

// Not a coroutine: a request that goes upstream is handed straight to its
// pipeline's coroutine, and only the answers the proxy gives itself (health,
// metrics, refusals) pay for answer_here's frame, which holds every one of
// their temporaries (GCC lays them side by side, about 2.7 KB).
awaitable<bool> downstream_session::handle_request(request_parser& parser, request_context& context) {
    const auto& endpoint = *context.endpoint;
    const bool forwarded = context.path_refusal.empty() && endpoint.kind != routing::endpoint_kind::healthz &&
                           endpoint.kind != routing::endpoint_kind::readyz &&
                           endpoint.kind != routing::endpoint_kind::response_object &&
                           endpoint.kind != routing::endpoint_kind::metrics &&
                           endpoint.kind != routing::endpoint_kind::unknown &&
                           endpoint.kind != routing::endpoint_kind::no_counterpart;
    if (!forwarded || !framing_error(parser.get().base()).empty()) {
        return answer_here(parser, context);
    }
    const auto bearer = routing::bearer_token(field_value(parser.get().base(), bhttp::field::authorization));
    const auto content_length = parser.content_length();
    const auto max_body = endpoint.body == routing::body_mode::form ? server_settings().max_upload_bytes
                                                                    : server_settings().max_body_bytes;
    if (state_->keys.check_client(bearer) || (content_length && *content_length > max_body)) {
        return answer_here(parser, context);
    }
    context.client_bearer = bearer;  // a view of the header: redacted from upstream errors (keys.hpp)
    if (endpoint.body == routing::body_mode::buffered) {
        return proxy_buffered(parser, context, bearer);
    }
    return proxy_streamed(parser, context, bearer);
}

// Every request handle_request does not forward as it is: the same checks in
// full, each answering in OpenAI's shape.
awaitable<bool> downstream_session::answer_here(request_parser& parser, request_context& context) {
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
            if (!state_->keys.can_authorize(upstream, std::string_view("client"))) {
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
        const auto authorization = field_value(request.base(), bhttp::field::authorization);
        if (auto refusal = state_->keys.check_client(routing::bearer_token(authorization))) {
            co_return co_await send_error(context, *refusal, can_reuse);
        }
        const auto target = std::string_view(request.target());
        const auto query = target.substr(std::min(target.size(), target.find('?')));
        co_return co_await answer_response_object(context, context.method, query, can_reuse);
    }
    if (endpoint.kind == routing::endpoint_kind::metrics) {
        const auto extra =
            co_await month_usage_metrics() + worker_.limits.key_pools.render_metrics(limits::clock::now());
        co_return co_await send_json(context, 200, worker_.registry.render(extra), can_reuse, nullptr,
                                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (endpoint.kind == routing::endpoint_kind::unknown || endpoint.kind == routing::endpoint_kind::no_counterpart) {
        const auto error = endpoint.kind == routing::endpoint_kind::unknown
                               ? routing::unknown_endpoint_error(context.method, context.path)
                               : routing::no_counterpart_error(context.path);
        if (parser.is_done()) {
            co_return co_await send_error(context, error, can_reuse);
        }
        // Answered before its body was read (an upload, say): the client gets
        // the answer, and the rest of what it sends is read and dropped before
        // the connection closes, so that no reset takes the answer with it.
        co_await send_error(context, error, false);
        co_await linger_and_close();
        co_return false;
    }

    const auto bearer = routing::bearer_token(field_value(request.base(), bhttp::field::authorization));
    context.client_bearer = bearer;  // a view of the header: redacted from upstream errors (keys.hpp)
    if (auto refusal = state_->keys.check_client(bearer)) {
        co_return co_await send_error(context, *refusal, can_reuse);
    }

    // Uploads streamed through have their own, larger bound (never held whole).
    const auto content_length = parser.content_length();
    const bool upload = endpoint.body == routing::body_mode::form;
    const auto max_body = upload ? server_settings().max_upload_bytes : server_settings().max_body_bytes;
    if (content_length && *content_length > max_body) {
        co_await send_error(context,
                            errors::make_error(413, "request body of " + std::to_string(*content_length) +
                                                        " bytes exceeds the limit of " + std::to_string(max_body) +
                                                        (upload ? " bytes (server.max_upload_bytes)"
                                                                : " bytes (server.max_body_bytes)")),
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
    if (expects_continue(parser)) {
        co_await send_continue();
    }

    padded_body& body = request_body_;
    body.reuse(kept_body_capacity);
    const auto content_length = parser.content_length();
    const auto max_body = server_settings().max_body_bytes;
    // Room for one byte past the limit is what reveals an oversized chunked body.
    const auto room_limit = max_body + 1;
    body.reserve(content_length ? static_cast<std::size_t>(*content_length)
                                : std::min<std::size_t>(16 * 1024, room_limit));
    // One deadline for the whole body: a client that trickles it is cut off.
    expire_in(client_, server_settings().body_timeout);
    while (!parser.is_done()) {
        if (body.free_bytes() == 0) {
            body.reserve(std::min(room_limit, std::max<std::size_t>(body.size() * 2, 16 * 1024)));
        }
        parser.get().body().data = body.free_space();
        parser.get().body().size = body.free_bytes();
        const auto offered = body.free_bytes();
        boost::system::error_code ec;
        if (!parse_buffered(parser, buffer_, parse_part::body, ec)) {
            auto [read_ec, n] = co_await bhttp::async_read(client_, buffer_, parser, as_result);
            ec = read_ec;
        }
        body.commit(offered - parser.get().body().size);
        if (body.size() > max_body) {
            co_return co_await refuse_too_large(context);
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
    // What the request is planned with lives in the session (plan_state_),
    // not in this coroutine's frame: a frame over the ~1 KB blocks Asio
    // recycles is a trip through malloc's slow path for every request.
    plan_state_.reset();
    auto& stored_items = plan_state_.stored_items;
    auto& history = plan_state_.history;
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
    plan::plan_result& planned = plan_state_.planned;
    planned = plan::plan_request(
        inputs,
        {*context.endpoint, context.path, body.view(), {}, history_of_request, &worker_.response_ids, {},
         &batches::process_file_registry()},
        worker_.plan_scratch);
    if (!planned.ok()) {
        co_return co_await send_error(context, *planned.error, context.client_keep_alive);
    }
    context.model_requested.assign(planned.plan->model_requested);

    // SPEC §6 `fallback`: the models to re-plan for when the upstream fails
    // before any byte reached the client. Never from the EU host to another.
    const auto first_upstream = planned.plan->upstream;
    auto& fallbacks = plan_state_.fallbacks;
    if (state_->rules->enabled(rules::rule_id::fallback) &&
        !beast::iequals(parser.get()["x-mistral-proxy-fallback"], "off")) {
        fallbacks = state_->rules->fallback_chain(planned.plan->model_sent);
    }
    std::size_t next_fallback = 0;
    auto& first_model = plan_state_.first_model;
    const auto target = std::string_view(parser.get().target());
    const auto query = target.substr(std::min(target.size(), target.find('?')));

    for (;;) {
        const auto& out = *planned.plan;
        // The rewritten body lives in this worker's scratch, which the next request
        // planned on this thread reuses while this one waits for its limiter or
        // its connection: the request keeps its own copy (the client's body is
        // already its own), in a buffer of the session reused request after request.
        std::string& own_body = planned_body_;
        own_body.clear();
        if (own_body.capacity() > kept_body_capacity) {
            own_body.shrink_to_fit();  // a rare large body is not held by an idle connection
        }
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
        context.model_sent.assign(out.model_sent);
        if (first_model.empty() && !fallbacks.empty()) {  // named in the fallback's log line only
            first_model = context.model_sent;
        }
        context.stream = out.stream;
        answer_plan& plan = planned.plan->answer;  // this request's own: set up in place
        if (responses_api) {
            plan.created_at = unix_now();  // a Response's created_at (no other answer dates the request)
        }
        if (plan.mode == answer_mode::whole && plan.whole == whole_kind::usage_only && !worker_.limits.active()) {
            // Only the limiter needs the usage of an answer that is not rewritten.
            plan.mode = answer_mode::relay;
        }
        const auto upstream = out.upstream;
        context.upstream = upstream;
        if (!state_->keys.can_authorize(upstream, bearer)) {
            co_return co_await refuse_without_key(context, upstream, bearer);
        }

        const auto& settings = worker_.pool.settings(upstream);
        upstream_request to_upstream;
        format_upstream_start(upstream_head_, settings.base_path, out.upstream_path, query, parser.get().base(),
                              settings.host);
        to_upstream.head_start = upstream_head_;
        to_upstream.body = to_send;
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
        // A batch job reads a file of the workspace it was uploaded to: the
        // first key in rotation, as the upload took (passthrough.cpp).
        const bool stateless = context.endpoint->kind != routing::endpoint_kind::batch_create;
        if (!take_key_at_once(context, upstream)) {
            if (!co_await wait_for_limits(context, upstream, estimate.tokens, keep_alive, stateless)) {
                co_return keep_alive;
            }
        }
        to_upstream.authorization = authorization_for(context, upstream);
        bool fall_back = false;
        keep_alive = co_await exchange_buffered(context, upstream, to_upstream, plan,
                                                candidate ? &fall_back : nullptr);
        if (!fall_back && !context.switch_key) {
            co_return keep_alive;
        }
        // Nothing reached the client: the failed try's reservation books
        // nothing (it generated nothing), and the next model (or the pool's
        // next key) asks the limiter again.
        if (context.reservation) {
            context.upstream_refused = true;
            co_await limits_settle(context);
            context.upstream_refused = false;
        }
        if (context.switch_key) {
            context.switch_key = false;  // the same plan, on another key of the pool
            continue;
        }
        fall_back_to(*candidate);
    }
}

// No key for the upstream (a 401 naming the variable to set), out of
// proxy_buffered's frame.
awaitable<bool> downstream_session::refuse_without_key(request_context& context, routing::upstream_id upstream,
                                                       std::optional<std::string_view> bearer) {
    const auto key = state_->keys.upstream_authorization(upstream, bearer);
    co_return co_await send_error(context, *key.error, context.client_keep_alive);
}

awaitable<void> run_downstream_session(tcp_socket socket, worker_context& worker) {
    downstream_session session(std::move(socket), worker);
    co_await session.run();
}

}  // namespace mistral_proxy::http
