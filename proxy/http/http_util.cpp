// Small HTTP helpers shared by the session files: framing checks, the
// passthrough request head, body pieces (see http_util.hpp).
#include "http/http_util.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <random>

namespace mistral_proxy::http {

std::string new_request_id() {
    std::string id;
    new_request_id(id);
    return id;
}

void new_request_id(std::string& id) {
    // SplitMix64 over a per-thread counter seeded at random: two steps give
    // 128 bits that never repeat on the thread (each output is a bijection
    // of the counter). Ids must be unique, not secret; mt19937_64 cost ~280
    // instructions a request (its 2.5 KB state refilled every 312 draws),
    // this about 60 (and the hex digits below, 200 one at a time).
    thread_local std::uint64_t counter = [] {
        std::random_device seed;
        return std::uint64_t{seed()} << 32 ^ seed();
    }();
    const auto next = [] {
        counter += 0x9e3779b97f4a7c15ull;
        std::uint64_t z = counter;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    // Eight hex digits from 32 bits at once: each nibble spread to a byte,
    // then '0'..'9' or 'a'..'f' by arithmetic (the digits' order is the
    // bytes', which does not matter for random bits).
    const auto hex8 = [](std::uint32_t bits, char* out) {
        std::uint64_t x = bits;
        x = (x | x << 16) & 0x0000ffff0000ffffull;
        x = (x | x << 8) & 0x00ff00ff00ff00ffull;
        x = (x | x << 4) & 0x0f0f0f0f0f0f0f0full;
        const std::uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
        x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
        std::memcpy(out, &x, sizeof x);
    };
    char text[32];
    for (std::size_t half = 0; half < 2; ++half) {
        const std::uint64_t bits = next();
        hex8(static_cast<std::uint32_t>(bits), text + half * 16);
        hex8(static_cast<std::uint32_t>(bits >> 32), text + half * 16 + 8);
    }
    id.assign(text, sizeof text);
}

bool starts_with_ci(std::string_view text, std::string_view prefix) noexcept {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::string framing_error(const wire_fields& fields) {
    std::size_t encodings = 0;
    bool has_length = false;
    std::string_view value;
    for (const auto& field : fields) {
        if (field.name() == bhttp::field::transfer_encoding) {
            ++encodings;
            value = field.value();
        } else if (field.name() == bhttp::field::content_length) {
            has_length = true;
        }
    }
    if (encodings == 0) {
        return {};
    }
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
    }
    if (encodings > 1 || !iequals(value, "chunked")) {
        return "Transfer-Encoding must be exactly 'chunked' (the only transfer coding the proxy accepts in a "
               "request); send the body with Content-Length or chunked";
    }
    if (has_length) {
        return "a request may not carry both Transfer-Encoding and Content-Length";
    }
    return {};
}

bool is_malformed_http(const boost::system::error_code& ec) noexcept {
    if (ec.category() != bhttp::make_error_code(bhttp::error::bad_chunk).category()) {
        return false;
    }
    // These two mean the connection ended (mid-message); the rest are bad bytes.
    return ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
           ec != bhttp::error::need_buffer && ec != bhttp::error::need_more && ec != bhttp::error::body_limit &&
           ec != bhttp::error::header_limit && ec != bhttp::error::buffer_overflow;
}

bool is_hop_or_own_request_field(const wire_fields::value_type& field) noexcept {
    switch (field.name()) {
        case bhttp::field::host:
        case bhttp::field::authorization:
        case bhttp::field::proxy_authorization:
        case bhttp::field::connection:
        case bhttp::field::keep_alive:
        case bhttp::field::proxy_connection:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
        case bhttp::field::content_length:
        case bhttp::field::accept_encoding:
        case bhttp::field::expect:
            return true;
        case bhttp::field::unknown: {
            const auto name = field.name_string();
            // OpenAI account identifiers mean nothing to Mistral and should not leave the machine.
            return iequals(name, "openai-organization") || iequals(name, "openai-project");
        }
        default:
            return false;
    }
}

bool is_hop_or_own_response_field(const wire_fields::value_type& field) noexcept {
    switch (field.name()) {
        case bhttp::field::connection:
        case bhttp::field::keep_alive:
        case bhttp::field::proxy_connection:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
        case bhttp::field::content_length:
        case bhttp::field::set_cookie:
        case bhttp::field::alt_svc:
            return true;
        case bhttp::field::unknown: {
            const auto name = field.name_string();
            return iequals(name, "x-request-id") || starts_with_ci(name, "x-mistral-proxy-");
        }
        default:
            return false;
    }
}

connection_tokens::connection_tokens(const wire_fields& fields) {
    const auto connection = field_value(fields, bhttp::field::connection);
    if (connection.empty()) {
        return;
    }
    for (const auto token : bhttp::token_list{connection}) {
        if (count_ == kept) {
            long_list_ = connection;
            return;
        }
        tokens_[count_++] = std::string_view(token.data(), token.size());
    }
}

bool connection_tokens::names(std::string_view field_name) const noexcept {
    if (!long_list_.empty()) {
        for (const auto token : bhttp::token_list{long_list_}) {
            if (iequals(token, field_name)) {
                return true;
            }
        }
        return false;
    }
    for (std::size_t i = 0; i < count_; ++i) {
        if (tokens_[i].size() == field_name.size() && iequals(tokens_[i], field_name)) {
            return true;
        }
    }
    return false;
}

void format_response_head(unsigned status, const head_fields& fields, std::size_t content_length, std::string& out) {
    // The status line in one append ("HTTP/1.1 200 OK\r\n"), the length's line in another.
    const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    char line[64] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', static_cast<char>('0' + status / 100 % 10),
                     static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10), ' '};
    std::size_t size = 13;
    const std::size_t reason_size = std::min(reason.size(), sizeof line - size - 2);
    std::memcpy(line + size, reason.data(), reason_size);
    size += reason_size;
    line[size++] = '\r';
    line[size++] = '\n';
    out.assign(line, size);
    fields.append_to(out);
    static constexpr std::string_view length_name = "Content-Length: ";
    std::memcpy(line, length_name.data(), length_name.size());
    char* const digits_end = std::to_chars(line + length_name.size(), line + 40, content_length).ptr;
    std::memcpy(digits_end, "\r\n\r\n", 4);
    out.append(line, static_cast<std::size_t>(digits_end + 4 - line));
}

