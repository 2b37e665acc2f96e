#pragma once
// An incremental multipart/form-data parser (RFC 7578 over RFC 2046 framing).
// Bytes are fed in pieces split anywhere; the parser reports each part's
// headers, its content in pieces as it arrives, and its end, holding back only
// the few bytes that may begin a delimiter and one part's header block
// (bounded). So a file part of any size passes through in constant memory.
//
// Strict where the RFC lets a reader be lenient, because the proxy writes its
// own framing upstream: nothing before the first delimiter, nothing but
// whitespace after the closing one, CRLF line ends, every part a form-data
// part with a name. Pure: no I/O, no exceptions for any input.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mistral_proxy::multipart {

// RFC 2046 §5.1.1: a boundary is 1 to 70 of these, not ending with a space.
inline constexpr std::size_t max_boundary_length = 70;

struct boundary_result {
    std::string boundary;  // without the leading "--"
    std::string error;     // empty when `boundary` is usable
};

// The boundary of a `multipart/form-data; boundary=...` Content-Type (the
// boundary quoted or not, parameters in any order, names case-insensitive).
boundary_result boundary_of(std::string_view content_type);

// One part's headers, as far as form-data uses them.
struct part_headers {
    std::string name;                     // Content-Disposition's name
    std::optional<std::string> filename;  // Content-Disposition's filename, when given
    std::string content_type;             // the part's Content-Type, "" when none
};

// What the parser reports. The views are valid during the call only.
class handler {
public:
    virtual ~handler() = default;
    virtual void on_part_begin(const part_headers& headers) = 0;
    virtual void on_part_data(std::string_view data) = 0;  // never empty
    virtual void on_part_end() = 0;
};

class parser {
public:
    static constexpr std::size_t default_max_header_bytes = 8 * 1024;

    // `boundary` as boundary_of() returned it.
    explicit parser(std::string_view boundary, std::size_t max_header_bytes = default_max_header_bytes);

    // Parses the next piece of the body; false (and error() set) on malformed
    // input, after which every call returns false. Bytes after the closing
    // delimiter may only be whitespace.
    bool feed(std::string_view piece, handler& out);
    // The body ended: false (and error() set) unless the closing delimiter was seen.
    bool finish();

    bool done() const noexcept { return state_ == state::epilogue; }
    const std::string& error() const noexcept { return error_; }

private:
    enum class state {
        body,        // content (or, before the first delimiter, the preamble)
        after_dash,  // a delimiter was read: "--" closes, else optional blanks then CRLF
        close_dash,  // read "-" after a delimiter: one more closes
        padding,     // blanks after a delimiter
        expect_lf,   // "\r" after a delimiter
        headers,     // a part's header block
        epilogue,    // after the closing delimiter
        failed,
    };

    // Feeds content bytes, until a delimiter ends them; returns how many of
    // `piece` it used.
    std::size_t feed_body(std::string_view piece, handler& out);
    bool emit(std::string_view data, handler& out);
    bool parse_headers(handler& out);
    bool fail(std::string message);

    std::string delimiter_;  // "\r\n--" + boundary
    std::size_t max_header_bytes_;
    state state_ = state::body;
    bool in_part_ = false;  // false in the preamble
    std::string held_;      // a proper prefix of delimiter_ seen at the end of the content so far
    std::string header_block_;
    std::size_t blanks_ = 0;
    std::string error_;
};

// Parses a whole body at once (tests, explain): the same as one feed() and finish().
bool parse_all(std::string_view boundary, std::string_view body, handler& out, std::string& error);

}  // namespace mistral_proxy::multipart
