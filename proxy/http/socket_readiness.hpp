#pragma once
// What the worker's reactor knows of a socket's input, so that the request
// path does not ask the kernel what the reactor already knows (each system
// call costs about a microsecond in a virtual machine; see
// third_party/asio-short-read for the other half of this).
#include "http/asio_fwd.hpp"

namespace mistral_proxy::http {

// False when a read on this socket last found the kernel's queue empty and
// the reactor has seen no arrival since (no epoll edge: no byte, no end of
// stream, no reset). True when something may have arrived, or when this
// build cannot tell (another Boost than 1.81, another reactor than epoll):
// then the caller asks the kernel, as it would without this.
//
// The reactor learns of an arrival when it next polls epoll, so a byte that
// arrived while the worker was busy is not known yet: callers use this where
// such a race is handled anyway (an idle upstream connection that turns out
// closed is retried on a new one; upstream_exchange.cpp).
//
// Call it on the worker thread that runs the socket's io_context (each
// io_context here is run by one thread, so the reactor's flag is not written
// meanwhile).
bool may_have_arrivals(tcp_socket& socket) noexcept;

// Notes that a read of the proxy's own (not Asio's) just found the kernel's
// queue empty (EAGAIN). may_have_arrivals
// then answers false until the reactor's next edge for this socket, which is
// how Asio's own reads keep the flag (with third_party/asio-short-read). Only
// for a socket no Asio read is pending on: the reader then waits with
// async_wait, which the next edge completes. Does nothing where
// may_have_arrivals cannot tell.
void mark_emptied(tcp_socket& socket) noexcept;

// The same after a read of the proxy's own that returned fewer bytes than it
// had room for: the kernel's queue is empty of data, but the peer's end of
// stream (or an error) may be queued behind those bytes, and if the edge
// that announced it has been seen already, none will come for it. So the
// mark is set only if the reactor has seen no such edge on this socket
// (third_party/asio-short-read's epoll_reactor.hpp); otherwise the next read
// asks the kernel and gets the end.
void mark_read_short(tcp_socket& socket) noexcept;

}  // namespace mistral_proxy::http
