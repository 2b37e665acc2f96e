#pragma once
// The request plan: one pure function from what the client sent to what the
// proxy will do with it — the upstream, the URL path, the body to send, the
// rule ids that fired, how the answer is rewritten (whole or per event) and
// what the rate limiter must hold — or the OpenAI-shaped refusal. `serve`
// (proxy/http) and `explain` (main.cpp) both call plan_request(), so what
// explain prints is what serve sends (SPEC §1). No I/O, no Asio, no
// exceptions for any input.
//
// The session around it only moves bytes: it reads the body, plans, waits for
// the limiter, exchanges with the upstream and runs the answer plan.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audio/speech.hpp"
#include "audio/transcription_request.hpp"
#include "audio/transcription_answer.hpp"
#include "batches/batch_object.hpp"
#include "batches/file_registry.hpp"
#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "limits/estimate.hpp"
#include "normalize/normalizer.hpp"
#include "openai_responses/ids.hpp"
#include "openai_responses/request.hpp"
#include "responses/models.hpp"
#include "responses/stream_transcoder.hpp"
#include "routing/endpoints.hpp"
#include "routing/route.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::plan {

// What the client gets of a 2xx answer.
enum class answer_mode {
    relay,             // the bytes as they come (passthrough endpoints, FIM, float embeddings)
    transcode_stream,  // SSE rewritten event by event (chat and legacy completions, streamed)
    whole,             // read whole, rewritten, sent with its length
    rewrite_lines,     // JSONL rewritten line by line as it streams (batch output files, batches/output_lines.hpp)
};
// The rewrite of a whole answer.
enum class whole_kind {
    usage_only,         // sent unchanged; read whole only for its usage (the limiter's correction)
    chat,               // chat.completion (chat_response.hpp)
    text_completion,    // legacy completions, from a chat or FIM answer
    embeddings_base64,  // floats encoded as OpenAI's base64 float32
    model_list,         // Mistral's list plus the rule files' aliases
    alias_card,         // /v1/models/{alias}: the target's card under the alias's name
    response,           // Responses API: the chat answer as a Response object, streamed or whole
    moderation,         // Mistral's moderation answer in OpenAI's shape (responses/moderations.hpp)
    transcription,      // Mistral's transcription in the client's response_format (audio/transcription_answer.hpp)
    speech,             // Mistral's speech as audio bytes or OpenAI's events (audio/speech.hpp)
    batch,              // Mistral's batch job as OpenAI's Batch (batches/batch_object.hpp)
    batch_list,         // Mistral's job list as OpenAI's ListBatchesResponse
    file,               // Mistral's file object as OpenAI's OpenAIFile
    batch_upload,       // the file object of an uploaded batch file, whose facts the registry then keeps
};

struct answer_plan {
    answer_mode mode = answer_mode::relay;
    whole_kind whole = whole_kind::usage_only;
    responses::stream_shape shape = responses::stream_shape::chat_completion_chunk;
    bool include_usage = false;                      // the client asked for the usage chunk
    const responses::model_alias* alias = nullptr;  // alias_card: the alias asked for
    // whole_kind::response: the translated request (its response id, the
    // settings the Response echoes, its input items for the store).
    std::shared_ptr<const openai_responses::translated_request> responses;
    std::int64_t created_at = 0;  // unix seconds the request came in (the session sets it)
    audio::answer_options transcription;  // whole_kind::transcription: the format asked for
    audio::speech_answer speech;          // whole_kind::speech: the audio format, bytes or events
    batches::list_query batch_list;       // whole_kind::batch_list: the client's after and limit
    // whole_kind::batch_upload: what the registry keeps once Mistral named the
    // file, and the bytes of the file as sent (Mistral may answer bytes: null).
    batches::file_facts batch_file;
    std::uint64_t uploaded_bytes = 0;
};

// What the plan reads besides the request: compiled once per configuration
// (the server's runtime state; explain builds its own) and never written.
struct plan_inputs {
    const config::proxy_config& config;
    const rules::rule_set& rules;
    // The rule files' aliases as /v1/models shows them (derive_model_aliases).
    std::span<const responses::model_alias> aliases;
};

// The request as the proxy received it. `path` is canonical
// (routing::canonical_path) and `row` is find_endpoint's row for it.
struct client_request {
    const routing::endpoint_row& row;
    std::string_view path;
    // Buffered rows: the whole body, followed by normalize::body_padding
    // readable bytes. Streamed rows: unused (their body is relayed unread).
    std::string_view body_with_padding;
    // A fallback model to send instead of the one the model rules choose
    // (SPEC §6 `fallback`); every other rule applies to it as to the original.
    std::string_view model_override = {};
    // POST /v1/responses: the earlier conversation from the responses store
    // (previous_response_id, item_reference), resolved by the caller after
    // openai_responses::find_references(); none when null.
    const openai_responses::history* history = nullptr;
    // Ids for the Response and its items; a per-thread random source when null.
    openai_responses::id_source* ids = nullptr;
    // The client's query ("?after=...", or ""): read by GET /v1/batches.
    std::string_view query = {};
    // POST /v1/batches: the batch files uploaded through the proxy (the job's
    // model); none known when null.
    const batches::file_registry* batch_files = nullptr;
};

// Every string_view stays valid until the next plan_request() with the same
// scratch, as long as the request's body and the rule set live.
struct request_plan {
    routing::upstream_id upstream = routing::upstream_id::mistral;
    std::string upstream_path;  // after the upstream's base_url ("/chat/completions"); the client's query is added by the caller
    bool own_query = false;     // upstream_path carries the query to send instead of the client's (GET /v1/batches)
    // Buffered rows: what to send. Streamed rows: nothing is planned for the
    // body; the client's bytes are relayed as they arrive (`relay_body`). Form
    // rows: rewritten as they arrive (audio::transcription_rewriter), and the
    // answer plan completed once the form is read (plan_transcription_answer).
    std::string_view body;
    bool relay_body = false;
    normalize::rule_mask fired;  // request rules that changed it, plus model_alias for an alias card
    std::string_view model_requested;  // as the client sent it, "" when none
    std::string_view model_sent;       // after the model rules
    bool stream = false;
    answer_plan answer;
    // The limiter's facts: what the request holds while in flight (SPEC §8).
    limits::token_estimate estimate;
};

struct plan_result {
    std::optional<request_plan> plan;
    std::optional<errors::openai_error> error;  // 400 (bad input, rules that deny), 403 (EU residency), 404
    bool ok() const noexcept { return plan.has_value(); }
};

// Working memory reused between requests on one thread (the normalizer's
// parser and buffers, the translated body of a legacy completion).
class plan_scratch {
public:
    normalize::normalize_scratch normalize;
    std::string translated;    // a legacy completion's chat or FIM body, a moderation body (keeps the parser's padding)
    std::string legacy_model;  // the model a legacy completion asked for
};

plan_result plan_request(const plan_inputs& inputs, const client_request& request, plan_scratch& scratch);

// POST /v1/audio/transcriptions: the answer plan once the whole form is read
// (its response_format and stream flag may come after the audio): a stream
// transcoded event by event, or the whole answer in the format asked for.
void plan_transcription_answer(const audio::transcription_facts& facts, answer_plan& answer);

// The aliases /v1/models lists: every exact alias of the rule files, and a
// glob alias "stem*" as "stem" (when no earlier alias claims it); none when
// model_alias is off.
std::vector<responses::model_alias> derive_model_aliases(const rules::rule_set& rules);

}  // namespace mistral_proxy::plan
