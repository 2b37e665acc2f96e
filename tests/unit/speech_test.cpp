// POST /v1/audio/speech: OpenAI's request -> Mistral's SpeechRequest
// (audio/speech.hpp, then the plan's model rules and the params rule against
// the speech_request schema), Mistral's answer -> the audio bytes or OpenAI's
// speech events, and the rule files' speech_voices table.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "audio/speech.hpp"
#include "config/config.hpp"
#include "normalizer_support.hpp"
#include "plan_support.hpp"
#include "plan/request_plan.hpp"
#include "rules/rule_set.hpp"

namespace {

using namespace mistral_proxy;
using normalizer_test::config_with;
using normalizer_test::shipped;
const auto error_of = normalizer_test::rule_error_of;

using plan_test::planned;

std::unique_ptr<planned> plan_speech(std::string json, const config::proxy_config& config) {
    return plan_test::plan_with(config, "/v1/audio/speech", std::move(json));
}


// Mistral's stream: two deltas (bytes 00 01 02, then ff) and the done event.
constexpr std::string_view mistral_stream =
    "event: speech.audio.delta\n"
    "data: {\"type\":\"speech.audio.delta\",\"audio_data\":\"AAEC\"}\n\n"
    "event: speech.audio.delta\r\n"
    "data: {\"type\":\"speech.audio.delta\",\"audio_data\":\"/w==\"}\r\n\r\n"
    "event: speech.audio.done\n"
    "data: {\"type\":\"speech.audio.done\",\"usage\":{\"prompt_audio_seconds\":null,\"prompt_tokens\":5,"
    "\"completion_tokens\":7,\"total_tokens\":12}}\n\n";

constexpr std::string_view openai_events =
    "data: {\"type\":\"speech.audio.delta\",\"audio\":\"AAEC\"}\n\n"
    "data: {\"type\":\"speech.audio.delta\",\"audio\":\"/w==\"}\n\n"
    "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":5,\"output_tokens\":7,\"total_tokens\":12}}\n\n";

const std::string audio_bytes("\x00\x01\x02\xff", 4);

// Runs `upstream` through a speech_stream in the given pieces; the client's bytes.
std::string run_stream(const audio::speech_answer& answer, const std::vector<std::string_view>& pieces,
                       bool& done, bool& failed) {
    audio::speech_stream stream(answer, "mistral");
    std::string out;
    for (const auto piece : pieces) {
        stream.on_body(piece, out);
    }
    stream.on_end(out);
    done = stream.done();
    failed = stream.failed();
    if (done) {
        REQUIRE(stream.usage());
        CHECK(stream.usage()->prompt_tokens == 5);
        CHECK(stream.usage()->completion_tokens == 7);
        CHECK(stream.usage()->total_tokens == 12);
    }
    return out;
}

}  // namespace

