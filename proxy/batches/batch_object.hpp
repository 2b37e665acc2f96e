#pragma once
// OpenAI's batch API on Mistral's batch jobs, the JSON objects both ways:
// POST /v1/batches (CreateBatchRequest) -> Mistral's POST /v1/batch/jobs
// (CreateBatchJobRequest), and Mistral's BatchJob, its list and its file
// objects back as OpenAI's Batch, ListBatchesResponse and OpenAIFile. Pure:
// no I/O; the model a job needs comes from the file registry
// (file_registry.hpp), learned when the input file was uploaded.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "batches/file_registry.hpp"
#include "errors/openai_error.hpp"
#include "responses/chat_response.hpp"

namespace mistral_proxy::batches {

// The one completion window OpenAI offers (CreateBatchRequest's enum), as
// Mistral's timeout_hours.
inline constexpr std::string_view completion_window = "24h";
inline constexpr std::int64_t timeout_hours = 24;

// The endpoints a batch may call through the proxy: a line's url and the
// job's endpoint (Mistral's ApiEndpoint spells them as OpenAI does).
bool batch_endpoint_supported(std::string_view endpoint) noexcept;
inline constexpr std::string_view supported_endpoints_text = "/v1/chat/completions or /v1/embeddings";

struct batch_create {
    std::string body;                           // Mistral's CreateBatchJobRequest, when !error
    std::string model;                          // the job's model, from the registry
    std::optional<errors::openai_error> error;  // 400
};

// {input_file_id, endpoint, completion_window, metadata?, output_expires_after?}
//   -> {"input_files":[input_file_id],"endpoint":E,"model":M,"metadata":{..},"timeout_hours":24}
// M is the model the file's lines named (the registry). 400 for: a body that
// is not a JSON object; input_file_id or endpoint not a string; an endpoint
// other than supported_endpoints_text; completion_window other than "24h";
// metadata that is not an object of strings, or that Mistral refuses (a key
// over 32 characters, an empty value or one over 512); a file the registry
// does not know (not uploaded through this proxy since its start), or whose
// lines call another endpoint. output_expires_after is dropped (Mistral keeps
// its output files as its own policy says).
batch_create map_batch_create(std::string_view body, const file_registry& files);

// Mistral's BatchJob -> OpenAI's Batch. Status: QUEUED validating, RUNNING
// in_progress, SUCCESS completed, FAILED failed, TIMEOUT_EXCEEDED expired,
// CANCELLATION_REQUESTED cancelling, CANCELLED cancelled. request_counts
// {total_requests, succeeded_requests, failed_requests}; output_file /
// error_file as output_file_id / error_file_id (absent when null);
// created_at, in_progress_at (started_at), expires_at (created_at + 24 h),
// and completed_at / failed_at / expired_at / cancelled_at from Mistral's
// completed_at by status; errors [{message,count}] as {"object":"list",
// "data":[{"code":"batch_error","message",...}]} when there are any. A body
// that is not a BatchJob: 502.
responses::body_result transform_batch(std::string_view body);

// GET /v1/batches' query: `after` (a batch id) and `limit` (1 to 100, default 20).
struct list_query {
    std::string after;
    std::int64_t limit = 20;
    std::optional<errors::openai_error> error;  // 400 for a limit out of range
};
list_query parse_list_query(std::string_view query);  // "?after=...&limit=..." or ""

// What GET /v1/batches asks Mistral for: its newest jobs first, one page of
// the largest size, which the answer then cuts after `after` and to `limit`.
inline constexpr std::string_view list_upstream_query = "?page=0&page_size=100&order_by=-created";

// Mistral's ListBatchJobsResponse (newest first) -> OpenAI's
// ListBatchesResponse: the jobs after the one named `after` (all when none;
// none when it is not on the page), at most `limit`, each as transform_batch;
// first_id/last_id; has_more when jobs remain on the page or Mistral counts
// more than the page holds.
responses::body_result transform_batch_list(std::string_view body, const list_query& query);

// Mistral's file object (CreateFileResponse, GetFileResponse) -> OpenAI's
// OpenAIFile {id, object:"file", bytes, created_at, filename, purpose,
// status:"processed", expires_at?}. purpose: batch -> "batch", or
// "batch_output" for Mistral's batch results and errors (sample_type
// batch_result / batch_error); fine-tune -> "fine-tune"; others
// "user_data". `bytes` when Mistral's is null: `uploaded_bytes` (what the
// proxy sent), else 0. A body that is not a file object is left unchanged.
responses::body_result transform_file(std::string_view body, std::optional<std::uint64_t> uploaded_bytes = {});

// Text joined piece by piece (messages): GCC 12 warns -Wrestrict (a false
// positive, bug 105329) on "literal" + std::string chains at -O3.
std::string joined(std::initializer_list<std::string_view> pieces);

// Calls `visit` with each top-level key of a JSON object line (unescaped);
// false when the line is not one. How a file's first line tells its shape.
bool for_each_key(std::string_view line, const std::function<void(std::string_view)>& visit);

// The file id of a Mistral file object ("" when there is none).
std::string file_id_of(std::string_view body);

}  // namespace mistral_proxy::batches
