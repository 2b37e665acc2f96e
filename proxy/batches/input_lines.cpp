// The batch input line rewriter; see input_lines.hpp.
#include "batches/input_lines.hpp"

#include "batches/batch_object.hpp"
#include "normalize/normalizer.hpp"

namespace mistral_proxy::batches {

namespace od = simdjson::ondemand;
using responses::detail::copy_member;
using responses::detail::raw_value;

namespace {

bool blank(std::string_view line) noexcept { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

}  // namespace

input_line_rewriter::input_line_rewriter(const plan::plan_inputs& inputs, std::size_t max_line_bytes)
    : inputs_(inputs), max_line_bytes_(max_line_bytes) {}

bool input_line_rewriter::refuse(std::string message, std::optional<std::string> code) {
    if (!error_) {
        error_ =
            errors::make_error(400, joined({"line ", std::to_string(line_number_), " of the batch file: ", message}),
                               code ? std::move(code) : std::optional<std::string>("invalid_batch_line"), "file");
    }
    return false;
}

bool input_line_rewriter::feed(std::string_view piece, std::string& out) {
    if (error_) {
        return false;
    }
    while (!piece.empty()) {
        const auto end = piece.find('\n');
        const auto part = piece.substr(0, std::min(end, piece.size()));
        if (pending_.size() + part.size() > max_line_bytes_) {
            ++line_number_;
            return refuse(joined({"longer than ", std::to_string(max_line_bytes_),
                                  " bytes (server.max_body_bytes, the largest request body)"}),
                          "line_too_long");
        }
        if (end == std::string_view::npos) {
            pending_.append(part);
            return true;
        }
        std::string_view line = part;
        if (!pending_.empty()) {
            pending_.append(part);
            line = pending_;
        }
        ++line_number_;
        if (!rewrite(line, out)) {
            return false;
        }
        pending_.clear();
        piece.remove_prefix(end + 1);
    }
    return true;
}

bool input_line_rewriter::finish(std::string& out) {
    if (error_) {
        return false;
    }
    if (!pending_.empty()) {
        ++line_number_;
        if (!rewrite(pending_, out)) {
            return false;
        }
        pending_.clear();
    }
    if (requests_ == 0) {
        error_ = errors::make_error(400, "the batch file has no request line", "invalid_batch_file", "file");
        return false;
    }
    return true;
}

bool input_line_rewriter::rewrite(std::string_view line, std::string& out) {
    if (blank(line)) {
        return true;
    }
    method_.clear();
    url_.clear();
    od::document doc;
    od::object root;
    // The client's line: validated whole first (what is copied, and what is not).
    if (!reader_.open_validated(line, doc, root)) {
        return refuse("not a JSON object");
    }
    std::string_view custom_id;  // raw JSON of a string
    std::string_view method;
    std::string_view url;
    std::string_view body;  // raw JSON of an object
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS || field.value().get(value) != simdjson::SUCCESS) {
            return refuse("not a JSON object");
        }
        od::json_type type;
        if (value.type().get(type) != simdjson::SUCCESS) {
            return refuse("not a JSON object");
        }
        if (key == "custom_id") {
            if (type != od::json_type::string || !raw_value(value, custom_id)) {
                return refuse("'custom_id' must be a string");
            }
        } else if (key == "method") {
            if (type != od::json_type::string || value.get_string().get(method) != simdjson::SUCCESS) {
                return refuse("'method' must be \"POST\"");
            }
            method_ = std::string(method);
        } else if (key == "url") {
            if (type != od::json_type::string || value.get_string().get(url) != simdjson::SUCCESS) {
                return refuse("'url' must be a string");
            }
            url_ = std::string(url);
        } else if (key == "body") {
            if (type != od::json_type::object || !raw_value(value, body)) {
                return refuse("'body' must be a JSON object");
            }
        }
    }
    if (custom_id.empty()) {
        return refuse("'custom_id' is required");
    }
    if (method_ != "POST") {
        return refuse("'method' must be \"POST\"");
    }
    if (!batch_endpoint_supported(url_)) {
        return refuse(joined({"'url' must be ", supported_endpoints_text, ", not '", url_, "'"}), "unsupported_value");
    }
    if (body.empty()) {
        return refuse("'body' is required");
    }
    if (facts_.endpoint.empty()) {
        facts_.endpoint = url_;
    } else if (facts_.endpoint != url_) {
        return refuse(
            joined({"calls ", url_, " where line 1 calls ", facts_.endpoint, ": a batch job calls one endpoint"}));
    }

    // The body as a live call to that url: every request rule, Mistral's schema.
    body_.assign(body);
    body_.append(normalize::body_padding, '\0');
    const auto& row = routing::find_endpoint("POST", url_);
    auto planned = plan::plan_request(inputs_, {row, url_, std::string_view(body_.data(), body.size())}, scratch_);
    if (!planned.ok()) {
        const auto& refusal = *planned.error;
        if (!error_) {
            error_ = errors::make_error(
                400, joined({"line ", std::to_string(line_number_), " of the batch file: ", refusal.message}),
                refusal.code, refusal.param);
        }
        return false;
    }
    const auto& plan = *planned.plan;
    if (plan.stream) {
        return refuse("'stream' cannot be true in a batch", "invalid_value");
    }
    if (facts_.model.empty()) {
        facts_.model = plan.model_sent;
    } else if (facts_.model != plan.model_sent) {
        return refuse(joined({"names the model ", plan.model_sent, " where line 1 names ", facts_.model,
                              " (after the model rules): Mistral's batch job runs one model"}));
    }

    // {"custom_id":...,"body":{...}} without the body's model: the job names it.
    od::document sent_doc;
    od::object sent;
    if (!body_reader_.open(plan.body, sent_doc, sent)) {
        return refuse("not a JSON object");
    }
    const auto start = out.size();
    out += "{\"custom_id\":";
    out += custom_id;
    out += ",\"body\":{";
    bool first = true;
    for (auto field : sent) {
        std::string_view key;
        od::value value;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS || field.value().get(value) != simdjson::SUCCESS) {
            return refuse("not a JSON object");
        }
        if (key != "model" && !copy_member(out, first, key, value)) {
            return refuse("not a JSON object");
        }
    }
    out += "}}\n";
    bytes_out_ += out.size() - start;
    ++requests_;
    return true;
}

}  // namespace mistral_proxy::batches
