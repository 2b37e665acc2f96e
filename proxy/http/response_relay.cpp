// The answer side of a proxied request: upstream errors translated to OpenAI's
// shape, 2xx answers relayed as they arrive, streamed chat transcoded event by
// event, and the answers that need it (chat, base64 embeddings, legacy
// completions, model lists) rewritten whole.
#include <array>
#include <chrono>
#include <memory>

#include <boost/asio/this_coro.hpp>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "http/session.hpp"
#include "limits/retry.hpp"
#include "log/log.hpp"
#include "audio/speech.hpp"
#include "audio/transcription_answer.hpp"
#include "batches/batch_object.hpp"
#include "batches/output_lines.hpp"
#include "openai_responses/answer.hpp"
#include "openai_responses/stream.hpp"
#include "responses/chat_response.hpp"
#include "responses/embeddings.hpp"
#include "responses/moderations.hpp"
#include "responses/usage.hpp"

namespace mistral_proxy::http {

namespace {

// x-mistral-proxy-rules names SPEC §6 ids only (the registry's `shown` flag).
// The routine repairs of every answer (message_repair, stream_repair, ...)
// would put noise in every header.
void append_spec_ids(responses::rule_hits hits, std::string& fired) {
    hits.for_each([&](responses::response_rule rule) {
        if (rules::has_flag(rule, rules::shown)) {
            if (!fired.empty()) {
                fired += ',';
            }
            fired += responses::rule_id(rule);
        }
    });
}

// A chunk's size line, "1a2f\r\n" (lowercase hex, as Beast writes it), into
// `out`; returns its length.
std::size_t chunk_size_line(std::size_t size, char* out) noexcept {
    char digits[2 * sizeof(std::size_t)];
    std::size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[size & 15];
        size >>= 4;
    } while (size != 0);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = digits[n - 1 - i];
    }
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

}  // namespace

template <class Fields>
void downstream_session::add_rate_limit_fields(Fields& fields, request_context& context) {
    if (!context.upstream) {
        return;
    }
    // The bucket of the key the request took (a key pool's member has its own).
    const std::string_view name = context.key_bucket.empty() ? routing::upstream_name(*context.upstream)
                                                             : std::string_view(context.key_bucket);
    limits::rate_limits own;
    if (worker_.limiter_client) {
        worker_.limiter_client->adapt(name, context.upstream_limits);
        own = worker_.limiter_client->snapshot(name);
    }
    for (const auto& [header, value] : limits::openai_ratelimit_headers(context.upstream_limits, own)) {
        fields.set(header, value);
    }
}
template void downstream_session::add_rate_limit_fields(bhttp::fields&, request_context&);
template void downstream_session::add_rate_limit_fields(head_fields&, request_context&);

bool downstream_session::take_buffered_rest(upstream_connection& connection, response_parser& parser,
                                            padded_body& body, std::size_t limit, bool& complete,
                                            boost::system::error_code& ec) {
    ec = {};
    complete = parser.is_done();
    if (const auto length = parser.content_length()) {
        body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, limit)));
    }
    while (!parser.is_done()) {
        if (body.size() >= limit) {
            return true;  // over the limit: complete stays false
        }
        if (body.free_bytes() == 0) {
            body.reserve(std::min(limit, std::max<std::size_t>(body.size() * 2, 16 * 1024)));
        }
        const auto room = body.free_bytes();
        parser.get().body().data = body.free_space();
        parser.get().body().size = room;
        const bool settled = parse_buffered(parser, connection.read_buffer(), parse_part::body, ec);
        body.commit(room - parser.get().body().size);
        if (!settled) {
            return false;
        }
        if (ec && ec != bhttp::error::need_buffer) {
            return true;
        }
        ec = {};
    }
    complete = true;
    return true;
}

