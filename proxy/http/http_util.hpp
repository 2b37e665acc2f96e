#pragma once
// Small HTTP helpers of the I/O stage: request ids, header hygiene, the
// padded buffer a JSON request body is read into, and the heads the proxy
// lays out as text itself (head_fields for a whole answer, upstream_request
// for a whole-body request): Beast's field lists cost a heap element per field.
#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/write.hpp>

#include "config/duration.hpp"
#include "http/asio_fwd.hpp"
#include "http/coarse_clock.hpp"
#include "limits/ratelimit_headers.hpp"
#include "normalize/normalizer.hpp"

namespace mistral_proxy::http {

// 32 hex digits, random per process and thread.
std::string new_request_id();
void new_request_id(std::string& id);  // into `id`, its memory reused

inline bool iequals(std::string_view a, std::string_view b) noexcept { return beast::iequals(a, b); }
// The spelling Beast writes a known field's name in ("Content-Type").
inline std::string_view canonical_name(bhttp::field name) noexcept {
    const auto text = bhttp::to_string(name);
    return {text.data(), text.size()};
}
bool starts_with_ci(std::string_view text, std::string_view prefix) noexcept;

// The first value of a header Beast knows by name (`name` is not
// field::unknown), "" when absent: a walk of the head's index comparing the
// enum each field carries (wire_fields.hpp).
inline std::string_view field_value(const wire_fields& fields, bhttp::field name) noexcept { return fields[name]; }

// A request head whose body framing the proxy cannot relay exactly: any
// Transfer-Encoding other than a single "chunked" (RFC 9112 §6.1: a server
// that cannot tell where the body ends must answer 400 and close), or one
// beside a Content-Length (§6.3: request smuggling). Empty when acceptable.
std::string framing_error(const wire_fields& fields);

// True for the errors Beast's parser reports for bytes that are not HTTP (a bad
// chunk size, a bad header): the client sent garbage and gets a 400, as opposed
// to a connection that merely ended.
bool is_malformed_http(const boost::system::error_code& ec) noexcept;

// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the proxy sets itself never
// cross it. `Host` is replaced so the client can never choose an upstream.
bool is_hop_or_own_request_field(const wire_fields::value_type& field) noexcept;
bool is_hop_or_own_response_field(const wire_fields::value_type& field) noexcept;

// Headers named by the `Connection` header are hop-by-hop too. Its tokens
// are read once per head: looking the header up and parsing its list again
// for each field cost about 170 instructions a field, 2.8k a request for the
// OpenAI SDK's 16 headers (callgrind).
class connection_tokens {
public:
    explicit connection_tokens(const wire_fields& fields);
    bool names(std::string_view field_name) const noexcept;

private:
    static constexpr std::size_t kept = 8;
    std::array<std::string_view, kept> tokens_{};
    std::size_t count_ = 0;
    std::string_view long_list_;  // the whole value when it has more tokens than kept (read again each time)
};

// A head's end-to-end fields into a Beast field list or a head_fields: not
// the hop-by-hop ones, nor those its Connection header names, nor the
// proxy's own (`is_hop_or_own`); a known name in its canonical spelling, as
// Beast writes it.
template <class Fields, class IsHopOrOwn>
void copy_end_to_end_fields(const wire_fields& from, Fields& to, IsHopOrOwn is_hop_or_own) {
    const connection_tokens connection(from);
    for (const auto& field : from) {
        if (is_hop_or_own(field) || connection.names(field.name_string())) {
            continue;
        }
        const auto name = field.name() == bhttp::field::unknown ? field.name_string() : canonical_name(field.name());
        const auto value = field.value();
        to.insert(std::string_view(name.data(), name.size()), std::string_view(value.data(), value.size()));
    }
}
template <class Fields>
void copy_end_to_end_request_fields(const wire_fields& from, Fields& to) {
    copy_end_to_end_fields(from, to, is_hop_or_own_request_field);
}
template <class Fields>
void copy_end_to_end_response_fields(const wire_fields& from, Fields& to) {
    copy_end_to_end_fields(from, to, is_hop_or_own_response_field);
}

// The fields of a head the proxy writes itself, kept as the text they are
// laid out as ("Name: value\r\n" each, in order) in one reused buffer (no
// heap element per field, as Beast's field list has), with an entry per
// field to find it by name; set() replaces every field of that name
// (case-insensitive) and appends, as Beast's set does, so that the bytes are
// the ones Beast wrote. Laid out with one append when nothing was erased.
class head_fields {
public:
    void clear() noexcept {
        text_.clear();
        entries_.clear();
        erased_ = false;
    }
    void insert(std::string_view name, std::string_view value) {
        entries_.push_back(entry{text_.size(), name.size(), value.size(), false});
        text_.append(name);
        text_.append(": ", 2);
        text_.append(value);
        text_.append("\r\n", 2);
    }
    void set(std::string_view name, std::string_view value) {
        erase(name);
        insert(name, value);
    }
    void set(bhttp::field name, std::string_view value) {
        const auto text = bhttp::to_string(name);
        set(std::string_view(text.data(), text.size()), value);
    }
    void erase(std::string_view name) noexcept {
        for (auto& e : entries_) {
            if (!e.erased && beast::iequals(std::string_view(text_.data() + e.at, e.name_size), name)) {
                e.erased = true;
                erased_ = true;
            }
        }
    }
    // "Name: value\r\n" for each field, in order.
    void append_to(std::string& out) const {
        if (!erased_) {
            out.append(text_);
            return;
        }
        for (const auto& e : entries_) {
            if (!e.erased) {
                out.append(text_.data() + e.at, e.name_size + e.value_size + 4);
            }
        }
    }

private:
    struct entry {
        std::size_t at;  // its line in text_: the name, ": ", the value, CRLF
        std::size_t name_size;
        std::size_t value_size;
        bool erased;
    };
    std::string text_;
    std::vector<entry> entries_;
    bool erased_ = false;  // some entry is erased: its line is skipped
};

// A response head the proxy writes itself: "HTTP/1.1 <status> <reason>",
// `fields`, Content-Length, the blank line (Beast's reason phrases).
void format_response_head(unsigned status, const head_fields& fields, std::size_t content_length, std::string& out);

// A whole-body JSON request as it goes upstream. Its head is laid out once,
// without Beast's field list (each field of which is a heap element placed by
// a case-insensitive search): the request line and every field but the two
// that may change from one try to the next, which async_write_upstream_request
// appends (the body's length, and the key: a key pool may switch it).
// Views of the session's buffers (reused request after request, so that a
// request allocates none of them), valid while the request is being sent.
struct upstream_request {
    std::string_view head_start;     // the request line and fields, each line ending in CRLF
    std::string_view authorization;  // the Authorization value
    std::string_view body;
};

// upstream_request::head_start of a POST of a JSON body: the client's
// end-to-end fields (copy_end_to_end_request_fields's choice; a known name in
// its canonical spelling, as Beast writes it), without its Content-Type and
// the proxy's own x-mistral-proxy-fallback, then Host, Accept-Encoding:
// identity and Content-Type: application/json.
// The request target is base_path + path_after_v1 + query (the client's "/v1"
// replaced by the upstream's base path).
void format_upstream_start(std::string& out, std::string_view base_path, std::string_view path_after_v1,
                           std::string_view query, const wire_fields& client, std::string_view host);

// The request's head as written: head_start, Content-Length, Authorization
// and the blank line, laid out in `head` (reused).
void format_upstream_head(const upstream_request& request, std::string& head);
// The request as written: that head, then the body.
inline std::array<asio::const_buffer, 2> upstream_request_pieces(const upstream_request& request,
                                                                 const std::string& head) {
    return {asio::buffer(head.data(), head.size()), asio::buffer(request.body.data(), request.body.size())};
}

// Writes as much of `buffers` as the socket takes at once, without an
// asynchronous operation. Sockets of the data path are non-blocking
// (make_write_at_once_ready), so this never waits. A peer that reads what it
// asked for leaves room in the send buffer, so a whole message usually goes
// in one system call, where an asynchronous write costs an operation, a
// timer and a trip through the scheduler. Returns the bytes written; `ec` is
// set on a failure, not on a full send buffer.
template <class ConstBufferSequence>
std::size_t write_at_once(tcp_socket& socket, const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    const std::size_t written = socket.write_some(buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
    }
    return written;
}

// A socket's synchronous writes return at once instead of waiting for room
// (its asynchronous operations are unchanged): what write_at_once needs.
void make_write_at_once_ready(tcp_socket& socket) noexcept;

// What write_at_once left of `buffers` (it wrote `written` bytes), by an
// asynchronous write within `timeout`. A caller that wrote at once itself
// awaits this only when something is left: a coroutine's frame less a message.
template <class ConstBufferSequence>
awaitable<boost::system::error_code> write_rest(tcp_stream& stream, const ConstBufferSequence& buffers,
                                                std::size_t written, config::duration timeout) {
    beast::buffers_suffix<ConstBufferSequence> rest(buffers);
    rest.consume(written);
    expire_in(stream, timeout);
    auto [write_ec, n] = co_await asio::async_write(stream, rest, as_result);
    co_return write_ec;
}

// All of `buffers` on `stream`: at once when the socket takes it, the rest
// by an asynchronous write within `timeout`.
template <class ConstBufferSequence>
awaitable<boost::system::error_code> write_all(tcp_stream& stream, const ConstBufferSequence& buffers,
                                               config::duration timeout) {
    boost::system::error_code ec;
    const std::size_t written = write_at_once(stream.socket(), buffers, ec);
    if (ec || written == asio::buffer_size(buffers)) {
        co_return ec;
    }
    co_return co_await write_rest(stream, buffers, written, timeout);
}

// An answer's head and body, the pieces every whole answer is written as:
// instantiated once, in http_util.cpp. Instantiated in each unit that writes
// one, the coroutine frames differed in the names GCC gives the co_await's
// temporaries (numbers of the unit), and the link-time build of
// `scripts/build --pgo` warned of an ODR violation (-Wodr).
extern template awaitable<boost::system::error_code> write_rest(tcp_stream&, const std::array<asio::const_buffer, 2>&,
                                                                std::size_t, config::duration);
extern template awaitable<boost::system::error_code> write_all(tcp_stream&, const std::array<asio::const_buffer, 2>&,
                                                               config::duration);

// The head of a passthrough request as it goes upstream: the client's
// end-to-end fields, the upstream's Host and key, and the body framed as the
// client framed it (same Content-Length, or chunked). No body piece offered yet.
void make_passthrough_head(const request_parser& client, std::string target,
                           std::string_view host, std::string_view authorization,
                           bhttp::request<bhttp::buffer_body>& upstream);

// Beast's read loop without its I/O: parses into `parser` what `buffer`
// already holds. A request's head and body, or an answer's, usually arrive
// in one read, and awaiting Beast's read for bytes already here costs a
// composed operation and a trip through the scheduler each time. True when
// that settled it: `ec` is then the parse's outcome (the part wanted is
// parsed, need_buffer, or a malformed message); false when more bytes must
// be read (nothing here, or not enough): await Beast's read as before, which
// parses what is left here first. `part`: the head only (the body waits for
// its buffer), or the body (as much as its buffer takes, like async_read).
enum class parse_part { head, body };
// (Parser: head_parser, whose put reads a request head itself.)
template <class Parser>
bool parse_buffered(Parser& parser, beast::flat_buffer& buffer, parse_part part, boost::system::error_code& ec) {
    ec = {};
    if (buffer.size() == 0) {
        return false;
    }
    parser.eager(part == parse_part::body);
    buffer.consume(parser.put(buffer.data(), ec));
    if (ec == bhttp::error::need_more) {
        ec = {};
        return false;
    }
    return ec || (part == parse_part::head ? parser.is_header_done() : parser.is_done());
}

// Beast's rule for the end of the input (that of http::async_read_some): a
// connection closed before any byte of the message is end_of_stream; after
// some, put_eof completes a body that runs to the close, or says partial_message.
template <class Parser>
void end_of_input(Parser& parser, boost::system::error_code& ec) {
    ec = {};
    if (parser.got_some()) {
        parser.put_eof(ec);
    } else {
        ec = bhttp::error::end_of_stream;
    }
}

// parse_buffered after a read into `buffer` that ended with `read_ec`
// (end_of_input when it ended the connection). True when that settled it, as
// parse_buffered.
template <class Parser>
bool parse_read(Parser& parser, beast::flat_buffer& buffer, boost::system::error_code read_ec, parse_part part,
                boost::system::error_code& ec) {
    if (read_ec == asio::error::eof) {
        end_of_input(parser, ec);
        return true;
    }
    if (read_ec) {
        ec = read_ec;
        return true;
    }
    return parse_buffered(parser, buffer, part, ec);
}

// Offers the serializer the next piece of a relayed body. With nothing read
// at the body's end (a chunked body's last chunk) the buffer is null, so that
// the serializer writes the terminator once: an empty non-null buffer would
// make it write an empty chunk first, which is a terminator too, and what
// follows it would read as a second request.
inline void offer_body_piece(bhttp::buffer_body::value_type& body, char* data, std::size_t size, bool last) noexcept {
    body.data = size > 0 ? data : nullptr;
    body.size = size;
    body.more = !last;
}

// The bytes Beast's serializer writes for a message's head (start line,
// fields in order, blank line), laid out in one string. Writing a whole
// message as [head, body] costs a copy of a few hundred bytes, where Beast's
// serializer walks the fields one buffer at a time through nested buffer
// views: tens of thousands of instructions a message.
template <bool isRequest, class Fields>
void format_head(const bhttp::header<isRequest, Fields>& head, std::string& out) {
    out.clear();
    const auto version = [&] {
        out += "HTTP/";
        out += static_cast<char>('0' + head.version() / 10);
        out += '.';
        out += static_cast<char>('0' + head.version() % 10);
    };
    if constexpr (isRequest) {
        out.append(head.method_string());
        out += ' ';
        out.append(head.target());
        out += ' ';
        version();
    } else {
        version();
        const unsigned status = head.result_int();
        out += ' ';
        out += static_cast<char>('0' + status / 100 % 10);
        out += static_cast<char>('0' + status / 10 % 10);
        out += static_cast<char>('0' + status % 10);
        out += ' ';
        out.append(head.reason());
    }
    out += "\r\n";
    for (const auto& field : head) {
        out.append(field.name_string());
        out += ": ";
        out.append(field.value());
        out += "\r\n";
    }
    out += "\r\n";
}

// The rate-limit and retry headers of an upstream answer (Retry-After,
// retry-after-ms, x-ratelimit-*, ratelimitbysize-*), as the limits stage reads them.
limits::header_list limit_headers_of(const wire_fields& fields);

// A request body held whole, with the spare bytes the JSON parser may read past its end.
class padded_body {
public:
    // Empties it for the next body, keeping up to `keep_capacity` bytes of
    // room: a session reuses one buffer request after request, so a body of
    // more than the small-block size (~1 KB) is not a trip through malloc's
    // slow path each time, while a rare large one is not held by an idle
    // connection.
    void reuse(std::size_t keep_capacity) noexcept {
        size_ = 0;
        if (capacity_ > keep_capacity + normalize::body_padding) {
            data_.reset();
            capacity_ = 0;
        }
    }
    void reserve(std::size_t bytes) {
        if (bytes + normalize::body_padding <= capacity_) {
            return;
        }
        auto bigger = std::make_unique_for_overwrite<char[]>(bytes + normalize::body_padding);
        std::copy_n(data_.get(), size_, bigger.get());
        data_ = std::move(bigger);
        capacity_ = bytes + normalize::body_padding;
    }
    char* free_space() noexcept { return data_.get() + size_; }
    std::size_t free_bytes() const noexcept { return capacity_ - normalize::body_padding - size_; }
    void commit(std::size_t bytes) noexcept { size_ += bytes; }
    std::size_t size() const noexcept { return size_; }
    std::string_view view() const noexcept { return {data_.get(), size_}; }
    void zero_padding() noexcept { std::fill_n(data_.get() + size_, normalize::body_padding, '\0'); }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace mistral_proxy::http
