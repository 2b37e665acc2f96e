// may_have_arrivals reads (and mark_emptied clears) one flag of Asio's epoll reactor that Asio keeps
// private: its per-socket "try a read at once" flag (try_speculative_), which
// the reactor sets on every epoll edge and clears when a read finds the
// socket empty (with third_party/asio-short-read: any read that returned less
// than it had room for). Two language rules reach it without touching Boost:
// a class derived from the socket may form a pointer to the socket's
// protected implementation, and an explicit instantiation may name a private
// member ([temp.spec.general]/6). Both are checked against the one Boost
// version whose layout this was written for; any other build answers "maybe",
// which costs a recv(MSG_PEEK) and nothing else.
#include "http/socket_readiness.hpp"

#include <boost/version.hpp>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(BOOST_ASIO_HAS_IOCP) && !defined(BOOST_ASIO_WINDOWS_RUNTIME)
#define MISTRAL_PROXY_READS_REACTOR_FLAG 1
#include <boost/asio/detail/epoll_reactor.hpp>
#endif

namespace mistral_proxy::http {

#if defined(MISTRAL_PROXY_READS_REACTOR_FLAG)
namespace {

using reactor = asio::detail::epoll_reactor;
using descriptor_state = reactor::descriptor_state;
using try_speculative_member = bool (descriptor_state::*)[reactor::max_ops];

// The pointer to the private member, handed out by the explicit instantiation below.
try_speculative_member try_speculative();

template <try_speculative_member Member>
struct try_speculative_access {
    friend try_speculative_member try_speculative() { return Member; }
};
template struct try_speculative_access<&descriptor_state::try_speculative_>;

// The same for the overlay's peer_ended_ flag.
using peer_ended_member = bool descriptor_state::*;
peer_ended_member peer_ended();

template <peer_ended_member Member>
struct peer_ended_access {
    friend peer_ended_member peer_ended() { return Member; }
};
template struct peer_ended_access<&descriptor_state::peer_ended_>;

// The socket's implementation (its descriptor and the reactor's state for it).
struct socket_implementation : tcp_socket {
    static auto& of(tcp_socket& socket) noexcept { return (socket.*(&socket_implementation::impl_)).get_implementation(); }
};

}  // namespace

bool may_have_arrivals(tcp_socket& socket) noexcept {
    descriptor_state* const state = socket_implementation::of(socket).reactor_data_;
    if (state == nullptr) {
        return true;
    }
    return (state->*try_speculative())[reactor::read_op];
}

void mark_emptied(tcp_socket& socket) noexcept {
    if (descriptor_state* const state = socket_implementation::of(socket).reactor_data_) {
        (state->*try_speculative())[reactor::read_op] = false;
    }
}

void mark_read_short(tcp_socket& socket) noexcept {
    if (descriptor_state* const state = socket_implementation::of(socket).reactor_data_; state != nullptr &&
                                                                                         !(state->*peer_ended())) {
        (state->*try_speculative())[reactor::read_op] = false;
    }
}

#else

bool may_have_arrivals(tcp_socket&) noexcept { return true; }

void mark_emptied(tcp_socket&) noexcept {}

void mark_read_short(tcp_socket&) noexcept {}

#endif

}  // namespace mistral_proxy::http
