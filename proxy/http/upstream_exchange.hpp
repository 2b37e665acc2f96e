#pragma once
// The upstream exchange of a whole-body request, a type of its own: the
// circuit breaker's admission, sending, reading the answer's head past 1xx
// while watching the client, classifying failures, the retries of SPEC §8
// (with their backoff and their request tokens), and handing a failure back
// for a fallback model or another key of a pool. It writes nothing to the
// client: it returns what happened, and the session decides what the client
// gets (Beast's advanced_server shape: the session does the I/O around it).
#include <optional>

#include "http/session.hpp"

namespace mistral_proxy::http {

struct exchange_result {
    enum class outcome {
        answer,       // an answer's head was read into the caller's parser: relay it
        refused,      // no answer to relay: the client gets `error`, with `headers`
        fall_back,    // a failure the rule files' fallbacks cover: plan the next model
        switch_key,   // Mistral refused a pool's key, now out of rotation: take another
        client_gone,  // the client left while waiting: nothing to answer
    };
    outcome what = outcome::client_gone;
    connection_ptr connection;                  // answer: the connection its head came on
    std::optional<errors::openai_error> error;  // refused
    limits::header_list headers;                // refused: Retry-After, x-should-retry
};

class upstream_exchange {
public:
    // `context` and `session` outlive the exchange (one request's).
    upstream_exchange(downstream_session& session, request_context& context, routing::upstream_id upstream)
        : session_(session), context_(context), upstream_(upstream), index_(static_cast<std::size_t>(upstream)) {}

    // Sends `request` until an answer comes or the retries are spent.
    // `may_fall_back`: a failure the fallbacks cover (a status of
    // fallback_statuses, no answer at all) comes back as fall_back, neither
    // retried nor answered.
    // With an answer, `parser` holds its head (its body not read yet); a
    // parser is not movable, so the caller keeps it.
    // Its coroutine frame is about 1000 bytes, under the ~1 KB blocks Asio
    // recycles (a larger one goes through malloc's slow path every request):
    // what is large and rare (connecting, a partial write, the results) is
    // in the helpers below, not in named locals of run().
    awaitable<exchange_result> run(upstream_request& request, bool may_fall_back,
                                   std::optional<response_parser>& parser);

private:
    awaitable<void> connect(connection_ptr& connection, std::optional<errors::openai_error>& failure);
    static awaitable<boost::system::error_code> write_rest(upstream_connection& connection,
                                                          std::array<asio::const_buffer, 2> pieces, std::size_t sent,
                                                          config::duration timeout);
    // Between tries: the backoff, taking a request token again (SPEC §8).
    // False when the client left meanwhile.
    awaitable<bool> wait_before_retry(limits::milliseconds delay, metrics::retry_cause cause);
    // The results are built by these plain functions, not as named locals of
    // run(): a coroutine keeps every named local in its frame.
    static exchange_result with(exchange_result::outcome what) {
        exchange_result result;
        result.what = what;
        return result;
    }
    static exchange_result answered(connection_ptr connection) {
        exchange_result result = with(exchange_result::outcome::answer);
        result.connection = std::move(connection);
        return result;
    }
    static exchange_result refused(std::optional<errors::openai_error> error, limits::header_list headers) {
        exchange_result result = with(exchange_result::outcome::refused);
        result.error = std::move(error);
        result.headers = std::move(headers);
        return result;
    }

    downstream_session& session_;
    request_context& context_;
    routing::upstream_id upstream_;
    std::size_t index_;
};

}  // namespace mistral_proxy::http
