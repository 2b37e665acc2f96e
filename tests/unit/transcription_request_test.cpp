// The transcription form rewriter (proxy/audio/transcription_request.hpp):
// exact upstream bytes for the SDK's forms, the same bytes at every split
// point, the fields dropped and renamed by the shipped rules, and the refusals.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "audio/transcription_request.hpp"
#include "normalizer_support.hpp"

namespace {

using namespace mistral_proxy;
using audio::transcript_format;
using normalizer_test::shipped;

std::string field(std::string_view name, std::string_view value) {
    return "--B\r\nContent-Disposition: form-data; name=\"" + std::string(name) + "\"\r\n\r\n" + std::string(value) +
           "\r\n";
}
std::string file_part(std::string_view data) {
    return "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: "
           "audio/mpeg\r\n\r\n" +
           std::string(data) + "\r\n";
}
const std::string end = "--B--\r\n";

struct rewritten {
    bool ok = false;
    std::string out;
    audio::transcription_facts facts;
    std::string error;
};

rewritten rewrite_split(std::string_view body, std::size_t at) {
    audio::transcription_rewriter rewriter(shipped(), "B");
    rewritten r;
    r.ok = rewriter.feed(body.substr(0, at), r.out) && rewriter.feed(body.substr(at), r.out) && rewriter.finish(r.out);
    r.facts = rewriter.facts();
    r.error = rewriter.error() ? rewriter.error()->message : "";
    if (rewriter.error()) {
        CHECK(rewriter.error()->status == 400);
    }
    return r;
}

// Every split point gives the same bytes, facts and error.
rewritten rewrite(std::string_view body) {
    const auto whole = rewrite_split(body, body.size());
    for (std::size_t at = 0; at < body.size(); ++at) {
        INFO("split at ", at);
        const auto split = rewrite_split(body, at);
        CHECK(split.ok == whole.ok);
        CHECK(split.out == whole.out);
        CHECK(split.error == whole.error);
    }
    return whole;
}

}  // namespace

TEST_CASE("transcriptions: the SDK's json request, model aliased") {
    const auto r = rewrite(file_part("ID3\r\n--C-") + field("model", "whisper-1") + end);
    REQUIRE(r.ok);
    CHECK(r.out == file_part("ID3\r\n--C-") + field("model", "voxtral-mini-latest") + end);
    CHECK(r.facts.model_requested == "whisper-1");
    CHECK(r.facts.model_sent == "voxtral-mini-latest");
    CHECK(r.facts.format == transcript_format::json);
    CHECK(!r.facts.stream);
    CHECK(r.facts.file_bytes == 9);
    std::string fired;
    r.facts.fired.append_names(fired);
    CHECK(fired == "model_alias");
}

TEST_CASE("transcriptions: srt asks Mistral for segments; OpenAI-only fields dropped") {
    const auto r = rewrite(field("model", "gpt-4o-transcribe") + field("response_format", "srt") +
                           field("prompt", "Names: Ada") + field("include[]", "logprobs") + field("language", "en") +
                           field("temperature", "0.2") + file_part("RIFF") + end);
    REQUIRE(r.ok);
    CHECK(r.out == field("model", "voxtral-mini-latest") + field("language", "en") + field("temperature", "0.2") +
                       file_part("RIFF") + field("timestamp_granularities", "segment") + end);
    CHECK(r.facts.format == transcript_format::srt);
    CHECK(r.facts.temperature == doctest::Approx(0.2));
    CHECK(r.facts.dropped == std::vector<std::string>{"prompt", "include[]"});
    std::string fired;
    r.facts.fired.append_names(fired);
    CHECK(fired == "model_alias,params");
}

TEST_CASE("transcriptions: timestamp_granularities[] renamed, not repeated; stream kept") {
    const auto r = rewrite(field("model", "voxtral-mini-2507") + field("response_format", "verbose_json") +
                           field("timestamp_granularities[]", "segment") + field("timestamp_granularities[]", "word") +
                           field("stream", "true") + file_part("x") + end);
    REQUIRE(r.ok);
    CHECK(r.out == field("model", "voxtral-mini-2507") + field("timestamp_granularities", "segment") +
                       field("timestamp_granularities", "word") + field("stream", "true") + file_part("x") + end);
    CHECK(r.facts.stream);
    CHECK(r.facts.format == transcript_format::verbose_json);
    CHECK(r.facts.model_sent == "voxtral-mini-2507");
}

