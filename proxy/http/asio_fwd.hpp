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

#include "http/head_parser.hpp"
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

// The parsers of the heads the proxy reads: the client's request, the
// upstream's answer (head_parser.hpp; their fields are wire_fields). Heads
// the proxy builds itself use head_fields or bhttp::fields.
using request_parser = head_parser<true>;
using response_parser = head_parser<false>;

}  // namespace mistral_proxy::http
