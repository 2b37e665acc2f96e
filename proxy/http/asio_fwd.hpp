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
#include <boost/beast/ssl.hpp>

namespace mistral_proxy::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// Completion token of the data path: errors come back as values, never as
// exceptions (DESIGN.md: no exceptions on the data path).
inline constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

template <class T>
using awaitable = asio::awaitable<T>;

}  // namespace mistral_proxy::http
