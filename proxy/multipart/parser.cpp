// The multipart/form-data parser and the Content-Type boundary reader; see parser.hpp.
#include "multipart/parser.hpp"

#include <algorithm>
#include <cstring>

namespace mistral_proxy::multipart {

namespace {

constexpr std::string_view crlf = "\r\n";

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// RFC 2045 token characters.
bool is_token_char(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && std::strchr("()<>@,;:\\\"/[]?=", c) == nullptr;
}

// RFC 2046 bchars.
bool is_boundary_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("'()+_,-./:=? ", c) != nullptr;
}

// `; name=value` parameters after a header's first value, in order. A value
// is a token or a quoted string (backslash escapes one character).
class parameter_reader {
public:
    explicit parameter_reader(std::string_view rest) : rest_(rest) {}

    // false at the end or on malformed text (error() then says so).
    bool next(std::string& name, std::string& value) {
        rest_ = trim(rest_);
        if (rest_.empty()) {
            return false;
        }
        if (rest_.front() != ';') {
            error_ = "expected ';' between parameters";
            return false;
        }
        rest_ = trim(rest_.substr(1));
        if (rest_.empty()) {
            return false;  // a trailing ';' is harmless
        }
        std::size_t n = 0;
        while (n < rest_.size() && is_token_char(rest_[n])) {
            ++n;
        }
        name.assign(rest_.substr(0, n));
        rest_ = trim(rest_.substr(n));
        if (name.empty() || rest_.empty() || rest_.front() != '=') {
            error_ = "a parameter without '='";
            return false;
        }
        rest_ = trim(rest_.substr(1));
        value.clear();
        if (!rest_.empty() && rest_.front() == '"') {
            std::size_t i = 1;
            for (; i < rest_.size() && rest_[i] != '"'; ++i) {
                if (rest_[i] == '\\' && i + 1 < rest_.size()) {
                    ++i;
                }
                value += rest_[i];
            }
            if (i >= rest_.size()) {
                error_ = "an unterminated quoted parameter value";
                return false;
            }
            rest_ = rest_.substr(i + 1);
            return true;
        }
        n = 0;
        while (n < rest_.size() && is_token_char(rest_[n])) {
            ++n;
        }
        if (n == 0) {
            error_ = "a parameter without a value";
            return false;
        }
        value.assign(rest_.substr(0, n));
        rest_ = rest_.substr(n);
        return true;
    }
    const std::string& error() const noexcept { return error_; }

private:
    std::string_view rest_;
    std::string error_;
};

// Splits "type; params" into the type (trimmed) and the parameter text.
std::pair<std::string_view, std::string_view> split_value(std::string_view value) noexcept {
    const auto semicolon = value.find(';');
    if (semicolon == std::string_view::npos) {
        return {trim(value), {}};
    }
    return {trim(value.substr(0, semicolon)), value.substr(semicolon)};
}

}  // namespace

boundary_result boundary_of(std::string_view content_type) {
    boundary_result result;
    const auto [type, parameters] = split_value(content_type);
    if (!iequals(type, "multipart/form-data")) {
        result.error = "the Content-Type is not multipart/form-data";
        return result;
    }
    parameter_reader reader(parameters);
    std::string name;
    std::string value;
    bool found = false;
    while (reader.next(name, value)) {
        if (iequals(name, "boundary")) {
            if (found) {
                result.error = "the Content-Type names two boundaries";
                return result;
            }
            found = true;
            result.boundary = value;
        }
    }
    if (!reader.error().empty()) {
        result.error = "malformed Content-Type: " + reader.error();
    } else if (!found) {
        result.error = "the multipart/form-data Content-Type has no boundary";
    } else if (result.boundary.empty() || result.boundary.size() > max_boundary_length ||
               result.boundary.back() == ' ' ||
               !std::all_of(result.boundary.begin(), result.boundary.end(), is_boundary_char)) {
        result.error = "the multipart boundary is not 1 to 70 letters, digits or '()+_,-./:=? (RFC 2046)";
    }
    if (!result.error.empty()) {
        result.boundary.clear();
    }
    return result;
}

parser::parser(std::string_view boundary, std::size_t max_header_bytes)
    : delimiter_("\r\n--" + std::string(boundary)), max_header_bytes_(max_header_bytes) {
    // The first delimiter has no CRLF before it: the body reads as if it had one.
    held_ = crlf;
}

bool parser::fail(std::string message) {
    if (state_ != state::failed) {
        error_ = std::move(message);
        state_ = state::failed;
    }
    return false;
}

bool parser::emit(std::string_view data, handler& out) {
    if (data.empty()) {
        return true;
    }
    if (!in_part_) {
        return fail("the multipart body does not start with its boundary");
    }
    out.on_part_data(data);
    return true;
}

std::size_t parser::feed_body(std::string_view piece, handler& out) {
    // held_ is a proper prefix of the delimiter; it starts with the only '\r'
    // a boundary allows, so a delimiter cannot begin inside it after byte 0.
    if (!held_.empty()) {
        const auto want = delimiter_.size() - held_.size();
        const auto n = std::min(want, piece.size());
        if (piece.substr(0, n) == std::string_view(delimiter_).substr(held_.size(), n)) {
            if (n < want) {
                held_.append(piece);
                return piece.size();
            }
            held_.clear();
            state_ = state::after_dash;
            return n;
        }
        const std::string held = std::move(held_);
        held_.clear();
        if (!emit(held, out)) {
            return piece.size();
        }
    }
    std::size_t used = 0;
    std::size_t from = 0;
    for (;;) {
        const auto cr = piece.find('\r', from);
        if (cr == std::string_view::npos) {
            emit(piece.substr(used), out);
            return piece.size();
        }
        const auto tail = piece.substr(cr, delimiter_.size());
        if (std::string_view(delimiter_).starts_with(tail)) {
            if (!emit(piece.substr(used, cr - used), out)) {
                return piece.size();
            }
            if (tail.size() < delimiter_.size()) {
                held_.assign(tail);  // the piece ends with what may begin a delimiter
                return piece.size();
            }
            state_ = state::after_dash;
            return cr + delimiter_.size();
        }
        from = cr + 1;
    }
}

