#pragma once
// A batch input file, OpenAI's JSONL, rewritten into Mistral's as it streams:
// each line `{"custom_id","method":"POST","url":"/v1/chat/completions","body"}`
// becomes `{"custom_id","body"}` with `body` through the same plan as a live
// call to that url (plan_request: the model rules, params, messages, ... and
// Mistral's schema), without its `model`: Mistral's job names one model for
// every line (CreateBatchJobRequest `model`), which facts() keeps for the
// file registry. Every line must name the same model after the rules and call
// the same url. Memory is one line (at most `max_line_bytes`), whatever the
// file's size. Pure: no I/O.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "batches/file_registry.hpp"
#include "errors/openai_error.hpp"
#include "plan/request_plan.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::batches {

class input_line_rewriter {
public:
    input_line_rewriter(const plan::plan_inputs& inputs, std::size_t max_line_bytes);

    // The next piece of the file: appends every line it completes, rewritten.
    // False once a line is refused (error(): a 400 naming the line number).
    bool feed(std::string_view piece, std::string& out);
    // The file ended: its last line (without a newline) rewritten. False when
    // it is refused, or when the file had no request at all.
    bool finish(std::string& out);

    const std::optional<errors::openai_error>& error() const noexcept { return error_; }
    const file_facts& facts() const noexcept { return facts_; }
    std::uint64_t lines() const noexcept { return requests_; }
    std::uint64_t bytes_out() const noexcept { return bytes_out_; }

private:
    bool rewrite(std::string_view line, std::string& out);
    bool refuse(std::string message, std::optional<std::string> code = std::nullopt);

    plan::plan_inputs inputs_;
    std::size_t max_line_bytes_;
    std::string pending_;  // the start of a line whose end has not come yet
    std::string body_;     // a line's body with the parser's padding
    std::string method_;   // the line's method and url, unescaped
    std::string url_;
    plan::plan_scratch scratch_;
    responses::detail::json_reader reader_;
    responses::detail::json_reader body_reader_;
    std::uint64_t line_number_ = 0;
    std::uint64_t requests_ = 0;
    std::uint64_t bytes_out_ = 0;
    file_facts facts_;
    std::optional<errors::openai_error> error_;
};

}  // namespace mistral_proxy::batches
