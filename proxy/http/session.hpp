#pragma once
// The downstream session's internals, shared by its two source files:
// downstream_session.cpp (connection loop, request side, limits, retries) and
// response_relay.cpp (the answer: relayed, transcoded per event, or rewritten whole).
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>

#include "http/downstream_session.hpp"
#include "http/http_util.hpp"
#include "http/wait_deadline.hpp"
#include "limits/limiter.hpp"
#include "plan/request_plan.hpp"
#include "routing/endpoints.hpp"
#include "responses/models.hpp"
#include "openai_responses/stream.hpp"
#include "responses/event_rewriter.hpp"
#include "responses/stream_transcoder.hpp"

namespace mistral_proxy::http {

// Relay granularity: big enough that a bulk transfer costs few syscalls, small
// enough that a thousand idle streams stay within a few megabytes.
inline constexpr std::size_t relay_buffer_bytes = 8 * 1024;
// The most one read of a relayed answer asks for (Beast's read_size limit, as
// in http::async_read_some): a read fills the upstream connection's buffer as
// far as its capacity, without growing it.
inline constexpr std::size_t relay_read_bytes = 64 * 1024;
// Error bodies are read whole to be translated; Mistral's are a few hundred bytes.
inline constexpr std::size_t max_error_body_bytes = 1024 * 1024;
// Answers rewritten whole (chat, embeddings, model lists) are read whole first.
inline constexpr std::size_t max_whole_answer_bytes = 64 * 1024 * 1024;
inline constexpr std::uint32_t upstream_header_limit = 64 * 1024;

// The answer plan is the request plan's (plan/request_plan.hpp).
using plan::answer_mode;
using plan::answer_plan;
using plan::whole_kind;

inline std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A request's strings: cleared between requests, never freed, so that a
// session's requests after its first allocate none of them.
struct request_text {
    std::string id;
    std::string path;           // canonical (routing/endpoints.hpp canonical_path): what routing and limits see
    std::string path_refusal;   // why the path is refused (400), empty when it is not
    std::string rules;  // comma-separated rule ids that changed the request or answer
    std::string model_requested;
    std::string model_sent;
    std::string fallback;  // "FROM->TO" when a fallback model serves it (SPEC §6 `fallback`)
    // POST /v1/responses: the stored conversation it continues (JSON array
    // text, "" for none), joined with its input and output when it is stored.
    std::string responses_previous;
    std::string error_message;
    // The limiter bucket of the upstream key taken (wait_for_limits).
    std::string key_bucket;