TEST_CASE("speech request: OpenAI's body -> Mistral's SpeechRequest, exact bytes") {
    static const auto global = config_with();
    struct row {
        std::string_view in;
        std::string_view body;
        std::string_view rules;
    };
    const std::vector<row> rows{
        // Mistral is always asked to stream; the voice through the table.
        {R"({"model":"tts-1","voice":"alloy","input":"Hello"})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"en_paul_neutral","input":"Hello","stream":true})",
         "model_alias"},
        {R"({"model":"tts-1-hd","input":"Hi \"you\"","voice":"nova","response_format":"wav"})",
         R"({"model":"voxtral-mini-tts-2603","input":"Hi \"you\"","voice_id":"gb_jane_curious","response_format":"wav","stream":true})",
         "model_alias"},
        {R"({"model":"gpt-4o-mini-tts","voice":"fable","input":"x","stream_format":"sse","response_format":"opus"})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"gb_oliver_cheerful","input":"x","response_format":"opus","stream":true})",
         "model_alias"},
        // Fields Mistral's SpeechRequest lacks: dropped by params, and reported.
        {R"({"model":"tts-1","voice":"onyx","input":"x","speed":1.5,"instructions":"Whisper."})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"en_paul_confident","input":"x","stream":true})",
         "model_alias,params"},
        // The client's own stream or voice_id: the proxy decides them.
        {R"({"model":"tts-1","voice":"echo","input":"x","stream":false,"voice_id":"other"})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"gb_oliver_confident","input":"x","stream":true})",
         "model_alias,params"},
        // A Mistral voice the table names passes as itself; a custom voice object
        // names any Mistral voice; Mistral's own model and fields pass unchanged.
        {R"({"model":"voxtral-mini-tts-2603","voice":"gb_jane_sarcasm","input":"x"})", "", ""},
        {R"({"model":"voxtral-mini-tts-2603","voice":"gb_jane_neutral","input":"x"})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"gb_jane_neutral","input":"x","stream":true})", ""},
        {R"({"model":"voxtral-mini-tts-2603","voice":{"id":"voice_478"},"input":"x","response_format":null})",
         R"({"model":"voxtral-mini-tts-2603","voice_id":"voice_478","input":"x","stream":true})", "params"},
        {R"({"model":"voxtral-mini-tts-2603","ref_audio":"UklGRg==","input":"x"})",
         R"({"model":"voxtral-mini-tts-2603","ref_audio":"UklGRg==","input":"x","stream":true})", ""},
    };
    for (const row& r : rows) {
        CAPTURE(r.in);
        const auto p = plan_speech(std::string(r.in), global);
        if (r.body.empty()) {
            // gb_jane_sarcasm is a Mistral voice the shipped table does not name.
            REQUIRE_FALSE(p->result.ok());
            CHECK(p->result.error->status == 400);
            CHECK(p->result.error->param == std::string("voice"));
            continue;
        }
        REQUIRE(p->result.ok());
        const auto& plan = *p->result.plan;
        CHECK(p->body == r.body);
        CHECK(p->rules == r.rules);
        CHECK(plan.upstream == routing::upstream_id::mistral);
        CHECK(plan.upstream_path == "/audio/speech");
        CHECK(plan.stream);
        CHECK(plan.answer.mode == plan::answer_mode::transcode_stream);
        CHECK(plan.answer.whole == plan::whole_kind::speech);
    }

    const auto sse = plan_speech(R"({"model":"tts-1","voice":"ash","input":"x","stream_format":"sse"})", global);
    REQUIRE(sse->result.ok());
    CHECK(sse->result.plan->answer.speech.sse);
    CHECK(sse->result.plan->answer.speech.format == audio::speech_format::mp3);
    CHECK(sse->result.plan->model_requested == "tts-1");
    CHECK(sse->result.plan->model_sent == "voxtral-mini-tts-2603");
    const auto flac = plan_speech(R"({"model":"tts-1","voice":"ash","input":"x","response_format":"flac"})", global);
    REQUIRE(flac->result.ok());
    CHECK_FALSE(flac->result.plan->answer.speech.sse);
    CHECK(flac->result.plan->answer.speech.format == audio::speech_format::flac);

    // EU pin: the region's mistral upstream.
    static const auto eu = config_with("region: eu\n");
    const auto pinned = plan_speech(R"({"model":"tts-1","voice":"ash","input":"x"})", eu);
    REQUIRE(pinned->result.ok());
    CHECK(pinned->result.plan->upstream == routing::upstream_id::mistral_eu);
}

TEST_CASE("speech request: refusals name the field and what works") {
    static const auto global = config_with();
    const auto refused = [&](std::string_view json, std::string_view param) {
        CAPTURE(json);
        const auto p = plan_speech(std::string(json), global);
        REQUIRE_FALSE(p->result.ok());
        CHECK(p->result.error->status == 400);
        CHECK(p->result.error->type == "invalid_request_error");
        if (param.empty()) {
            CHECK_FALSE(p->result.error->param);
        } else {
            CHECK(p->result.error->param == std::string(param));
        }
        return p->result.error->message;
    };
    const auto unknown = refused(R"({"model":"tts-1","voice":"robot","input":"x"})", "voice");
    CHECK(unknown.find("voice 'robot' is not known") != std::string::npos);
    CHECK(unknown.find("alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse, marin, cedar") !=
          std::string::npos);
    CHECK(unknown.find("en_paul_neutral") != std::string::npos);
    CHECK(unknown.find("{\"id\": \"...\"}") != std::string::npos);
    CHECK(refused(R"({"model":"tts-1","voice":"alloy","input":"x","response_format":"aac"})", "response_format") ==
          "response_format 'aac' is not available: Mistral's speech has no AAC output; use mp3, opus, flac, wav or pcm");
    refused(R"({"model":"tts-1","voice":"alloy","input":"x","response_format":"ogg"})", "response_format");
    refused(R"({"model":"tts-1","voice":"alloy","input":"x","stream_format":"chunks"})", "stream_format");
    refused(R"({"model":"tts-1","voice":"alloy"})", "input");
    refused(R"({"model":"tts-1","voice":"alloy","input":42})", "input");
    refused(R"({"model":"tts-1","input":"x"})", "voice");
    refused(R"({"model":"tts-1","voice":7,"input":"x"})", "voice");
    refused(R"({"model":"tts-1","voice":{"id":"v","x":1},"input":"x"})", "voice");
    refused(R"({"model":"tts-1","voice":{"id":""},"input":"x"})", "voice.id");
    refused(R"({"voice":"alloy","input":"x"})", "model");
    refused(R"([1])", "");
    refused(R"({"model":"tts-1","voice":"alloy","input":"x"} x)", "");
    refused(R"({"model":"tts-1","voice":"alloy","input":"x")", "");
    // Every prefix of a valid body is refused, never half translated.
    const std::string whole = R"({"model":"tts-1","voice":"alloy","input":"x","speed":1})";
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
        CAPTURE(cut);
        const auto p = plan_speech(whole.substr(0, cut), global);
        CHECK_FALSE(p->result.ok());
    }
}

