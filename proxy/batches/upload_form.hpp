#pragma once
// POST /v1/files, the request side: OpenAI's upload form (CreateFileRequest:
// `file`, `purpose`, `expires_after[...]`) rewritten into Mistral's
// (`file`, `purpose`) as it arrives. A batch file (purpose "batch") has its
// lines rewritten one by one into Mistral's batch line shape
// (input_lines.hpp); any other file passes byte for byte. The file's first
// line decides too: OpenAI's batch request shape `{custom_id, method, url,
// body}` is a batch file even when `purpose` comes after the file (the form's
// order is the client's), and Mistral's own line shape `{custom_id, body}`
// passes unchanged even with purpose batch (a Mistral client through the
// proxy). Fields Mistral's form lacks (`expires_after[...]`) are
// dropped. Memory stays bounded: one line of a batch file, none of another.
// Pure: no I/O.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "batches/input_lines.hpp"
#include "multipart/form_rewriter.hpp"
#include "multipart/parser.hpp"
#include "plan/request_plan.hpp"

namespace mistral_proxy::batches {

struct upload_facts {
    bool batch = false;            // the file's lines were rewritten as a batch file
    std::string purpose;           // as the client sent it
    file_facts file;               // the lines' model and url (batch files)
    std::uint64_t file_bytes = 0;  // the file's bytes as sent upstream
};

class upload_rewriter final : public multipart::form_rewriter {
public:
    // `max_line_bytes`: the longest line of a batch file (server.max_body_bytes).
    upload_rewriter(const plan::plan_inputs& inputs, std::string_view boundary, std::size_t max_line_bytes);

    bool finish(std::string& out) override;
    const upload_facts& facts() const noexcept { return facts_; }

private:
    enum class part_kind { purpose, file, ignored };
    enum class file_mode { undecided, batch, raw };

    void on_part_begin(const multipart::part_headers& headers) override;
    void on_part_data(std::string_view data) override;
    void on_part_end() override;
    void file_data(std::string_view data);
    void decide(file_mode mode);
    file_mode mode_of(std::string_view first_line) const;
    void take_line_error();

    input_line_rewriter lines_;
    std::size_t max_line_bytes_;
    part_kind part_ = part_kind::ignored;
    file_mode mode_ = file_mode::undecided;
    std::string held_;  // an undecided file's first bytes, up to its first line's end
    std::string value_;
    bool has_file_ = false;
    bool has_purpose_ = false;
    upload_facts facts_;
};

}  // namespace mistral_proxy::batches