awaitable<boost::system::error_code> downstream_session::read_rest(upstream_connection& connection,
                                                                   response_parser& parser, padded_body& body,
                                                                   std::size_t limit, bool& complete) {
    // Beast's http::async_read_some without its composed operation: what
    // the buffer holds first, then one read of the socket at a time.
    boost::system::error_code ec;
    while (!take_buffered_rest(connection, parser, body, limit, complete, ec)) {
        auto& buffer = connection.read_buffer();
        const std::size_t read_room = beast::read_size(buffer, 65536);
        if (read_room == 0) {
            co_return bhttp::error::buffer_overflow;
        }
        connection.begin_wait(connection.read_timeout());
        auto [read_ec, n] = co_await connection.read_some(buffer.prepare(read_room));
        buffer.commit(n);
        connection.end_wait(read_ec);
        if (read_ec == asio::error::eof) {
            end_of_input(parser, ec);  // completes a body that runs to the close
            complete = !ec && parser.is_done();
            co_return ec;
        }
        if (read_ec) {
            co_return read_ec;
        }
    }
    co_return ec;
}

awaitable<bool> downstream_session::answer_error_response(upstream_connection& connection, connection_ptr& owned,
                                                          response_parser& parser, request_context& context) {
    const auto upstream = *context.upstream;
    context.upstream_refused = true;
    padded_body body;
    bool complete = false;
    const auto ec = co_await read_rest(connection, parser, body, max_error_body_bytes, complete);
    const auto status = parser.get().result_int();
    const auto error = errors::translate_upstream_error(status, body.view(), routing::upstream_name(upstream),
                                                        state_->keys.redactor_for(upstream, context.client_bearer));
    const auto upstream_headers = limit_headers_of(parser.get().base());
    context.upstream_limits = limits::parse_mistral_ratelimit_headers(upstream_headers);
    if (ec || !complete) {
        connection.abort();
    }
    release_or_close(upstream, owned, parser);
    // The client gets OpenAI's rate-limit names, and for a 429/5xx retry hints
    // capped at max_retry_after (the SDK waits as long as it is told).
    limits::header_list headers;
    for (auto& header : limits::openai_ratelimit_headers(context.upstream_limits, {})) {
        headers.push_back(std::move(header));
    }
    if (limits::is_retryable_status(status) || status >= 500) {
        const auto wish = limits::upstream_retry_after(upstream_headers, limits::clock::now());
        for (auto& header : limits::client_retry_headers(state_->retry.client_retry_after(wish), true)) {
            headers.push_back(std::move(header));
        }
    }
    if (context.reservation) {
        co_await limits_settle(context);  // before the answer: a crash after it loses nothing
    }
    if (status == 429) {
        // The upstream limit is tighter than configured: the buckets learn it.
        const std::string_view bucket =
            context.key_bucket.empty() ? routing::upstream_name(upstream) : std::string_view(context.key_bucket);
        if (worker_.limiter_client) {
            worker_.limiter_client->adapt(bucket, context.upstream_limits);
        }
    }
    co_return co_await send_error(context, error, context.client_keep_alive, &headers);
}

// The whole answer rewritten for its kind. Not a coroutine: its temporaries
// (a Response's translation among them) stay off answer_whole's frame,
// which then fits the blocks Asio recycles.
responses::body_result downstream_session::transform_whole_answer(std::string_view body, const answer_plan& plan,
                                                                  std::string& output_items) {
    responses::body_result result;
    switch (plan.whole) {
        case whole_kind::chat:
            result = responses::transform_chat_response(body, state_->response_rules);
            break;
        case whole_kind::text_completion:
            result = responses::chat_to_text_completion(body, state_->response_rules);
            break;
        case whole_kind::embeddings_base64:
            result = responses::transform_embeddings_response(body, responses::embedding_encoding::base64);
            break;
        case whole_kind::model_list:
            result = responses::merge_model_list(body, state_->model_aliases, unix_now());
            break;
        case whole_kind::alias_card:
            result.body = responses::alias_model_card(body, *plan.alias, unix_now());
            result.hits.add(responses::response_rule::model_alias);
            break;
        case whole_kind::moderation:
            result = responses::transform_moderation_response(body, state_->response_rules);
            break;
        case whole_kind::transcription:
            result = audio::transform_transcription_response(body, plan.transcription);
            break;
        case whole_kind::speech:
            result = audio::transform_speech_response(body, plan.speech);
            break;
        case whole_kind::batch:
            result = batches::transform_batch(body);
            break;
        case whole_kind::batch_list:
            result = batches::transform_batch_list(body, plan.batch_list);
            break;
        case whole_kind::file:
            result = batches::transform_file(body);
            break;
        case whole_kind::batch_upload:
            result = batches::transform_file(body, plan.uploaded_bytes);
            if (!result.error && !result.unchanged) {
                // Known from now on: POST /v1/batches reads the job's model here.
                batches::process_file_registry().record(batches::file_id_of(body), plan.batch_file);
            }
            break;
        case whole_kind::usage_only:
            result.unchanged = true;
            result.usage = responses::find_usage(body);
            break;
        case whole_kind::response: {
            const auto& request = *plan.responses;
            auto translated = openai_responses::translate_answer(
                body, {request.response_id, plan.created_at, unix_now(), &request.settings,
                              &worker_.response_ids});
            result.usage = translated.usage;
            result.error = std::move(translated.error);
            result.body = std::move(translated.body);
            output_items = std::move(translated.output_items);
            break;
        }
    }
    return result;
}

