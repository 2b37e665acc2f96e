// One asynchronous Redis connection (hiredis on Asio) for a worker thread
// (see redis_connection.hpp).
#include "limits/io/redis_connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mistral_proxy::limits::io {

namespace asio = boost::asio;
using connect_result = std::pair<std::shared_ptr<redis_connection>, std::string>;
namespace {
constexpr auto as_result = asio::as_tuple(asio::use_awaitable_t<io_executor>{});

redis_reply convert(const redisReply* r) {
    redis_reply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = redis_reply::kind::string;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = redis_reply::kind::status;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = redis_reply::kind::error;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = redis_reply::kind::integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = redis_reply::kind::array;
            for (std::size_t i = 0; i < r->elements; ++i) {
                out.elements.push_back(convert(r->element[i]));
            }
            break;
        default:
            break;
    }
    return out;
}
}  // namespace

// One command in flight: the reply callback fills `result` and cancels
// `timer`, on which the awaiting coroutine sleeps (its expiry is the timeout).
struct redis_connection::pending {
    explicit pending(const io_executor& executor) : timer(executor) {}
    io_timer timer;
    std::optional<redis_result> result;
};

// hiredis calls these C hooks; ev.data / data point at the connection.
struct redis_connection::hooks {
    static redis_connection* self(void* p) { return static_cast<redis_connection*>(p); }

    static void add_read(void* p) {
        self(p)->want_read_ = true;
        self(p)->arm_read();
    }
    static void del_read(void* p) { self(p)->want_read_ = false; }
    static void add_write(void* p) {
        self(p)->want_write_ = true;
        self(p)->arm_write();
    }
    static void del_write(void* p) { self(p)->want_write_ = false; }

    // The context is being freed (by us, or by hiredis after an error): stop
    // waiting on the socket and hand the descriptor back, hiredis closes it.
    static void cleanup(void* p) {
        redis_connection* c = self(p);
        c->context_ = nullptr;
        c->connected_ = false;
        c->want_read_ = false;
        c->want_write_ = false;
        boost::system::error_code ignored;
        c->socket_.cancel(ignored);
        if (c->socket_.is_open()) {
            c->socket_.release();
        }
    }

    static void on_connect(const redisAsyncContext* context, int status) {
        redis_connection* c = self(context->data);
        if (status == REDIS_OK) {
            c->connected_ = true;
            c->connect_status_ = "";
        } else {
            c->connect_status_ = context->errstr;
        }
        c->connect_timer_.cancel();
    }

    static void on_disconnect(const redisAsyncContext* context, int /*status*/) {
        self(context->data)->connected_ = false;
    }

    static void on_reply(redisAsyncContext* context, void* reply, void* privdata) {
        auto* holder = static_cast<std::shared_ptr<pending>*>(privdata);
        const std::shared_ptr<pending> op = std::move(*holder);
        delete holder;
        redis_result result;
        if (reply != nullptr) {
            result.reply = convert(static_cast<const redisReply*>(reply));
        } else {
            const redis_connection* c = self(context->data);
            result.error = c->name_ + ": connection lost" +
                           (context->errstr != nullptr && context->err != 0 ? std::string(": ") + context->errstr : "");
        }
        op->result = std::move(result);
        op->timer.cancel();
    }
};

redis_connection::redis_connection(io_executor executor, std::chrono::milliseconds timeout)
    : executor_(executor), socket_(executor), connect_timer_(executor), timeout_(timeout) {}

redis_connection::~redis_connection() { close(); }

void redis_connection::close() noexcept {
    if (context_ != nullptr) {
        // Fails pending commands (their callbacks run now) and calls cleanup.
        redisAsyncFree(context_);
        context_ = nullptr;
    }
}

void redis_connection::attach(redisAsyncContext* context) {
    context_ = context;
    context->data = this;
    context->ev.data = this;
    context->ev.addRead = &hooks::add_read;
    context->ev.delRead = &hooks::del_read;
    context->ev.addWrite = &hooks::add_write;
    context->ev.delWrite = &hooks::del_write;
    context->ev.cleanup = &hooks::cleanup;
    socket_.assign(context->c.fd);
    redisAsyncSetDisconnectCallback(context, &hooks::on_disconnect);
    // Must come after the hooks: it registers the write event that signals
    // the end of the non-blocking connect.
    redisAsyncSetConnectCallback(context, &hooks::on_connect);
}

