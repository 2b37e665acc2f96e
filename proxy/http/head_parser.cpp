// Beast's basic_parser with the head in a wire_fields (see head_parser.hpp).
#include "http/head_parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

namespace mistral_proxy::http {

namespace bhttp = boost::beast::http;

namespace {

std::string_view view(boost::beast::string_view text) noexcept { return {text.data(), text.size()}; }

}  // namespace

namespace {

// The characters of the strict form, as Beast's parser classes them: a
// token's (RFC 9110 tchar: Beast's is_token_char), a request target's (any
// byte but controls, space and DEL: Beast's is_pathchar), a field value's
// (HTAB, SP, VCHAR, obs-text: what Beast's parse_token_to_eol lets through).
enum : unsigned char { token_char = 1, target_char = 2, value_char = 4 };

constexpr std::array<unsigned char, 256> make_char_classes() {
    std::array<unsigned char, 256> classes{};
    constexpr std::string_view token_punctuation = "!#$%&'*+-.^_`|~";
    for (unsigned c = 0; c < 256; ++c) {
        unsigned char bits = 0;
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || token_punctuation.find(static_cast<char>(c)) != std::string_view::npos) {
            bits |= token_char;
        }
        if (c > 0x20 && c != 0x7f) {
            bits |= target_char;
        }
        if (c == '\t' || (c >= 0x20 && c != 0x7f)) {
            bits |= value_char;
        }
        classes[c] = bits;
    }
    return classes;
}
constexpr auto char_classes = make_char_classes();

bool is(unsigned char bits, char c) noexcept { return (char_classes[static_cast<unsigned char>(c)] & bits) != 0; }

// Past the bytes of a field value from `p`, to the first byte that is not
// one (a control byte: the CR of the line's end, at the latest, which comes
// before `end`). Sixteen bytes at a time while no control byte or DEL is
// among them (SSE2, in every x86-64 CPU), then byte by byte (a tab, which
// values may hold, stops the wide scan).
const char* skip_value(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
    const __m128i highest_control = _mm_set1_epi8(0x1f);
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(bytes, highest_control), highest_control);
        const int stops = _mm_movemask_epi8(_mm_or_si128(control, _mm_cmpeq_epi8(bytes, del)));
        if (stops != 0) {
            p += __builtin_ctz(static_cast<unsigned>(stops));
            break;
        }
        p += 16;
    }
#endif
    while (is(value_char, *p)) {
        ++p;
    }
    return p;
}

// The fields by which Beast's parser frames a request's body and its
// connection (its do_field): the ones a head read here is replayed with.
bool frames_the_body(bhttp::field name) noexcept {
    return name == bhttp::field::content_length || name == bhttp::field::transfer_encoding ||
           name == bhttp::field::connection || name == bhttp::field::proxy_connection ||
           name == bhttp::field::upgrade;
}

// True when the bytes that arrived of a head whose end has not could begin
// one in the strict form, and hold none of the fields that frame the body.
// When not, Beast's parser reads them at once: it answers some faults
// before a head ends (a bad method, a bare LF, a bad Content-Length or
// Connection value on a line that ended).
bool could_be_strict(bool request, const char* p, const char* const stop) noexcept {
    const auto take_all = [&](unsigned char bits) {
        const char* const start = p;
        while (p < stop && is(bits, *p)) {
            ++p;
        }
        return p != start;
    };
    const auto take = [&](char c) { return *p++ == c; };  // p < stop
    // `text` as far as the bytes go: all of it (true), or cut short by
    // their end (true: could be strict) or not there (false) in `verdict`.
    bool verdict = true;
    const auto take_text = [&](std::string_view text) {
        for (const char c : text) {
            if (p == stop) {
                return false;
            }
            if (!take(c)) {
                verdict = false;
                return false;
            }
        }
        return true;
    };
    const auto take_version = [&] {  // "HTTP/1.0" or "HTTP/1.1", as far as the bytes go
        if (!take_text("HTTP/1.")) {
            return false;
        }
        if (p == stop) {
            return false;
        }
        if (*p != '0' && *p != '1') {
            verdict = false;
            return false;
        }
        ++p;
        return true;
    };
    if (request) {
        for (const unsigned char part : {token_char, target_char}) {  // the method, the target
            const bool some = take_all(part);
            if (p == stop) {
                return true;
            }
            if (!some || !take(' ')) {
                return false;
            }
        }
        if (!take_version()) {
            return verdict;
        }
    } else {
        if (!take_version() || !take_text(" ")) {
            return verdict;
        }
        for (int digit = 0; digit < 3; ++digit) {
            if (p == stop) {
                return true;
            }
            if (*p < '0' || *p++ > '9') {
                return false;
            }
        }
        if (!take_text(" ")) {
            return verdict;
        }
        take_all(value_char);  // the reason phrase
    }
    for (;;) {  // the end of a line, then a field
        if (!take_text("\r\n")) {
            return verdict;
        }
        if (p == stop) {
            return true;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r') {
            return false;  // a folded line (a blank one would have ended the head)
        }
        const char* const name = p;
        const bool named = take_all(token_char);
        if (p == stop) {
            return true;
        }
        if (!named || !take(':') ||
            frames_the_body(bhttp::string_to_field(std::string_view(name, static_cast<std::size_t>(p - 1 - name))))) {
            return false;
        }
        take_all(value_char);  // with the whitespace around the value
        if (p == stop) {
            return true;
        }
    }
}

}  // namespace

