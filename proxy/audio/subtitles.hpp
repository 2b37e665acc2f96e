#pragma once
// SubRip (srt) and WebVTT (vtt) text from timed transcript segments: what
// OpenAI answers for response_format srt and vtt, built by the proxy from
// Mistral's segments. Pure.
#include <span>
#include <string>
#include <string_view>

namespace mistral_proxy::audio {

struct cue {
    double start = 0;  // seconds
    double end = 0;
    std::string_view text;  // trimmed of surrounding white space when written
};

// HH:MM:SS followed by `separator` and milliseconds, rounded to the nearest
// millisecond: timestamp(1.5, ',') is "00:00:01,500" (SubRip),
// timestamp(3725.0004, '.') "01:02:05.000" (WebVTT). Hours take more digits
// past 99; a negative or non-finite time is 0.
std::string timestamp(double seconds, char separator);

// "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n..." (cues numbered from 1).
std::string to_srt(std::span<const cue> cues);
// "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n\n...".
std::string to_vtt(std::span<const cue> cues);

}  // namespace mistral_proxy::audio
