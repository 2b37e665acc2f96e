#pragma once
// Incremental Server-Sent Events framing (WHATWG HTML §9.2 "event stream
// interpretation"), fed the upstream body in whatever pieces the socket gives.
// Pure: no I/O, no allocation per event once the carry buffers have grown.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mistral_proxy::responses {

// One dispatched event. Every view points either into the piece last given to
// feed() or into the splitter's own buffers; all stay valid until the next call
// to next(), feed() or finish() on the same splitter.
struct sse_event {
    std::string_view data;                  // the data lines joined by '\n' (no trailing '\n')
    std::string_view type;                  // the `event:` field; "" means the default "message"
    std::string_view id;                    // the `id:` field (ids containing NUL are ignored, as the spec says)
    std::optional<std::uint64_t> retry_ms;  // `retry:` when it is all ASCII digits
    bool has_data = false;                  // at least one `data` line, even an empty one
    bool has_id = false;
};

enum class sse_status {
    event,      // `event` was filled
    need_more,  // every complete event of the piece was returned: feed the next piece
    too_large,  // an event grew beyond max_event_bytes; the splitter stays in this state
};

// Defaults sized for chat: one Mistral chunk is a few hundred bytes, a whole
// tool call with large arguments some KB; 1 MiB leaves room and still bounds memory.
inline constexpr std::size_t default_max_sse_event_bytes = 1024 * 1024;

class sse_splitter {
public:
    explicit sse_splitter(std::size_t max_event_bytes = default_max_sse_event_bytes) noexcept
        : max_event_bytes_(max_event_bytes) {}

    // Hands over the next piece of the body. Call next() until it answers
    // need_more (or too_large) before feeding again: the splitter keeps a view
    // of `piece` and copies only the tail of an event that continues in a later
    // piece. An event lying whole inside one piece is never copied, except when
    // it has several data lines (they are joined in an internal buffer).
    void feed(std::string_view piece) noexcept;

    // The next complete event of what was fed. Lines end in CRLF, LF or CR (also
    // when a CRLF is split between two pieces); comment lines (":...") and events
    // with no field at all (blank lines, comments only) are skipped; unknown
    // fields are ignored. Bytes that are not SSE (an HTML page, binary garbage)
    // are lines without a known field: they are skipped too, and when they never
    // contain a blank line the event grows until too_large.
    sse_status next(sse_event& event);

    // The body ended. Returns event when unfinished bytes that carry a field were
    // pending (a stream that ends without the final blank line, e.g. with
    // "data: [DONE]\n"); the spec would drop it, but a proxy loses nothing by
    // being lenient here and the transcoder checks the data anyway.
    // need_more: nothing was pending. Call once, after next() answered need_more.
    sse_status finish(sse_event& event);

    // Bytes of an event received so far but not yet complete (0 between events).
    std::size_t pending_bytes() const noexcept {
        return (release_carry_ ? 0 : carry_.size()) + (piece_.size() - event_start_);
    }

    std::size_t max_event_bytes() const noexcept { return max_event_bytes_; }

private:
    // Parses the fields of one whole event (`raw` ends after its blank line).
    // false when it holds no field.
    bool parse_fields(std::string_view raw, sse_event& event);

    std::size_t max_event_bytes_;
    std::string_view piece_;       // current piece
    std::size_t pos_ = 0;          // next byte of piece_ to scan
    std::size_t event_start_ = 0;  // where the current event begins in piece_ (when carry_ is empty)
    std::string carry_;            // head of an event that began in an earlier piece
    std::string data_;             // joined data lines when an event has several
    bool release_carry_ = false;   // the last event was returned from carry_: clear it before going on
    bool at_line_start_ = true;    // the scan is at the beginning of a line
    bool after_cr_ = false;        // the previous byte was CR: an LF now completes that line end
    bool too_large_ = false;
};

}  // namespace mistral_proxy::responses
