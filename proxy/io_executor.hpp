#pragma once
// The executor of every coroutine and I/O object of the I/O stages (http/,
// limits/io/, store/io/). Each worker thread runs one io_context, so this is
// the concrete io_context executor rather than Asio's type-erased
// any_io_executor, which every operation copied, moved and destroyed through
// function tables (about 6% of a chat request's instructions in callgrind).
// Heavy: include it only from the I/O stages, never from the pure core.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>

namespace mistral_proxy {

using io_executor = boost::asio::io_context::executor_type;

template <class T>
using io_awaitable = boost::asio::awaitable<T, io_executor>;

using io_timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                   boost::asio::wait_traits<std::chrono::steady_clock>, io_executor>;

}  // namespace mistral_proxy
