#pragma once
// POST /v1/audio/speech: OpenAI's CreateSpeechRequest becomes Mistral's
// SpeechRequest, and Mistral's answer — `{"audio_data": base64}` whole, or its
// speech.audio.delta / speech.audio.done stream — goes back as OpenAI answers:
// the audio bytes with the format's Content-Type, or OpenAI's
// speech.audio.delta / speech.audio.done events (stream_format "sse"). Pure.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audio/event_stream.hpp"
#include "errors/openai_error.hpp"
#include "errors/redact.hpp"
#include "responses/chat_response.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::audio {

// OpenAI's response_format values Mistral can produce (`aac` it cannot).
enum class speech_format : std::uint8_t { mp3, opus, flac, wav, pcm };

// The Content-Type OpenAI answers the audio with: audio/mpeg, audio/opus,
// audio/flac, audio/wav, audio/pcm.
std::string_view speech_content_type(speech_format format) noexcept;

// How the client gets the audio.
struct speech_answer {
    speech_format format = speech_format::mp3;
    bool sse = false;  // stream_format "sse": OpenAI's events; else the audio bytes
};

struct speech_request {
    // The upstream body before the request rules (when !error): the client's
    // members in its order, with `voice` -> `voice_id`, `stream_format` ->
    // `"stream":true` last. Members Mistral's SpeechRequest lacks (speed,
    // instructions, ...) are copied as the client wrote them, for the
    // normalizer's `params` to drop against the speech_request schema and
    // report. Model rules and routing are the normalizer's, run on it afterwards.
    std::string body;
    speech_answer answer;
    // The translation itself left out a member the client sent (its own
    // `stream` or `voice_id`, which the proxy decides): reported as `params`.
    bool dropped = false;
    std::optional<errors::openai_error> error;  // 400 invalid_request_error
};

// Maps an OpenAI speech request body (needs no padding):
//   voice "alloy"          -> voice_id per `rules.speech_voices` ("en_paul_neutral");
//                             a voice the table names as a Mistral voice passes as itself
//   voice {"id":"X"}       -> voice_id "X" (OpenAI's custom voice: any Mistral voice id)
//   response_format        -> copied for mp3, opus, flac, wav, pcm; absent: mp3 (Mistral's
//                             default too); `aac` a 400 naming the formats that work
//   stream_format "sse"    -> "stream":true, answered as OpenAI's events
//   stream_format "audio"  -> (the default) "stream":true when `stream_audio`: the
//                             audio bytes are sent on as they come; else a whole answer
// 400 for: a body that is not a JSON object; no `input`, or not a string; no
// `voice` (unless Mistral's `ref_audio` is given), a voice the table does not
// know (the message lists the known ones), a voice of another type; a
// response_format or stream_format OpenAI does not define.
speech_request map_speech_request(std::string_view body, const rules::rule_set& rules, bool stream_audio);

// Mistral's whole answer `{"audio_data": base64}` -> the decoded bytes, with
// the format's content_type; for `sse` (Mistral answered whole what was asked
// as a stream) one speech.audio.delta event with the base64 as sent and a
// speech.audio.done with zero usage, text/event-stream. Anything else (not
// JSON, no audio_data, base64 that does not decode) gives a 502.
responses::body_result transform_speech_response(std::string_view body, const speech_answer& answer);

// Decodes RFC 4648 base64 (standard alphabet; the padding may be left out),
// appending to `out`. false, with `out` as it was, on any other byte or length.
bool decode_base64(std::string_view text, std::string& out);

// Mistral's speech stream (speech.audio.delta {audio_data}, speech.audio.done
// {usage}; the type read from the data's `type`, else the event name) ->
//   sse:   data: {"type":"speech.audio.delta","audio":BASE64}
//          data: {"type":"speech.audio.done","usage":{"input_tokens","output_tokens","total_tokens"}}
//          an error event, data that is not a speech event, or an end before
//          speech.audio.done ends the stream with OpenAI's error event;
//   audio: the decoded bytes of each delta, nothing else; a failure appends
//          nothing and leaves failed() set: a body of bytes cannot carry an
//          error, so the relay cuts the answer short instead of ending it.
class speech_stream final : public audio_event_stream {
public:
    speech_stream(speech_answer answer, std::string upstream_name, errors::redactor redact = {})
        : audio_event_stream(std::move(upstream_name), {"speech answer", "speech", "speech.audio.done"}, redact,
                             16 * 1024 * 1024),  // a delta carries seconds of audio
          answer_(answer) {}

private:
    void on_data(std::string_view type, simdjson::dom::object data, std::string& out) override;
    void write_failure(const errors::openai_error& error, std::string& out) override;

    speech_answer answer_;
};

}  // namespace mistral_proxy::audio
