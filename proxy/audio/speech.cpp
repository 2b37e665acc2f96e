// POST /v1/audio/speech in both directions; see speech.hpp.
#include "audio/speech.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <initializer_list>

#include "json/writer.hpp"
#include "responses/json_copy.hpp"

namespace mistral_proxy::audio {

namespace {

using simdjson::SUCCESS;
namespace od = simdjson::ondemand;
namespace dom = simdjson::dom;

struct format_name {
    std::string_view name;
    speech_format format;
    std::string_view content_type;
};

// OpenAI's formats Mistral produces, and the Content-Type OpenAI answers each with.
constexpr std::array<format_name, 5> formats{{
    {"mp3", speech_format::mp3, "audio/mpeg"},
    {"opus", speech_format::opus, "audio/opus"},
    {"flac", speech_format::flac, "audio/flac"},
    {"wav", speech_format::wav, "audio/wav"},
    {"pcm", speech_format::pcm, "audio/pcm"},
}};

// Messages are joined piece by piece: GCC 12 warns -Wrestrict (a false
// positive, bug 105329) on `"literal" + std::string` chains at -O3.
std::string text_of(std::initializer_list<std::string_view> pieces) {
    std::string out;
    for (const auto piece : pieces) {
        out.append(piece);
    }
    return out;
}

// Sets the 400; every return then names the one local `request` (NRVO).
void refuse(speech_request& request, std::string message, std::optional<std::string> param) {
    request.body.clear();
    request.error = errors::make_error(400, std::move(message), std::nullopt, std::move(param));
}

// "alloy, ash, ..." and the Mistral voices they map to, for the unknown-voice message.
std::string known_voices(const rules::rule_set& rules) {
    std::string names;
    std::string mistral;
    for (const auto& [openai, voice_id] : rules.speech_voices) {
        names += names.empty() ? "" : ", ";
        names += openai;
        if (mistral.find(voice_id) == std::string::npos) {
            mistral += mistral.empty() ? "" : ", ";
            mistral += voice_id;
        }
    }
    if (names.empty()) {
        return "this proxy's rule files name no voice (speech_voices); send a Mistral voice id as "
               "{\"id\": \"...\"}";
    }
    return text_of({"known voices: ", names, " (and the Mistral voices they stand for: ", mistral,
                    "); any other Mistral voice id, a custom one included, as {\"id\": \"...\"}"});
}

// The voice_id for a string voice: the table's entry, or a Mistral voice the
// table names. nullptr when the table has neither.
const std::string* voice_id_for(const rules::rule_set& rules, std::string_view voice) {
    for (const auto& [openai, voice_id] : rules.speech_voices) {
        if (openai == voice) {
            return &voice_id;
        }
    }
    for (const auto& entry : rules.speech_voices) {
        if (entry.second == voice) {
            return &entry.second;
        }
    }
    return nullptr;
}

// `voice` as Mistral's voice_id, into `voice_id` (unescaped). false with
// `request` refused when it cannot be.
bool map_voice(od::value& value, const rules::rule_set& rules, std::string& voice_id, speech_request& request) {
    od::json_type type;
    if (value.type().get(type) != SUCCESS) {
        refuse(request, "request body is not valid JSON", "voice");
        return false;
    }
    std::string_view text;
    if (type == od::json_type::string) {
        if (value.get_string().get(text) != SUCCESS) {
            refuse(request, "request body is not valid JSON", "voice");
            return false;
        }
        const std::string* mapped = voice_id_for(rules, text);
        if (mapped == nullptr) {
            refuse(request, text_of({"voice '", text, "' is not known to this proxy; ", known_voices(rules)}), "voice");
            return false;
        }
        voice_id = *mapped;
        return true;
    }
    od::object custom;
    bool has_id = false;
    if (type == od::json_type::object && value.get_object().get(custom) == SUCCESS) {
        for (auto field : custom) {
            std::string_view key;
            if (field.unescaped_key().get(key) != SUCCESS) {
                refuse(request, "request body is not valid JSON", "voice");
                return false;
            }
            od::value member = field.value();
            if (key != "id" || member.get_string().get(text) != SUCCESS || text.empty()) {
                refuse(request, "a custom 'voice' must be {\"id\": \"...\"} with a Mistral voice id and nothing else",
                       key == "id" ? "voice.id" : "voice");
                return false;
            }
            voice_id.assign(text);
            has_id = true;
        }
    }
    if (!has_id) {
        refuse(request, text_of({"'voice' must be a voice name or {\"id\": \"...\"}; ", known_voices(rules)}), "voice");
        return false;
    }
    return true;
}

// A string member's value; false when it is not a string.
bool string_of(od::value& value, std::string_view& text) { return value.get_string().get(text) == SUCCESS; }

}  // namespace

std::string_view speech_content_type(speech_format format) noexcept {
    for (const auto& known : formats) {
        if (known.format == format) {
            return known.content_type;
        }
    }
    return "application/octet-stream";
}

speech_request map_speech_request(std::string_view body, const rules::rule_set& rules, bool stream_audio) {
    speech_request request;
    thread_local responses::detail::json_reader reader;
    od::document doc;
    od::object root;
    if (!reader.open(body, doc, root)) {
        const bool braced = body.find_first_not_of(" \t\r\n") == body.find('{') && body.find('{') != body.npos;
        refuse(request, braced ? "request body is not valid JSON" : "request body must be a JSON object with 'model', 'input' and 'voice'", std::nullopt);
        return request;
    }
    std::string& out = request.body;
    out.reserve(body.size() + 32);
    out += '{';
    bool first = true;
    bool has_input = false;
    bool has_voice = false;
    bool has_ref_audio = false;
    std::string voice_id;
    for (auto field : root) {
        std::string_view key;
        if (field.unescaped_key().get(key) != SUCCESS) {
            refuse(request, "request body is not valid JSON", std::nullopt);
            return request;
        }
        od::value value = field.value();
        std::string_view text;
        if (key == "voice") {
            if (!map_voice(value, rules, voice_id, request)) {
                return request;
            }
            has_voice = true;
            responses::detail::begin_member(out, first, "voice_id");
            json::append_json_string(out, voice_id);
            continue;
        }
        if (key == "stream_format") {
            od::json_type type;
            if (value.type().get(type) == SUCCESS && type == od::json_type::null) {
                request.answer.sse = false;
            } else if (!string_of(value, text) || (text != "sse" && text != "audio")) {
                refuse(request, "'stream_format' must be \"audio\" or \"sse\"", "stream_format");
                return request;
            } else {
                request.answer.sse = text == "sse";
            }
            continue;  // answered by the proxy: becomes "stream"
        }
        if (key == "stream" || key == "voice_id") {
            request.dropped = true;  // the proxy decides these (stream_format, voice)
            std::string_view ignored;
            if (!responses::detail::raw_value(value, ignored)) {
                refuse(request, "request body is not valid JSON", std::string(key));
                return request;
            }
            continue;
        }
        if (key == "response_format") {
            od::json_type type;
            if (value.type().get(type) == SUCCESS && type == od::json_type::null) {
                request.answer.format = speech_format::mp3;  // copied: the normalizer drops the null
            } else if (!string_of(value, text)) {
                refuse(request, "'response_format' must be a string: mp3, opus, flac, wav or pcm", "response_format");
                return request;
            } else if (text == "aac") {
                refuse(request,
                       "response_format 'aac' is not available: Mistral's speech has no AAC output; use mp3, opus, "
                       "flac, wav or pcm",
                       "response_format");
                return request;
            } else {
                const auto* known = std::find_if(formats.begin(), formats.end(),
                                                 [&](const format_name& f) { return f.name == text; });
                if (known == formats.end()) {
                    refuse(request,
                           text_of({"response_format '", text, "' is not one of mp3, opus, aac, flac, wav, pcm ",
                                    "(this proxy answers mp3, opus, flac, wav and pcm)"}),
                           "response_format");
                    return request;
                }
                request.answer.format = known->format;
            }
        } else if (key == "input") {
            od::json_type type;
            if (value.type().get(type) != SUCCESS || type != od::json_type::string) {
                refuse(request, "'input' must be a string: the text to speak", "input");
                return request;
            }
            has_input = true;
        } else if (key == "ref_audio") {
            has_ref_audio = true;
        }
        // Copied as the client wrote it: model, input, response_format, and
        // whatever else (speed, instructions, ...) for the params rule to judge.
        std::string_view raw;
        if (!responses::detail::raw_value(value, raw)) {
            refuse(request, "request body is not valid JSON", std::string(key));
            return request;
        }
        responses::detail::begin_member(out, first, key);
        out += raw;
    }
    if (!responses::detail::at_end(doc)) {
        refuse(request, "request body is not valid JSON: unexpected content after the object", std::nullopt);
        return request;
    }
    if (!has_input) {
        refuse(request, "you must provide 'input': the text to speak", "input");
        return request;
    }
    if (!has_voice && !has_ref_audio) {
        refuse(request, text_of({"you must provide 'voice'; ", known_voices(rules)}), "voice");
        return request;
    }
    if (request.answer.sse || stream_audio) {
        responses::detail::begin_member(out, first, "stream");
        out += "true";
    }
    out += '}';
    return request;
}

bool decode_base64(std::string_view text, std::string& out) {
    static constexpr auto table = [] {
        std::array<std::int8_t, 256> values{};
        values.fill(-1);
        constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (std::size_t i = 0; i < alphabet.size(); ++i) {
            values[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
        }
        return values;
    }();
    std::size_t length = text.size();
    if (length % 4 == 0 && length >= 2 && text[length - 1] == '=') {
        length -= text[length - 2] == '=' ? 2 : 1;
    }
    if (length % 4 == 1) {
        return false;
    }
    const std::size_t start = out.size();
    out.reserve(start + length / 4 * 3 + 2);
    std::uint32_t bits = 0;
    int count = 0;
    for (std::size_t i = 0; i < length; ++i) {
        const std::int8_t value = table[static_cast<unsigned char>(text[i])];
        if (value < 0) {
            out.resize(start);
            return false;
        }
        bits = (bits << 6) | static_cast<std::uint32_t>(value);
        if (++count == 4) {
            out += static_cast<char>((bits >> 16) & 0xff);
            out += static_cast<char>((bits >> 8) & 0xff);
            out += static_cast<char>(bits & 0xff);
            bits = 0;
            count = 0;
        }
    }
    if (count == 2) {
        out += static_cast<char>((bits >> 4) & 0xff);
    } else if (count == 3) {
        out += static_cast<char>((bits >> 10) & 0xff);
        out += static_cast<char>((bits >> 2) & 0xff);
    }
    return true;
}

namespace {

errors::openai_error not_speech() {
    return errors::make_error(502, "upstream answered with a body that is not a speech answer", "bad_upstream_response");
}

// OpenAI's two events. `audio` is base64 text, sent on as Mistral wrote it.
void append_delta_event(std::string& out, std::string_view audio) {
    out += R"(data: {"type":"speech.audio.delta","audio":)";
    json::append_json_string(out, audio);
    out += "}\n\n";
}

void append_done_event(std::string& out, const responses::usage_counts& usage) {
    out += R"(data: {"type":"speech.audio.done","usage":{"input_tokens":)";
    out += std::to_string(usage.prompt_tokens);
    out += R"(,"output_tokens":)";
    out += std::to_string(usage.completion_tokens);
    out += R"(,"total_tokens":)";
    out += std::to_string(usage.total_tokens);
    out += "}}\n\n";
}

// A count of Mistral's UsageInfo: an integer, or null/absent (0).
std::uint64_t count_of(dom::object usage, std::string_view key) {
    std::uint64_t value = 0;
    if (usage[key].get(value) != SUCCESS) {
        return 0;
    }
    return value;
}

}  // namespace

responses::body_result transform_speech_response(std::string_view body, const speech_answer& answer) {
    responses::body_result result;
    thread_local dom::parser parser;
    dom::object root;
    std::string_view audio;
    if (body.empty() || parser.parse(body.data(), body.size()).get(root) != SUCCESS ||
        root["audio_data"].get(audio) != SUCCESS) {
        result.error = not_speech();
        return result;
    }
    if (answer.sse) {
        // Validated and sent as Mistral wrote it (base64 is plain JSON text).
        std::string bytes;
        if (!decode_base64(audio, bytes)) {
            result.error = not_speech();
            return result;
        }
        append_delta_event(result.body, audio);
        append_done_event(result.body, {});
        result.content_type = "text/event-stream";
        return result;
    }
    if (!decode_base64(audio, result.body)) {
        result.body.clear();
        result.error = not_speech();
        return result;
    }
    result.content_type = std::string(speech_content_type(answer.format));
    return result;
}

void speech_stream::write_failure(const errors::openai_error& error, std::string& out) {
    if (answer_.sse) {
        out += errors::to_sse_event(error);
    }
    // The audio bytes cannot carry it: failed() tells the relay to cut them short.
}

void speech_stream::on_data(std::string_view type, dom::object data, std::string& out) {
    if (type == "speech.audio.delta") {
        std::string_view audio;
        if (data["audio_data"].get(audio) != SUCCESS) {
            fail(not_this_answer(), out);
            return;
        }
        const std::size_t before = out.size();
        if (answer_.sse) {
            // The base64 goes on as it came; decoded only to check it (an SDK
            // would otherwise decode garbage without a word).
            thread_local std::string check;
            check.clear();
            if (!decode_base64(audio, check)) {
                fail(not_this_answer(), out);
                return;
            }
            append_delta_event(out, audio);
        } else if (!decode_base64(audio, out)) {
            out.resize(before);
            fail(not_this_answer(), out);
        }
        return;
    }
    if (type == "speech.audio.done") {
        dom::object usage;
        responses::usage_counts counts;
        if (data["usage"].get(usage) == SUCCESS) {
            counts.prompt_tokens = count_of(usage, "prompt_tokens");
            counts.completion_tokens = count_of(usage, "completion_tokens");
            counts.total_tokens = count_of(usage, "total_tokens");
            if (counts.total_tokens == 0) {
                counts.total_tokens = counts.prompt_tokens + counts.completion_tokens;
            }
            usage_ = counts;
        }
        if (answer_.sse) {
            append_done_event(out, counts);
        }
        done_ = true;
    }
    // Another event type has no OpenAI counterpart: skipped.
}

}  // namespace mistral_proxy::audio
