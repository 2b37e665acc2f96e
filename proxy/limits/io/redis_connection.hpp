#pragma once
// One hiredis async connection driven by Asio: hiredis does the protocol, an
// asio::posix::stream_descriptor on its socket tells it when to read and
// write (hiredis' addRead/delRead/addWrite/delWrite hooks). Not thread-safe:
// use a connection from the one executor it was created on (one per worker
// io_context). Errors are values, never exceptions.
#include "io_executor.hpp"
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

struct redisAsyncContext;

namespace mistral_proxy::limits::io {

struct redis_reply {
    enum class kind { nil, integer, string, status, error, array };
    kind type = kind::nil;
    long long integer = 0;
    std::string text;  // string, status and error replies
    std::vector<redis_reply> elements;
};

struct redis_result {
    std::optional<redis_reply> reply;  // what Redis answered (possibly an error reply)
    std::string error;                 // set when there is no reply: not connected, lost, timed out
};

class redis_connection : public std::enable_shared_from_this<redis_connection> {
public:
    // Connects to HOST:PORT and SELECTs the db. `.first` is null and `.second`
    // says why ("redis://127.0.0.1:6390: Connection refused") on failure.
    // Name resolution inside hiredis is blocking: call at start-up.
    static io_awaitable<std::pair<std::shared_ptr<redis_connection>, std::string>> connect(
        io_executor executor, config::redis_endpoint endpoint, std::chrono::milliseconds timeout);

    // Sends one command (binary-safe arguments). A command without an answer
    // within `timeout` closes the connection (every pending command then
    // fails): a hung Redis is treated as an unreachable one.
    io_awaitable<redis_result> command(std::vector<std::string> args);

    bool connected() const noexcept { return context_ != nullptr && connected_; }
    const std::string& name() const noexcept { return name_; }
    void close() noexcept;

    explicit redis_connection(io_executor executor, std::chrono::milliseconds timeout);
    ~redis_connection();
    redis_connection(const redis_connection&) = delete;
    redis_connection& operator=(const redis_connection&) = delete;

private:
    struct hooks;
    struct pending;

    void attach(redisAsyncContext* context);
    void arm_read();
    void arm_write();
    void arm(bool write);  // keeps one wait pending while hiredis wants the event

    io_executor executor_;
    boost::asio::posix::basic_stream_descriptor<io_executor> socket_;
    io_timer connect_timer_;
    std::chrono::milliseconds timeout_;
    redisAsyncContext* context_ = nullptr;
    bool connected_ = false;
    std::optional<std::string> connect_status_;  // "" = connected, else the error
    bool want_read_ = false;
    bool want_write_ = false;
    bool reading_ = false;
    bool writing_ = false;
    std::string name_;
};

}  // namespace mistral_proxy::limits::io
