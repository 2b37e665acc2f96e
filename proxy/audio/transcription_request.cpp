// The transcription form rewriter; see transcription_request.hpp.
#include "audio/transcription_request.hpp"

#include <array>
#include <charconv>

#include "json/writer.hpp"

namespace mistral_proxy::audio {

namespace {

using rules::rule_id;

constexpr std::array<std::string_view, 5> format_names{"json", "text", "srt", "verbose_json", "vtt"};

// The fields the proxy reads itself and never sends as they came.
bool is_answer_field(std::string_view name) noexcept { return name == "response_format"; }

}  // namespace

std::string_view format_name(transcript_format format) noexcept {
    return format_names[static_cast<std::size_t>(format)];
}

std::optional<transcript_format> parse_format(std::string_view name) noexcept {
    for (std::size_t i = 0; i < format_names.size(); ++i) {
        if (format_names[i] == name) {
            return static_cast<transcript_format>(i);
        }
    }
    return std::nullopt;
}

transcription_rewriter::transcription_rewriter(const rules::rule_set& rules, std::string_view boundary)
    : form_rewriter(boundary), rules_(rules) {}

void transcription_rewriter::on_part_begin(const multipart::part_headers& headers) {
    if (error_) {
        return;
    }
    name_ = headers.name;
    value_.clear();
    for (const auto& [from, to] : rules_.renames_for(rules::schema_target::transcriptions)) {
        if (name_ == from && rules_.enabled(rule_id::params)) {
            name_ = to;
            facts_.fired.add(rule_id::params);
            break;
        }
    }
    if (headers.filename) {
        if (name_ != "file") {
            part_ = part_kind::ignored;  // another file: Mistral's form takes one
            facts_.dropped.push_back(headers.name);
            facts_.fired.add(rule_id::params);
            return;
        }
        if (has_audio_) {
            refuse("the form has two audio files: send one 'file'", "file");
            return;
        }
        has_audio_ = true;
        part_ = part_kind::file;
        write_file_head(*headers.filename, headers.content_type);
        return;
    }
    if (name_ == "file") {
        refuse("'file' must be a file part (with a filename), the audio to transcribe", "file");
        return;
    }
    part_ = part_kind::field;
}

void transcription_rewriter::on_part_data(std::string_view data) {
    if (error_) {
        return;
    }
    if (part_ == part_kind::file) {
        facts_.file_bytes += data.size();
        out_->append(data);
    } else if (part_ == part_kind::field) {
        if (value_.size() + data.size() > max_form_field_bytes) {
            refuse("form field '" + name_ + "' exceeds " + std::to_string(max_form_field_bytes) + " bytes", name_);
            return;
        }
        value_.append(data);
    }
}

void transcription_rewriter::on_part_end() {
    if (error_) {
        return;
    }
    if (part_ == part_kind::file) {
        *out_ += "\r\n";
    } else if (part_ == part_kind::field) {
        end_field();
    }
    part_ = part_kind::ignored;
}

void transcription_rewriter::end_field() {
    const std::string_view value = value_;
    if (name_ == "model") {
        if (has_model_) {
            refuse("the form names 'model' twice", "model");
            return;
        }
        has_model_ = true;
        facts_.model_requested = value;
        const rules::model_mapping* mapping = nullptr;
        if (rules_.enabled(rule_id::model_rewrite)) {
            mapping = rules_.find_rewrite(value);
        }
        if (mapping == nullptr && rules_.enabled(rule_id::model_alias)) {
            mapping = rules_.find_alias(value);
        }
        facts_.model_sent = value;
        if (mapping != nullptr && mapping->target != value) {
            facts_.model_sent = mapping->target;
            if (mapping->via_rewrite) {
                facts_.fired.add(rule_id::model_rewrite);
            }
            if (mapping->via_alias) {
                facts_.fired.add(rule_id::model_alias);
            }
        }
        // A model the rules chose could, in theory, hold the delimiter.
        if (facts_.model_sent.find("\r\n--" + boundary_) != std::string::npos) {
            refuse("the model the rules chose cannot be sent in this form", "model");
            return;
        }
        write_field("model", facts_.model_sent);
        return;
    }
    if (is_answer_field(name_)) {
        const auto format = parse_format(value);
        if (!format) {
            std::string known;
            for (const auto name : format_names) {
                known += (known.empty() ? "" : ", ") + std::string(name);
            }
            refuse("response_format '" + std::string(value) + "' is not supported; use one of " + known,
                   "response_format");
            return;
        }
        facts_.format = *format;
        return;
    }
    const auto* spec = rules_.request_schema_for(rules::schema_target::transcriptions).find(name_);
    if (spec == nullptr && rules_.schema.present && rules_.enabled(rule_id::params)) {
        facts_.dropped.push_back(name_);
        facts_.fired.add(rule_id::params);
        return;
    }
    if (name_ == "stream") {
        if (value != "true" && value != "false") {
            refuse("stream must be true or false, not '" + std::string(value) + "'", "stream");
            return;
        }
        facts_.stream = value == "true";
    } else if (name_ == "timestamp_granularities") {
        if (value != "segment" && value != "word") {
            refuse("timestamp_granularities[] takes segment or word, not '" + std::string(value) + "'",
                   "timestamp_granularities");
            return;
        }
        segments_asked_ = segments_asked_ || value == "segment";
    } else if (name_ == "temperature") {
        double number = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
        if (ec != std::errc{} || end != value.data() + value.size()) {
            refuse("temperature must be a number, not '" + std::string(value) + "'", "temperature");
            return;
        }
        facts_.temperature = number;
    } else if (name_ == "file_url" || name_ == "file_id") {
        has_audio_ = true;
    }
    write_field(name_, value);
}

bool transcription_rewriter::finish(std::string& out) {
    if (!parse_ended()) {
        return false;
    }
    if (!has_model_) {
        refuse("you must provide a model parameter", "model");
        return false;
    }
    if (!has_audio_) {
        refuse("'file' is required: the audio to transcribe", "file");
        return false;
    }
    out_ = &out;
    // srt, vtt and verbose_json are built from Mistral's segments.
    const auto format = facts_.format;
    if (!segments_asked_ && (format == transcript_format::srt || format == transcript_format::vtt ||
                             format == transcript_format::verbose_json)) {
        write_field("timestamp_granularities", "segment");
    }
    out_ = nullptr;
    out += "--" + boundary_ + "--\r\n";
    return true;
}

namespace {

// Lists the parts of the rewritten form as JSON objects.
class form_lister final : public multipart::handler {
public:
    std::string json = "[";