awaitable<bool> downstream_session::answer_whole(upstream_connection& connection, connection_ptr& owned,
                                                 response_parser& parser, request_context& context,
                                                 const answer_plan& plan) {
    const auto upstream = *context.upstream;
    padded_body& body = answer_body_;
    body.reuse(kept_body_capacity);
    bool complete = false;
    // The rest is usually here already (it came with the head): then without
    // read_rest's coroutine frame.
    boost::system::error_code ec;
    if (!take_buffered_rest(connection, parser, body, max_whole_answer_bytes, complete, ec)) {
        ec = co_await read_rest(connection, parser, body, max_whole_answer_bytes, complete);
    }
    if (ec || !complete) {
        connection.abort();
        const auto failure =
            ec ? upstream_failure(routing::upstream_name(upstream), worker_.pool.endpoint_text(upstream),
                                  "broke off the answer before its end", ec)
               : upstream_failure(routing::upstream_name(upstream), worker_.pool.endpoint_text(upstream),
                                  "answered more than " + std::to_string(max_whole_answer_bytes) + " bytes", {});
        log_failure(context, failure);
        co_return co_await send_error(context, failure, context.client_keep_alive);
    }
    release_or_close(upstream, owned, parser);

    std::string output_items;  // a Response's, for the store
    responses::body_result result = transform_whole_answer(body.view(), plan, output_items);
    if (plan.whole == whole_kind::response && !result.error) {
        // Kept before the client has it: a retrieve right after finds it.
        co_await store_response(context, plan, result.body, output_items);
    }
    if (result.usage) {
        context.usage = result.usage;
    }
    if (context.reservation) {
        // Booked before the client has the answer: once it has it, a crash
        // (even kill -9) cannot lose this request's usage.
        co_await limits_settle(context);
    }
    append_spec_ids(result.hits, context.rules);
    if (result.error) {
        log_failure(context, *result.error);
        co_return co_await send_error(context, *result.error, context.client_keep_alive);
    }

    // Sent from where it lies: the upstream's bytes or the rewrite, never copied again.
    const std::string_view answer = result.unchanged ? body.view() : std::string_view(result.body);
    // The head as text (head_fields): the fields and their order are those
    // Beast's response gave (copied end-to-end fields, then each set()).
    head_fields& fields = answer_fields_;
    fields.clear();
    copy_end_to_end_response_fields(parser.get().base(), fields);
    if (!result.content_type.empty()) {
        fields.set(bhttp::field::content_type, result.content_type);
    }
    add_rate_limit_fields(fields, context);
    set_proxy_fields(fields, context);
    const bool keep_alive = context.client_keep_alive && !worker_.draining;
    if (!keep_alive) {
        fields.set(bhttp::field::connection, "close");
    }
    context.status = parser.get().result_int();
    context.bytes_sent = answer.size();
    format_response_head(context.status, fields, answer.size(), head_);
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_.data(), head_.size()),
                                                   asio::buffer(answer.data(), answer.size())};
    // At once when the socket takes it all (nearly always): then without write_all's coroutine frame.
    boost::system::error_code write_ec;
    const std::size_t written = write_at_once(client_.socket(), pieces, write_ec);
    if (!write_ec && written < head_.size() + answer.size()) {
        write_ec = co_await write_rest(client_, pieces, written, server_settings().write_timeout);
    }
    co_return !write_ec && keep_alive;
}