template <bool isRequest>
std::size_t head_parser<isRequest>::put(boost::asio::const_buffer buffer, error_code& ec) {
    if (!beast_reads_ && !this->is_header_done()) {
        return put_head(static_cast<const char*>(buffer.data()), buffer.size(), ec);
    }
    return base_type::put(buffer, ec);
}

template <bool isRequest>
void head_parser<isRequest>::put_eof(error_code& ec) {
    // A head cut short that was being read here: Beast's parser has seen
    // none of it, and would take the end for that of a message without body.
    if (!beast_reads_ && got_some_ && !this->is_header_done()) {
        ec = bhttp::error::partial_message;
        return;
    }
    base_type::put_eof(ec);
}

template <bool isRequest>
std::size_t head_parser<isRequest>::beast_reads_head(boost::asio::const_buffer buffer, error_code& ec) {
    beast_reads_ = true;
    message_.fields_.clear();  // what the strict reading kept before it gave up
    message_.method_ = bhttp::verb::unknown;
    message_.method_text_ = {};
    message_.target_ = {};
    message_.reason_ = {};
    return base_type::put(buffer, ec);
}

template <bool isRequest>
std::size_t head_parser<isRequest>::put_head(const char* data, std::size_t size, error_code& ec) {
    ec = {};
    if (size == 0) {
        ec = bhttp::error::need_more;
        return 0;
    }
    got_some_ = true;
    const auto end = std::string_view(data, size).find("\r\n\r\n");
    if (end == std::string_view::npos && size < limit_ && could_be_strict(isRequest, data, data + size)) {
        ec = bhttp::error::need_more;
        return 0;
    }
    if (end == std::string_view::npos || end + 4 > limit_) {
        return beast_reads_head({data, size}, ec);  // not strict so far, or over the limit: Beast's answer
    }
    const std::size_t head_size = end + 4;
    // Every scan below stops at the CR of the head's last CRLF at the
    // latest: CR is in no class of the strict form.
    const char* p = data;
    const char* const fields_end = data + end + 2;  // where the blank line starts

    // The bytes of one class from p on (the scan stops at the CR at the latest).
    const auto take_run = [&p](unsigned char bits) {
        const char* const start = p;
        while (is(bits, *p)) {
            ++p;
        }
        return std::string_view(start, static_cast<std::size_t>(p - start));
    };
    // "HTTP/1.0" or "HTTP/1.1" at p: 10 or 11, 0 when not.
    const auto take_version = [&]() -> unsigned {
        constexpr std::string_view http_1 = "HTTP/1.";
        if (fields_end - p < 10 || std::string_view(p, http_1.size()) != http_1 || (p[7] != '0' && p[7] != '1')) {
            return 0;
        }
        p += 8;
        return p[-1] == '1' ? 11 : 10;
    };
    const auto take_line_end = [&p] {
        if (p[0] != '\r' || p[1] != '\n') {
            return false;
        }
        p += 2;
        return true;
    };
    // The head is kept whole, in one copy; the fields index into it.
    auto& fields = message_.fields_;
    const wire_fields::span head = fields.keep(std::string_view(data, head_size));
    const auto kept = [&](std::string_view part) {
        return wire_fields::span{head.at + static_cast<std::uint32_t>(part.data() - data),
                                 static_cast<std::uint32_t>(part.size())};
    };
    // The replayed head: a start line Beast reads as the same (version,
    // status) and the framing fields.
    char replay[512];
    std::size_t replay_size = 0;
    const auto add = [&](std::string_view text) {
        if (text.size() > sizeof replay - replay_size) {
            return false;
        }
        std::memcpy(replay + replay_size, text.data(), text.size());
        replay_size += text.size();
        return true;
    };
    unsigned version = 0;
    if constexpr (isRequest) {
        const std::string_view method_string = take_run(token_char);
        if (method_string.empty() || *p++ != ' ') {
            return beast_reads_head({data, size}, ec);
        }
        const std::string_view target_string = take_run(target_char);
        if (target_string.empty() || *p++ != ' ') {
            return beast_reads_head({data, size}, ec);
        }
        version = take_version();
        if (version == 0 || !take_line_end()) {
            return beast_reads_head({data, size}, ec);
        }
        message_.method_ = bhttp::string_to_verb(method_string);
        message_.method_text_ = kept(method_string);
        message_.target_ = kept(target_string);
        add(version == 11 ? "GET / HTTP/1.1\r\n" : "GET / HTTP/1.0\r\n");
    } else {
        version = take_version();
        if (version == 0 || *p++ != ' ') {
            return beast_reads_head({data, size}, ec);
        }
        const std::string_view status(p, 3);
        if (fields_end - p < 4 || !std::all_of(status.begin(), status.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            p[3] != ' ') {
            return beast_reads_head({data, size}, ec);
        }
        p += 4;
        const std::string_view reason = take_run(value_char);  // as Beast keeps it: not trimmed
        if (!take_line_end()) {
            return beast_reads_head({data, size}, ec);
        }
        message_.status_ = static_cast<unsigned>((status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0'));
        message_.reason_ = kept(reason);
        add(version == 11 ? "HTTP/1.1 " : "HTTP/1.0 ");
        add(status);
        add(" \r\n");
    }
    message_.version_ = version;
    while (p < fields_end) {
        const std::string_view name_string = take_run(token_char);
        if (name_string.empty() || *p++ != ':') {
            return beast_reads_head({data, size}, ec);
        }
        while (*p == ' ' || *p == '\t') {
            ++p;
        }
        const char* const value = p;
        p = skip_value(p, data + head_size);
        if (p[0] != '\r' || p[1] != '\n' || p[2] == ' ' || p[2] == '\t') {
            return beast_reads_head({data, size}, ec);  // a control byte, a bare CR, a folded line
        }
        const char* value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) {
            --value_end;
        }
        const std::string_view value_string(value, static_cast<std::size_t>(value_end - value));
        p += 2;
        const auto known = bhttp::string_to_field(name_string);
        fields.insert_kept(known, kept(name_string), kept(value_string));
        // "Connection: keep-alive" changes nothing in HTTP/1.1 (Beast's
        // keep_alive() looks for "close" there): not replayed.
        const bool no_op = version == 11 && known == bhttp::field::connection &&
                           value_string.size() == 10 && boost::beast::iequals(value_string, "keep-alive");
        if (frames_the_body(known) && !no_op &&
            !(add(name_string) && add(": ") && add(value_string) && add("\r\n"))) {
            return beast_reads_head({data, size}, ec);  // framing fields of unusual length
        }
    }
    if (!add("\r\n")) {
        return beast_reads_head({data, size}, ec);
    }
    // Beast's parser checks the framing fields (a bad or repeated
    // Content-Length, Transfer-Encoding beside it) and sets itself up for
    // the body; its verdict is the one it would give on the whole head.
    replaying_ = true;
    const bool eager = this->eager();
    this->eager(false);
    base_type::put(boost::asio::const_buffer(replay, replay_size), ec);
    this->eager(eager);
    replaying_ = false;
    if (ec) {
        return 0;
    }
    got_some_ = false;
    return head_size;
}

template <bool isRequest>
void head_parser<isRequest>::on_request_impl(bhttp::verb method, beast_view method_string, beast_view target,
                                             int version, error_code& ec) {
    if (replaying_) {
        ec = {};
        return;
    }
    message_.method_ = method;
    message_.method_text_ = message_.fields_.keep(view(method_string));
    message_.target_ = message_.fields_.keep(view(target));
    message_.version_ = static_cast<unsigned>(version);
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_response_impl(int code, beast_view reason, int version, error_code& ec) {
    if (replaying_) {
        ec = {};
        return;
    }
    message_.status_ = static_cast<unsigned>(code);
    message_.reason_ = message_.fields_.keep(view(reason));
    message_.version_ = static_cast<unsigned>(version);
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_field_impl(bhttp::field name, beast_view name_string, beast_view value,
                                           error_code& ec) {
    if (replaying_) {
        ec = {};
        return;
    }
    message_.fields_.insert(name, view(name_string), view(value));
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_header_impl(error_code& ec) {
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_body_init_impl(const boost::optional<std::uint64_t>&, error_code& ec) {
    ec = {};
}

template <bool isRequest>
std::size_t head_parser<isRequest>::take_body(beast_view body, error_code& ec) noexcept {
    auto& into = message_.body_;
    if (into.data == nullptr) {
        ec = bhttp::error::need_buffer;
        return 0;
    }
    const std::size_t n = std::min(into.size, body.size());
    if (n != 0) {
        std::memcpy(into.data, body.data(), n);
    }
    into.data = static_cast<char*>(into.data) + n;
    into.size -= n;
    if (n == body.size()) {
        ec = {};
    } else {
        ec = bhttp::error::need_buffer;
    }
    return n;
}

template <bool isRequest>
std::size_t head_parser<isRequest>::on_body_impl(beast_view body, error_code& ec) {
    return take_body(body, ec);
}

template <bool isRequest>
void head_parser<isRequest>::on_chunk_header_impl(std::uint64_t, beast_view, error_code& ec) {
    ec = {};
}

template <bool isRequest>
std::size_t head_parser<isRequest>::on_chunk_body_impl(std::uint64_t, beast_view body, error_code& ec) {
    return take_body(body, ec);
}

template <bool isRequest>
void head_parser<isRequest>::on_finish_impl(error_code& ec) {
    ec = {};
}

template class head_parser<true>;
template class head_parser<false>;

}  // namespace mistral_proxy::http
