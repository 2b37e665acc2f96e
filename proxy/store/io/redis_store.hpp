#pragma once
// The shared responses store (responses.store: redis://HOST:PORT[/DB]): the
// same operations as store::response_store, kept in the Redis the shared
// limiter uses, so that a response stored through one proxy is read, continued
// (previous_response_id) and deleted through another.
//
// Keys (every one expires max_age after the response's created_at):
//   mistral-proxy:resp:ID        hash: created_at, response, input_items,
//                                conversation, items (the indexed item ids,
//                                '\n'-separated)
//   mistral-proxy:item:ITEM_ID   hash: one field per stored response holding
//                                the item (response id -> item JSON)
// put and remove are Lua scripts (atomic: a reader never sees a response
// without its items, or items of a deleted response); get is one HMGET.
// The scripts name item keys they compute, so this is for a single Redis
// (or a primary with replicas), not Redis Cluster.
//
// max_bytes is not enforced here (a running total in Redis would cost a
// script and a counter on every write, and Redis has its own bound): give the
// Redis a `maxmemory` and `maxmemory-policy volatile-ttl` (or volatile-lru),
// which evicts these keys, all of which have a TTL, before anything without
// one (the limiter's buckets). For responses to survive a Redis restart, use
// `appendonly yes`, as for the shared limiter.
//
// Errors are values (store_result::error, put's return): Redis unreachable or
// answering an error. The connection is re-made on the next call. Not
// thread-safe: one redis_store per worker executor, like redis_limiter.
#include "io_executor.hpp"
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "store/response_store.hpp"

namespace mistral_proxy::limits::io {
class redis_connection;
}

namespace mistral_proxy::store::io {

class redis_store {
public:
    // Connects, SELECTs the db and loads the scripts. On failure `.first` is
    // null and `.second` says why ("responses.store redis://127.0.0.1:6390/0:
    // Connection refused"). Name resolution is blocking: call at start-up.
    static io_awaitable<std::pair<std::unique_ptr<redis_store>, std::string>> connect(
        io_executor executor, config::redis_endpoint endpoint, retention keep,
        std::chrono::milliseconds timeout = std::chrono::seconds(2), unix_clock now = {});

    ~redis_store();
    redis_store(const redis_store&) = delete;
    redis_store& operator=(const redis_store&) = delete;

    // Same contracts as response_store (max_bytes aside, see above). A response
    // already older than max_age is not stored (and that is not an error).
    io_awaitable<std::optional<std::string>> put(stored_response response);
    io_awaitable<store_result<stored_response>> get(std::string id);
    // With an item held by several live responses, any one of them answers.
    io_awaitable<store_result<std::string>> find_item(std::string item_id);
    io_awaitable<store_result<bool>> remove(std::string id);

    static constexpr std::string_view response_prefix = "mistral-proxy:resp:";
    static constexpr std::string_view item_prefix = "mistral-proxy:item:";

private:
    redis_store(io_executor executor, config::redis_endpoint endpoint, retention keep,
                std::chrono::milliseconds timeout, unix_clock now);
    io_awaitable<std::string> ensure_connected();
    struct script_result;
    // Runs script `index` (EVALSHA, EVAL when Redis lost it).
    io_awaitable<script_result> run(std::size_t index, std::vector<std::string> keys,
                                              std::vector<std::string> args);

    io_executor executor_;
    config::redis_endpoint endpoint_;
    retention keep_;
    std::chrono::milliseconds timeout_;
    unix_clock now_;
    std::shared_ptr<limits::io::redis_connection> connection_;
    std::vector<std::string> shas_;
};

}  // namespace mistral_proxy::store::io
