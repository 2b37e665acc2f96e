#pragma once
// What the session runs on a form row's body as it streams (passthrough.cpp):
// the transcription form (audio/transcription_request.hpp) and the file
// upload (batches/upload_form.hpp) both derive from it. It owns the parser,
// the refusal and the framing both write; each says what its parts become
// (the handler's calls) and what the body's end adds (finish). Pure.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "multipart/parser.hpp"

namespace mistral_proxy::multipart {

// A quoted Content-Disposition parameter as browsers write it (WHATWG
// multipart/form-data encoding): '"' as %22; CR and LF cannot occur (the
// parser refuses control characters in a part's headers).
std::string quoted_parameter(std::string_view text);

class form_rewriter : protected handler {
public:
    // `boundary` as boundary_of() read it from the client's Content-Type; the
    // upstream form keeps it (the client's content is known not to contain it).
    explicit form_rewriter(std::string_view boundary);

    // The next piece of the client's body: appends what goes upstream to
    // `out`. False once the body is refused (error() then says why, a 400).
    bool feed(std::string_view piece, std::string& out);
    // The client's body ended: appends the rest (the closing delimiter).
    // False (error() set) for a malformed or incomplete body.
    virtual bool finish(std::string& out) = 0;
    const std::optional<errors::openai_error>& error() const noexcept { return error_; }
    // The upstream request's Content-Type.
    std::string content_type() const;

protected:
    // The first refusal wins.
    void refuse(std::string message, std::optional<std::string> param = std::nullopt,
                std::string code = "invalid_value");
    // finish()'s first step: false (refused) unless the closing delimiter came.
    bool parse_ended();
    // A field part, written whole into *out_.
    void write_field(std::string_view name, std::string_view value);
    // The head of the form's one file part (name "file"), whose content then
    // follows as it arrives. An empty `content_type` is application/octet-stream.
    void write_file_head(std::string_view filename, std::string_view content_type);

    std::string boundary_;
    parser parser_;
    std::string* out_ = nullptr;  // during feed(): where the upstream bytes go
    std::optional<errors::openai_error> error_;
};

}  // namespace mistral_proxy::multipart
