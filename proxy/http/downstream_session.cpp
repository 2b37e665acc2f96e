#include "http/downstream_session.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <random>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "config/duration.hpp"
#include "errors/openai_error.hpp"
#include "log/access_log.hpp"
#include "log/log.hpp"
#include "normalize/request_peek.hpp"
#include "routing/keys.hpp"
#include "routing/route.hpp"

namespace mistral_proxy::http {

namespace {

using namespace std::chrono_literals;
using logging::log_level;
using logging::log_line;
using request_parser = bhttp::request_parser<bhttp::buffer_body>;
using response_parser = bhttp::response_parser<bhttp::buffer_body>;

// Relay granularity: big enough that a bulk transfer costs few syscalls, small
// enough that a thousand idle streams stay within a few megabytes.
constexpr std::size_t relay_buffer_bytes = 8 * 1024;
// Error bodies are read whole to be translated; Mistral's are a few hundred bytes.
constexpr std::size_t max_error_body_bytes = 1024 * 1024;
constexpr std::uint32_t upstream_header_limit = 64 * 1024;

std::string new_request_id() {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    static constexpr char digits[] = "0123456789abcdef";
    std::string id(32, '0');
    for (std::size_t half = 0; half < 2; ++half) {
        auto bits = generator();
        for (std::size_t i = 0; i < 16; ++i, bits >>= 4) {
            id[half * 16 + i] = digits[bits & 0xf];
        }
    }
    return id;
}

bool iequals(std::string_view a, std::string_view b) noexcept { return beast::iequals(a, b); }

bool starts_with_ci(std::string_view text, std::string_view prefix) noexcept {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// Endpoints whose JSON body the proxy reads whole: it routes on their model and
// (later stages) rewrites them. Every other body streams straight through.
bool is_buffered_endpoint(bhttp::verb method, std::string_view path) noexcept {
    return method == bhttp::verb::post &&
           (path == "/v1/chat/completions" || path == "/v1/fim/completions" || path == "/v1/embeddings" ||
            path == "/v1/completions");
}

bool has_dot_segment(std::string_view path) noexcept {
    std::size_t start = 0;
    while (start <= path.size()) {
        auto end = path.find('/', start);
        if (end == std::string_view::npos) {
            end = path.size();
        }
        const auto segment = path.substr(start, end - start);
        if (segment == ".." || segment == ".") {
            return true;
        }
        start = end + 1;
    }
    return false;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the proxy sets itself never
// cross it. `Host` is replaced so the client can never choose an upstream.
bool is_hop_or_own_request_field(const bhttp::fields::value_type& field) noexcept {
    switch (field.name()) {
        case bhttp::field::host:
        case bhttp::field::authorization:
        case bhttp::field::proxy_authorization:
        case bhttp::field::connection:
        case bhttp::field::keep_alive:
        case bhttp::field::proxy_connection:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
        case bhttp::field::content_length:
        case bhttp::field::accept_encoding:
        case bhttp::field::expect:
            return true;
        case bhttp::field::unknown: {
            const auto name = field.name_string();
            // OpenAI account identifiers mean nothing to Mistral and should not leave the machine.
            return iequals(name, "openai-organization") || iequals(name, "openai-project");
        }
        default:
            return false;
    }
}

bool is_hop_or_own_response_field(const bhttp::fields::value_type& field) noexcept {
    switch (field.name()) {
        case bhttp::field::connection:
        case bhttp::field::keep_alive:
        case bhttp::field::proxy_connection:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
        case bhttp::field::content_length:
        case bhttp::field::set_cookie:
        case bhttp::field::alt_svc:
            return true;
        case bhttp::field::unknown: {
            const auto name = field.name_string();
            return iequals(name, "x-request-id") || starts_with_ci(name, "x-mistral-proxy-");
        }
        default:
            return false;
    }
}

// Headers named by the client's `Connection` header are hop-by-hop too.
bool named_by_connection(const bhttp::fields& fields, std::string_view name) {
    const auto connection = fields[bhttp::field::connection];
    if (connection.empty()) {
        return false;
    }
    for (const auto token : bhttp::token_list{connection}) {
        if (iequals(token, name)) {
            return true;
        }
    }
    return false;
}

template <class Fields>
void copy_end_to_end_request_fields(const bhttp::fields& from, Fields& to) {
    for (const auto& field : from) {
        if (is_hop_or_own_request_field(field) || named_by_connection(from, field.name_string())) {
            continue;
        }
        if (field.name() == bhttp::field::unknown) {
            to.insert(field.name_string(), field.value());
        } else {
            to.insert(field.name(), field.value());
        }
    }
}

// What the client should see of an upstream error answer besides the body:
// when to retry and the rate limits.
void copy_retry_fields(const bhttp::fields& from, bhttp::fields& to) {
    for (const auto& field : from) {
        const auto name = field.name_string();
        if (field.name() == bhttp::field::retry_after || starts_with_ci(name, "x-ratelimit") ||
            starts_with_ci(name, "ratelimit") || starts_with_ci(name, "retry-after")) {
            to.insert(name, field.value());
        }
    }
}

// A request body held whole, with the spare bytes the JSON parser may read past its end.
class padded_body {
public:
    void reserve(std::size_t bytes) {
        if (bytes + normalize::body_padding <= capacity_) {
            return;
        }
        auto bigger = std::make_unique_for_overwrite<char[]>(bytes + normalize::body_padding);
        std::copy_n(data_.get(), size_, bigger.get());
        data_ = std::move(bigger);
        capacity_ = bytes + normalize::body_padding;
    }
    char* free_space() noexcept { return data_.get() + size_; }
    std::size_t free_bytes() const noexcept { return capacity_ - normalize::body_padding - size_; }
    void commit(std::size_t bytes) noexcept { size_ += bytes; }
    std::size_t size() const noexcept { return size_; }
    std::string_view view() const noexcept { return {data_.get(), size_}; }
    void zero_padding() noexcept { std::fill_n(data_.get() + size_, normalize::body_padding, '\0'); }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

struct request_context {
    std::string id;
    std::string_view method;
    std::string path;
    std::optional<routing::upstream_id> upstream;
    std::string rules;  // comma-separated rule ids that changed the request or answer
    bool client_keep_alive = true;
    // What the access log and the metrics report once the request is answered.
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    unsigned status = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    std::string model_requested;
    std::string model_sent;
    std::string error_message;
    unsigned retries = 0;
    bool stream = false;
};

enum class relay_outcome { complete, upstream_failed, client_failed };

// What relaying an answer's body leaves behind for the code that ends it.
struct relay_state {
    config::duration read_timeout{};
    bool client_gone = false;
    boost::system::error_code upstream_error;
    std::string last_bytes;  // the last two bytes sent, to end a half-written SSE event
    std::uint64_t bytes_sent = 0;
};

class downstream_session {
public:
    downstream_session(tcp::socket socket, worker_context& worker)
        : client_(std::move(socket)), worker_(worker), state_(worker.state) {}

    awaitable<void> run();

private:
    beast::tcp_stream client_;
    beast::flat_buffer buffer_;
    worker_context& worker_;
    std::shared_ptr<const runtime_state> state_;  // the set this connection's current request runs on
    std::unique_ptr<char[]> relay_buffer_;

    const config::server_settings& server_settings() const noexcept { return state_->config.server; }
    char* relay_buffer() {
        if (!relay_buffer_) {
            relay_buffer_ = std::make_unique_for_overwrite<char[]>(relay_buffer_bytes);
        }
        return relay_buffer_.get();
    }

    awaitable<bool> handle(request_parser& parser);
    awaitable<bool> handle_request(request_parser& parser, request_context& context);
    awaitable<bool> proxy_buffered(request_parser& parser, request_context& context,
                                   std::optional<std::string_view> bearer);
    awaitable<bool> proxy_streamed(request_parser& parser, request_context& context,
                                   std::optional<std::string_view> bearer);
    awaitable<bool> relay_response(upstream_connection& connection, connection_ptr& owned, response_parser& parser,
                                   request_context& context);
    awaitable<relay_outcome> relay_body(upstream_connection& connection, response_parser& upstream_parser,
                                        bhttp::response_serializer<bhttp::buffer_body>& serializer,
                                        bhttp::response<bhttp::buffer_body>& response, relay_state& relay);
    awaitable<bool> answer_error_response(upstream_connection& connection, connection_ptr& owned,
                                          response_parser& parser, request_context& context);

    // Completes when the client hangs up (then closes `connection` at once, so the
    // upstream request ends too) or when cancelled by the work it runs beside.
    awaitable<void> watch_client(upstream_connection& connection, bool& client_gone);
    // Reads the upstream answer's header while watching the client.
    awaitable<boost::system::error_code> read_upstream_header(upstream_connection& connection,
                                                              response_parser& parser, config::duration timeout,
                                                              bool& client_gone);

    awaitable<bool> send_json(request_context& context, unsigned status, std::string body, bool keep_alive,
                              const bhttp::fields* upstream_fields = nullptr,
                              std::string_view content_type = "application/json");
    awaitable<bool> send_error(request_context& context, const errors::openai_error& error, bool keep_alive,
                               const bhttp::fields* upstream_fields = nullptr) {
        context.error_message = error.message;
        return send_json(context, error.status, errors::to_json(error), keep_alive, upstream_fields);
    }
    // Counts and logs a request once it is answered.
    void finish(const request_context& context);
    awaitable<void> send_continue_if_expected(const request_parser& parser);
    awaitable<void> linger_and_close();
    void set_proxy_fields(bhttp::fields& fields, const request_context& context) const;
    std::string upstream_target(routing::upstream_id upstream, std::string_view client_target) const;
    void log_failure(const request_context& context, const errors::openai_error& error) const;
};

void downstream_session::set_proxy_fields(bhttp::fields& fields, const request_context& context) const {
    fields.set("x-request-id", context.id);
    if (context.upstream) {
        fields.set("x-mistral-proxy-upstream", routing::upstream_name(*context.upstream));
    }
    fields.set("x-mistral-proxy-rules", context.rules);
}

std::string downstream_session::upstream_target(routing::upstream_id upstream, std::string_view client_target) const {
    // The client's "/v1" prefix is replaced by the upstream's own base path.
    return worker_.pool.settings(upstream).base_path + std::string(client_target.substr(3));
}

void downstream_session::log_failure(const request_context& context, const errors::openai_error& error) const {
    log_line(log_level::warn, "request " + context.id + " " + std::string(context.method) + " " + context.path +
                                  " -> " + std::to_string(error.status) + ": " + error.message);
}

void downstream_session::finish(const request_context& context) {
    const auto elapsed = std::chrono::steady_clock::now() - context.started;
    auto& metrics = worker_.metrics;
    const auto upstream_label =
        context.upstream ? static_cast<std::size_t>(*context.upstream) : metrics::no_upstream;
    // A client gone before any answer is counted as 499, as nginx does.
    const unsigned status = context.status == 0 ? 499 : context.status;
    metrics.count_request(metrics::endpoint_for_path(context.path), upstream_label, status);
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
    record.retries = context.retries;
    record.stream = context.stream;
    record.error = context.error_message;
    log.write(record);
}

awaitable<bool> downstream_session::send_json(request_context& context, unsigned status, std::string body,
                                              bool keep_alive, const bhttp::fields* upstream_fields,
                                              std::string_view content_type) {
    bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(status), 11};
    if (upstream_fields != nullptr) {
        copy_retry_fields(*upstream_fields, response.base());
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
awaitable<void> downstream_session::linger_and_close() {
    boost::system::error_code ignored;
    client_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    client_.expires_after(1s);
    std::size_t discarded = 0;
    while (discarded < 4 * 1024 * 1024) {
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(relay_buffer(), relay_buffer_bytes), as_result);
        if (ec) {
            break;
        }
        discarded += n;
    }
    client_.close();
}

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
                co_await send_error(context,
                                    errors::make_error(408, "request headers not received within " +
                                                                config::format_duration(server_settings().header_timeout)),
                                    false);
            } else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
                       ec != asio::error::connection_reset) {
                co_await send_error(context, errors::make_error(400, "malformed HTTP request: " + ec.message()),
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
    context.path = std::string(target.substr(0, target.find('?')));
    context.client_keep_alive = parser.get().keep_alive() && !worker_.draining;
    const bool keep_alive = co_await handle_request(parser, context);
    finish(context);
    co_return keep_alive && !worker_.draining;
}

awaitable<bool> downstream_session::handle_request(request_parser& parser, request_context& context) {
    auto& request = parser.get();
    // Without the body read, the connection cannot carry another request.
    const bool can_reuse = [&] { return parser.is_done() && context.client_keep_alive; }();

    if (context.path == "/healthz") {
        co_return co_await send_json(context, 200, R"({"status":"ok"})", can_reuse);
    }
    if (context.path == "/metrics") {
        co_return co_await send_json(context, 200, worker_.registry.render(), can_reuse, nullptr,
                                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!context.path.starts_with("/v1/") || has_dot_segment(context.path)) {
        co_return co_await send_error(
            context,
            errors::make_error(404, "no such endpoint: " + std::string(context.method) + " " + context.path +
                                        " (the proxy serves /v1/... and /healthz)",
                               "unknown_url"),
            can_reuse);
    }

    const auto bearer = routing::bearer_token(request[bhttp::field::authorization]);
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

    if (is_buffered_endpoint(request.method(), context.path)) {
        co_return co_await proxy_buffered(parser, context, bearer);
    }
    co_return co_await proxy_streamed(parser, context, bearer);
}

awaitable<bool> downstream_session::proxy_buffered(request_parser& parser, request_context& context,
                                                   std::optional<std::string_view> bearer) {
    co_await send_continue_if_expected(parser);

    padded_body body;
    const auto content_length = parser.content_length();
    const auto max_body = server_settings().max_body_bytes;
    // Room for one byte past the limit is what reveals an oversized chunked body.
    const auto room_limit = max_body + 1;
    body.reserve(content_length ? static_cast<std::size_t>(*content_length) : std::min<std::size_t>(16 * 1024, room_limit));
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
            co_await send_error(context,
                                errors::make_error(408, "request body not received within " +
                                                            config::format_duration(server_settings().body_timeout) +
                                                            " (server.body_timeout)"),
                                false);
            co_return false;
        }
        if (ec) {
            co_return false;  // the client went away mid-body: nobody to answer
        }
    }
    body.zero_padding();
    context.bytes_received = body.size();

    const auto peeked = normalize::peek_request(body.view());
    if (peeked.error) {
        co_return co_await send_error(context, *peeked.error, context.client_keep_alive);
    }
    context.model_requested = peeked.facts->model;
    context.model_sent = peeked.facts->model;
    context.stream = peeked.facts->stream;
    const auto route = routing::choose_upstream(state_->config, *state_->rules, context.path, peeked.facts->model);
    if (route.error) {
        co_return co_await send_error(context, *route.error, context.client_keep_alive);
    }
    const auto upstream = *route.upstream;
    context.upstream = upstream;
    auto key = state_->keys.upstream_authorization(upstream, bearer);
    if (key.error) {
        co_return co_await send_error(context, *key.error, context.client_keep_alive);
    }

    const auto& settings = worker_.pool.settings(upstream);
    bhttp::request<bhttp::span_body<const char>> upstream_request{parser.get().method(),
                                                                  upstream_target(upstream, parser.get().target()), 11};
    copy_end_to_end_request_fields(parser.get().base(), upstream_request.base());
    upstream_request.set(bhttp::field::host, settings.host);
    upstream_request.set(bhttp::field::authorization, key.authorization);
    upstream_request.set(bhttp::field::accept_encoding, "identity");
    upstream_request.keep_alive(true);
    upstream_request.body() = boost::beast::span<const char>(body.view().data(), body.size());
    upstream_request.prepare_payload();

    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    // A kept-alive connection may have been closed by the server just as it was
    // taken: the body is still here, so one retry on a new connection is safe.
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto acquired = co_await worker_.pool.acquire(upstream, attempt > 0);
        if (acquired.error) {
            log_failure(context, *acquired.error);
            co_return co_await send_error(context, *acquired.error, context.client_keep_alive);
        }
        auto connection = std::move(acquired.connection);
        connection->tcp().expires_after(settings.read_timeout);
        auto [write_ec, written] = co_await connection->visit(
            [&](auto& stream) { return bhttp::async_write(stream, upstream_request, as_result); });
        response_parser upstream_parser;
        upstream_parser.body_limit(boost::none);
        upstream_parser.header_limit(upstream_header_limit);
        if (parser.get().method() == bhttp::verb::head) {
            upstream_parser.skip(true);
        }
        boost::system::error_code ec = write_ec;
        bool client_gone = false;
        if (!ec) {
            ec = co_await read_upstream_header(*connection, upstream_parser, settings.read_timeout, client_gone);
        }
        if (client_gone) {
            connection->abort();
            co_return false;
        }
        if (ec && connection->reused() && attempt == 0 && ec != beast::error::timeout) {
            continue;
        }
        if (ec) {
            errors::openai_error failure =
                ec == beast::error::timeout
                    ? upstream_failure(name, endpoint,
                                       "no answer within " + config::format_duration(settings.read_timeout) +
                                           " (read_timeout)",
                                       ec)
                : (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                   ec == asio::error::connection_reset || ec == ssl::error::stream_truncated)
                    ? upstream_failure(name, endpoint, "closed the connection before answering", ec)
                    : upstream_failure(name, endpoint, "sent an invalid HTTP answer", ec);
            connection->abort();
            log_failure(context, failure);
            co_return co_await send_error(context, failure, context.client_keep_alive);
        }
        co_return co_await relay_response(*connection, connection, upstream_parser, context);
    }
    co_return false;  // unreachable: the second attempt always returns
}

awaitable<bool> downstream_session::proxy_streamed(request_parser& parser, request_context& context,
                                                   std::optional<std::string_view> bearer) {
    // The body is not read yet, so a refusal must close the connection unless there is none.
    const bool can_reuse = parser.is_done() && context.client_keep_alive;
    const auto route = routing::choose_upstream(state_->config, *state_->rules, context.path, {});
    if (route.error) {
        co_return co_await send_error(context, *route.error, can_reuse);
    }
    const auto upstream = *route.upstream;
    context.upstream = upstream;
    auto key = state_->keys.upstream_authorization(upstream, bearer);
    if (key.error) {
        co_return co_await send_error(context, *key.error, can_reuse);
    }

    const auto& settings = worker_.pool.settings(upstream);
    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    auto acquired = co_await worker_.pool.acquire(upstream);
    if (acquired.error) {
        log_failure(context, *acquired.error);
        co_return co_await send_error(context, *acquired.error, can_reuse);
    }
    auto connection = std::move(acquired.connection);

    auto& request = parser.get();
    bhttp::request<bhttp::buffer_body> upstream_request{request.method(), upstream_target(upstream, request.target()),
                                                        11};
    copy_end_to_end_request_fields(request.base(), upstream_request.base());
    upstream_request.set(bhttp::field::host, settings.host);
    upstream_request.set(bhttp::field::authorization, key.authorization);
    upstream_request.set(bhttp::field::accept_encoding, "identity");
    upstream_request.keep_alive(true);
    const bool has_body = !parser.is_done();
    if (parser.content_length()) {
        upstream_request.content_length(*parser.content_length());
    } else if (parser.chunked()) {
        upstream_request.chunked(true);
    }
    upstream_request.body().data = nullptr;
    upstream_request.body().size = 0;
    upstream_request.body().more = has_body;

    co_await send_continue_if_expected(parser);

    bhttp::request_serializer<bhttp::buffer_body> serializer{upstream_request};
    connection->tcp().expires_after(settings.read_timeout);
    auto [header_ec, header_bytes] =
        co_await connection->visit([&](auto& stream) { return bhttp::async_write_header(stream, serializer, as_result); });
    if (header_ec) {
        auto failure = upstream_failure(name, endpoint, "failed while sending the request", header_ec);
        connection->abort();
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
            connection->abort();
            if (read_ec == beast::error::timeout) {
                co_await send_error(context,
                                    errors::make_error(408, "request body stalled for " +
                                                                config::format_duration(server_settings().body_timeout) +
                                                                " (server.body_timeout)"),
                                    false);
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
        upstream_request.body().data = chunk;
        upstream_request.body().size = got;
        upstream_request.body().more = !parser.is_done();
        if (got == 0 && !parser.is_done()) {
            continue;
        }
        connection->tcp().expires_after(settings.read_timeout);
        auto [write_ec, written] =
            co_await connection->visit([&](auto& stream) { return bhttp::async_write(stream, serializer, as_result); });
        if (write_ec && write_ec != bhttp::error::need_buffer) {
            auto failure = upstream_failure(name, endpoint, "failed while receiving the request body", write_ec);
            connection->abort();
            log_failure(context, failure);
            co_return co_await send_error(context, failure, false);
        }
        if (parser.is_done()) {
            break;
        }
    }

    response_parser upstream_parser;
    upstream_parser.body_limit(boost::none);
    upstream_parser.header_limit(upstream_header_limit);
    if (request.method() == bhttp::verb::head) {
        upstream_parser.skip(true);
    }
    bool client_gone = false;
    const auto read_ec = co_await read_upstream_header(*connection, upstream_parser, settings.read_timeout, client_gone);
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
        co_return co_await send_error(context, failure, context.client_keep_alive);
    }
    co_return co_await relay_response(*connection, connection, upstream_parser, context);
}

awaitable<bool> downstream_session::answer_error_response(upstream_connection& connection, connection_ptr& owned,
                                                          response_parser& parser, request_context& context) {
    const auto upstream = *context.upstream;
    const auto& settings = worker_.pool.settings(upstream);
    std::string body;
    boost::system::error_code ec;
    while (!parser.is_done() && body.size() < max_error_body_bytes) {
        const auto before = body.size();
        body.resize(before + 4096);
        parser.get().body().data = body.data() + before;
        parser.get().body().size = 4096;
        connection.tcp().expires_after(settings.read_timeout);
        auto [read_ec, n] = co_await connection.visit(
            [&](auto& stream) { return bhttp::async_read_some(stream, connection.read_buffer(), parser, as_result); });
        body.resize(before + 4096 - parser.get().body().size);
        if (read_ec && read_ec != bhttp::error::need_buffer) {
            ec = read_ec;
            break;
        }
    }
    const auto error = errors::translate_upstream_error(parser.get().result_int(), body, routing::upstream_name(upstream));
    if (!ec && parser.is_done() && parser.keep_alive()) {
        worker_.pool.release(upstream, std::move(owned));
    } else {
        connection.abort();
    }
    co_return co_await send_error(context, error, context.client_keep_alive, &parser.get().base());
}

awaitable<void> downstream_session::watch_client(upstream_connection& connection, bool& client_gone) {
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
        connection.abort();
        co_return;
    }
}

awaitable<boost::system::error_code> downstream_session::read_upstream_header(upstream_connection& connection,
                                                                              response_parser& parser,
                                                                              config::duration timeout,
                                                                              bool& client_gone) {
    using namespace asio::experimental::awaitable_operators;
    auto read = [&]() -> awaitable<boost::system::error_code> {
        co_await asio::this_coro::throw_if_cancelled(false);
        connection.tcp().expires_after(timeout);
        auto [ec, n] = co_await connection.visit([&](auto& stream) {
            return bhttp::async_read_header(stream, connection.read_buffer(), parser, as_result);
        });
        co_return ec;
    };
    auto result = co_await (read() || watch_client(connection, client_gone));
    if (result.index() == 1 || client_gone) {
        client_gone = true;
        co_return asio::error::operation_aborted;
    }
    co_return std::get<0>(result);
}

awaitable<bool> downstream_session::relay_response(upstream_connection& connection, connection_ptr& owned,
                                                   response_parser& upstream_parser, request_context& context) {
    const auto status = upstream_parser.get().result_int();
    if (status < 200 || status >= 300) {
        co_return co_await answer_error_response(connection, owned, upstream_parser, context);
    }
    const auto upstream = *context.upstream;
    const auto& upstream_response = upstream_parser.get();
    context.status = status;

    bhttp::response<bhttp::buffer_body> response{upstream_response.result(), 11};
    for (const auto& field : upstream_response) {
        if (is_hop_or_own_response_field(field)) {
            continue;
        }
        if (field.name() == bhttp::field::unknown) {
            response.insert(field.name_string(), field.value());
        } else {
            response.insert(field.name(), field.value());
        }
    }
    set_proxy_fields(response.base(), context);
    const bool event_stream = starts_with_ci(upstream_response[bhttp::field::content_type], "text/event-stream");
    // A stream is always re-chunked so that a failure mid-way can still end it
    // with an error event and a clean terminator.
    if (upstream_parser.is_done()) {
        response.content_length(0);
    } else if (upstream_parser.content_length() && !event_stream) {
        response.content_length(*upstream_parser.content_length());
    } else {
        response.chunked(true);
    }
    response.keep_alive(context.client_keep_alive);
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = !upstream_parser.is_done();

    bhttp::response_serializer<bhttp::buffer_body> serializer{response};
    client_.expires_after(server_settings().write_timeout);
    auto [header_ec, header_bytes] = co_await bhttp::async_write_header(client_, serializer, as_result);
    if (header_ec) {
        connection.abort();
        co_return false;
    }

    relay_state relay;
    relay.read_timeout = worker_.pool.settings(upstream).read_timeout;
    relay_outcome outcome = relay_outcome::complete;
    if (!upstream_parser.is_done()) {
        using namespace asio::experimental::awaitable_operators;
        metrics::shard::add(worker_.metrics.open_streams, 1);
        // While the body flows, watch the client: if it hangs up, the upstream
        // request is closed at once rather than when the next write fails.
        auto result = co_await (relay_body(connection, upstream_parser, serializer, response, relay) ||
                                watch_client(connection, relay.client_gone));
        metrics::shard::add(worker_.metrics.open_streams, -1);
        context.bytes_sent = relay.bytes_sent;
        outcome = result.index() == 0 ? std::get<0>(result) : relay_outcome::client_failed;
    } else {
        client_.expires_after(server_settings().write_timeout);
        auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
        if (end_ec) {
            outcome = relay_outcome::client_failed;
        }
    }

    if (outcome == relay_outcome::complete) {
        if (upstream_parser.keep_alive()) {
            worker_.pool.release(upstream, std::move(owned));
        } else {
            connection.abort();
        }
        co_return context.client_keep_alive;
    }
    connection.abort();
    if (outcome == relay_outcome::client_failed || relay.client_gone) {
        co_return false;
    }

    // The upstream broke off after the answer started: the status is already
    // sent, so the failure goes into the body.
    const auto name = routing::upstream_name(upstream);
    const auto endpoint = worker_.pool.endpoint_text(upstream);
    const auto& settings = worker_.pool.settings(upstream);
    const auto& upstream_error = relay.upstream_error;
    auto failure = upstream_error == beast::error::timeout
                       ? upstream_failure(name, endpoint,
                                          "stream stalled: nothing received for " +
                                              config::format_duration(settings.read_timeout) + " (read_timeout)",
                                          upstream_error)
                       : upstream_failure(name, endpoint, "broke off the answer before its end", upstream_error);
    log_failure(context, failure);
    context.error_message = failure.message;
    metrics::shard::add(worker_.metrics.upstream_failures[static_cast<std::size_t>(upstream)]);
    if (!event_stream || !response.chunked()) {
        co_return false;  // a plain body cannot carry an error: closing tells the client it is cut short
    }
    std::string event;
    if (!relay.last_bytes.ends_with("\n\n") && !relay.last_bytes.empty()) {
        event = relay.last_bytes.ends_with("\n") ? "\n" : "\n\n";  // end the half-written event first
    }
    event += errors::to_sse_event(failure);
    response.body().data = event.data();
    response.body().size = event.size();
    response.body().more = true;
    client_.expires_after(server_settings().write_timeout);
    auto [event_ec, event_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    if (event_ec && event_ec != bhttp::error::need_buffer) {
        co_return false;
    }
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = false;
    auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    co_return !end_ec && context.client_keep_alive;
}

awaitable<relay_outcome> downstream_session::relay_body(upstream_connection& connection,
                                                        response_parser& upstream_parser,
                                                        bhttp::response_serializer<bhttp::buffer_body>& serializer,
                                                        bhttp::response<bhttp::buffer_body>& response,
                                                        relay_state& relay) {
    // Cancellation from the client watcher must surface as error codes, not exceptions.
    co_await asio::this_coro::throw_if_cancelled(false);
    char* chunk = relay_buffer();
    for (;;) {
        upstream_parser.get().body().data = chunk;
        upstream_parser.get().body().size = relay_buffer_bytes;
        // Re-armed for every read: the timeout bounds each gap, never the whole stream.
        connection.tcp().expires_after(relay.read_timeout);
        auto [read_ec, n] = co_await connection.visit([&](auto& stream) {
            return bhttp::async_read_some(stream, connection.read_buffer(), upstream_parser, as_result);
        });
        const auto got = relay_buffer_bytes - upstream_parser.get().body().size;
        if (got > 0) {
            response.body().data = chunk;
            response.body().size = got;
            response.body().more = true;
            client_.expires_after(server_settings().write_timeout);
            auto [write_ec, written] = co_await bhttp::async_write(client_, serializer, as_result);
            if (write_ec && write_ec != bhttp::error::need_buffer) {
                co_return relay_outcome::client_failed;
            }
            relay.bytes_sent += got;
            const std::string_view tail(chunk + (got > 2 ? got - 2 : 0), got > 2 ? 2 : got);
            relay.last_bytes.append(tail);
            if (relay.last_bytes.size() > 2) {
                relay.last_bytes.erase(0, relay.last_bytes.size() - 2);
            }
        }
        if (read_ec && read_ec != bhttp::error::need_buffer) {
            if (relay.client_gone) {
                co_return relay_outcome::client_failed;
            }
            relay.upstream_error = read_ec;
            co_return relay_outcome::upstream_failed;
        }
        if (upstream_parser.is_done()) {
            break;
        }
    }
    response.body().data = nullptr;
    response.body().size = 0;
    response.body().more = false;
    client_.expires_after(server_settings().write_timeout);
    auto [end_ec, end_bytes] = co_await bhttp::async_write(client_, serializer, as_result);
    co_return end_ec ? relay_outcome::client_failed : relay_outcome::complete;
}

}  // namespace

awaitable<void> run_downstream_session(tcp::socket socket, worker_context& worker) {
    downstream_session session(std::move(socket), worker);
    co_await session.run();
}

}  // namespace mistral_proxy::http
