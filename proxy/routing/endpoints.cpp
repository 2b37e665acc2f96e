// The endpoint table's rows and lookup, and the path spelling policy
// (canonical_path); see endpoints.hpp.
#include "routing/endpoints.hpp"

namespace mistral_proxy::routing {

using rules::schema_target;

// clang-format off
constexpr std::array<endpoint_row, endpoint_kind_count> endpoint_table{{
    // kind                             method  path                    prefix body                 schema                     label                            target                        upstream path        codestral
    {endpoint_kind::chat_completions, "POST", "/v1/chat/completions", false, body_mode::buffered, schema_target::chat,       endpoint_label::chat_completions, upstream_target::fixed,       "/chat/completions", false},
    {endpoint_kind::fim_completions,  "POST", "/v1/fim/completions",  false, body_mode::buffered, schema_target::fim,        endpoint_label::fim_completions,  upstream_target::fixed,       "/fim/completions",  true},
    {endpoint_kind::embeddings,       "POST", "/v1/embeddings",       false, body_mode::buffered, schema_target::embeddings, endpoint_label::embeddings,       upstream_target::fixed,       "/embeddings",       false},
    {endpoint_kind::completions,      "POST", "/v1/completions",      false, body_mode::buffered, std::nullopt,              endpoint_label::completions,      upstream_target::by_model,    "",                  false},
    {endpoint_kind::model_list,       "GET",  "/v1/models",           false, body_mode::streamed, std::nullopt,              endpoint_label::models,           upstream_target::fixed,       "/models",           false},
    {endpoint_kind::model_card,       "GET",  "/v1/models/",          true,  body_mode::streamed, std::nullopt,              endpoint_label::models,           upstream_target::client_path, "",                  false},
    {endpoint_kind::responses,        "POST", "/v1/responses",        false, body_mode::buffered, std::nullopt,              endpoint_label::responses,        upstream_target::fixed,       "/chat/completions", false},
    {endpoint_kind::response_object,  "",     "/v1/responses/",       true,  body_mode::local,    std::nullopt,              endpoint_label::responses,        upstream_target::none,        "",                  false},
    {endpoint_kind::moderations,      "POST", "/v1/moderations",      false, body_mode::buffered, schema_target::moderations, endpoint_label::moderations,     upstream_target::fixed,       "/moderations",      false},
    {endpoint_kind::transcriptions,   "POST", "/v1/audio/transcriptions", false, body_mode::form, schema_target::transcriptions, endpoint_label::audio_transcriptions, upstream_target::fixed, "/audio/transcriptions", false},
    {endpoint_kind::speech,           "POST", "/v1/audio/speech",     false, body_mode::buffered, schema_target::speech,     endpoint_label::audio_speech,     upstream_target::fixed,       "/audio/speech",     false},
    {endpoint_kind::healthz,          "",     "/healthz",             false, body_mode::local,    std::nullopt,              endpoint_label::healthz,          upstream_target::none,        "",                  false},
    {endpoint_kind::readyz,           "",     "/readyz",              false, body_mode::local,    std::nullopt,              endpoint_label::readyz,           upstream_target::none,        "",                  false},
    {endpoint_kind::metrics,          "",     "/metrics",             false, body_mode::local,    std::nullopt,              endpoint_label::metrics,          upstream_target::none,        "",                  false},
    {endpoint_kind::batch_create,     "POST", "/v1/batches",          false, body_mode::buffered, std::nullopt,              endpoint_label::batches,          upstream_target::fixed,       "/batch/jobs",       false},
    {endpoint_kind::batch_list,       "GET",  "/v1/batches",          false, body_mode::streamed, std::nullopt,              endpoint_label::batches,          upstream_target::fixed,       "/batch/jobs",       false},
    {endpoint_kind::batch_object,     "GET",  "/v1/batches/",         true,  body_mode::streamed, std::nullopt,              endpoint_label::batches,          upstream_target::client_path, "",                  false},
    {endpoint_kind::batch_cancel,     "POST", "/v1/batches/",         true,  body_mode::streamed, std::nullopt,              endpoint_label::batches,          upstream_target::client_path, "",                  false},
    {endpoint_kind::file_upload,      "POST", "/v1/files",            false, body_mode::form,     std::nullopt,              endpoint_label::files,            upstream_target::fixed,       "/files",            false},
    {endpoint_kind::file_object,      "GET",  "/v1/files/",           true,  body_mode::streamed, std::nullopt,              endpoint_label::files,            upstream_target::client_path, "",                  false},
    {endpoint_kind::no_counterpart,   "POST", "/v1/audio/translations", false, body_mode::local, std::nullopt,            endpoint_label::other_v1,         upstream_target::none,        "",                  false},
    // The fallbacks: not matched by the scan below.
    {endpoint_kind::other,            "",     "/v1/",                 true,  body_mode::streamed, std::nullopt,              endpoint_label::other_v1,         upstream_target::client_path, "",                  false},
    {endpoint_kind::unknown,          "",     "",                     true,  body_mode::local,    std::nullopt,              endpoint_label::unknown,          upstream_target::none,        "",                  false},
}};
// clang-format on

constexpr bool rows_in_kind_order() {
    for (std::size_t i = 0; i < endpoint_table.size(); ++i) {
        if (static_cast<std::size_t>(endpoint_table[i].kind) != i) {
            return false;
        }
    }
    return endpoint_table[endpoint_kind_count - 2].kind == endpoint_kind::other &&
           endpoint_table[endpoint_kind_count - 1].kind == endpoint_kind::unknown;
}
static_assert(rows_in_kind_order(), "endpoint_table is indexed by endpoint_kind; other and unknown come last");

namespace {

constexpr std::size_t fallback_rows = 2;

bool matches(const endpoint_row& row, std::string_view method, std::string_view path) noexcept {
    if (!row.method.empty() && row.method != method) {
        return false;
    }
    // A prefix row needs an id after it: canonical paths have no trailing '/'.
    return row.prefix ? path.size() > row.path.size() && path.starts_with(row.path) : path == row.path;
}

}  // namespace

std::string_view endpoint_label_name(endpoint_label label) noexcept {
    static constexpr std::array<std::string_view, static_cast<std::size_t>(endpoint_label::count_)> names{
        "chat_completions", "fim_completions", "embeddings", "completions", "models",
        "other_v1",         "healthz",         "metrics",    "unknown",     "responses",
        "readyz",           "moderations",     "audio_transcriptions", "audio_speech", "batches", "files"};
    return names[static_cast<std::size_t>(label)];
}

const endpoint_row& find_endpoint(std::string_view method, std::string_view canonical_path) noexcept {
    for (std::size_t i = 0; i + fallback_rows < endpoint_table.size(); ++i) {
        if (matches(endpoint_table[i], method, canonical_path)) {
            return endpoint_table[i];
        }
    }
    return canonical_path.starts_with("/v1/") ? row_of(endpoint_kind::other) : row_of(endpoint_kind::unknown);
}

std::string_view upstream_path_of(const endpoint_row& row, std::string_view canonical_path) noexcept {
    switch (row.target) {
        case upstream_target::fixed:
            return row.upstream_path;
        case upstream_target::client_path:
            return canonical_path.starts_with("/v1/") ? canonical_path.substr(3) : canonical_path;
        case upstream_target::by_model:
        case upstream_target::none:
            break;
    }
    return {};
}

errors::openai_error refused_path_error(std::string_view raw_path, std::string_view why) {
    return errors::make_error(400, "refused path " + std::string(raw_path) + ": " + std::string(why), "invalid_path");
}

errors::openai_error unknown_endpoint_error(std::string_view method, std::string_view canonical_path) {
    return errors::make_error(404,
                              "no such endpoint: " + std::string(method) + " " + std::string(canonical_path) +
                                  " (the proxy serves /v1/..., /healthz, /readyz and /metrics)",
                              "unknown_url");
}

errors::openai_error no_counterpart_error(std::string_view canonical_path) {
    // One row today; the message names its path so that a second row needs only its own advice.
    std::string advice;
    if (canonical_path == "/v1/audio/translations") {
        advice =
            "Mistral has no audio translation endpoint: transcribe the audio with POST /v1/audio/transcriptions "
            "(Voxtral transcribes in the language spoken), then translate the text with POST "
            "/v1/chat/completions";
    }
    return errors::make_error(404, "POST " + std::string(canonical_path) + " is not available: " + advice,
                              "unsupported_endpoint");
}

namespace {

bool is_unreserved(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

namespace {

// Nearly every path is already canonical: '/' then segments of plain
// characters, no escape, no empty or dot segment, no trailing '/'. That one
// is copied as it is, without the two passes below.
bool already_canonical(std::string_view path) noexcept {
    if (path.size() < 2 || path.front() != '/' || path.back() == '/') {
        return false;
    }
    char previous = '/';
    for (std::size_t i = 1; i < path.size(); ++i) {
        const char c = path[i];
        if (c == '%' || c == '\\' || (c == '/' && previous == '/') ||
            (c == '.' && previous == '/')) {
            return false;  // an escape, a backslash, an empty segment, or maybe a dot segment
        }
        previous = c;
    }
    return true;
}

}  // namespace

void canonical_path(std::string_view raw_path, std::string& path, std::string& error) {
    if (already_canonical(raw_path)) {
        path.assign(raw_path);
        error.clear();
        return;
    }
    const auto result = canonical_path(raw_path);
    path.assign(result.path);
    error.assign(result.error);
}

canonical_path_result canonical_path(std::string_view raw_path) {
    canonical_path_result result;
    if (already_canonical(raw_path)) {
        result.path = raw_path;
        return result;
    }
    // Pass 1: escapes decoded where the policy says so, into `decoded`.
    std::string decoded;
    decoded.reserve(raw_path.size());
    for (std::size_t i = 0; i < raw_path.size(); ++i) {
        const char c = raw_path[i];
        if (c == '\\') {
            result.error = "a '\\' in the path";
            return result;
        }
        if (c != '%') {
            decoded += c;
            continue;
        }
        const int high = i + 2 < raw_path.size() ? hex_value(raw_path[i + 1]) : -1;
        const int low = i + 2 < raw_path.size() ? hex_value(raw_path[i + 2]) : -1;
        if (high < 0 || low < 0) {
            result.error = "a malformed percent-escape in the path";
            return result;
        }
        const auto byte = static_cast<unsigned char>(high * 16 + low);
        if (byte == '/' || byte == '\\' || byte == 0) {
            result.error = "an encoded '/', '\\' or NUL in the path";
            return result;
        }
        if (is_unreserved(byte)) {
            decoded += static_cast<char>(byte);
        } else {
            static constexpr char digits[] = "0123456789ABCDEF";
            decoded += '%';
            decoded += digits[byte >> 4];
            decoded += digits[byte & 0xf];
        }
        i += 2;
    }
    // Pass 2: segments, without empty ones; dot segments refused.
    result.path.reserve(decoded.size());
    std::size_t start = 0;
    while (start < decoded.size()) {
        auto end = decoded.find('/', start);
        if (end == std::string::npos) {
            end = decoded.size();
        }
        const std::string_view segment(decoded.data() + start, end - start);
        if (segment == "." || segment == "..") {
            result.error = "a '.' or '..' segment in the path";
            result.path.clear();
            return result;
        }
        if (!segment.empty()) {
            result.path += '/';
            result.path.append(segment);
        }
        start = end + 1;
    }
    if (result.path.empty()) {
        result.path.push_back('/');  // not = "/": a false -Wrestrict of GCC 12 at -O3 (bug 105329)
    }
    return result;
}

}  // namespace mistral_proxy::routing
