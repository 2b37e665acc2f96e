#pragma once
// Just enough HTTP/1.1 for the bench's fake upstream and load generator:
// a head parser over a complete head, and an incremental chunked decoder.
// Hand-written on purpose: both tools must cost far less per request than the
// proxies they measure, so they parse only what they need and copy nothing.
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bench {

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

inline bool icontains(std::string_view haystack, std::string_view needle) noexcept {
    if (needle.empty()) {
        return true;
    }
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
        if (iequals(haystack.substr(i, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

template <class T>
std::optional<T> parse_number(std::string_view s) noexcept {
    T value{};
    s = trim(s);
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || ptr != s.data() + s.size()) {
        return std::nullopt;
    }
    return value;
}

// Offset just past "\r\n\r\n", or 0 when the head is not complete yet.
inline std::size_t find_head_end(std::string_view data) noexcept {
    const auto pos = data.find("\r\n\r\n");
    return pos == std::string_view::npos ? 0 : pos + 4;
}

struct head_info {
    // Request line: method and target; status line: status.
    std::string_view method;
    std::string_view target;
    int status = 0;
    std::optional<std::uint64_t> content_length;
    bool chunked = false;
    bool close = false;  // Connection: close, or HTTP/1.0 without keep-alive
    static constexpr std::size_t max_fields = 48;
    std::array<std::string_view, max_fields> names{};
    std::array<std::string_view, max_fields> values{};
    std::size_t field_count = 0;

    std::string_view field(std::string_view name) const noexcept {
        for (std::size_t i = 0; i < field_count; ++i) {
            if (iequals(names[i], name)) {
                return values[i];
            }
        }
        return {};
    }
};

// `head` is the whole head including its final "\r\n\r\n". False when malformed.
inline bool parse_head(std::string_view head, bool is_request, head_info& out) noexcept {
    out = head_info{};
    const auto line_end = head.find("\r\n");
    if (line_end == std::string_view::npos) {
        return false;
    }
    const auto first = head.substr(0, line_end);
    bool http10 = false;
    if (is_request) {
        const auto sp1 = first.find(' ');
        const auto sp2 = first.rfind(' ');
        if (sp1 == std::string_view::npos || sp2 == sp1) {
            return false;
        }
        out.method = first.substr(0, sp1);
        out.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
        http10 = first.substr(sp2 + 1) == "HTTP/1.0";
    } else {
        if (first.size() < 12 || !first.starts_with("HTTP/1.")) {
            return false;
        }
        http10 = first[7] == '0';
        const auto status = parse_number<int>(first.substr(9, 3));
        if (!status) {
            return false;
        }
        out.status = *status;
    }
    bool keep_alive = false;
    std::size_t pos = line_end + 2;
    while (pos < head.size()) {
        const auto end = head.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) {
            break;
        }
        const auto line = head.substr(pos, end - pos);
        pos = end + 2;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            return false;
        }
        const auto name = line.substr(0, colon);
        const auto value = trim(line.substr(colon + 1));
        if (iequals(name, "content-length")) {
            const auto length = parse_number<std::uint64_t>(value);
            if (!length) {
                return false;
            }
            out.content_length = *length;
        } else if (iequals(name, "transfer-encoding")) {
            out.chunked = icontains(value, "chunked");
        } else if (iequals(name, "connection")) {
            out.close = icontains(value, "close");
            keep_alive = icontains(value, "keep-alive");
        }
        if (out.field_count < head_info::max_fields) {
            out.names[out.field_count] = name;
            out.values[out.field_count] = value;
            ++out.field_count;
        }
    }
    if (http10 && !keep_alive) {
        out.close = true;
    }
    return true;
}

// Incremental decoder of a chunked body. feed() hands each data slice to
// `on_data` and returns how many input bytes it consumed (all of them unless
// the body ended inside the input), or nullopt on malformed framing.
class chunked_decoder {
public:
    bool done() const noexcept { return state_ == state::done; }

    template <class OnData>
    std::optional<std::size_t> feed(std::string_view in, OnData&& on_data) {
        std::size_t i = 0;
        while (i < in.size() && state_ != state::done) {
            const char c = in[i];
            switch (state_) {
                case state::size:
                    if (const int digit = hex_digit(c); digit >= 0) {
                        if (remaining_ > (std::uint64_t{1} << 40)) {
                            return std::nullopt;
                        }
                        remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
                        saw_digit_ = true;
                    } else if (!saw_digit_) {
                        return std::nullopt;
                    } else if (c == '\r') {
                        state_ = state::size_lf;
                    } else {
                        state_ = state::extension;
                    }
                    ++i;
                    break;
                case state::extension:
                    if (c == '\r') {
                        state_ = state::size_lf;
                    }
                    ++i;
                    break;
                case state::size_lf:
                    if (c != '\n') {
                        return std::nullopt;
                    }
                    ++i;
                    state_ = remaining_ == 0 ? state::trailer_start : state::data;
                    break;
                case state::data: {
                    const auto take = static_cast<std::size_t>(
                        std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(in.size() - i)));
                    on_data(in.substr(i, take));
                    i += take;
                    remaining_ -= take;
                    if (remaining_ == 0) {
                        state_ = state::data_cr;
                    }
                    break;
                }
                case state::data_cr:
                    if (c != '\r') {
                        return std::nullopt;
                    }
                    ++i;
                    state_ = state::data_lf;
                    break;
                case state::data_lf:
                    if (c != '\n') {
                        return std::nullopt;
                    }
                    ++i;
                    saw_digit_ = false;
                    state_ = state::size;
                    break;
                case state::trailer_start:
                    // Either the final CRLF or a trailer field line.
                    ++i;
                    state_ = c == '\r' ? state::final_lf : state::trailer_line;
                    break;
                case state::trailer_line:
                    if (c == '\n') {
                        state_ = state::trailer_start;
                    }
                    ++i;
                    break;
                case state::final_lf:
                    if (c != '\n') {
                        return std::nullopt;
                    }
                    ++i;
                    state_ = state::done;
                    break;
                case state::done:
                    break;
            }
        }
        return i;
    }

private:
    enum class state { size, extension, size_lf, data, data_cr, data_lf, trailer_start, trailer_line, final_lf, done };

    static int hex_digit(char c) noexcept {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        const char l = ascii_lower(c);
        if (l >= 'a' && l <= 'f') {
            return l - 'a' + 10;
        }
        return -1;
    }

    state state_ = state::size;
    std::uint64_t remaining_ = 0;
    bool saw_digit_ = false;
};

}  // namespace bench
