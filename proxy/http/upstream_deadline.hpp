#pragma once
// What bounds each wait on an upstream connection (a read of its answer, or a
// write of a request the socket did not take at once), kept with one timer for
// the connection's whole life and moved lazily: a wait only notes when it
// starts (and with what timeout) and when it ends; the timer, armed when a
// wait starts and none is armed, finds when it fires the wait in progress
// younger than its timeout (and waits for the rest), or none in progress (and
// is left unarmed until the next), or one that has waited too long, and then
// ends the connection, which ends that wait.
//
// Why not Beast's per-operation timeout (tcp_stream::expires_after): it arms
// a timer for each operation and cancels it when the operation completes, and
// the cancelled wait is a completion posted to the worker, which then polls
// epoll once more before running it: a system call per operation at low
// concurrency, and the timer queue's work at any. A stream's reads paid it for
// every event.
#include <chrono>
#include <memory>

#include "http/asio_fwd.hpp"

namespace mistral_proxy::http {

class upstream_connection;

class upstream_deadline : public std::enable_shared_from_this<upstream_deadline> {
public:
    using clock = std::chrono::steady_clock;

    upstream_deadline(const io_executor& executor, upstream_connection& watched) : timer_(executor), connection_(&watched) {}

    // A wait starts now and may last up to `timeout`.
    void begin(clock::duration timeout);
    // The wait ended (its result is in; whether the deadline ended it is expired()).
    void end() noexcept { waiting_ = false; }
    // The connection was ended because a wait lasted past its timeout.
    bool expired() const noexcept { return expired_; }
    // The connection goes: the timer's handler, if any is pending, does nothing.
    void stop() noexcept;

private:
    void arm(clock::time_point at);
    void on_timer(const boost::system::error_code& ec);

    steady_timer timer_;
    upstream_connection* connection_;  // null once stopped
    clock::time_point wait_started_{};
    clock::duration timeout_{};
    clock::time_point armed_for_ = clock::time_point::max();  // max: not armed
    bool waiting_ = false;
    bool expired_ = false;
};

}  // namespace mistral_proxy::http
