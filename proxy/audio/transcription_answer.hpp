#pragma once
// POST /v1/audio/transcriptions, the answer side: Mistral's
// TranscriptionResponse becomes what OpenAI answers for the client's
// response_format, and Mistral's transcription stream becomes OpenAI's
// transcript.text.delta / transcript.text.done events. Pure.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audio/event_stream.hpp"
#include "audio/transcription_request.hpp"
#include "responses/chat_response.hpp"
#include "responses/event_rewriter.hpp"
#include "responses/sse.hpp"

namespace mistral_proxy::audio {

struct answer_options {
    transcript_format format = transcript_format::json;
    std::optional<double> temperature;  // the request's, echoed in verbose_json segments
};

// Mistral's {model, text, language, segments, usage} ->
//   json          {"text", "usage":{"type":"tokens", input_tokens, output_tokens, total_tokens}}
//   text          the text and a line break, text/plain
//   verbose_json  {"task":"transcribe", language, duration, text, segments:[{id, seek, start, end,
//                 text, tokens, temperature, avg_logprob, compression_ratio, no_speech_prob}],
//                 usage:{"type":"duration", seconds}}; what Mistral has no counterpart for
//                 (seek, tokens, the log-probability figures) is 0 or empty; duration is
//                 usage.prompt_audio_seconds, else the last segment's end
//   srt, vtt      subtitles from the segments (subtitles.hpp), text/plain; without segments,
//                 one cue of the whole text over the duration
// `content_type` is set for every answer. Anything that is not a
// TranscriptionResponse gives a 502.
responses::body_result transform_transcription_response(std::string_view body, const answer_options& options);

// Mistral's SSE (transcription.text.delta, .language, .segment, .done; the
// type read from the data's `type`, else the event name) -> OpenAI's
//   data: {"type":"transcript.text.delta","delta":TEXT}
//   data: {"type":"transcript.text.done","text":TEXT,"usage":{"type":"tokens",...}}
// Language and segment events have no OpenAI counterpart when streaming and
// are dropped. An error event, data that is not JSON, or an end before
// transcription.done ends the stream with OpenAI's error event.
class transcription_stream final : public audio_event_stream {
public:
    explicit transcription_stream(std::string upstream_name)
        : audio_event_stream(std::move(upstream_name), {"transcription", "transcription", "transcription.done"}) {}

private:
    void on_data(std::string_view type, simdjson::dom::object data, std::string& out) override;
};

}  // namespace mistral_proxy::audio
