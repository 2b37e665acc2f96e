// The upload form rewriter; see upload_form.hpp.
#include "batches/upload_form.hpp"

#include "batches/batch_object.hpp"

namespace mistral_proxy::batches {

namespace {

// A purpose is a word; anything longer is not one OpenAI or Mistral knows.
constexpr std::size_t max_purpose_bytes = 1024;

}  // namespace

upload_rewriter::upload_rewriter(const plan::plan_inputs& inputs, std::string_view boundary, std::size_t max_line_bytes)
    : form_rewriter(boundary), lines_(inputs, max_line_bytes), max_line_bytes_(max_line_bytes) {}

void upload_rewriter::take_line_error() {
    if (!error_ && lines_.error()) {
        error_ = lines_.error();
    }
}

void upload_rewriter::on_part_begin(const multipart::part_headers& headers) {
    if (error_) {
        return;
    }
    part_ = part_kind::ignored;  // OpenAI's expires_after[...]: Mistral's form has no such field
    value_.clear();
    if (headers.name == "purpose" && !headers.filename) {
        part_ = part_kind::purpose;
        return;
    }
    if (headers.name != "file") {
        return;
    }
    if (!headers.filename) {
        refuse("'file' must be a file part (with a filename)", "file");
        return;
    }
    if (has_file_) {
        refuse("the form has two files: send one 'file'", "file");
        return;
    }
    has_file_ = true;
    part_ = part_kind::file;
    if (has_purpose_ && facts_.purpose != "batch") {
        mode_ = file_mode::raw;
    }
    write_file_head(*headers.filename, headers.content_type);
}

void upload_rewriter::on_part_data(std::string_view data) {
    if (error_) {
        return;
    }
    if (part_ == part_kind::file) {
        file_data(data);
    } else if (part_ == part_kind::purpose) {
        if (value_.size() + data.size() > max_purpose_bytes) {
            refuse("'purpose' is not a file purpose", "purpose");
            return;
        }
        value_.append(data);
    }
}

void upload_rewriter::file_data(std::string_view data) {
    switch (mode_) {
        case file_mode::raw:
            facts_.file_bytes += data.size();
            out_->append(data);
            return;
        case file_mode::batch:
            if (!lines_.feed(data, *out_)) {
                take_line_error();
            }
            return;
        case file_mode::undecided:
            break;
    }
    // The first line tells a batch file (see mode_of). Without a purpose yet, a
    // file that does not start with a JSON object is passed as it is, without
    // waiting for a line; with purpose batch, the line rewriter refuses it.
    held_.append(data);
    const bool batch_purpose = has_purpose_;  // purposes but batch were decided at the part's start
    const auto first = held_.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && held_[first] != '{') {
        decide(batch_purpose ? file_mode::batch : file_mode::raw);
    } else if (const auto end = held_.find('\n', first == std::string::npos ? held_.size() : first);
               end != std::string::npos) {
        decide(mode_of(std::string_view(held_).substr(0, end)));
    } else if (held_.size() > max_line_bytes_) {
        decide(batch_purpose ? file_mode::batch : file_mode::raw);
    }
}

upload_rewriter::file_mode upload_rewriter::mode_of(std::string_view first_line) const {
    bool url = false;
    bool method = false;
    bool body = false;
    const bool object = for_each_key(first_line, [&](std::string_view key) {
        url = url || key == "url";
        method = method || key == "method";
        body = body || key == "body";
    });
    if (object && url && body) {
        return file_mode::batch;  // OpenAI's request line
    }
    // Mistral's own batch line {custom_id, body} (a Mistral client through the
    // proxy) passes as it is; anything else with purpose batch is OpenAI's,
    // refused line by line.
    const bool mistral_line = object && body && !url && !method;
    return has_purpose_ && !mistral_line ? file_mode::batch : file_mode::raw;
}

void upload_rewriter::decide(file_mode mode) {
    mode_ = mode;
    const std::string held = std::move(held_);
    held_.clear();
    if (!held.empty()) {
        file_data(held);
    }
}

void upload_rewriter::on_part_end() {
    if (error_) {
        return;
    }
    if (part_ == part_kind::purpose) {
        has_purpose_ = true;
        facts_.purpose = value_;
        write_field("purpose", value_);
    } else if (part_ == part_kind::file) {
        if (mode_ == file_mode::undecided) {
            decide(mode_of(held_));
        }
        if (mode_ == file_mode::batch && !lines_.finish(*out_)) {
            take_line_error();
            return;
        }
        *out_ += "\r\n";
    }
    part_ = part_kind::ignored;
}

bool upload_rewriter::finish(std::string& out) {
    if (!parse_ended()) {
        return false;
    }
    if (!has_file_) {
        refuse("'file' is required: the file to upload", "file");
        return false;
    }
    facts_.batch = mode_ == file_mode::batch;
    if (facts_.batch) {
        facts_.file = lines_.facts();
        facts_.file_bytes = lines_.bytes_out();
    }
    out += "--" + boundary_ + "--\r\n";
    return true;
}

}  // namespace mistral_proxy::batches
