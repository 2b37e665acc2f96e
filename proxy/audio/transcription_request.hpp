#pragma once
// POST /v1/audio/transcriptions, the request side: OpenAI's multipart form
// (CreateTranscriptionRequest) rewritten into Mistral's
// (AudioTranscriptionRequest) as it arrives. The small form fields are read
// whole (bounded) and rewritten — `model` through the rule files' model rules,
// names through params.rename (`timestamp_granularities[]`), fields Mistral's
// form lacks dropped (the `params` rule), `response_format` kept for the
// answer — while the audio file's bytes are relayed piece by piece: memory
// stays bounded whatever the file's size. The upstream form keeps the
// client's boundary, which the client's content is known not to contain.
// Pure: no I/O.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "errors/openai_error.hpp"
#include "multipart/form_rewriter.hpp"
#include "multipart/parser.hpp"
#include "normalize/normalizer.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::audio {

// OpenAI's response_format values the proxy answers (AudioResponseFormat but
// diarized_json, which needs speaker names Mistral's answer lacks).
enum class transcript_format { json, text, srt, verbose_json, vtt };
std::string_view format_name(transcript_format format) noexcept;
std::optional<transcript_format> parse_format(std::string_view name) noexcept;

// What the request asked for, known once the whole form is read.
struct transcription_facts {
    std::string model_requested;
    std::string model_sent;
    transcript_format format = transcript_format::json;
    bool stream = false;
    std::optional<double> temperature;  // as the client sent it, echoed by verbose_json
    std::vector<std::string> dropped;   // form fields not sent (Mistral's form lacks them)
    normalize::rule_mask fired;         // model_rewrite, model_alias, params
    std::uint64_t file_bytes = 0;
};

// A small form field's value is read whole up to this size.
inline constexpr std::size_t max_form_field_bytes = 64 * 1024;

class transcription_rewriter final : public multipart::form_rewriter {
public:
    // `boundary` as multipart::boundary_of() read it from the client's Content-Type.
    transcription_rewriter(const rules::rule_set& rules, std::string_view boundary);

    // The next piece of the client's body: appends what goes upstream to
    // `out` (the file's bytes as they come, each field once it is whole).
    // False once the body is refused (error() then says why, a 400).
    using form_rewriter::feed;
    // The client's body ended: appends the fields the proxy adds (segment
    // timestamps for srt, vtt and verbose_json) and the closing delimiter.
    // False (error() set) for a malformed or incomplete body, no model, no audio.
    bool finish(std::string& out) override;

    const transcription_facts& facts() const noexcept { return facts_; }
    // The upstream request's Content-Type.

private:
    enum class part_kind { field, file, ignored };

    void on_part_begin(const multipart::part_headers& headers) override;
    void on_part_data(std::string_view data) override;
    void on_part_end() override;
    void end_field();

    const rules::rule_set& rules_;
    part_kind part_ = part_kind::ignored;
    std::string name_;   // the current field's name (after renaming)
    std::string value_;  // the current field's value so far
    bool has_model_ = false;
    bool has_audio_ = false;  // a file part, or Mistral's own file_url / file_id
    bool segments_asked_ = false;
    transcription_facts facts_;
};

// explain: a whole form (the boundary read from its first line, as the body
// of a form starts with it) rewritten as serve rewrites it, described as JSON
// instead of sent: `form` is [{"name","value"}, {"name":"file","filename",
// "content_type","bytes"}, ...] in the order sent. `error` when serve would
// refuse it.
struct form_description {
    std::string form;
    transcription_facts facts;
    std::optional<errors::openai_error> error;
};
form_description describe_form(const rules::rule_set& rules, std::string_view body);

}  // namespace mistral_proxy::audio
