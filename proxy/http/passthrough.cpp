// Passthrough (any other /v1/... path, model lists and cards): the request
// body relayed to the upstream as it arrives, never read whole nor parsed,
// under the key's bucket and the upstream's passthrough breaker. Form rows
// (POST /v1/audio/transcriptions) take the same way, their multipart body
// rewritten piece by piece as it passes (audio/transcription_request.hpp).
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "audio/transcription_request.hpp"
#include "batches/upload_form.hpp"
#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/session.hpp"
#include "limits/retry.hpp"
#include "log/log.hpp"
#include "multipart/parser.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

awaitable<bool> downstream_session::proxy_streamed(request_parser& parser, request_context& context,
                                                   std::optional<std::string_view> bearer) {
    // The body is not read yet, so a refusal must close the connection unless there is none.
    const bool can_reuse = parser.is_done() && context.client_keep_alive;
    const plan::plan_inputs inputs{state_->config, *state_->rules, state_->model_aliases};
    const auto client_target = std::string_view(parser.get().target());
    const auto client_query = client_target.substr(std::min(client_target.size(), client_target.find('?')));
    auto planned = plan::plan_request(inputs, {*context.endpoint, context.path, {}, {}, nullptr, nullptr, client_query},
                                      worker_.plan_scratch);
    if (!planned.ok()) {
        co_return co_await send_error(context, *planned.error, can_reuse);
    }
    const auto& out = *planned.plan;
    auto upstream = out.upstream;
    context.upstream = upstream;
    out.fired.append_names(context.rules);
    if (!state_->keys.can_authorize(upstream, bearer)) {
        co_return co_await send_error(context, *state_->keys.upstream_authorization(upstream, bearer).error, can_reuse);
    }

    auto& request = parser.get();
    // A form is rewritten as it streams: its boundary first, and a form with
    // no body at all is refused before anything goes upstream.
    std::optional<audio::transcription_rewriter> transcription;
    std::optional<batches::upload_rewriter> file_upload;
    multipart::form_rewriter* form = nullptr;
    std::string upload;  // what one piece of the client's form becomes upstream
    // A POST /v1/files that is no form at all is relayed as it comes, for
    // Mistral to answer (it takes forms only).
    const bool upload_row = context.endpoint->kind == routing::endpoint_kind::file_upload;
    const auto content_type = field_value(request.base(), bhttp::field::content_type);
    if (context.endpoint->body == routing::body_mode::form &&
        (!upload_row || starts_with_ci(content_type, "multipart/"))) {
        const auto boundary = multipart::boundary_of(content_type);
        if (!boundary.error.empty()) {
            const auto refusal = errors::make_error(400, boundary.error, "invalid_multipart", std::string("Content-Type"));
            if (can_reuse) {
                co_return co_await send_error(context, refusal, true);
            }
            // The body is still coming: read past it for a while so that the
            // client sees the answer rather than a reset.
            co_await send_error(context, refusal, false);
            co_await linger_and_close();
            co_return false;
        }
        if (upload_row) {
            form = &file_upload.emplace(inputs, boundary.boundary, server_settings().max_body_bytes);
        } else {
            form = &transcription.emplace(*state_->rules, boundary.boundary);
        }
        if (parser.is_done() && !form->finish(upload)) {
            co_return co_await send_error(context, *form->error(), can_reuse);
        }
    }
    const auto query = out.own_query ? std::string_view{} : client_query;
    const std::string& path_after_v1 = out.upstream_path;
    answer_plan plan = out.answer;

    // SPEC §8: every request that goes upstream takes its request from the key's
    // bucket, passthrough included. Its tokens are unknown: none are estimated.
    bool keep_alive = can_reuse;
    // Files, batches and the like live in one Mistral workspace: a key pool
    // gives passthrough its first key in rotation, not the next in turn. A
    // transcription keeps nothing there: it takes its turn like a chat.
    const bool stateless = transcription.has_value();
    if (!take_key_at_once(context, upstream)) {
        if (!co_await wait_for_limits(context, upstream, 0, keep_alive, stateless)) {
            co_return keep_alive;
        }
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
    upstream_pool::acquired acquired{worker_.pool.take_idle(upstream), std::nullopt};
    if (!acquired.connection) {
        acquired = co_await worker_.pool.connect(upstream);
    }
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
    make_passthrough_head(parser, upstream_target(upstream, path_after_v1, query), settings.host,
                          authorization_for(context, upstream), upstream_request);
    const bool has_body = !parser.is_done();
    if (form) {
        // The rewritten form's length is known only at its end.
        upstream_request.erase(bhttp::field::content_length);
        if (!upload_row) {  // an upload keeps the client's Content-Type: its form keeps the boundary
            upstream_request.set(bhttp::field::content_type, form->content_type());
        }
        upstream_request.chunked(true);
    }

    if (expects_continue(parser)) {
        co_await send_continue();
    }

    bhttp::request_serializer<bhttp::buffer_body> serializer{upstream_request};
    // Each write to the upstream is bounded by read_timeout, through the
    // connection's deadline (the same on a plain and a TLS connection).
    connection->begin_wait(settings.read_timeout);
    auto [header_ec, header_bytes] =
        co_await connection->visit([&](auto& stream) { return bhttp::async_write_header(stream, serializer, as_result); });
    connection->end_wait(header_ec);
    if (header_ec) {
        auto failure = upstream_failure(name, endpoint, "failed while sending the request", header_ec);
        connection->abort();
        outcome(true);
        log_failure(context, failure);
        co_return co_await send_error(context, failure, false);
    }

    // Relay the body as it arrives, never holding more than one buffer of it.
    std::uint64_t body_bytes = 0;
    const auto max_body = form ? server_settings().max_upload_bytes : server_settings().max_body_bytes;
    while (has_body) {
        char* chunk = relay_buffer();
        request.body().data = chunk;
        request.body().size = relay_buffer_bytes;
        expire_in(client_, server_settings().body_timeout);  // the longest gap between body bytes
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
            co_return co_await refuse_too_large(context);
        }
        if (form) {
            upload.clear();
            if (!form->feed(std::string_view(chunk, got), upload) || (parser.is_done() && !form->finish(upload))) {
                // Refused mid-way: the upstream request is abandoned with its connection.
                connection->abort();
                context.upstream_refused = true;
                if (parser.is_done()) {
                    co_return co_await send_error(context, *form->error(), context.client_keep_alive);
                }
                co_await send_error(context, *form->error(), false);
                co_await linger_and_close();
                co_return false;
            }
            offer_body_piece(upstream_request.body(), upload.data(), upload.size(), parser.is_done());
            if (upload.empty() && !parser.is_done()) {
                continue;
            }
        } else {
            offer_body_piece(upstream_request.body(), chunk, got, parser.is_done());
            if (got == 0 && !parser.is_done()) {
                continue;
            }
        }
        connection->begin_wait(settings.read_timeout);
        auto [write_ec, written] =
            co_await connection->visit([&](auto& stream) { return bhttp::async_write(stream, serializer, as_result); });
        connection->end_wait(write_ec);
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

    if (file_upload && file_upload->facts().batch) {
        // A batch file: its file object is answered in OpenAI's shape, and
        // its lines' model kept for POST /v1/batches.
        const auto& facts = file_upload->facts();
        context.model_sent = facts.file.model;
        plan.mode = answer_mode::whole;
        plan.whole = whole_kind::batch_upload;
        plan.batch_file = facts.file;
        plan.uploaded_bytes = facts.file_bytes;
    }
    if (transcription) {
        // The whole form is read: what it asked for is known.
        const auto& facts = transcription->facts();
        context.model_requested = facts.model_requested;
        context.model_sent = facts.model_sent;
        context.stream = facts.stream;
        if (!context.rules.empty() && !facts.fired.empty()) {
            context.rules += ',';
        }
        facts.fired.append_names(context.rules);
        plan::plan_transcription_answer(facts, plan);
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
    if (status == 401) {
        co_await take_key_out(context, upstream);  // the body went as it arrived: no second try, but the next request skips the key
    }
    co_return co_await relay_response(*connection, connection, *upstream_parser, context, plan);
}

}  // namespace mistral_proxy::http
