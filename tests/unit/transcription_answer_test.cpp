// Transcription answers (proxy/audio/subtitles.hpp, transcription_answer.hpp):
// timestamps and subtitles on exact bytes, Mistral's answer in each OpenAI
// response_format, and the stream's events at every split point.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "audio/subtitles.hpp"
#include "audio/transcription_answer.hpp"

namespace {

using namespace mistral_proxy;
using audio::transcript_format;

const std::string mistral_answer =
    R"({"model":"voxtral-mini-2507","text":"Hello there. \"Bye\".","language":"en",)"
    R"("segments":[{"type":"transcription_segment","text":" Hello there.","start":0,"end":1.5},)"
    R"({"type":"transcription_segment","text":" \"Bye\".","start":1.5,"end":3725.0004}],)"
    R"("usage":{"prompt_audio_seconds":4,"prompt_tokens":4,"total_tokens":30,"completion_tokens":26}})";

responses::body_result answer(transcript_format format, std::optional<double> temperature = std::nullopt) {
    return audio::transform_transcription_response(mistral_answer, {format, temperature});
}

}  // namespace

TEST_CASE("subtitles: timestamps") {
    CHECK(audio::timestamp(1.5, ',') == "00:00:01,500");
    CHECK(audio::timestamp(1.5, '.') == "00:00:01.500");
    CHECK(audio::timestamp(0, ',') == "00:00:00,000");
    CHECK(audio::timestamp(3725.0004, '.') == "01:02:05.000");
    CHECK(audio::timestamp(59.9996, ',') == "00:01:00,000");
    CHECK(audio::timestamp(0.0015, ',') == "00:00:00,002");
    CHECK(audio::timestamp(-3, ',') == "00:00:00,000");
    CHECK(audio::timestamp(360000, ',') == "100:00:00,000");
    CHECK(audio::timestamp(std::numeric_limits<double>::quiet_NaN(), ',') == "00:00:00,000");
}

TEST_CASE("subtitles: srt and vtt") {
    const std::vector<audio::cue> cues{{0, 1.5, " Hello there. "}, {1.5, 2.25, "Two\r\n\r\nlines"}};
    CHECK(audio::to_srt(cues) ==
          "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:00:02,250\nTwo\nlines\n\n");
    CHECK(audio::to_vtt(cues) ==
          "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n00:00:01.500 --> 00:00:02.250\nTwo\nlines\n\n");
    CHECK(audio::to_srt({}) == "");
    CHECK(audio::to_vtt({}) == "WEBVTT\n\n");
}

TEST_CASE("transcription answers in each response_format") {
    const auto json = answer(transcript_format::json);
    CHECK(!json.error);
    CHECK(json.content_type == "application/json");
    CHECK(
        json.body ==
        R"({"text":"Hello there. \"Bye\".","usage":{"type":"tokens","input_tokens":4,"output_tokens":26,"total_tokens":30}})");
    REQUIRE(json.usage);
    CHECK(json.usage->total_tokens == 30);

    const auto text = answer(transcript_format::text);
    CHECK(text.body == "Hello there. \"Bye\".\n");
    CHECK(text.content_type == "text/plain; charset=utf-8");

    const auto verbose = answer(transcript_format::verbose_json, 0.2);
    CHECK(
        verbose.body ==
        R"({"task":"transcribe","language":"en","duration":4,"text":"Hello there. \"Bye\".","segments":[)"
        R"({"id":0,"seek":0,"start":0,"end":1.5,"text":" Hello there.","tokens":[],"temperature":0.2,"avg_logprob":0,"compression_ratio":0,"no_speech_prob":0},)"
        R"({"id":1,"seek":0,"start":1.5,"end":3725.0004,"text":" \"Bye\".","tokens":[],"temperature":0.2,"avg_logprob":0,"compression_ratio":0,"no_speech_prob":0}],)"
        R"("usage":{"type":"duration","seconds":4}})");

    const auto srt = answer(transcript_format::srt);
    CHECK(srt.body ==
          "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 01:02:05,000\n\"Bye\".\n\n");
    CHECK(srt.content_type == "text/plain; charset=utf-8");
    const auto vtt = answer(transcript_format::vtt);
    CHECK(vtt.body ==
          "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n00:00:01.500 --> 01:02:05.000\n\"Bye\".\n\n");
    CHECK(vtt.content_type == "text/vtt; charset=utf-8");
}

TEST_CASE("transcription answers without segments or usage") {
    const std::string plain =
        R"({"model":"m","text":"Hi.","language":null,"usage":{"prompt_audio_seconds":2,"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
    CHECK(audio::transform_transcription_response(plain, {transcript_format::srt, {}}).body ==
          "1\n00:00:00,000 --> 00:00:02,000\nHi.\n\n");
    CHECK(
        audio::transform_transcription_response(plain, {transcript_format::verbose_json, {}}).body ==
        R"({"task":"transcribe","language":"","duration":2,"text":"Hi.","segments":[],"usage":{"type":"duration","seconds":2}})");
    CHECK(audio::transform_transcription_response(R"({"text":""})", {transcript_format::json, {}}).body ==
          R"({"text":""})");
}