    // Every member above, each a std::string (the static_assert below
    // counts them: one left out would keep the last request's text).
    void clear() noexcept {
        for (auto member : {&request_text::id, &request_text::path, &request_text::path_refusal,
                            &request_text::rules, &request_text::model_requested, &request_text::model_sent,
                            &request_text::fallback, &request_text::responses_previous,
                            &request_text::error_message, &request_text::key_bucket}) {
            (this->*member).clear();
        }
    }
};
static_assert(sizeof(request_text) == 10 * sizeof(std::string),
              "a member added to request_text needs a place in request_text::clear()");

// The rest of a request's state: set back to these defaults for each request.
struct request_facts {
    std::string_view method;
    std::optional<std::string_view> client_bearer;  // in the request's header: valid for the whole request
    // The endpoint table's row for (method, path): the request's treatment and metrics label.
    const routing::endpoint_row* endpoint = &routing::row_of(routing::endpoint_kind::unknown);
    std::optional<routing::upstream_id> upstream;
    bool client_keep_alive = true;
    // What the access log, the metrics and the limiter get once the request is answered.
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    unsigned status = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    unsigned retries = 0;
    bool stream = false;
    // The upstream key taken (wait_for_limits): its index in the upstream's
    // pool (routing::key_store::pool); its bucket is request_text::key_bucket.
    std::size_t key_member = 0;
    bool switch_key = false;  // Mistral refused a pool's key (401) before any byte reached the client: take another
    std::optional<limits::reservation> reservation;
    std::uint64_t estimated_tokens = 0;
    // At most this is booked when no usage comes (limits::tokens_to_book).
    std::uint64_t unreported_tokens = std::numeric_limits<std::uint64_t>::max();
    std::optional<responses::usage_counts> usage;
    bool upstream_refused = false;  // answered non-2xx: nothing was generated
    limits::rate_limits upstream_limits;  // what Mistral said of its limits
};

// One request on a client connection: its text and its facts.
struct request_context : request_text, request_facts {
    // Back to a new request's state, keeping the strings' memory: the session
    // reuses one context. Clearing the strings in place and assigning the
    // facts costs a fraction of building a fresh context and moving it in
    // (about 870 instructions a request, ten string moves and swaps).
    void reset() {
        request_text::clear();
        static_cast<request_facts&>(*this) = request_facts{};
    }
};

enum class relay_outcome { complete, upstream_failed, client_failed };

// What relaying an answer's body leaves behind for the code that ends it.
struct relay_state {
    config::duration read_timeout{};
    bool client_gone = false;
    boost::system::error_code upstream_error;
    std::string last_bytes;  // the last two bytes sent, to end a half-written SSE event
    std::uint64_t bytes_sent = 0;
    struct request_context* context = nullptr;  // settled with the limiter before the last byte goes out
    const answer_plan* plan = nullptr;
    // A Responses API stream: its final Response is stored before the last byte.
    const openai_responses::stream_transcoder* responses_stream = nullptr;
    // The client's body is bytes, not events (speech audio from Mistral's
    // stream): a failure cannot be told in it, so the answer is cut short.
    bool bytes_only = false;
    // The head is written before the relay first waits on the upstream, if no
    // piece of body took it along (an event stream's: its first event may
    // take seconds).
    bool head_before_waiting = false;
};

struct exchange_result;  // upstream_exchange.hpp

class downstream_session {
    friend class upstream_exchange;  // the exchange is the session's own step, in a type of its own

public:
    downstream_session(tcp_socket socket, worker_context& worker)
        : client_(std::move(socket)), worker_(worker), state_(worker.state) {
        client_watch_->worker = &worker;
    }
    ~downstream_session();
    downstream_session(const downstream_session&) = delete;
    downstream_session& operator=(const downstream_session&) = delete;

    awaitable<void> run();

private:
    tcp_stream client_;
    beast::flat_buffer buffer_;
    // The request body of a whole-body endpoint and the upstream's whole
    // answer, reused by each request on this connection (padded_body::reuse).
    padded_body request_body_;
    padded_body answer_body_;
    std::string planned_body_;  // the rewritten body of the request being sent (proxy_buffered)
    request_context context_;             // the request being handled (handle), reset for each
    // What proxy_buffered plans a request with (kept off its coroutine frame).
    struct buffered_plan_state {
        plan::plan_result planned;
        std::vector<std::pair<std::string, std::string>> stored_items;  // a Response's stored conversation
        openai_responses::history history;
        std::vector<std::string> fallbacks;  // SPEC §6 `fallback`: the models to try next
        std::string first_model;
        void reset() {
            stored_items.clear();
            history = {};
            fallbacks.clear();
            first_model.clear();
        }
    };
    buffered_plan_state plan_state_;
    std::string upstream_head_;           // its head up to Content-Length (upstream_request::head_start)
    std::string upstream_authorization_;  // and the Authorization value it goes with
    head_fields answer_fields_;  // the fields of a whole answer's head (answer_whole)
    static constexpr std::size_t kept_body_capacity = 64 * 1024;
    worker_context& worker_;
    std::shared_ptr<const runtime_state> state_;  // the set this connection's current request runs on
    std::unique_ptr<char[]> relay_buffer_;
    std::string out_;   // transcoder output, reused
    std::string backlog_;  // what a slow client has yet to take of a piece relayed from the shared buffer
    std::string head_;  // the head of a message written whole (format_head, upstream_request_pieces), reused

