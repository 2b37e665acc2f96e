#pragma once
// The parser of the heads the proxy reads (the client's request, the
// upstream's answer): Beast's basic_parser, which does the framing (start
// line, fields, Content-Length and chunked bodies, the limits), with the
// head kept in a wire_fields (one block of text and a flat index, not
// Beast's field list of a heap element per field) and the body read into
// the caller's buffer as Beast's buffer_body does: body().data and size say
// where the next bytes go, and the parser reports need_buffer when it is
// full. get() gives the head with the names of Beast's message, so that the
// code reading it looks as it did with Beast's parser.
//
// A request head in the form nearly every client sends it (a request line;
// fields of a token, ':' and a value on one line each; CRLF line ends) is
// read here: about 150 instructions a field, where Beast's parser spends
// 600 (its per-field calls, its red tape for folded lines). Beast's parser
// then reads a head made of only the fields that frame the body
// (Content-Length, Transfer-Encoding, Connection, Proxy-Connection,
// Upgrade), so that it checks them and reads the body as it always did. A
// head in any other form (a folded line, a bare LF, a byte out of place, a
// head over the limit) is read by Beast's parser whole, which answers as it
// always did: the fast reading accepts a strict subset of what Beast
// accepts, never more. Answers are read by Beast's parser (their heads are
// short and come from a known upstream).
//
// Call this class's put, got_some, put_eof and header_limit (they hide
// Beast's): Beast's composed reads (async_read_header) would call Beast's
// own put, which is correct but slow for a request head.
//
// One parser reads one message (as Beast's: make a new one for the next).
// Not movable: a head's views point into its own text.
#include <cstdint>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include "http/wire_fields.hpp"

namespace mistral_proxy::http {

template <bool isRequest>
class head_parser final : public boost::beast::http::basic_parser<isRequest> {
    using base_type = boost::beast::http::basic_parser<isRequest>;
    using error_code = boost::system::error_code;
    using beast_view = boost::beast::string_view;

public:
    class message {
    public:
        // A request's start line.
        boost::beast::http::verb method() const noexcept { return method_; }
        std::string_view method_string() const noexcept { return fields_.kept(method_text_); }
        std::string_view target() const noexcept { return fields_.kept(target_); }
        // An answer's status line.
        unsigned result_int() const noexcept { return status_; }
        boost::beast::http::status result() const noexcept { return boost::beast::http::int_to_status(status_); }
        // As Beast's message says it: the standard phrase when none came.
        std::string_view reason() const noexcept {
            if (reason_.size != 0) {
                return fields_.kept(reason_);
            }
            const auto standard = boost::beast::http::obsolete_reason(result());
            return {standard.data(), standard.size()};
        }
        // 11 for HTTP/1.1, 10 for HTTP/1.0.
        unsigned version() const noexcept { return version_; }

        const wire_fields& base() const noexcept { return fields_; }
        std::string_view operator[](boost::beast::http::field name) const noexcept { return fields_[name]; }
        std::string_view operator[](std::string_view name) const noexcept { return fields_[name]; }

        boost::beast::http::buffer_body::value_type& body() noexcept { return body_; }

    private:
        friend class head_parser;
        wire_fields fields_;
        boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
        wire_fields::span method_text_;
        wire_fields::span target_;
        unsigned status_ = 0;
        wire_fields::span reason_;
        unsigned version_ = 11;
        boost::beast::http::buffer_body::value_type body_;
    };

    head_parser() = default;
    head_parser(const head_parser&) = delete;
    head_parser& operator=(const head_parser&) = delete;

    message& get() noexcept { return message_; }
    const message& get() const noexcept { return message_; }

    std::size_t put(boost::asio::const_buffer buffer, error_code& ec);
    bool got_some() const noexcept { return got_some_ || base_type::got_some(); }
    void put_eof(error_code& ec);
    void header_limit(std::uint32_t bytes) noexcept {
        limit_ = bytes;
        base_type::header_limit(bytes);
    }

private:
    // The request head read here (see above): its size when it was, 0 with
    // need_more when it has not all arrived, and Beast's put's answer when
    // it is not in the strict form.
    std::size_t put_head(const char* data, std::size_t size, error_code& ec);
    std::size_t beast_reads_head(boost::asio::const_buffer buffer, error_code& ec);

    void on_request_impl(boost::beast::http::verb method, beast_view method_string, beast_view target, int version,
                         error_code& ec) override;
    void on_response_impl(int code, beast_view reason, int version, error_code& ec) override;
    void on_field_impl(boost::beast::http::field name, beast_view name_string, beast_view value,
                       error_code& ec) override;
    void on_header_impl(error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>& content_length, error_code& ec) override;
    std::size_t on_body_impl(beast_view body, error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t size, beast_view extensions, error_code& ec) override;
    std::size_t on_chunk_body_impl(std::uint64_t remain, beast_view body, error_code& ec) override;
    void on_finish_impl(error_code& ec) override;

    // Into body().data, as Beast's buffer_body reader: what fits, and
    // need_buffer when not all of it did (or there is no buffer).
    std::size_t take_body(beast_view body, error_code& ec) noexcept;

    message message_;
    std::uint32_t limit_ = 8 * 1024;  // Beast's default for a request head
    bool got_some_ = false;           // bytes of a head not yet read whole
    bool beast_reads_ = false;        // the head is Beast's to read (not in the strict form)
    bool replaying_ = false;          // Beast reads the framing fields of a head read here
};

extern template class head_parser<true>;
extern template class head_parser<false>;

}  // namespace mistral_proxy::http