void format_upstream_head(const upstream_request& request, std::string& head) {
    head.assign(request.head_start);
    head += "Content-Length: ";
    head += std::to_string(request.body.size());
    head += "\r\nAuthorization: ";
    head += request.authorization;
    head += "\r\n\r\n";
}

void make_write_at_once_ready(tcp_socket& socket) noexcept {
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
}

void format_upstream_start(std::string& out, std::string_view base_path, std::string_view path_after_v1,
                           std::string_view query, const wire_fields& client, std::string_view host) {
    out.clear();
    out += "POST ";
    out += base_path;
    out += path_after_v1;
    out += query;
    out += " HTTP/1.1\r\n";
    const connection_tokens connection(client);
    for (const auto& field : client) {
        if (is_hop_or_own_request_field(field) || field.name() == bhttp::field::content_type ||
            connection.names(field.name_string())) {
            continue;
        }
        const bool known = field.name() != bhttp::field::unknown;
        if (!known && iequals(field.name_string(), "x-mistral-proxy-fallback")) {
            continue;  // the proxy's own, not Mistral's
        }
        const auto name = known ? canonical_name(field.name()) : field.name_string();
        out.append(name.data(), name.size());
        out += ": ";
        const auto value = field.value();
        out.append(value.data(), value.size());
        out += "\r\n";
    }
    out += "Host: ";
    out += host;
    out += "\r\nAccept-Encoding: identity\r\nContent-Type: application/json\r\n";
}

void make_passthrough_head(const request_parser& client, std::string target,
                           std::string_view host, std::string_view authorization,
                           bhttp::request<bhttp::buffer_body>& upstream) {
    const auto& request = client.get();
    if (request.method() == bhttp::verb::unknown) {
        upstream.method_string(request.method_string());
    } else {
        upstream.method(request.method());
    }
    upstream.target(target);
    upstream.version(11);
    copy_end_to_end_request_fields(request.base(), upstream.base());
    upstream.set(bhttp::field::host, host);
    upstream.set(bhttp::field::authorization, authorization);
    upstream.set(bhttp::field::accept_encoding, "identity");
    upstream.keep_alive(true);
    if (client.content_length()) {
        upstream.content_length(*client.content_length());
    } else if (client.chunked()) {
        upstream.chunked(true);
    }
    upstream.body().data = nullptr;
    upstream.body().size = 0;
    upstream.body().more = !client.is_done();
}

limits::header_list limit_headers_of(const wire_fields& fields) {
    limits::header_list headers;
    for (const auto& field : fields) {
        const auto name = field.name_string();
        if (field.name() == bhttp::field::retry_after || starts_with_ci(name, "x-ratelimit") ||
            starts_with_ci(name, "ratelimit") || starts_with_ci(name, "retry-after")) {
            std::string lower(name);
            std::transform(lower.begin(), lower.end(), lower.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            headers.emplace_back(std::move(lower), std::string(field.value()));
        }
    }
    return headers;
}

template awaitable<boost::system::error_code> write_rest(tcp_stream&, const std::array<asio::const_buffer, 2>&,
                                                         std::size_t, config::duration);
template awaitable<boost::system::error_code> write_all(tcp_stream&, const std::array<asio::const_buffer, 2>&,
                                                        config::duration);

}  // namespace mistral_proxy::http