    const config::server_settings& server_settings() const noexcept { return state_->config.server; }
    char* relay_buffer() {
        if (!relay_buffer_) {
            relay_buffer_ = std::make_unique_for_overwrite<char[]>(relay_buffer_bytes);
        }
        return relay_buffer_.get();
    }
    // The thread's relay buffer, shared by its sessions, for an answer relayed
    // piece by piece (relay_body): each piece is parsed into it and handled
    // before the next wait, and what must outlive a wait (a write the client
    // cannot take at once) is copied to backlog_ first. An open stream then
    // holds no 8 KB of its own (8 MB for a thousand).
    static char* shared_relay_buffer();

    // --- downstream_session.cpp: the request side
    awaitable<bool> handle(request_parser& parser);
    awaitable<bool> handle_request(request_parser& parser, request_context& context);
    awaitable<bool> answer_here(request_parser& parser, request_context& context);
    awaitable<bool> proxy_buffered(request_parser& parser, request_context& context,
                                   std::optional<std::string_view> bearer);
    awaitable<bool> proxy_streamed(request_parser& parser, request_context& context,
                                   std::optional<std::string_view> bearer);
    awaitable<bool> refuse_without_key(request_context& context, routing::upstream_id upstream,
                                       std::optional<std::string_view> bearer);
    // Waits for the rate limiter's go (FIFO), or answers the local 429. False:
    // the request is over (answered or the client left); `keep_alive` says
    // whether the connection can carry another.
    // It also takes the upstream key (context.key_member/key_bucket): of a key
    // pool, the key in rotation whose request may go soonest, round-robin on
    // a tie (`rotate` false: the first in rotation, for Mistral-side state).
    awaitable<bool> wait_for_limits(request_context& context, routing::upstream_id upstream, std::uint64_t tokens,
                                    bool& keep_alive, bool rotate = true);
    // wait_for_limits when there is nothing to wait for (no limiter, no key
    // pool): takes the key at once, as it would, without a coroutine frame.
    // False when wait_for_limits must run.
    bool take_key_at_once(request_context& context, routing::upstream_id upstream) const;
    // Mistral answered 401 for the key the request took: a pool's key leaves
    // the rotation (logged, counted, shared through Redis). True when another
    // key of the pool is still in rotation.
    awaitable<bool> take_key_out(request_context& context, routing::upstream_id upstream);
    // The Authorization value for the key wait_for_limits took (a key pool's
    // member, or the only key), written into upstream_authorization_; empty
    // when no key can be used (checked before, with can_authorize).
    const std::string& authorization_for(const request_context& context, routing::upstream_id upstream);
    // The limiter calls (worker_.limiter_client, embedded or Redis), with
    // what goes wrong logged: a retry still waits its backoff, a cancel or a
    // settle that fails is logged and the request goes on.
    awaitable<limits::time_point> limits_retry(limits::reservation& reservation, limits::milliseconds delay);
    awaitable<void> limits_cancel(const limits::reservation& reservation);
    awaitable<void> limits_settle(request_context& context);
    awaitable<std::string> month_usage_metrics();
    // Waits `until` (a limiter instant) while watching the client; false when it left.
    awaitable<bool> wait_watching_client(limits::time_point until);
    // Sends a whole-body request, with the retries of SPEC §8, and answers.
    // Circuit breakers (limits/breaker.hpp): the 503 of an open breaker, and the
    // outcome of one try (its metrics and /readyz facts kept up to date).
    awaitable<bool> refuse_open_breaker(request_context& context, routing::upstream_id upstream,
                                        limits::time_point retry_at);
    exchange_result open_breaker_refusal(const request_context& context, routing::upstream_id upstream,
                                         limits::time_point retry_at) const;
    // Answers an exchange's refusal (its error and headers); nothing was generated.
    awaitable<bool> answer_refusal(request_context& context, const exchange_result& refusal);
    void note_try_outcome(routing::upstream_id upstream, std::string_view model, bool failed);
    // With `fall_back` set, a failure the rule files' fallbacks cover (a status
    // of `fallback_statuses`, no answer at all) is not retried nor answered:
    // *fall_back becomes true and the caller re-plans for the next model.
    // POST /v1/responses: reads what the body continues (previous_response_id,
    // item_reference) from the responses store into `items` and
    // context.responses_previous. False: answered (404, 400, 500), stop.
    awaitable<bool> load_responses_history(request_context& context, std::string_view body,
                                           std::vector<std::pair<std::string, std::string>>& items);
    // Keeps a Response (store: true) before the client has the whole answer,
    // so that a retrieve right after it finds it. A failure is logged only.
    awaitable<void> store_response(request_context& context, const answer_plan& plan, std::string_view response,
                                   std::string_view output_items);
    // GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.
    awaitable<bool> answer_response_object(request_context& context, std::string_view method, std::string_view query,
                                           bool can_reuse);
    awaitable<bool> exchange_buffered(request_context& context, routing::upstream_id upstream,
                                      upstream_request& request, const answer_plan& plan,
                                      bool* fall_back = nullptr);

