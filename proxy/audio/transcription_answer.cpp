// Mistral's transcription answers in OpenAI's shapes; see transcription_answer.hpp.
#include "audio/transcription_answer.hpp"

#include <simdjson.h>

#include <charconv>
#include <vector>

#include "audio/subtitles.hpp"
#include "json/writer.hpp"

namespace mistral_proxy::audio {

namespace {

using simdjson::SUCCESS;
namespace dom = simdjson::dom;

struct segment {
    double start = 0;
    double end = 0;
    std::string_view text;
};

struct transcript {
    std::string_view text;
    std::string_view language;
    std::vector<segment> segments;
    std::optional<double> audio_seconds;  // usage.prompt_audio_seconds
    std::optional<responses::usage_counts> usage;
};

void append_number(std::string& out, double value) {
    char text[64];
    const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
    out.append(text, ec == std::errc{} ? end : text);
}

// Mistral's UsageInfo: token counts, and the audio's length in seconds.
void read_usage(dom::object usage, transcript& out) {
    std::uint64_t count = 0;
    responses::usage_counts counts;
    bool any = false;
    if (usage["prompt_tokens"].get(count) == SUCCESS) {
        counts.prompt_tokens = count;
        any = true;
    }
    if (usage["completion_tokens"].get(count) == SUCCESS) {
        counts.completion_tokens = count;
        any = true;
    }
    counts.total_tokens =
        usage["total_tokens"].get(count) == SUCCESS ? count : counts.prompt_tokens + counts.completion_tokens;
    if (any) {
        out.usage = counts;
    }
    double seconds = 0;
    if (usage["prompt_audio_seconds"].get(seconds) == SUCCESS) {
        out.audio_seconds = seconds;
    }
}

// Reads a TranscriptionResponse (or a transcription.done event's data);
// false when `object` is not one.
bool read_transcript(dom::object object, transcript& out) {
    if (object["text"].get(out.text) != SUCCESS) {
        return false;
    }
    if (object["language"].get(out.language) != SUCCESS) {
        out.language = {};
    }
    dom::object usage;
    if (object["usage"].get(usage) == SUCCESS) {
        read_usage(usage, out);
    }
    dom::array segments;
    if (object["segments"].get(segments) == SUCCESS) {
        for (const auto item : segments) {
            dom::object entry;
            segment s;
            if (item.get(entry) != SUCCESS || entry["start"].get(s.start) != SUCCESS ||
                entry["end"].get(s.end) != SUCCESS || entry["text"].get(s.text) != SUCCESS) {
                return false;
            }
            out.segments.push_back(s);
        }
    }
    return true;
}

// OpenAI's TranscriptTextUsageTokens from Mistral's counts.
void append_token_usage(std::string& out, const responses::usage_counts& usage) {
    out += R"("usage":{"type":"tokens","input_tokens":)" + std::to_string(usage.prompt_tokens) +
           ",\"output_tokens\":" + std::to_string(usage.completion_tokens) +
           ",\"total_tokens\":" + std::to_string(usage.total_tokens) + "}";
}

double duration_of(const transcript& t) {
    if (t.audio_seconds) {
        return *t.audio_seconds;
    }
    return t.segments.empty() ? 0.0 : t.segments.back().end;
}

std::string verbose_json(const transcript& t, const answer_options& options) {
    std::string out = R"({"task":"transcribe","language":)";
    json::append_json_string(out, t.language);
    out += ",\"duration\":";
    append_number(out, duration_of(t));
    out += ",\"text\":";
    json::append_json_string(out, t.text);
    out += ",\"segments\":[";
    for (std::size_t i = 0; i < t.segments.size(); ++i) {
        const auto& s = t.segments[i];
        out += i == 0 ? "{\"id\":" : ",{\"id\":";
        out += std::to_string(i);
        out += ",\"seek\":0,\"start\":";
        append_number(out, s.start);
        out += ",\"end\":";
        append_number(out, s.end);
        out += ",\"text\":";
        json::append_json_string(out, s.text);
        out += ",\"tokens\":[],\"temperature\":";
        append_number(out, options.temperature.value_or(0.0));
        out += R"(,"avg_logprob":0,"compression_ratio":0,"no_speech_prob":0})";
    }
    out += ']';
    if (t.audio_seconds) {
        out += R"(,"usage":{"type":"duration","seconds":)";
        append_number(out, *t.audio_seconds);
        out += '}';
    }
    out += '}';
    return out;
}

std::string subtitles(const transcript& t, transcript_format format) {
    std::vector<cue> cues;
    for (const auto& s : t.segments) {
        cues.push_back({s.start, s.end, s.text});
    }
    if (cues.empty() && !t.text.empty()) {
        cues.push_back({0.0, duration_of(t), t.text});
    }
    return format == transcript_format::srt ? to_srt(cues) : to_vtt(cues);
}

errors::openai_error not_a_transcription(std::string_view upstream) {
    return errors::make_error(502, std::string(upstream) + " answered with a body that is not a transcription",
                              "bad_upstream_response");
}

}  // namespace

responses::body_result transform_transcription_response(std::string_view body, const answer_options& options) {
    responses::body_result result;
    thread_local dom::parser parser;
    dom::object object;
    transcript t;
    // An empty body's data may be null, which simdjson would copy from.
    if (body.empty() || parser.parse(body.data(), body.size()).get(object) != SUCCESS || !read_transcript(object, t)) {
        result.error = not_a_transcription("upstream");
        return result;
    }
    result.usage = t.usage;
    switch (options.format) {
        case transcript_format::json:
            result.body = "{\"text\":";
            json::append_json_string(result.body, t.text);
            if (t.usage) {
                result.body += ',';
                append_token_usage(result.body, *t.usage);
            }
            result.body += '}';
            result.content_type = "application/json";
            break;
        case transcript_format::text:
            result.body.assign(t.text);
            result.body += '\n';
            result.content_type = "text/plain; charset=utf-8";
            break;
        case transcript_format::verbose_json:
            result.body = verbose_json(t, options);
            result.content_type = "application/json";
            break;
        case transcript_format::srt:
        case transcript_format::vtt:
            result.body = subtitles(t, options.format);
            result.content_type =
                options.format == transcript_format::vtt ? "text/vtt; charset=utf-8" : "text/plain; charset=utf-8";
            break;
    }
    return result;
}

void transcription_stream::on_data(std::string_view type, dom::object data, std::string& out) {
    if (type == "transcription.text.delta") {
        std::string_view text;
        if (data["text"].get(text) != SUCCESS) {
            fail(not_this_answer(), out);
            return;
        }
        out += R"(data: {"type":"transcript.text.delta","delta":)";
        json::append_json_string(out, text);
        out += "}\n\n";
    } else if (type == "transcription.done") {
        transcript t;
        if (!read_transcript(data, t)) {
            fail(not_this_answer(), out);
            return;
        }
        out += R"(data: {"type":"transcript.text.done","text":)";
        json::append_json_string(out, t.text);
        if (t.usage) {
            out += ',';
            append_token_usage(out, *t.usage);
            usage_ = t.usage;
        }
        out += "}\n\n";
        done_ = true;
    }
    // transcription.language, transcription.segment: no streamed counterpart.
}

}  // namespace mistral_proxy::audio
