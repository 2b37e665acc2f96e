// The batch and file objects both ways; see batch_object.hpp. These answers
// are small and rare (one job, a page of jobs, one file): simdjson's DOM
// reads them, and the proxy writes its own members.
#include "batches/batch_object.hpp"

#include <simdjson.h>

#include <charconv>
#include <vector>

#include "json/writer.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::batches {

namespace dom = simdjson::dom;

namespace {

errors::openai_error bad_request(std::string message, std::string param, std::string code = "invalid_value") {
    return errors::make_error(400, std::move(message), std::move(code), std::move(param));
}

errors::openai_error bad_upstream(std::string_view what) {
    return errors::make_error(502, joined({"upstream answered with a body that is not ", what}), "upstream_bad_body");
}

bool parse_object(dom::parser& parser, std::string_view text, dom::object& out) {
    dom::element root;
    return parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS &&
           root.get_object().get(out) == simdjson::SUCCESS;
}

std::optional<std::string_view> string_member(dom::object object, std::string_view key) {
    std::string_view value;
    if (object.at_key(key).get_string().get(value) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::int64_t> int_member(dom::object object, std::string_view key) {
    std::int64_t value = 0;
    if (object.at_key(key).get_int64().get(value) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    return value;
}

void member(std::string& out, std::string_view key) {
    if (out.back() != '{') {
        out += ',';
    }
    json::append_json_string(out, key);
    out += ':';
}

void string_field(std::string& out, std::string_view key, std::string_view value) {
    member(out, key);
    json::append_json_string(out, value);
}

void int_field(std::string& out, std::string_view key, std::int64_t value) {
    member(out, key);
    out += std::to_string(value);
}

std::string_view openai_status(std::string_view mistral) noexcept {
    if (mistral == "QUEUED") return "validating";
    if (mistral == "RUNNING") return "in_progress";
    if (mistral == "SUCCESS") return "completed";
    if (mistral == "FAILED") return "failed";
    if (mistral == "TIMEOUT_EXCEEDED") return "expired";
    if (mistral == "CANCELLATION_REQUESTED") return "cancelling";
    if (mistral == "CANCELLED") return "cancelled";
    return {};
}

// The member that carries the end of a job in OpenAI's Batch, by status.
std::string_view end_member(std::string_view openai) noexcept {
    if (openai == "completed") return "completed_at";
    if (openai == "failed") return "failed_at";
    if (openai == "expired") return "expired_at";
    if (openai == "cancelled") return "cancelled_at";
    return {};
}

// One BatchJob appended as an OpenAI Batch; false when it is not one.
bool append_batch(dom::object job, std::string& out) {
    const auto id = string_member(job, "id");
    const auto endpoint = string_member(job, "endpoint");
    const auto status = string_member(job, "status");
    const auto created_at = int_member(job, "created_at");
    if (!id || !endpoint || !status || !created_at) {
        return false;
    }
    const auto mapped = openai_status(*status);
    if (mapped.empty()) {
        return false;
    }
    out += '{';
    string_field(out, "id", *id);
    string_field(out, "object", "batch");
    string_field(out, "endpoint", *endpoint);
    if (const auto model = string_member(job, "model")) {
        string_field(out, "model", *model);
    }
    dom::array errors;
    if (job.at_key("errors").get_array().get(errors) == simdjson::SUCCESS && errors.size() > 0) {
        member(out, "errors");
        out += "{\"object\":\"list\",\"data\":[";
        bool first = true;
        for (dom::element error : errors) {
            dom::object entry;
            std::string_view message;
            if (error.get_object().get(entry) != simdjson::SUCCESS ||
                entry.at_key("message").get_string().get(message) != simdjson::SUCCESS) {
                return false;
            }
            out += first ? "" : ",";
            first = false;
            out += "{\"code\":\"batch_error\",\"message\":";
            json::append_json_string(out, message);
            out += ",\"param\":null,\"line\":null}";
        }
        out += "]}";
    }
    dom::array inputs;
    std::string_view input_file_id;
    if (job.at_key("input_files").get_array().get(inputs) == simdjson::SUCCESS && inputs.size() > 0 &&
        inputs.at(0).get_string().get(input_file_id) != simdjson::SUCCESS) {
        return false;
    }
    string_field(out, "input_file_id", input_file_id);
    string_field(out, "completion_window", completion_window);
    string_field(out, "status", mapped);
    if (const auto output = string_member(job, "output_file")) {
        string_field(out, "output_file_id", *output);
    }
    if (const auto error_file = string_member(job, "error_file")) {
        string_field(out, "error_file_id", *error_file);
    }
    int_field(out, "created_at", *created_at);
    if (const auto started = int_member(job, "started_at")) {
        int_field(out, "in_progress_at", *started);
    }
    int_field(out, "expires_at", *created_at + timeout_hours * 3600);
    const auto ended = int_member(job, "completed_at");
    if (const auto end = end_member(mapped); !end.empty() && ended) {
        int_field(out, end, *ended);
    }
    const auto total = int_member(job, "total_requests");
    const auto succeeded = int_member(job, "succeeded_requests");
    const auto failed = int_member(job, "failed_requests");
    if (!total || !succeeded || !failed) {
        return false;
    }
    member(out, "request_counts");
    out += '{';
    int_field(out, "total", *total);
    int_field(out, "completed", *succeeded);
    int_field(out, "failed", *failed);
    out += '}';
    // OpenAI's metadata is an object of strings or null: Mistral's values of
    // another type are left out.
    member(out, "metadata");
    dom::object metadata;
    if (job.at_key("metadata").get_object().get(metadata) == simdjson::SUCCESS) {
        out += '{';
        for (auto field : metadata) {
            std::string_view value;
            if (field.value.get_string().get(value) == simdjson::SUCCESS) {
                string_field(out, field.key, value);
            }
        }
        out += '}';
    } else {
        out += "null";
    }
    out += '}';
    return true;
}

std::string_view openai_purpose(std::string_view purpose, std::string_view sample_type) noexcept {
    if (purpose == "batch") {
        return sample_type == "batch_result" || sample_type == "batch_error" ? "batch_output" : "batch";
    }
    if (purpose == "fine-tune") {
        return "fine-tune";
    }
    return "user_data";
}

}  // namespace

std::string joined(std::initializer_list<std::string_view> pieces) {
    std::string out;
    for (const auto piece : pieces) {
        out.append(piece);
    }
    return out;
}

bool batch_endpoint_supported(std::string_view endpoint) noexcept {
    return endpoint == "/v1/chat/completions" || endpoint == "/v1/embeddings";
}

batch_create map_batch_create(std::string_view body, const file_registry& files) {
    batch_create result;
    dom::parser parser;
    dom::object request;
    if (!parse_object(parser, body, request)) {
        result.error = errors::make_error(400, "request body is not a JSON object", "invalid_json");
        return result;
    }
    const auto file_id = string_member(request, "input_file_id");
    if (!file_id || file_id->empty()) {
        result.error = bad_request("'input_file_id' must be the id of a file uploaded with purpose 'batch'",
                                   "input_file_id", "missing_required_parameter");
        return result;
    }
    const auto endpoint = string_member(request, "endpoint");
    if (!endpoint || !batch_endpoint_supported(*endpoint)) {
        result.error = bad_request(joined({"'endpoint' must be ", supported_endpoints_text,
                                           ": Mistral's batch jobs serve those through this proxy"}),
                                   "endpoint", "unsupported_value");
        return result;
    }
    const auto window = string_member(request, "completion_window");
    if (!window || *window != completion_window) {
        result.error = bad_request("'completion_window' must be \"24h\"", "completion_window");
        return result;
    }
    std::string metadata;
    dom::element metadata_value;
    if (request.at_key("metadata").get(metadata_value) == simdjson::SUCCESS && !metadata_value.is_null()) {
        dom::object pairs;
        if (metadata_value.get_object().get(pairs) != simdjson::SUCCESS) {
            result.error = bad_request("'metadata' must be an object of strings", "metadata");
            return result;
        }
        metadata.push_back('{');
        for (auto field : pairs) {
            std::string_view value;
            const std::string param = joined({"metadata.", field.key});
            if (field.value.get_string().get(value) != simdjson::SUCCESS) {
                result.error = bad_request(joined({"'", param, "' must be a string"}), param);
                return result;
            }
            // Mistral's CreateBatchJobRequest: keys of 1 to 32 characters, values of 1 to 512.
            if (field.key.empty() || field.key.size() > 32 || value.empty() || value.size() > 512) {
                result.error = bad_request(
                    joined({"'", param,
                            "': Mistral's batch metadata takes keys of 1 to 32 characters and values of 1 to 512"}),
                    param);
                return result;
            }
            string_field(metadata, field.key, value);
        }
        metadata += '}';
    }
    const auto facts = files.find(*file_id);
    if (!facts) {
        result.error = bad_request(
            joined({"file '", *file_id,
                    "' is not a batch file this proxy received since it started: upload it again through the proxy "
                    "with purpose 'batch' (Mistral's batch jobs take one model, which the proxy reads from the "
                    "file's lines as it uploads them)"}),
            "input_file_id", "unknown_batch_file");
        return result;
    }
    if (facts->endpoint != *endpoint) {
        result.error = bad_request(joined({"the lines of file '", *file_id, "' call ", facts->endpoint,
                                           ", not the batch's endpoint ", *endpoint}),
                                   "endpoint");
        return result;
    }
    result.model = facts->model;
    auto& out = result.body;
    out = "{\"input_files\":[";
    json::append_json_string(out, *file_id);
    out += "]";
    string_field(out, "endpoint", *endpoint);
    string_field(out, "model", facts->model);
    if (!metadata.empty()) {
        member(out, "metadata");
        out += metadata;
    }
    int_field(out, "timeout_hours", timeout_hours);
    out += '}';
    return result;
}

responses::body_result transform_batch(std::string_view body) {
    responses::body_result result;
    dom::parser parser;
    dom::object job;
    if (!parse_object(parser, body, job) || !append_batch(job, result.body)) {
        result.body.clear();
        result.error = bad_upstream("a batch job");
    }
    return result;
}

list_query parse_list_query(std::string_view query) {
    list_query result;
    if (query.starts_with('?')) {
        query.remove_prefix(1);
    }
    while (!query.empty()) {
        const auto end = std::min(query.size(), query.find('&'));
        const auto pair = query.substr(0, end);
        query.remove_prefix(std::min(query.size(), end + 1));
        const auto equals = pair.find('=');
        const auto name = pair.substr(0, equals);
        const auto value = equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1);
        if (name == "after") {
            result.after = std::string(value);
        } else if (name == "limit") {
            std::int64_t limit = 0;
            const auto [rest, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
            if (ec != std::errc{} || rest != value.data() + value.size() || limit < 1 || limit > 100) {
                result.error = bad_request("'limit' must be an integer from 1 to 100", "limit");
                return result;
            }
            result.limit = limit;
        }
    }
    return result;
}

responses::body_result transform_batch_list(std::string_view body, const list_query& query) {
    responses::body_result result;
    dom::parser parser;
    dom::object list;
    dom::array jobs;
    if (!parse_object(parser, body, list) || list.at_key("data").get_array().get(jobs) != simdjson::SUCCESS) {
        result.error = bad_upstream("a batch job list");
        return result;
    }
    const auto total = int_member(list, "total").value_or(0);
    auto& out = result.body;
    out = "{\"object\":\"list\",\"data\":[";
    bool started = query.after.empty();
    std::int64_t taken = 0;
    std::int64_t seen = 0;
    bool more = false;
    std::string first_id;
    std::string last_id;
    for (dom::element element : jobs) {
        ++seen;
        dom::object job;
        if (element.get_object().get(job) != simdjson::SUCCESS) {
            result.body.clear();
            result.error = bad_upstream("a batch job list");
            return result;
        }
        const auto id = string_member(job, "id").value_or("");
        if (!started) {
            started = id == query.after;
            continue;
        }
        if (taken == query.limit) {
            more = true;
            break;
        }
        if (taken > 0) {
            out += ',';
        }
        if (!append_batch(job, out)) {
            result.body.clear();
            result.error = bad_upstream("a batch job list");
            return result;
        }
        if (taken == 0) {
            first_id = id;
        }
        last_id = id;
        ++taken;
    }
    // Jobs past Mistral's page: only when the page was walked to its end.
    more = more || (started && taken > 0 && total > seen && seen == static_cast<std::int64_t>(jobs.size()));
    out += ']';
    if (taken > 0) {
        string_field(out, "first_id", first_id);
        string_field(out, "last_id", last_id);
    }
    member(out, "has_more");
    out += more ? "true" : "false";
    out += '}';
    return result;
}

responses::body_result transform_file(std::string_view body, std::optional<std::uint64_t> uploaded_bytes) {
    responses::body_result result;
    dom::parser parser;
    dom::object file;
    // GET /v1/files/{id} may answer what the proxy does not know: as it is.
    const auto fail = [&result] {
        result.body.clear();
        result.unchanged = true;
        return result;
    };
    if (!parse_object(parser, body, file)) {
        return fail();
    }
    const auto id = string_member(file, "id");
    const auto created_at = int_member(file, "created_at");
    const auto filename = string_member(file, "filename");
    const auto purpose = string_member(file, "purpose");
    if (!id || !created_at || !filename || !purpose) {
        return fail();
    }
    auto& out = result.body;
    out.push_back('{');  // not = "{": a false -Wrestrict of GCC 12 at -O3 (bug 105329)
    string_field(out, "id", *id);
    string_field(out, "object", "file");
    const auto bytes = int_member(file, "bytes");
    int_field(out, "bytes", bytes ? *bytes : static_cast<std::int64_t>(uploaded_bytes.value_or(0)));
    int_field(out, "created_at", *created_at);
    if (const auto expires = int_member(file, "expires_at")) {
        int_field(out, "expires_at", *expires);
    }
    string_field(out, "filename", *filename);
    string_field(out, "purpose", openai_purpose(*purpose, string_member(file, "sample_type").value_or("")));
    string_field(out, "status", "processed");
    out += '}';
    return result;
}

bool for_each_key(std::string_view line, const std::function<void(std::string_view)>& visit) {
    responses::detail::json_reader reader;
    simdjson::ondemand::document doc;
    simdjson::ondemand::object root;
    if (!reader.open(line, doc, root)) {
        return false;
    }
    for (auto field : root) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            return false;
        }
        visit(key);
    }
    return true;
}

std::string file_id_of(std::string_view body) {
    dom::parser parser;
    dom::object file;
    if (!parse_object(parser, body, file)) {
        return {};
    }
    return std::string(string_member(file, "id").value_or(""));
}

}  // namespace mistral_proxy::batches