bool parser::feed(std::string_view piece, handler& out) {
    while (!piece.empty()) {
        switch (state_) {
            case state::failed:
                return false;
            case state::body: {
                const auto used = feed_body(piece, out);
                piece.remove_prefix(used);
                if (state_ == state::after_dash && in_part_) {
                    in_part_ = false;
                    out.on_part_end();
                }
                continue;
            }
            case state::epilogue:
                for (const char c : piece) {
                    if (!is_blank(c) && c != '\r' && c != '\n') {
                        return fail("junk after the closing multipart boundary");
                    }
                }
                return true;
            case state::headers: {
                // Byte by byte up to the blank line: a header block is small and bounded.
                const auto end = piece.find('\n');
                const auto n = end == std::string_view::npos ? piece.size() : end + 1;
                if (header_block_.size() + n > max_header_bytes_) {
                    return fail("a multipart part's headers exceed " + std::to_string(max_header_bytes_) + " bytes");
                }
                header_block_.append(piece.substr(0, n));
                piece.remove_prefix(n);
                if (header_block_ == crlf || header_block_.ends_with("\r\n\r\n")) {
                    if (!parse_headers(out)) {
                        return false;
                    }
                }
                continue;
            }
            default:
                break;
        }
        // The bytes right after a delimiter, one at a time.
        const char c = piece.front();
        piece.remove_prefix(1);
        switch (state_) {
            case state::after_dash:
                state_ = c == '-'      ? state::close_dash
                         : is_blank(c) ? state::padding
                         : c == '\r'   ? state::expect_lf
                                       : state::failed;
                break;
            case state::close_dash:
                state_ = c == '-' ? state::epilogue : state::failed;
                break;
            case state::padding:
                if (++blanks_ > max_header_bytes_) {
                    return fail("junk after a multipart boundary");
                }
                state_ = is_blank(c) ? state::padding : c == '\r' ? state::expect_lf : state::failed;
                break;
            case state::expect_lf:
                state_ = c == '\n' ? state::headers : state::failed;
                blanks_ = 0;
                header_block_.clear();
                break;
            default:
                break;
        }
        if (state_ == state::failed) {
            error_ = "junk after a multipart boundary";
            return false;
        }
    }
    return state_ != state::failed;
}

bool parser::parse_headers(handler& out) {
    part_headers headers;
    bool disposition = false;
    std::string_view block(header_block_);
    block.remove_suffix(crlf.size());  // the blank line
    while (!block.empty()) {
        // The block ends with CRLF CRLF: every line ends with CRLF; a bare LF
        // stays inside a line, where it is refused as a control character.
        const auto eol = block.find(crlf);
        const auto line = block.substr(0, eol);
        block.remove_prefix(eol + crlf.size());
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0 ||
            !std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon), is_token_char) ||
            std::any_of(line.begin(), line.end(),
                        [](char c) { return c != '\t' && (static_cast<unsigned char>(c) < 32 || c == 127); })) {
            return fail("a malformed multipart part header line");
        }
        const auto name = line.substr(0, colon);
        const auto value = line.substr(colon + 1);
        if (iequals(name, "content-type")) {
            headers.content_type.assign(trim(value));
        } else if (iequals(name, "content-disposition")) {
            if (disposition) {
                return fail("a multipart part with two Content-Disposition headers");
            }
            disposition = true;
            const auto [type, parameters] = split_value(value);
            if (!iequals(type, "form-data")) {
                return fail("a multipart part whose Content-Disposition is not form-data");
            }
            parameter_reader reader(parameters);
            std::string key;
            std::string text;
            bool named = false;
            while (reader.next(key, text)) {
                if (iequals(key, "name") || iequals(key, "filename")) {
                    const bool is_name = iequals(key, "name");
                    if (is_name ? named : headers.filename.has_value()) {
                        return fail("a multipart part's Content-Disposition repeats " + key);
                    }
                    if (is_name) {
                        named = true;
                        headers.name = std::move(text);
                    } else {
                        headers.filename = std::move(text);
                    }
                }
            }
            if (!reader.error().empty()) {
                return fail("a malformed multipart Content-Disposition: " + reader.error());
            }
            if (!named) {
                return fail("a multipart part's Content-Disposition has no name");
            }
        }
    }
    if (!disposition) {
        return fail("a multipart part without a Content-Disposition header");
    }
    header_block_.clear();
    state_ = state::body;
    in_part_ = true;
    out.on_part_begin(headers);
    return true;
}

bool parser::finish() {
    switch (state_) {
        case state::epilogue:
            return true;
        case state::failed:
            return false;
        case state::headers:
            return fail("the multipart body ends inside a part's headers");
        default:
            break;
    }
    return fail(in_part_ || state_ != state::body
                    ? "the multipart body ends without its closing boundary (an unterminated part)"
                    : "the multipart body has no boundary");
}

bool parse_all(std::string_view boundary, std::string_view body, handler& out, std::string& error) {
    parser p(boundary);
    const bool ok = p.feed(body, out) && p.finish();
    error = p.error();
    return ok;
}

}  // namespace mistral_proxy::multipart
