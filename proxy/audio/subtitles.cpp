// SubRip and WebVTT formatting; see subtitles.hpp.
#include "audio/subtitles.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace mistral_proxy::audio {

namespace {

std::string_view trimmed(std::string_view text) noexcept {
    constexpr std::string_view space = " \t\r\n";
    const auto first = text.find_first_not_of(space);
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(space) - first + 1);
}

// A blank line would end the cue early: inner line breaks stay, empty lines go.
void append_cue_text(std::string& out, std::string_view text) {
    text = trimmed(text);
    char previous = '\n';
    for (const char c : text) {
        if (c == '\r') {
            continue;
        }
        if (!(c == '\n' && previous == '\n')) {
            out += c;
        }
        previous = c;
    }
    out += '\n';
}

void append_timing(std::string& out, const cue& c, char separator) {
    out += timestamp(c.start, separator);
    out += " --> ";
    out += timestamp(c.end, separator);
    out += '\n';
}

}  // namespace

std::string timestamp(double seconds, char separator) {
    std::uint64_t ms = 0;
    if (std::isfinite(seconds) && seconds > 0) {
        ms = static_cast<std::uint64_t>(std::llround(std::min(seconds, 1e12) * 1000.0));
    }
    const auto hours = ms / 3'600'000;
    const auto minutes = ms / 60'000 % 60;
    const auto secs = ms / 1000 % 60;
    const auto millis = ms % 1000;
    char text[48];
    const int n =
        std::snprintf(text, sizeof text, "%02llu:%02llu:%02llu%c%03llu", static_cast<unsigned long long>(hours),
                      static_cast<unsigned long long>(minutes), static_cast<unsigned long long>(secs), separator,
                      static_cast<unsigned long long>(millis));
    return std::string(text, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string to_srt(std::span<const cue> cues) {
    std::string out;
    std::size_t number = 0;
    for (const auto& c : cues) {
        out += std::to_string(++number);
        out += '\n';
        append_timing(out, c, ',');
        append_cue_text(out, c.text);
        out += '\n';
    }
    return out;
}

std::string to_vtt(std::span<const cue> cues) {
    std::string out = "WEBVTT\n\n";
    for (const auto& c : cues) {
        append_timing(out, c, '.');
        append_cue_text(out, c.text);
        out += '\n';
    }
    return out;
}

}  // namespace mistral_proxy::audio