TEST_CASE("speech_voices: loaded strictly, a later file replaces an entry") {
    const auto layered = rules::parse_rule_texts({{"a.yaml", "speech_voices:\n  alloy: en_paul_neutral\n  nova: gb_jane_curious\n"},
                                                  {"b.yaml", "speech_voices:\n  alloy: voice_478\n  robot: gb_oliver_angry\n"}});
    using voices = std::vector<std::pair<std::string, std::string>>;
    CHECK(layered->speech_voices ==
          voices{{"alloy", "voice_478"}, {"nova", "gb_jane_curious"}, {"robot", "gb_oliver_angry"}});
    CHECK(shipped().speech_voices.size() == 13);
    CHECK(error_of("speech_voices:\n  alloy: \"\"\n") == "r.yaml:2:10: speech_voices.alloy must not be empty");
    CHECK(error_of("speech_voices:\n  alloy: [a]\n").find("speech_voices.alloy must be a string") != std::string::npos);
    CHECK(error_of("speech_voices: [alloy]\n").find("r.yaml:1:") == 0);
    CHECK(error_of("params:\n  rename:\n    speech: {voice: voice_id}\n") == "(no error)");
}

TEST_CASE("speech answer: Mistral's base64 -> the audio bytes with OpenAI's Content-Type") {
    std::string out;
    CHECK(audio::decode_base64("aGVsbG8=", out));
    CHECK(out == "hello");
    out.clear();
    CHECK(audio::decode_base64("aGVsbG8", out));  // padding left out
    CHECK(out == "hello");
    out = "x";
    CHECK(audio::decode_base64("", out));
    CHECK(out == "x");
    CHECK_FALSE(audio::decode_base64("aGVs*G8=", out));
    CHECK_FALSE(audio::decode_base64("aGVsb", out));  // a length no encoder writes
    CHECK(out == "x");
    out.clear();
    CHECK(audio::decode_base64("AAEC/w==", out));
    CHECK(out == std::string("\x00\x01\x02\xff", 4));

    const struct {
        audio::speech_format format;
        std::string_view type;
    } types[]{{audio::speech_format::mp3, "audio/mpeg"},
              {audio::speech_format::opus, "audio/opus"},
              {audio::speech_format::flac, "audio/flac"},
              {audio::speech_format::wav, "audio/wav"},
              {audio::speech_format::pcm, "audio/pcm"}};
    for (const auto& t : types) {
        const auto answer = audio::transform_speech_response(R"({"audio_data":"AAEC/w=="})", {t.format, false});
        CHECK_FALSE(answer.error);
        CHECK(answer.body == audio_bytes);
        CHECK(answer.content_type == t.type);
        CHECK(audio::speech_content_type(t.format) == t.type);
    }
    // Asked as events, answered whole: one delta and the done event.
    const auto events = audio::transform_speech_response(R"({"audio_data":"AAEC/w=="})", {audio::speech_format::mp3, true});
    CHECK(events.body ==
          "data: {\"type\":\"speech.audio.delta\",\"audio\":\"AAEC/w==\"}\n\n"
          "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0,\"total_tokens\":0}}\n\n");
    CHECK(events.content_type == "text/event-stream");
    for (const std::string_view bad : {R"({"audio":"AAEC"})", R"({"audio_data":"A*EC"})", "not json",
                                       R"({"audio_data":7})", R"([{"audio_data":"AAEC"}])"}) {
        CAPTURE(bad);
        const auto answer = audio::transform_speech_response(bad, {});
        REQUIRE(answer.error);
        CHECK(answer.error->status == 502);
        CHECK(answer.body.empty());
    }
}

