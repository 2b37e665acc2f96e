#pragma once
// The endpoint table (SPEC §4): the one list of what the proxy serves, and the
// path spelling policy that decides which row a request's path names. Every
// other place — the session's dispatch, the normalizer's schema and upstream
// path, routing, the metrics label, `explain` — reads its facts from a row
// here instead of comparing paths itself. Pure: no Asio, no allocation in the
// lookup.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::routing {

// What the proxy does with a request; one value per row, in table order.
enum class endpoint_kind : std::uint8_t {
    chat_completions,
    fim_completions,
    embeddings,
    completions,  // OpenAI's legacy endpoint: translated to chat or FIM by model
    model_list,
    model_card,
    responses,        // OpenAI's Responses API: translated to chat (proxy/openai_responses)
    response_object,  // GET/DELETE /v1/responses/{id}, GET .../input_items: from the responses store
    moderations,      // OpenAI's moderations: translated to Mistral's (responses/moderations.hpp)
    transcriptions,   // OpenAI's audio transcriptions: the form rewritten as it streams (proxy/audio)
    speech,           // OpenAI's text to speech: translated to Mistral's (audio/speech.hpp)
    healthz,
    readyz,
    metrics,
    batch_create,  // POST /v1/batches: OpenAI's batch -> Mistral's batch job (proxy/batches)
    batch_list,    // GET /v1/batches: Mistral's job list as OpenAI's
    batch_object,  // GET /v1/batches/{id}: the job as OpenAI's Batch
    batch_cancel,  // POST /v1/batches/{id}/cancel
    file_upload,   // POST /v1/files: a batch file's lines rewritten as they stream (proxy/batches)
    file_object,   // GET /v1/files/{id}, /v1/files/{id}/content: answers translated
    no_counterpart,  // an OpenAI endpoint Mistral has nothing for: a 404 saying what to use instead
    other,    // any other /v1/... path: passthrough to the region's mistral upstream
    unknown,  // not under /v1/ and not a local endpoint: 404
};
inline constexpr std::size_t endpoint_kind_count = 23;

// How the request body travels.
enum class body_mode : std::uint8_t {
    buffered,  // read whole, parsed once, rewritten (the normalizer, SPEC §6)
    streamed,  // relayed as it arrives, never parsed
    form,      // a multipart/form-data upload: rewritten as it arrives, never held whole (server.max_upload_bytes)
    local,     // answered by the proxy itself: nothing goes upstream
};

// Where the request goes on the upstream, relative to its base_url.
enum class upstream_target : std::uint8_t {
    fixed,        // the row's upstream_path
    client_path,  // the client's path after "/v1" (passthrough; a model card after its alias)
    by_model,     // legacy completions: the chat or the FIM row's path, by model
    none,         // answered locally
};

// The `endpoint` label of mistral_proxy_requests_total. The Prometheus values
// (endpoint_label_name) are stable: dashboards depend on them.
enum class endpoint_label : std::uint8_t {
    chat_completions,
    fim_completions,
    embeddings,
    completions,
    models,
    other_v1,
    healthz,
    metrics,
    unknown,
    responses,
    readyz,
    moderations,
    audio_transcriptions,
    audio_speech,
    batches,
    files,
    count_
};
std::string_view endpoint_label_name(endpoint_label label) noexcept;

struct endpoint_row {
    endpoint_kind kind;
    std::string_view method;  // "POST", "GET"; "" = every method
    std::string_view path;    // canonical client path; with `prefix`, what an id follows ("/v1/models/")
    bool prefix;              // path + one or more segments ("/v1/models/{id}")
    body_mode body;
    std::optional<rules::schema_target> schema;  // what the normalizer validates the body against
    endpoint_label label;
    upstream_target target;
    std::string_view upstream_path;  // with upstream_target::fixed
    bool codestral_only;             // routed to codestral whatever the model (SPEC §5)
};

// Every row, indexed by endpoint_kind. The last two are the fallbacks that
// find_endpoint answers when no other row matches.
extern const std::array<endpoint_row, endpoint_kind_count> endpoint_table;

inline const endpoint_row& row_of(endpoint_kind kind) noexcept { return endpoint_table[static_cast<std::size_t>(kind)]; }

// The row for a request. `canonical_path` is canonical_path()'s output (no
// query). A known path with another method than its row's is passthrough
// (other) like any /v1/ path; a path outside /v1/ that no row names is unknown.
const endpoint_row& find_endpoint(std::string_view method, std::string_view canonical_path) noexcept;

// The path after the upstream's base path for a request `canonical_path`
// matched to `row` ("/chat/completions", "/files/abc"); "" for by_model and none.
std::string_view upstream_path_of(const endpoint_row& row, std::string_view canonical_path) noexcept;

// The path spelling policy (SPEC §4 "Path spelling"), decided here once: one
// spelling per endpoint, so that no spelling of a known endpoint escapes its
// treatment (normalization, routing, limits). Percent-encoded unreserved
// characters are decoded (RFC 3986 §6.2.2.2: %63 is "c"), other escapes kept
// with upper-case hex, repeated '/' collapsed and a trailing '/' dropped:
// "/v1//chat/completions/" is "/v1/chat/completions". Case is kept (RFC 3986
// §6.2.2.1: paths are case-sensitive): "/v1/Chat/Completions" names no row
// and is passthrough, which Mistral answers 404. Refused (`error` set, the
// client gets a 400 invalid_path): a "." or ".." segment, encoded or not; an
// encoded '/' or '\' or NUL; a literal '\'; a malformed escape.
struct canonical_path_result {
    std::string path;
    std::string error;  // empty when the path is acceptable
};
canonical_path_result canonical_path(std::string_view raw_path);
// The same into `path` and `error`, whose memory is reused: a path already
// canonical (nearly every request's) costs a copy and no allocation.
void canonical_path(std::string_view raw_path, std::string& path, std::string& error);

// The 400 for a path canonical_path refused: `raw_path` as the client sent it
// (without query), `why` its error.
errors::openai_error refused_path_error(std::string_view raw_path, std::string_view why);

// The 404 for a request whose row is unknown.
errors::openai_error unknown_endpoint_error(std::string_view method, std::string_view canonical_path);

// The 404 for an OpenAI endpoint Mistral has no counterpart for
// (endpoint_kind::no_counterpart): what it is, and what to use instead.
errors::openai_error no_counterpart_error(std::string_view canonical_path);

}  // namespace mistral_proxy::routing