TEST_CASE("transcriptions: vtt and verbose_json ask for segments, json and text do not") {
    for (const auto* format : {"vtt", "verbose_json"}) {
        const auto r = rewrite(field("model", "m") + field("response_format", format) + file_part("x") + end);
        CHECK(r.out.ends_with(field("timestamp_granularities", "segment") + end));
    }
    for (const auto* format : {"json", "text"}) {
        const auto r = rewrite(field("model", "m") + field("response_format", format) + file_part("x") + end);
        CHECK(r.out == field("model", "m") + file_part("x") + end);
    }
}

TEST_CASE("transcriptions: a filename with a quote, a file without a type, a second file field") {
    const std::string body =
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\\\"b.wav\"\r\n\r\nRIFF\r\n" +
        std::string(
            "--B\r\nContent-Disposition: form-data; name=\"known_speaker_references[]\"; filename=\"s.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\nRIFF\r\n") +
        field("model", "whisper-1") + end;
    const auto r = rewrite(body);
    REQUIRE(r.ok);
    CHECK(r.out ==
          "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%22b.wav\"\r\n"
          "Content-Type: application/octet-stream\r\n\r\nRIFF\r\n" +
              field("model", "voxtral-mini-latest") + end);
    CHECK(r.facts.dropped == std::vector<std::string>{"known_speaker_references[]"});
}

TEST_CASE("transcriptions: refusals") {
    struct bad {
        std::string body;
        std::string error;
    };
    const std::vector<bad> cases{
        {file_part("x") + end, "you must provide a model parameter"},
        {field("model", "whisper-1") + end, "'file' is required: the audio to transcribe"},
        {field("model", "m") + field("model", "n") + file_part("x") + end, "the form names 'model' twice"},
        {field("model", "m") + file_part("x") + file_part("y") + end, "the form has two audio files: send one 'file'"},
        {field("model", "m") + field("file", "x") + end,
         "'file' must be a file part (with a filename), the audio to transcribe"},
        {field("model", "m") + field("response_format", "diarized_json") + file_part("x") + end,
         "response_format 'diarized_json' is not supported; use one of json, text, srt, verbose_json, vtt"},
        {field("model", "m") + field("stream", "yes") + file_part("x") + end,
         "stream must be true or false, not 'yes'"},
        {field("model", "m") + field("temperature", "hot") + file_part("x") + end,
         "temperature must be a number, not 'hot'"},
        {field("model", "m") + field("timestamp_granularities[]", "char") + file_part("x") + end,
         "timestamp_granularities[] takes segment or word, not 'char'"},
        {field("model", "m") + file_part("x"),
         "malformed multipart/form-data body: the multipart body ends without its closing boundary (an unterminated "
         "part)"},
        {"junk" + end, "malformed multipart/form-data body: the multipart body does not start with its boundary"},
        {field("model", "m") + field("prompt", std::string(audio::max_form_field_bytes + 1, 'p')) + end,
         "form field 'prompt' exceeds 65536 bytes"},
    };
    for (const auto& c : cases) {
        INFO(c.body.substr(0, 300));
        const auto r = rewrite_split(c.body, c.body.size() / 2);
        CHECK(!r.ok);
        CHECK(r.error == c.error);
    }
    // File_url names the audio instead of a file (Mistral's own field).
    CHECK(rewrite_split(field("model", "m") + field("file_url", "https://a.test/x.mp3") + end, 3).ok);
}

TEST_CASE("transcriptions: the upstream Content-Type keeps the client's boundary") {
    audio::transcription_rewriter rewriter(shipped(), "----formdata-undici-0123");
    CHECK(rewriter.content_type() == "multipart/form-data; boundary=\"----formdata-undici-0123\"");
}

TEST_CASE("transcriptions: explain's description of a form") {
    const auto described =
        audio::describe_form(shipped(), field("model", "whisper-1") + field("prompt", "p") +
                                            field("response_format", "srt") + file_part("ID3") + end);
    REQUIRE(!described.error);
    CHECK(described.form == R"([{"name":"model","value":"voxtral-mini-latest"},)"
                            R"({"name":"file","filename":"a.mp3","content_type":"audio/mpeg","bytes":3},)"
                            R"({"name":"timestamp_granularities","value":"segment"}])");
    CHECK(described.facts.dropped == std::vector<std::string>{"prompt"});
    CHECK(described.facts.format == transcript_format::srt);
    CHECK(audio::describe_form(shipped(), "no boundary line").error->message ==
          "malformed multipart/form-data body: it does not start with a boundary line");
    CHECK(audio::describe_form(shipped(), "--B\r\n" + end).error->code == "invalid_multipart");
    CHECK(audio::describe_form(shipped(), "--a\"b\r\n").error->code == "invalid_multipart");
}