void redis_connection::arm_read() { arm(false); }

void redis_connection::arm_write() { arm(true); }

void redis_connection::arm(bool write) {
    bool& busy = write ? writing_ : reading_;
    if (busy || !(write ? want_write_ : want_read_) || context_ == nullptr) {
        return;
    }
    busy = true;
    socket_.async_wait(write ? asio::posix::stream_descriptor::wait_write : asio::posix::stream_descriptor::wait_read,
                       // Weak: an idle connection must not keep itself (and its
                       // io_context) alive; its destructor cancels this wait.
                       [weak = weak_from_this(), write](boost::system::error_code ec) {
                           const auto self = weak.lock();
                           if (!self) {
                               return;
                           }
                           (write ? self->writing_ : self->reading_) = false;
                           if (ec || self->context_ == nullptr) {
                               return;
                           }
                           // Either may free the context (cleanup hook).
                           if (write) {
                               redisAsyncHandleWrite(self->context_);
                           } else {
                               redisAsyncHandleRead(self->context_);
                           }
                           self->arm(write);
                       });
}

io_awaitable<std::pair<std::shared_ptr<redis_connection>, std::string>> redis_connection::connect(
    io_executor executor, config::redis_endpoint endpoint, std::chrono::milliseconds timeout) {
    auto self = std::make_shared<redis_connection>(executor, timeout);
    self->name_ = "redis://" + endpoint.host + ":" + std::to_string(endpoint.port) + "/" + std::to_string(endpoint.db);
    redisAsyncContext* context = redisAsyncConnect(endpoint.host.c_str(), endpoint.port);
    if (context == nullptr) {
        co_return connect_result{nullptr, self->name_ + ": out of memory"};
    }
    if (context->err != 0) {
        std::string error = self->name_ + ": " + context->errstr;
        redisAsyncFree(context);
        co_return connect_result{nullptr, std::move(error)};
    }
    self->attach(context);
    self->connect_timer_.expires_after(timeout);
    co_await self->connect_timer_.async_wait(as_result);
    if (!self->connect_status_) {
        self->close();
        co_return connect_result{nullptr, self->name_ + ": no connection within " + std::to_string(timeout.count()) + " ms"};
    }
    if (!self->connect_status_->empty()) {
        self->close();
        co_return connect_result{nullptr, self->name_ + ": " + *self->connect_status_};
    }
    std::vector<std::string> select{"SELECT", std::to_string(endpoint.db)};
    const redis_result selected = co_await self->command(std::move(select));
    if (!selected.reply || selected.reply->type == redis_reply::kind::error) {
        self->close();
        co_return connect_result{nullptr, self->name_ + ": SELECT " + std::to_string(endpoint.db) + " failed: " +
                                         (selected.reply ? selected.reply->text : selected.error)};
    }
    co_return connect_result{std::move(self), std::string()};
}

io_awaitable<redis_result> redis_connection::command(std::vector<std::string> args) {
    if (!connected()) {
        co_return redis_result{std::nullopt, name_ + ": not connected"};
    }
    const auto self = shared_from_this();
    auto op = std::make_shared<pending>(executor_);
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    auto* holder = new std::shared_ptr<pending>(op);
    if (redisAsyncCommandArgv(context_, &hooks::on_reply, holder, static_cast<int>(argv.size()), argv.data(),
                              lengths.data()) != REDIS_OK) {
        delete holder;
        co_return redis_result{std::nullopt, name_ + ": cannot send the command"};
    }
    op->timer.expires_after(timeout_);
    co_await op->timer.async_wait(as_result);
    if (!op->result) {
        close();  // runs the callback of this command and of every other pending one
        op->result = redis_result{std::nullopt, {}};
        op->result->error = name_ + ": no answer within " + std::to_string(timeout_.count()) + " ms";
    }
    co_return std::move(*op->result);
}

}  // namespace mistral_proxy::limits::io