    // Watching the client while the upstream works (the answer header, a
    // stream) or while the limiter makes a request wait: a plain read on the
    // client socket with a callback, no coroutines and no parallel group (those
    // cost ~5% of a request). When the client hangs up, the attached
    // `connection` (if any) is closed at once, so the upstream request ends too.
    // The read is never cancelled when a wait ends: it stays in flight (only
    // detached from the connection) until the client's next bytes or its
    // hang-up, so that it is also the wait for the next request on a kept-alive
    // connection (settle_client_watch, in run()): one read a request instead of
    // a watch started, a watch cancelled and a read for the next request.
    struct client_watch_state {
        asio::cancellation_signal cancel;
        bool pending = false;
        bool gone = false;                        // end of stream or a reset
        bool aborted = false;                     // the read was cancelled (a deadline, a drain)
        std::size_t bytes = 0;                    // read into buffer_, not yet committed
        upstream_connection* connection = nullptr;  // closed when the client goes
        steady_timer* waiter = nullptr;           // woken when the read completes
        // settle_client_watch's coroutine, resumed by the read's completion.
        asio::any_completion_handler<void()> resume;
        const worker_context* worker = nullptr;  // the session's
    };
    struct client_watch_completion;  // the read's handler (upstream_exchange.cpp)
    // Attaches `connection` (may be null) to the watch, starting its read
    // unless one is in flight; a completed read's bytes are committed first.
    void start_client_watch(upstream_connection* connection);
    // Detaches the connection; the read stays in flight.
    void stop_client_watch() noexcept;
    // Waits for the read in flight (the next request's bytes, a hang-up) until
    // `deadline`, and commits what it read. False: the client hung up or the
    // deadline passed (the read is then cancelled).
    awaitable<bool> settle_client_watch(std::chrono::steady_clock::time_point deadline);
    bool client_watch_unsettled() const noexcept { return client_watch_->pending || client_watch_->bytes != 0; }
    std::shared_ptr<client_watch_state> client_watch_ = std::make_shared<client_watch_state>();
    // Bounds settle_client_watch's wait for the next request (the idle
    // timeout): one lazily moved timer for the connection (wait_deadline.hpp),
    // made at the first wait; its expiry cancels the watch's read.
    std::shared_ptr<wait_deadline> idle_deadline_;
    // Reads the upstream's final answer header into a new `parser` while
    // watching the client. Interim 1xx answers are read past (RFC 9110 §15.2);
    // a 101 is an error (the proxy never asks for an upgrade). `head_request`:
    // the answer has no body whatever its header says.
    awaitable<boost::system::error_code> read_upstream_header(upstream_connection& connection,
                                                              std::optional<response_parser>& parser,
                                                              bool head_request, config::duration timeout,
                                                              bool& client_gone);
    // Gives the connection back to the pool when `parser` read a whole answer
    // that allows keep-alive and nothing follows it; closes it otherwise.
    void release_or_close(routing::upstream_id upstream, connection_ptr& owned, const response_parser& parser);
    // Reads a refusal (an error answer the client will not see: a retry or a
    // fallback follows) to its end, so that its connection can serve the next try.
    awaitable<void> discard_refusal(routing::upstream_id upstream, connection_ptr& owned, response_parser& parser);
    // After a transcoded stream ended at its last event: reads the rest of the
    // upstream body (the chunked terminator, usually in the same packet) for a
    // short while, so that the connection can go back to the pool.
    awaitable<void> finish_upstream_body(upstream_connection& connection, response_parser& parser);
    // Answers 413 to a body found over server.max_body_bytes while reading it,
    // then closes after a lingering read (the client may still be sending).
    awaitable<bool> refuse_too_large(request_context& context);
    // Answers 400 to bytes that are not HTTP and closes the connection.
    awaitable<bool> refuse_malformed(request_context& context, const boost::system::error_code& ec);