TEST_CASE("transcription answers that are not transcriptions: 502") {
    for (const std::string body : {"", "[]", "not json", R"({"model":"m"})", R"({"text":1})",
                                   R"({"text":"a","segments":[{"text":"a","start":"0","end":1}]})"}) {
        INFO(body);
        const auto result = audio::transform_transcription_response(body, {transcript_format::json, {}});
        REQUIRE(result.error);
        CHECK(result.error->status == 502);
        CHECK(result.error->message == "upstream answered with a body that is not a transcription");
    }
}

namespace {

const std::string mistral_stream =
    "event: transcription.language\ndata: {\"type\":\"transcription.language\",\"audio_language\":\"en\"}\n\n"
    "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"Hello\"}\n\n"
    "event: transcription.segment\ndata: "
    "{\"type\":\"transcription.segment\",\"text\":\"Hello\",\"start\":0,\"end\":1}\n\n"
    "event: transcription.text.delta\r\ndata: {\"text\":\" \\\"there\\\"\"}\r\n\r\n"
    "event: transcription.done\ndata: {\"model\":\"voxtral-mini-2507\",\"text\":\"Hello "
    "\\\"there\\\"\",\"language\":\"en\","
    "\"type\":\"transcription.done\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n";

const std::string openai_stream =
    "data: {\"type\":\"transcript.text.delta\",\"delta\":\"Hello\"}\n\n"
    "data: {\"type\":\"transcript.text.delta\",\"delta\":\" \\\"there\\\"\"}\n\n"
    "data: {\"type\":\"transcript.text.done\",\"text\":\"Hello \\\"there\\\"\","
    "\"usage\":{\"type\":\"tokens\",\"input_tokens\":3,\"output_tokens\":4,\"total_tokens\":7}}\n\n";

std::string transcode(std::string_view body, std::size_t at, audio::transcription_stream& stream) {
    std::string out;
    stream.on_body(body.substr(0, at), out);
    stream.on_body(body.substr(at), out);
    stream.on_end(out);
    return out;
}

}  // namespace

TEST_CASE("transcription stream: OpenAI's events at every split point") {
    for (std::size_t at = 0; at <= mistral_stream.size(); ++at) {
        INFO("split at ", at);
        audio::transcription_stream stream("mistral");
        CHECK(transcode(mistral_stream, at, stream) == openai_stream);
        CHECK(stream.done());
        CHECK(!stream.failed());
        REQUIRE(stream.usage());
        CHECK(stream.usage()->total_tokens == 7);
        CHECK(stream.events_in() == 5);
    }
}

TEST_CASE("transcription stream: failures end it with an error event") {
    const std::string delta = "data: {\"type\":\"transcription.text.delta\",\"text\":\"Hi\"}\n\n";
    const std::string delta_out = "data: {\"type\":\"transcript.text.delta\",\"delta\":\"Hi\"}\n\n";
    {
        audio::transcription_stream stream("mistral");
        CHECK(transcode(delta, 0, stream) ==
              delta_out +
                  "data: {\"error\":{\"message\":\"mistral ended the transcription stream before "
                  "transcription.done\",\"type\":\"api_error\",\"param\":null,\"code\":\"upstream_stream_incomplete\"}}"
                  "\n\n");
        CHECK(stream.failed());
    }
    {
        audio::transcription_stream stream("mistral");
        CHECK(transcode(delta + "data: nope\n\n" + delta, 3, stream) ==
              delta_out +
                  "data: {\"error\":{\"message\":\"mistral answered with a body that is not a transcription\","
                  "\"type\":\"api_error\",\"param\":null,\"code\":\"bad_upstream_response\"}}\n\n");
    }
    {
        audio::transcription_stream stream("mistral");
        const auto out =
            transcode(delta + "data: {\"object\":\"error\",\"message\":\"audio too long\"}\n\n", 10, stream);
        CHECK(out.starts_with(delta_out + "data: {\"error\":{\"message\":\"audio too long\""));
        CHECK(stream.failed());
    }
    {
        audio::transcription_stream stream("mistral");
        std::string out;
        stream.on_body(delta, out);
        stream.on_failure(errors::make_error(502, "cut", "upstream_broken"), out);
        stream.on_failure(errors::make_error(502, "again", "upstream_broken"), out);
        CHECK(out == delta_out +
                         "data: "
                         "{\"error\":{\"message\":\"cut\",\"type\":\"api_error\",\"param\":null,\"code\":\"upstream_"
                         "broken\"}}\n\n");
    }
}

TEST_CASE("transcription answer: an empty 200 body is a 502, not a crash") {
    const auto result = audio::transform_transcription_response(std::string_view(), {transcript_format::json, {}});
    REQUIRE(result.error);
    CHECK(result.error->status == 502);
}