// Not a coroutine: an answer rewritten whole goes straight to answer_whole,
// and only one relayed as it comes pays for relay_stream's frame (which
// holds every kind of stream rewriter, about 2.9 KB).
awaitable<bool> downstream_session::relay_response(upstream_connection& connection, connection_ptr& owned,
                                                   response_parser& upstream_parser, request_context& context,
                                                   const answer_plan& plan) {
    const auto status = upstream_parser.get().result_int();
    if (status < 200 || status >= 300) {
        return answer_error_response(connection, owned, upstream_parser, context);
    }
    const auto& upstream_response = upstream_parser.get();
    context.upstream_limits = limits::parse_mistral_ratelimit_headers(limit_headers_of(upstream_response.base()));
    const bool event_stream =
        starts_with_ci(field_value(upstream_response.base(), bhttp::field::content_type), "text/event-stream");
    // Asked to stream and answered whole, it is rewritten whole too
    // (answer_whole does not look at the mode).
    if (!event_stream && (plan.mode == answer_mode::whole || plan.mode == answer_mode::transcode_stream)) {
        return answer_whole(connection, owned, upstream_parser, context, plan);
    }
    return relay_stream(connection, owned, upstream_parser, context, plan, event_stream);
}

// A 2xx answer relayed as it comes: as it is, or through a stream rewriter.
awaitable<bool> downstream_session::relay_stream(upstream_connection& connection, connection_ptr& owned,
                                                 response_parser& upstream_parser, request_context& context,
                                                 const answer_plan& plan, bool event_stream) {
    const auto status = upstream_parser.get().result_int();
    const auto upstream = *context.upstream;
    const auto& upstream_response = upstream_parser.get();
    // The stream's rewriter: chat or legacy completions, or the Responses API.
    std::optional<responses::stream_transcoder> chat_stream;
    std::optional<openai_responses::stream_transcoder> responses_stream;
    std::optional<audio::transcription_stream> transcription_stream;
    std::optional<audio::speech_stream> speech_stream;
    std::optional<batches::output_line_rewriter> batch_lines;
    responses::event_rewriter* transcoder = nullptr;
    const bool speech = plan.mode == answer_mode::transcode_stream && plan.whole == whole_kind::speech;
    if (plan.mode == answer_mode::rewrite_lines) {
        transcoder = &batch_lines.emplace(state_->response_rules, server_settings().max_body_bytes);
    } else if (plan.mode == answer_mode::transcode_stream && plan.whole == whole_kind::transcription) {
        transcoder = &transcription_stream.emplace(std::string(routing::upstream_name(upstream)));
    } else if (speech) {
        transcoder = &speech_stream.emplace(plan.speech, std::string(routing::upstream_name(upstream)),
                                            state_->keys.redactor_for(upstream, context.client_bearer));
    } else if (plan.mode == answer_mode::transcode_stream && plan.whole == whole_kind::response) {
        const auto& request = *plan.responses;
        openai_responses::stream_context stream;
        stream.response_id = request.response_id;
        stream.created_at = plan.created_at;
        stream.settings = &request.settings;
        stream.ids = &worker_.response_ids;
        stream.now = unix_now;
        stream.upstream_name = routing::upstream_name(upstream);
        stream.redact = state_->keys.redactor_for(upstream, context.client_bearer);
        transcoder = &responses_stream.emplace(std::move(stream));
    } else if (plan.mode == answer_mode::transcode_stream) {
        responses::stream_options options;
        options.shape = plan.shape;
        options.include_usage = plan.include_usage;
        options.upstream_name = routing::upstream_name(upstream);
        options.redact = state_->keys.redactor_for(upstream, context.client_bearer);
        transcoder = &chat_stream.emplace(state_->response_rules, options);
    }
    context.status = status;

    bhttp::response<bhttp::buffer_body> response{upstream_response.result(), 11};
    copy_end_to_end_response_fields(upstream_response.base(), response.base());
    if (speech && !plan.speech.sse) {
        // Mistral's events become the audio's own bytes, sent as they come.
        response.set(bhttp::field::content_type, audio::speech_content_type(plan.speech.format));
    }
    add_rate_limit_fields<bhttp::fields>(response.base(), context);
    set_proxy_fields<bhttp::fields>(response.base(), context);
    // A stream is always re-chunked so that a failure mid-way can still end it
    // with an error event and a clean terminator.
    if (upstream_parser.is_done()) {
        response.content_length(0);
    } else if (upstream_parser.content_length() && !event_stream && transcoder == nullptr) {
        response.content_length(*upstream_parser.content_length());
    } else {
        response.chunked(true);
    }
    response.keep_alive(context.client_keep_alive && !worker_.draining);
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = !upstream_parser.is_done();

    bhttp::response_serializer<bhttp::buffer_body> serializer{response};

    relay_state relay;
    // A stream's head goes out before the relay waits on the upstream: the
    // first event may take seconds. When the read that brought the head also
    // brought the first event (as it usually does), both go in one write,
    // as other answers send their head with the first piece of body.
    relay.head_before_waiting = event_stream;
    relay.read_timeout = connection.read_timeout();
    relay.context = &context;
    relay.plan = &plan;
    relay.responses_stream = responses_stream ? &*responses_stream : nullptr;
    relay.bytes_only = speech && !plan.speech.sse;
    relay_outcome outcome = relay_outcome::complete;
    if (!upstream_parser.is_done()) {
        metrics::shard::add(worker_.metrics.open_streams, 1);
        // While the body flows, watch the client (the same plain read as the
        // header wait's): if it hangs up, the upstream request is closed at
        // once, and the relay ends when its read fails, rather than when the
        // next write does. Without a parallel group, no operation of the
        // relay carries a cancellation slot (a heap block each).
        start_client_watch(&connection);
        outcome = co_await relay_body(connection, upstream_parser, serializer, response, relay, transcoder);
        stop_client_watch();
        relay.client_gone = client_watch_->gone;
        if (relay.client_gone && outcome != relay_outcome::complete) {
            outcome = relay_outcome::client_failed;
        }
        metrics::shard::add(worker_.metrics.open_streams, -1);
        context.bytes_sent = relay.bytes_sent;
    } else {
        expire_in(client_, server_settings().write_timeout);
        auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
        if (end_ec) {
            outcome = relay_outcome::client_failed;
        }
    }
    if (transcoder) {
        context.usage = transcoder->usage();
        append_spec_ids(transcoder->hits(), context.rules);
    }

    if (outcome == relay_outcome::complete) {
        if (!upstream_parser.is_done() && transcoder && transcoder->done()) {
            // The client has its whole stream; the upstream's last bytes (the
            // chunked terminator) decide whether the connection can serve again.
            co_await finish_upstream_body(connection, upstream_parser);
        }
        release_or_close(upstream, owned, upstream_parser);
        co_return response.keep_alive();
    }
    connection.abort();
    if (outcome == relay_outcome::client_failed || relay.client_gone) {
        co_return false;
    }

    // The upstream broke off after the answer started: the status is already
    // sent, so the failure goes into the body.
    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    const auto& upstream_error = relay.upstream_error;
    auto failure = upstream_error == beast::error::timeout
                       ? upstream_failure(name, endpoint,
                                          "stream stalled: nothing received for " +
                                              config::format_duration(relay.read_timeout) + " (read_timeout)",
                                          upstream_error)
                       : upstream_failure(name, endpoint, "broke off the answer before its end", upstream_error);
    if (relay.bytes_only && !upstream_error) {
        // The connection was fine: the stream itself had an error event or a
        // bad event, which audio bytes cannot pass on.
        failure = upstream_failure(name, endpoint, "sent an error or a malformed event in the speech stream", {});
    }
    log_failure(context, failure);
    context.error_message = failure.message;
    metrics::shard::add(worker_.metrics.upstream_failures[static_cast<std::size_t>(upstream)]);
    if (!event_stream || !response.chunked() || relay.bytes_only) {
        co_return false;  // a plain body cannot carry an error: closing tells the client it is cut short
    }
    std::string event;
    if (transcoder) {
        transcoder->on_failure(failure, event);
    } else {
        if (!relay.last_bytes.ends_with("\n\n") && !relay.last_bytes.empty()) {
            event = relay.last_bytes.ends_with("\n") ? "\n" : "\n\n";  // end the half-written event first
        }
        event += errors::to_sse_event(failure);
    }
    response.body().data = event.data();
    response.body().size = event.size();
    response.body().more = true;
    expire_in(client_, server_settings().write_timeout);
    auto [event_ec, event_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    if (event_ec && event_ec != bhttp::error::need_buffer) {
        co_return false;
    }
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = false;
    auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    co_return !end_ec && response.keep_alive();
}

char* downstream_session::shared_relay_buffer() {
    thread_local const std::unique_ptr<char[]> buffer = std::make_unique_for_overwrite<char[]>(relay_buffer_bytes);
    return buffer.get();
}

awaitable<relay_outcome> downstream_session::relay_body(upstream_connection& connection,
                                                        response_parser& upstream_parser,
                                                        bhttp::response_serializer<bhttp::buffer_body>& serializer,
                                                        bhttp::response<bhttp::buffer_body>& response,
                                                        relay_state& relay, responses::event_rewriter* transcoder) {
    char* chunk = shared_relay_buffer();
    // Writes one piece to the client as its own chunk. Once the head is out,
    // a piece is framed here (the chunk's size line, the bytes, CRLF: what
    // Beast's serializer writes) and written as three buffers: the
    // serializer's walk through its nested buffer views costs more than the
    // event it carries.
    // Not a coroutine (no frame per piece): a piece the socket takes at once
    // (write_at_once) is written here, with no operation at all, and only
    // what is left of it comes back as a write to await. The head's framing
    // is fixed once it is out, so whether it is chunked is read once (a field
    // lookup and a token walk each time otherwise). `client_failed`: the
    // client is gone (set by write_piece or by awaited()).
    char size_line[2 * sizeof(std::size_t) + 2];
    const bool chunked = response.chunked();
    std::array<asio::const_buffer, 3> pieces;
    beast::buffers_suffix<std::array<asio::const_buffer, 3>> rest;
    using pending_write = awaitable<std::tuple<boost::system::error_code, std::size_t>>;
    bool client_failed = false;
    auto write_piece = [&](const char* data, std::size_t size) -> std::optional<pending_write> {
        relay.bytes_sent += size;
        if (serializer.is_header_done()) {
            const std::size_t line = chunked ? chunk_size_line(size, size_line) : 0;
            pieces = {asio::buffer(size_line, line), asio::buffer(data, size), asio::buffer("\r\n", line > 0 ? 2 : 0)};
            boost::system::error_code ec;
            const std::size_t sent = write_at_once(client_.socket(), pieces, ec);
            client_failed = static_cast<bool>(ec);
            if (client_failed || sent == asio::buffer_size(pieces)) {
                return std::nullopt;
            }
            rest = beast::buffers_suffix<std::array<asio::const_buffer, 3>>(pieces);
            rest.consume(sent);
            expire_in(client_, server_settings().write_timeout);
            if (data == chunk) {
                // The rest waits for the client: out of the shared buffer first.
                backlog_.resize(asio::buffer_size(rest));
                asio::buffer_copy(asio::buffer(backlog_), rest);
                return asio::async_write(client_, asio::buffer(backlog_), as_result);
            }
            return asio::async_write(client_, rest, as_result);
        }
        if (data == chunk) {
            backlog_.assign(data, size);  // written with the head, after a wait: out of the shared buffer
            data = backlog_.data();
        }
        response.body().data = const_cast<char*>(data);
        response.body().size = size;
        response.body().more = true;
        expire_in(client_, server_settings().write_timeout);
        return bhttp::async_write(client_, serializer, as_result);
    };
    const auto awaited = [&](const std::tuple<boost::system::error_code, std::size_t>& result) {
        const auto& ec = std::get<0>(result);
        client_failed = ec && ec != bhttp::error::need_buffer;
    };
    // Each read from the upstream is bounded by relay.read_timeout, through
    // the connection's one lazily moved timer (wait_deadline.hpp), never the
    // whole answer.
    for (;;) {
        upstream_parser.get().body().data = chunk;
        upstream_parser.get().body().size = relay_buffer_bytes;
        // What Beast's http::async_read_some does, without its composed
        // operation and the post of each completion it needs no I/O for
        // (~600 instructions an event): the bytes the last read left are
        // parsed first, and only when they give nothing is the socket read,
        // once. The end of the connection ends a body that runs to it, and is
        // an error (partial_message) for any other.
        boost::system::error_code read_ec;
        beast::flat_buffer& buffer = connection.read_buffer();
        parse_buffered(upstream_parser, buffer, parse_part::body, read_ec);
        if (!read_ec && !upstream_parser.is_done() && upstream_parser.get().body().size == relay_buffer_bytes) {
            if (relay.head_before_waiting && !serializer.is_header_done()) {
                expire_in(client_, server_settings().write_timeout);
                auto [header_ec, header_bytes] = co_await bhttp::async_write_header(client_, serializer, as_result);
                if (header_ec) {
                    co_return relay_outcome::client_failed;
                }
            }
            const std::size_t room = beast::read_size(buffer, relay_read_bytes);
            if (room == 0) {
                read_ec = bhttp::error::buffer_overflow;  // a chunk size line longer than the buffer
            } else {
                connection.begin_wait(relay.read_timeout);
                auto [socket_ec, n] = co_await connection.read_some(buffer.prepare(room));
                buffer.commit(n);
                connection.end_wait(socket_ec);
                parse_read(upstream_parser, buffer, socket_ec, parse_part::body, read_ec);
            }
        }
        const auto got = relay_buffer_bytes - upstream_parser.get().body().size;
        if (got > 0) {
            if (transcoder != nullptr) {
                out_.clear();
                transcoder->on_body(std::string_view(chunk, got), out_);
                if (!out_.empty()) {
                    if (auto pending = write_piece(out_.data(), out_.size())) {
                        awaited(co_await std::move(*pending));
                    }
                    if (client_failed) {
                        co_return relay_outcome::client_failed;
                    }
                }
                if (relay.bytes_only && transcoder->failed()) {
                    co_return relay_outcome::upstream_failed;  // the bytes cannot say it: cut short
                }
                if (transcoder->done()) {
                    break;
                }
            } else {
                if (auto pending = write_piece(chunk, got)) {
                    awaited(co_await std::move(*pending));
                }
                if (client_failed) {
                    co_return relay_outcome::client_failed;
                }
                const std::string_view tail(chunk + (got > 2 ? got - 2 : 0), got > 2 ? 2 : got);
                relay.last_bytes.append(tail);
                if (relay.last_bytes.size() > 2) {
                    relay.last_bytes.erase(0, relay.last_bytes.size() - 2);
                }
            }
        }
        if (read_ec && read_ec != bhttp::error::need_buffer) {
            if (client_watch_->gone) {
                co_return relay_outcome::client_failed;
            }
            relay.upstream_error = read_ec;
            co_return relay_outcome::upstream_failed;
        }
        if (upstream_parser.is_done()) {
            if (transcoder != nullptr && !transcoder->done()) {
                out_.clear();
                transcoder->on_end(out_);
                if (!out_.empty()) {
                    if (auto pending = write_piece(out_.data(), out_.size())) {
                        awaited(co_await std::move(*pending));
                    }
                    if (client_failed) {
                        co_return relay_outcome::client_failed;
                    }
                }
                if (relay.bytes_only && transcoder->failed()) {
                    co_return relay_outcome::upstream_failed;
                }
            }
            break;
        }
    }
    if (relay.context != nullptr && relay.context->reservation) {
        // Booked before the stream's last byte: once the client has it all, a
        // crash cannot lose this request's usage.
        if (transcoder != nullptr) {
            relay.context->usage = transcoder->usage();
        }
        co_await limits_settle(*relay.context);
    }
    if (relay.responses_stream != nullptr && relay.responses_stream->done() && relay.context != nullptr) {
        // A streamed Response is kept before its stream ends, like a whole one.
        co_await store_response(*relay.context, *relay.plan, relay.responses_stream->response_json(),
                                relay.responses_stream->output_items());
    }
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = false;
    expire_in(client_, server_settings().write_timeout);
    auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    co_return end_ec ? relay_outcome::client_failed : relay_outcome::complete;
}

}  // namespace mistral_proxy::http
