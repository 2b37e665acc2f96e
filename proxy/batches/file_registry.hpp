#pragma once
// What the proxy learned of a batch input file when it was uploaded through it
// (POST /v1/files, purpose batch): the model every line names and the endpoint
// every line calls. Mistral takes the model per job (CreateBatchJobRequest
// `model`), OpenAI per line, so POST /v1/batches finds it here by file id.
// Kept in memory, shared by every worker thread (a mutex), bounded: the
// oldest entries go first past `capacity`. A file uploaded before the proxy's
// last start, or through another proxy, is unknown here (POST /v1/batches then
// answers 400 asking to upload it again). Pure: no I/O.
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mistral_proxy::batches {

struct file_facts {
    std::string model;     // as sent to Mistral (after the model rules)
    std::string endpoint;  // the lines' url: "/v1/chat/completions", "/v1/embeddings"
};

class file_registry {
public:
    explicit file_registry(std::size_t capacity = 100000) : capacity_(capacity) {}

    void record(std::string_view file_id, file_facts facts);
    std::optional<file_facts> find(std::string_view file_id) const;

private:
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, file_facts> files_;
    std::deque<std::string> order_;  // oldest first
};

// The registry of this process: it outlives reloads of the configuration.
file_registry& process_file_registry();

}  // namespace mistral_proxy::batches