TEST_CASE("speech stream: Mistral's events -> OpenAI's events or the bytes, at any split point") {
    const audio::speech_answer sse{audio::speech_format::mp3, true};
    const audio::speech_answer bytes{audio::speech_format::mp3, false};
    bool done = false;
    bool failed = false;
    for (std::size_t cut = 0; cut <= mistral_stream.size(); ++cut) {
        CAPTURE(cut);
        const std::vector<std::string_view> pieces{mistral_stream.substr(0, cut), mistral_stream.substr(cut)};
        CHECK(run_stream(sse, pieces, done, failed) == openai_events);
        CHECK(done);
        CHECK_FALSE(failed);
        CHECK(run_stream(bytes, pieces, done, failed) == audio_bytes);
        CHECK(done);
        CHECK_FALSE(failed);
    }
    std::vector<std::string_view> single_bytes;
    for (std::size_t i = 0; i < mistral_stream.size(); ++i) {
        single_bytes.push_back(mistral_stream.substr(i, 1));
    }
    CHECK(run_stream(sse, single_bytes, done, failed) == openai_events);
    CHECK(run_stream(bytes, single_bytes, done, failed) == audio_bytes);
}

TEST_CASE("speech stream: errors end the events with OpenAI's error; the bytes are cut short") {
    const audio::speech_answer sse{audio::speech_format::mp3, true};
    const audio::speech_answer bytes{audio::speech_format::wav, false};
    bool done = false;
    bool failed = false;
    const std::string first_delta(mistral_stream.substr(0, mistral_stream.find("event: speech.audio.delta\r\n")));
    const std::string delta_event = "data: {\"type\":\"speech.audio.delta\",\"audio\":\"AAEC\"}\n\n";

    // The stream ends before speech.audio.done.
    auto out = run_stream(sse, {first_delta}, done, failed);
    CHECK(out.starts_with(delta_event));
    CHECK(out.find("\"code\":\"upstream_stream_incomplete\"") != std::string::npos);
    CHECK(failed);
    CHECK(run_stream(bytes, {first_delta}, done, failed) == std::string("\x00\x01\x02", 3));
    CHECK(failed);

    // Mistral's error event, in OpenAI's error shape.
    const std::string error_event =
        first_delta + "event: error\ndata: {\"object\":\"error\",\"message\":\"capacity exceeded\",\"type\":\"service_tier_capacity_exceeded\",\"code\":\"3505\"}\n\n";
    out = run_stream(sse, {error_event}, done, failed);
    CHECK(out.starts_with(delta_event));
    CHECK(out.find("data: {\"error\":{\"message\":\"capacity exceeded\"") != std::string::npos);
    CHECK(failed);
    CHECK(run_stream(bytes, {error_event}, done, failed) == std::string("\x00\x01\x02", 3));
    CHECK(failed);

    // Base64 that does not decode, data that is not JSON, an empty data line
    // (fuzz_speech: the parser must not be handed a view with no bytes), also
    // as the last unfinished event.
    for (const std::string& bad : {std::string("data: {\"type\":\"speech.audio.delta\",\"audio_data\":\"A*\"}\n\n"),
                                  std::string("data: {nope\n\n"), std::string("data:\n\n"), std::string("data")}) {
        CAPTURE(bad);
        out = run_stream(sse, {bad}, done, failed);
        CHECK(out.find("\"code\":\"bad_upstream_response\"") != std::string::npos);
        CHECK(failed);
        CHECK(run_stream(bytes, {bad}, done, failed).empty());
        CHECK(failed);
    }

    // A failure of the upstream connection itself.
    audio::speech_stream stream(sse, "mistral");
    std::string text;
    stream.on_failure(errors::make_error(502, "broke off", "upstream_unreachable"), text);
    CHECK(text.starts_with("data: {\"error\":{\"message\":\"broke off\""));
    CHECK(stream.failed());
}