    // --- response_relay.cpp: the answer
    awaitable<bool> relay_response(upstream_connection& connection, connection_ptr& owned, response_parser& parser,
                                   request_context& context, const answer_plan& plan);
    responses::body_result transform_whole_answer(std::string_view body, const answer_plan& plan,
                                                  std::string& output_items);
    awaitable<bool> relay_stream(upstream_connection& connection, connection_ptr& owned, response_parser& parser,
                                 request_context& context, const answer_plan& plan, bool event_stream);
    awaitable<relay_outcome> relay_body(upstream_connection& connection, response_parser& upstream_parser,
                                        bhttp::response_serializer<bhttp::buffer_body>& serializer,
                                        bhttp::response<bhttp::buffer_body>& response, relay_state& relay,
                                        responses::event_rewriter* transcoder);
    awaitable<bool> answer_whole(upstream_connection& connection, connection_ptr& owned, response_parser& parser,
                                 request_context& context, const answer_plan& plan);
    // Reads what is left of an upstream body into `body`, up to `limit` bytes.
    // Sets `complete` when the body ended within the limit.
    // The buffer is sized from Content-Length when there is one and is never
    // zero-filled: answers are read whole on the hot path.
    awaitable<boost::system::error_code> read_rest(upstream_connection& connection, response_parser& parser,
                                                   padded_body& body, std::size_t limit, bool& complete);
    // read_rest's part without I/O: parses into `body` what the connection
    // already read. True when that settled it (`complete`, over the limit, or
    // an error in `ec`); false when the socket must be read (read_rest then).
    bool take_buffered_rest(upstream_connection& connection, response_parser& parser, padded_body& body,
                            std::size_t limit, bool& complete, boost::system::error_code& ec);
    awaitable<bool> answer_error_response(upstream_connection& connection, connection_ptr& owned,
                                          response_parser& parser, request_context& context);
    // Adds OpenAI's rate-limit headers (from Mistral's and the proxy's own buckets).
    // Fields: bhttp::fields, or head_fields (a head laid out as text).
    template <class Fields>
    void add_rate_limit_fields(Fields& fields, request_context& context);

    // --- shared
    awaitable<bool> send_json(request_context& context, unsigned status, std::string body, bool keep_alive,
                              const limits::header_list* extra_headers = nullptr,
                              std::string_view content_type = "application/json");
    awaitable<bool> send_error(request_context& context, const errors::openai_error& error, bool keep_alive,
                               const limits::header_list* extra_headers = nullptr) {
        context.error_message = error.message;
        return send_json(context, error.status, errors::to_json(error), keep_alive, extra_headers);
    }
    // `Expect: 100-continue`: the interim answer is written before the body is
    // read. Checked first, so that a request without it makes no coroutine.
    static bool expects_continue(const request_parser& parser);
    awaitable<void> send_continue();
    awaitable<void> linger_and_close();
    template <class Fields>
    void set_proxy_fields(Fields& fields, const request_context& context) const;
    std::string upstream_target(routing::upstream_id upstream, std::string_view path_after_v1,
                                std::string_view query) const;
    void log_failure(const request_context& context, const errors::openai_error& error) const;
    void note_client_timeout(request_context& context, std::string message);
    // Counts, logs and settles a request once it is answered.
    void finish(request_context& context);
};

}  // namespace mistral_proxy::http
