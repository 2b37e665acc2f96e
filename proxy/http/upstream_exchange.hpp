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
    awaitable<exchange_result> run(upstream_request& request, bool may_fall_back,
                                   std::optional<response_parser>& parser);

private:
    // Between tries: the backoff, taking a request token again (SPEC §8).
    // False when the client left meanwhile.
    awaitable<bool> wait_before_retry(limits::milliseconds delay, metrics::retry_cause cause);
    static exchange_result with(exchange_result::outcome what) {
        exchange_result result;
        result.what = what;
        return result;
    }

    downstream_session& session_;
    request_context& context_;
    routing::upstream_id upstream_;
    std::size_t index_;
};

}  // namespace mistral_proxy::http
