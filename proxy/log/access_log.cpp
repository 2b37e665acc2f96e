// The access log: one JSON line per request, one write(2) each (see access_log.hpp).
#include "log/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "json/writer.hpp"

namespace mistral_proxy::logging {

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(",\"").append(name).append("\":");
    json::append_json_string(out, value);
}

void append_number_field(std::string& out, std::string_view name, std::int64_t value) {
    out.append(",\"").append(name).append("\":").append(std::to_string(value));
}

std::string utc_now_text() {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[40];
    const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    char full[48];
    const int m = std::snprintf(full, sizeof full, "%.*s.%03dZ", static_cast<int>(n), buffer, static_cast<int>(millis));
    return std::string(full, static_cast<std::size_t>(m));
}

}  // namespace

access_log::access_log(const std::string& destination) {
    if (destination == "off") {
        return;
    }
    if (destination == "stderr") {
        fd_ = STDERR_FILENO;
        return;
    }
    if (destination == "stdout") {
        fd_ = STDOUT_FILENO;
        return;
    }
    fd_ = ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        throw std::runtime_error("cannot open access log " + destination + ": " + std::strerror(errno));
    }
    owns_fd_ = true;
}

access_log::~access_log() {
    if (owns_fd_) {
        ::close(fd_);
    }
}

std::string access_log::format(const access_record& record, std::string_view time_text) {
    std::string line;
    line.reserve(384);
    line.append("{\"time\":");
    json::append_json_string(line, time_text);
    append_field(line, "request_id", record.request_id);
    append_field(line, "method", record.method);
    append_field(line, "path", record.path);
    append_field(line, "model", record.model_requested);
    append_field(line, "model_sent", record.model_sent);
    append_field(line, "upstream", record.upstream);
    append_number_field(line, "status", record.status);
    char duration[32];
    const int n = std::snprintf(duration, sizeof duration, "%.3f", record.duration_ms);
    line.append(",\"duration_ms\":").append(duration, static_cast<std::size_t>(n));
    append_number_field(line, "bytes_in", static_cast<std::int64_t>(record.bytes_received));
    append_number_field(line, "bytes_out", static_cast<std::int64_t>(record.bytes_sent));
    append_field(line, "rules", record.rules);
    if (!record.fallback.empty()) {
        append_field(line, "fallback", record.fallback);
    }
    append_number_field(line, "retries", record.retries);
    line.append(",\"stream\":").append(record.stream ? "true" : "false");
    if (record.prompt_tokens >= 0) {
        append_number_field(line, "prompt_tokens", record.prompt_tokens);
    }
    if (record.completion_tokens >= 0) {
        append_number_field(line, "completion_tokens", record.completion_tokens);
    }
    if (!record.error.empty()) {
        append_field(line, "error", record.error);
    }
    line.append("}");
    return line;
}

void access_log::write(const access_record& record) const noexcept {
    if (fd_ < 0) {
        return;
    }
    try {
        auto line = format(record, utc_now_text());
        line.push_back('\n');
        [[maybe_unused]] const auto written = ::write(fd_, line.data(), line.size());
    } catch (...) {
        // Out of memory while logging: drop the line rather than the request.
    }
}

}  // namespace mistral_proxy::logging
