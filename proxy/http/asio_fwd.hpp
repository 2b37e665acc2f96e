#pragma once
// Shared Asio/Beast vocabulary of the I/O stage. Heavy: include it only from
// proxy/http/*.cpp, never from a header of the pure core.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http/field_pool.hpp"
#include "io_executor.hpp"

namespace mistral_proxy::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// Completion token of the data path: errors come back as values, never as
// exceptions (DESIGN.md: no exceptions on the data path).
inline constexpr auto as_result = asio::as_tuple(asio::use_awaitable_t<io_executor>{});

template <class T>
using awaitable = io_awaitable<T>;

// The I/O objects, on the worker's concrete executor (io_executor.hpp).
using tcp_socket = asio::basic_stream_socket<tcp, io_executor>;
using tcp_acceptor = asio::basic_socket_acceptor<tcp, io_executor>;
using tcp_resolver = asio::ip::basic_resolver<tcp, io_executor>;
using tcp_stream = beast::basic_stream<tcp, io_executor>;
using steady_timer = io_timer;

// The fields of the heads the proxy parses (the client's request, the
// upstream's answer), in pooled memory (field_pool.hpp). Heads the proxy
// builds itself use bhttp::fields.
using wire_fields = bhttp::basic_fields<field_pool_allocator<char>>;
// The parsers of those heads: the client's request, the upstream's answer.
using request_parser = bhttp::request_parser<bhttp::buffer_body, field_pool_allocator<char>>;
using response_parser = bhttp::response_parser<bhttp::buffer_body, field_pool_allocator<char>>;

}  // namespace mistral_proxy::http