    void on_part_begin(const multipart::part_headers& headers) override {
        json += json.size() > 1 ? ",{\"name\":" : "{\"name\":";
        json::append_json_string(json, headers.name);
        file_ = headers.filename.has_value();
        if (file_) {
            json += ",\"filename\":";
            json::append_json_string(json, *headers.filename);
            json += ",\"content_type\":";
            json::append_json_string(json, headers.content_type);
        }
        value_.clear();
        bytes_ = 0;
    }
    void on_part_data(std::string_view data) override {
        bytes_ += data.size();
        if (!file_) {
            value_.append(data);
        }
    }
    void on_part_end() override {
        if (file_) {
            json += ",\"bytes\":" + std::to_string(bytes_) + "}";
        } else {
            json += ",\"value\":";
            json::append_json_string(json, value_);
            json += '}';
        }
    }

private:
    bool file_ = false;
    std::string value_;
    std::uint64_t bytes_ = 0;
};

}  // namespace

form_description describe_form(const rules::rule_set& rules, std::string_view body) {
    form_description result;
    const auto line_end = body.find("\r\n");
    if (!body.starts_with("--") || line_end == std::string_view::npos) {
        result.error = errors::make_error(
            400, "malformed multipart/form-data body: it does not start with a boundary line", "invalid_multipart");
        return result;
    }
    const auto found =
        multipart::boundary_of("multipart/form-data; boundary=\"" + std::string(body.substr(2, line_end - 2)) + "\"");
    if (!found.error.empty()) {
        result.error = errors::make_error(400, found.error, "invalid_multipart");
        return result;
    }
    transcription_rewriter rewriter(rules, found.boundary);
    std::string sent;
    if (!rewriter.feed(body, sent) || !rewriter.finish(sent)) {
        result.error = rewriter.error();
        return result;
    }
    result.facts = rewriter.facts();
    form_lister lister;
    std::string ignored;
    multipart::parse_all(found.boundary, sent, lister, ignored);
    result.form = std::move(lister.json) + "]";
    return result;
}

}  // namespace mistral_proxy::audio
