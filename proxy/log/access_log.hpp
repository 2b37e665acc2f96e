#pragma once
// The access log: one JSON object per line per request, written with a single
// write(2) so lines from worker threads never interleave. Holds no key and no
// body: only what identifies and measures a request.
#include <cstdint>
#include <string>
#include <string_view>

namespace mistral_proxy::logging {

struct access_record {
    std::string_view request_id;
    std::string_view method;
    std::string_view path;
    std::string_view model_requested;  // as the client wrote it ("" when none)
    std::string_view model_sent;       // after rewriting ("" when none)
    std::string_view upstream;         // "" when answered by the proxy itself
    unsigned status = 0;
    double duration_ms = 0;
    std::uint64_t bytes_received = 0;  // request body
    std::uint64_t bytes_sent = 0;      // response body
    std::string_view rules;            // comma-separated ids
    std::string_view fallback;         // "FROM->TO" when a fallback model served it
    unsigned retries = 0;
    std::int64_t prompt_tokens = -1;      // -1: unknown
    std::int64_t completion_tokens = -1;
    bool stream = false;
    std::string_view error;  // the error message the client got, if any
};

class access_log {
public:
    // `destination`: "off", "stderr", "stdout" or an absolute file path (opened
    // for append, created 0640). Throws std::runtime_error when it cannot be opened.
    explicit access_log(const std::string& destination);
    ~access_log();
    access_log(const access_log&) = delete;
    access_log& operator=(const access_log&) = delete;

    bool enabled() const noexcept { return fd_ >= 0; }
    void write(const access_record& record) const noexcept;

    // The line write() would emit, without the newline (for tests).
    static std::string format(const access_record& record, std::string_view time_text);

private:
    int fd_ = -1;
    bool owns_fd_ = false;
};

}  // namespace mistral_proxy::logging
