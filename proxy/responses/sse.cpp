// Splitting an SSE byte stream into events (see sse.hpp).
#include "responses/sse.hpp"

#include <cstring>

namespace mistral_proxy::responses {

namespace {

// First CR or LF in [from, size), or size. Two memchr calls (vectorised in
// libc) beat a byte loop on the long `data:` lines of chat chunks.
std::size_t find_line_end(std::string_view text, std::size_t from) noexcept {
    const char* begin = text.data() + from;
    const std::size_t length = text.size() - from;
    const void* lf = std::memchr(begin, '\n', length);
    const std::size_t lf_at = lf != nullptr ? static_cast<std::size_t>(static_cast<const char*>(lf) - begin) : length;
    const void* cr = std::memchr(begin, '\r', lf_at);
    const std::size_t end = cr != nullptr ? static_cast<std::size_t>(static_cast<const char*>(cr) - begin) : lf_at;
    return from + end;
}

std::optional<std::uint64_t> parse_retry(std::string_view value) noexcept {
    if (value.empty() || value.size() > 18) {
        return std::nullopt;
    }
    std::uint64_t ms = 0;
    for (const char c : value) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return ms;
}

}  // namespace

void sse_splitter::feed(std::string_view piece) noexcept {
    piece_ = piece;
    pos_ = 0;
    event_start_ = 0;
}

sse_status sse_splitter::next(sse_event& event) {
    if (too_large_) {
        return sse_status::too_large;
    }
    if (release_carry_) {
        carry_.clear();  // keeps its capacity: no allocation in steady state
        release_carry_ = false;
    }
    const std::size_t size = piece_.size();
    while (pos_ < size) {
        if (after_cr_) {
            after_cr_ = false;
            if (piece_[pos_] == '\n') {
                // Second half of a CRLF. When it opens an event (the CR ended the
                // previous one), leave it out so that a CRLF split between pieces
                // does not force a copy of the next event.
                if (event_start_ == pos_ && carry_.empty()) {
                    ++event_start_;
                }
                ++pos_;
                continue;
            }
        }
        if (!at_line_start_) {
            pos_ = find_line_end(piece_, pos_);
            if (pos_ == size) {
                break;
            }
        }
        const char c = piece_[pos_++];
        if (c != '\r' && c != '\n') {
            at_line_start_ = false;
            continue;
        }
        after_cr_ = c == '\r';
        if (!at_line_start_) {
            at_line_start_ = true;
            continue;
        }
        // A line end at the start of a line: the blank line that ends an event.
        std::string_view raw;
        if (carry_.empty()) {
            raw = piece_.substr(event_start_, pos_ - event_start_);
        } else {
            carry_.append(piece_.data() + event_start_, pos_ - event_start_);
            raw = carry_;
        }
        event_start_ = pos_;
        if (raw.size() > max_event_bytes_) {
            too_large_ = true;
            carry_.clear();
            return sse_status::too_large;
        }
        if (parse_fields(raw, event)) {
            release_carry_ = !carry_.empty();
            return sse_status::event;
        }
        carry_.clear();  // blank lines or comments only: nothing to dispatch
    }
    // Keep the head of the unfinished event for the next piece.
    if (event_start_ < size) {
        carry_.append(piece_.data() + event_start_, size - event_start_);
        event_start_ = size;
        if (carry_.size() > max_event_bytes_) {
            too_large_ = true;
            carry_.clear();
            return sse_status::too_large;
        }
    }
    return sse_status::need_more;
}

sse_status sse_splitter::finish(sse_event& event) {
    if (too_large_) {
        return sse_status::too_large;
    }
    if (release_carry_) {
        carry_.clear();
        release_carry_ = false;
    }
    if (event_start_ < piece_.size()) {
        // finish() without next() having drained the piece: take its rest too.
        carry_.append(piece_.data() + event_start_, piece_.size() - event_start_);
    }
    piece_ = {};
    pos_ = 0;
    event_start_ = 0;
    at_line_start_ = true;
    after_cr_ = false;
    if (carry_.empty()) {
        return sse_status::need_more;
    }
    if (parse_fields(carry_, event)) {
        release_carry_ = true;
        return sse_status::event;
    }
    carry_.clear();
    return sse_status::need_more;
}

bool sse_splitter::parse_fields(std::string_view raw, sse_event& event) {
    event = sse_event{};
    bool any = false;
    std::size_t data_lines = 0;
    std::string_view first_data;
    std::size_t i = 0;
    while (i < raw.size()) {
        const std::size_t end = find_line_end(raw, i);
        const std::string_view line = raw.substr(i, end - i);
        i = end + 1;
        if (line.empty() || line.front() == ':') {
            continue;  // separator or comment
        }
        const std::size_t colon = line.find(':');
        const std::string_view name = line.substr(0, colon);
        std::string_view value;
        if (colon != std::string_view::npos) {
            value = line.substr(colon + 1);
            if (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
        }
        if (name == "data") {
            if (data_lines == 0) {
                first_data = value;
            } else {
                if (data_lines == 1) {
                    data_.assign(first_data);
                }
                data_ += '\n';
                data_ += value;
            }
            ++data_lines;
            event.has_data = true;
            any = true;
        } else if (name == "event") {
            event.type = value;
            any = true;
        } else if (name == "id") {
            if (value.find('\0') == std::string_view::npos) {
                event.id = value;
                event.has_id = true;
                any = true;
            }
        } else if (name == "retry") {
            if (auto ms = parse_retry(value)) {
                event.retry_ms = ms;
                any = true;
            }
        }
    }
    event.data = data_lines > 1 ? std::string_view(data_) : first_data;
    return any;
}

}  // namespace mistral_proxy::responses
