#pragma once
// GET /v1/files/{id}/content of a batch's output or error file: Mistral's
// lines `{"id","custom_id","response":{"status_code","body"},"error"}`
// rewritten into OpenAI's BatchRequestOutput lines `{"id","custom_id",
// "response":{"status_code","request_id","body"},"error"}` as they stream.
// A chat answer's body goes through the chat answer rules (finish reasons,
// ids, ...) as a live answer does; a non-2xx body becomes OpenAI's error
// shape; other bodies (embeddings) are copied. `error` as OpenAI's
// {"code","message"} (a string becomes its message).
//
// The proxy cannot tell a batch output from another file by its id: the
// content's first line decides. A first line that is a JSON object with
// `custom_id` and `response` or `error` makes it a batch output; anything
// else (another JSONL, a PDF, a first byte that is not '{') is relayed
// byte for byte. Memory: one line, at most `max_line_bytes`; a longer line
// is passed unchanged. Pure: no I/O.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "responses/event_rewriter.hpp"
#include "responses/json_copy.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::batches {

class output_line_rewriter final : public responses::event_rewriter {
public:
    output_line_rewriter(const responses::response_rules& rules, std::size_t max_line_bytes);

    void on_body(std::string_view piece, std::string& out) override;
    void on_end(std::string& out) override;
    // A file cannot carry an error: the relay closes the connection instead.
    void on_failure(const errors::openai_error&, std::string&) override { failed_ = true; }

    bool done() const noexcept override { return done_; }
    bool failed() const noexcept override { return failed_; }
    responses::rule_hits hits() const noexcept override { return hits_; }
    const std::optional<responses::usage_counts>& usage() const noexcept override { return usage_; }
    std::uint64_t events_in() const noexcept override { return lines_; }

    bool translating() const noexcept { return mode_ == mode::translate; }

private:
    enum class mode { undecided, translate, relay };

    void line(std::string_view text, bool ended, std::string& out);
    bool translate(std::string_view text, std::string& out);
    void decide(std::string& out);

    const responses::response_rules& rules_;
    std::size_t max_line_bytes_;
    mode mode_ = mode::undecided;
    std::string pending_;    // the start of a line whose end has not come yet
    bool overlong_ = false;  // passing a line over the limit through until its end
    responses::detail::json_reader reader_;
    responses::detail::json_reader body_reader_;
    std::uint64_t lines_ = 0;
    bool done_ = false;
    bool failed_ = false;
    responses::rule_hits hits_;
    std::optional<responses::usage_counts> usage_;
};

// Whether a JSONL line is Mistral's batch output shape (see above).
bool looks_like_batch_output(std::string_view line);

}  // namespace mistral_proxy::batches
