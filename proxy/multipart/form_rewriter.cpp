// The base of the form rewriters; see form_rewriter.hpp.
#include "multipart/form_rewriter.hpp"

namespace mistral_proxy::multipart {

std::string quoted_parameter(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"') {
            out += "%22";
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

form_rewriter::form_rewriter(std::string_view boundary) : boundary_(boundary), parser_(boundary) {}

std::string form_rewriter::content_type() const {
    return "multipart/form-data; boundary=" + quoted_parameter(boundary_);
}

void form_rewriter::refuse(std::string message, std::optional<std::string> param, std::string code) {
    if (!error_) {
        error_ = errors::make_error(400, std::move(message), std::move(code), std::move(param));
    }
}

bool form_rewriter::feed(std::string_view piece, std::string& out) {
    if (error_) {
        return false;
    }
    out_ = &out;
    if (!parser_.feed(piece, *this) && !error_) {
        refuse("malformed multipart/form-data body: " + parser_.error(), std::nullopt, "invalid_multipart");
    }
    out_ = nullptr;
    return !error_;
}

bool form_rewriter::parse_ended() {
    if (error_) {
        return false;
    }
    if (!parser_.finish()) {
        refuse("malformed multipart/form-data body: " + parser_.error(), std::nullopt, "invalid_multipart");
        return false;
    }
    return true;
}

void form_rewriter::write_field(std::string_view name, std::string_view value) {
    *out_ += "--" + boundary_ + "\r\nContent-Disposition: form-data; name=" + quoted_parameter(name) + "\r\n\r\n";
    out_->append(value);
    *out_ += "\r\n";
}

void form_rewriter::write_file_head(std::string_view filename, std::string_view content_type) {
    *out_ += "--" + boundary_ + "\r\nContent-Disposition: form-data; name=\"file\"; filename=" +
             quoted_parameter(filename);
    *out_ += "\r\nContent-Type: ";
    *out_ += content_type.empty() ? std::string_view("application/octet-stream") : content_type;
    *out_ += "\r\n\r\n";
}

}  // namespace mistral_proxy::multipart
