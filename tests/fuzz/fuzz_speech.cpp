// libFuzzer target: POST /v1/audio/speech (audio/speech.hpp) — Mistral's
// speech stream as the relay drives it, the request translation, and base64.
//
// Input: byte 0 = options (bit 0: OpenAI's events (sse) instead of the audio
// bytes; bit 1: the upstream fails at the end instead of ending normally; bit
// 2: the rest is a client's request body for map_speech_request instead of an
// upstream stream); byte 1 = how many cut points (mod 16); then two bytes
// (little endian) per cut point, taken modulo the body's length + 1; the rest
// is the body. Rules: the shipped rules/mistral.yaml, loaded once.
//
// Invariants. The stream: the client's bytes, the state and the usage are the
// same however the body is cut; with sse every call appends only whole events
// `data: JSON-OBJECT\n\n` and nothing follows the done or an error event;
// after the end the stream is done or failed, and nothing is appended once it
// was. The request: a refusal is a 400 with no
// body; a translation is one valid JSON object asking Mistral to stream, with
// a voice_id (or ref_audio). base64: what the proxy encodes decodes to itself.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audio/speech.hpp"
#include "errors/openai_error.hpp"
#include "fuzz_support.hpp"
#include "responses/embeddings.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

namespace {

struct run_result {
    std::string out;
    bool done = false;
    bool failed = false;
    std::optional<responses::usage_counts> usage;
    std::uint64_t events_in = 0;
};

const rules::rule_set& shipped_rules() {
    static const auto loaded = rules::load_rule_files({std::string(MP_REPO_ROOT) + "/rules/mistral.yaml"});
    return *loaded;
}

// Checks that `appended` is zero or more whole events of OpenAI's speech
// stream; `ended` tracks whether the done or an error event was seen.
void check_events(std::string_view appended, bool& ended) {
    while (!appended.empty()) {
        fuzz::check(!ended, "no event after speech.audio.done or an error event", appended);
        fuzz::check(appended.substr(0, 6) == "data: ", "an event starts with 'data: '", appended);
        const std::size_t end = appended.find("\n\n");
        fuzz::check(end != std::string_view::npos, "an event ends with a blank line", appended);
        const std::string_view payload = appended.substr(6, end - 6);
        fuzz::check(payload.find_first_of("\r\n") == std::string_view::npos, "one data line per event", payload);
        bool is_object = false;
        fuzz::check(fuzz::valid_json(payload, is_object) && is_object, "an event's data is a JSON object", payload);
        ended = payload.starts_with("{\"error\":") || payload.starts_with("{\"type\":\"speech.audio.done\"");
        appended.remove_prefix(end + 2);
    }
}

run_result run(std::string_view body, const std::vector<std::size_t>& cuts, const audio::speech_answer& answer,
               bool fail_at_end) {
    audio::speech_stream stream(answer, "mistral");
    run_result result;
    bool ended = false;
    std::size_t from = 0;
    auto feed = [&](std::size_t to) {
        const std::size_t before = result.out.size();
        stream.on_body(body.substr(from, to - from), result.out);
        if (answer.sse) {
            check_events(std::string_view(result.out).substr(before), ended);
            fuzz::check(ended == (stream.done() || stream.failed()), "the last event is written when the stream ends");
        }
        from = to;
    };
    for (const std::size_t cut : cuts) {
        feed(cut);
    }
    feed(body.size());
    const std::size_t before = result.out.size();
    const bool finished = stream.done() || stream.failed();
    if (fail_at_end) {
        stream.on_failure(errors::make_error(502, "upstream reset the connection", "upstream_reset"), result.out);
    } else {
        stream.on_end(result.out);
    }
    if (answer.sse) {
        check_events(std::string_view(result.out).substr(before), ended);
    }
    fuzz::check(stream.done() != stream.failed(), "the stream is done or failed after on_end/on_failure");
    if (finished) {
        fuzz::check(before == result.out.size(), "nothing is appended after the stream ended");
    }
    result.done = stream.done();
    result.failed = stream.failed();
    result.usage = stream.usage();
    result.events_in = stream.events_in();
    return result;
}

void check_request(std::string_view body) {
    const auto request = audio::map_speech_request(body, shipped_rules(), (body.size() & 1) != 0);
    if (request.error) {
        fuzz::check(request.error->status == 400 && request.body.empty(), "a refusal is a 400 with nothing to send");
        return;
    }
    bool is_object = false;
    fuzz::check(fuzz::valid_json(request.body, is_object) && is_object, "the translation is a JSON object",
                request.body);
    fuzz::check(request.body.find("\"voice_id\":") != std::string::npos ||
                    request.body.find("\"ref_audio\"") != std::string::npos,
                "a voice_id or ref_audio is sent", request.body);
    fuzz::check(!request.answer.sse || request.body.ends_with(",\"stream\":true}"), "sse asks Mistral to stream",
                request.body);
}

void check_base64(std::string_view bytes) {
    std::string encoded;
    responses::append_base64(encoded, bytes);
    std::string decoded;
    fuzz::check(audio::decode_base64(encoded, decoded) && decoded == bytes, "base64 decodes what was encoded");
    std::string any = "kept";
    if (!audio::decode_base64(bytes, any)) {
        fuzz::check(any == "kept", "a refused decode leaves the output as it was");
    }
}

// Runs the stream whole and cut: the outcome must not depend on the cuts.
void check_stream(const fuzz::split_input& in) {
    const audio::speech_answer answer{audio::speech_format::mp3, (in.flags & 1) != 0};
    const bool fail_at_end = (in.flags & 2) != 0;
    const run_result one_piece = run(in.body, {}, answer, fail_at_end);
    const run_result pieces = run(in.body, in.cuts, answer, fail_at_end);
    fuzz::check(one_piece.out == pieces.out, "the client's bytes do not depend on how the body is cut",
                "one piece:\n" + one_piece.out + "\n---- in pieces:\n" + pieces.out);
    fuzz::check(one_piece.done == pieces.done && one_piece.failed == pieces.failed &&
                    one_piece.events_in == pieces.events_in && fuzz::same_usage(one_piece.usage, pieces.usage),
                "the state after the stream does not depend on how the body is cut");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::split_input in;
    if (fuzz::read_split_input(data, size, in)) {
        check_base64(in.body);
        if ((in.flags & 4) != 0) {
            check_request(in.body);
        } else {
            check_stream(in);
        }
    }
    return 0;
}
