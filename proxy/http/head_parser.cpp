// Beast's basic_parser with the head in a wire_fields (see head_parser.hpp).
#include "http/head_parser.hpp"

#include <algorithm>
#include <cstring>

#include <boost/beast/http/error.hpp>

namespace mistral_proxy::http {

namespace bhttp = boost::beast::http;

namespace {

std::string_view view(boost::beast::string_view text) noexcept { return {text.data(), text.size()}; }

}  // namespace

template <bool isRequest>
void head_parser<isRequest>::on_request_impl(bhttp::verb method, beast_view method_string, beast_view target,
                                             int version, error_code& ec) {
    message_.method_ = method;
    message_.method_text_ = message_.fields_.keep(view(method_string));
    message_.target_ = message_.fields_.keep(view(target));
    message_.version_ = static_cast<unsigned>(version);
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_response_impl(int code, beast_view reason, int version, error_code& ec) {
    message_.status_ = static_cast<unsigned>(code);
    message_.reason_ = message_.fields_.keep(view(reason));
    message_.version_ = static_cast<unsigned>(version);
    ec = {};
}

template <bool isRequest>
void head_parser<isRequest>::on_field_impl(bhttp::field name, beast_view name_string, beast_view value,
                                           error_code& ec) {
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
