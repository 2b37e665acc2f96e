#pragma once
// What bounds a wait on a socket, kept with one timer for the socket's whole
// life and moved lazily: a wait only notes when it starts (and with what
// timeout) and when it ends; the timer, armed when a wait starts and none is
// armed, finds when it fires the wait in progress younger than its timeout
// (and waits for the rest), or none in progress (and is left unarmed until the
// next), or one that has waited too long, and then calls its owner's expiry
// action, which ends that wait (an upstream connection closes; a client's
// kept-alive connection stops waiting for its next request).
//
// Why not Beast's per-operation timeout (tcp_stream::expires_after) or a timer
// set for each wait: it arms a timer for each operation and cancels it when
// the operation completes, and the cancelled wait is a completion posted to
// the worker, which then polls epoll once more before running it: a system
// call per operation at low concurrency, and the timer queue's work at any. A
// stream's reads paid it for every event.
#include <chrono>
#include <memory>

#include "http/asio_fwd.hpp"

namespace mistral_proxy::http {

class wait_deadline : public std::enable_shared_from_this<wait_deadline> {
public:
    using clock = std::chrono::steady_clock;
    // Ends the wait that lasted too long; `owner` is what the deadline was made with.
    using expiry_action = void (*)(void* owner);

    wait_deadline(const io_executor& executor, expiry_action on_expiry, void* owner)
        : timer_(executor), on_expiry_(on_expiry), owner_(owner) {}

    // A wait starts now and may last up to `timeout`.
    void begin(clock::duration timeout);
    // The wait ended (its result is in; whether the deadline ended it is expired()).
    void end() noexcept { waiting_ = false; }
    // The expiry action ran for the last wait begun.
    bool expired() const noexcept { return expired_; }
    // The owner goes: the timer's handler, if any is pending, does nothing, and
    // the timer no longer holds its worker (a pending wait keeps io_context::run going).
    void stop() noexcept;

private:
    void arm(clock::time_point at);
    void on_timer(const boost::system::error_code& ec);

    steady_timer timer_;
    expiry_action on_expiry_;
    void* owner_;  // null once stopped
    clock::time_point wait_started_{};
    clock::duration timeout_{};
    clock::time_point armed_for_ = clock::time_point::max();  // max: not armed
    bool waiting_ = false;
    bool expired_ = false;
};

}  // namespace mistral_proxy::http
