#pragma once
// What the relay runs on a streamed answer, whatever API the client speaks:
// the chat and legacy-completions transcoder (stream_transcoder.hpp) and the
// Responses API one (openai_responses/stream.hpp) both implement it, so the
// session has one streaming path. One virtual call per body piece read, not
// per event. Pure.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::responses {

class event_rewriter {
public:
    virtual ~event_rewriter() = default;

    // One piece of the upstream body, as read: appends to `out` every client
    // event it completes (whole events only). Ignored after done().
    virtual void on_body(std::string_view piece, std::string& out) = 0;
    // The upstream body ended normally: the client stream's ending.
    virtual void on_end(std::string& out) = 0;
    // The upstream failed mid-stream: unless done(), an error ending.
    virtual void on_failure(const errors::openai_error& error, std::string& out) = 0;

    virtual bool done() const noexcept = 0;
    virtual bool failed() const noexcept = 0;
    virtual rule_hits hits() const noexcept = 0;
    virtual const std::optional<usage_counts>& usage() const noexcept = 0;
    virtual std::uint64_t events_in() const noexcept = 0;

protected:
    event_rewriter() = default;
    event_rewriter(const event_rewriter&) = default;
    event_rewriter& operator=(const event_rewriter&) = default;
    event_rewriter(event_rewriter&&) = default;
    event_rewriter& operator=(event_rewriter&&) = default;
};

}  // namespace mistral_proxy::responses
