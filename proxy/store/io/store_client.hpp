#pragma once
// What a worker's HTTP session calls for stored responses, whatever
// responses.store says: one awaitable interface over the embedded store
// (shared by every worker, synchronous, ~0.1 ms a put and ~10 us a read, no
// fsync: run inline on the worker's thread), the Redis store (this worker's own
// connection) or nothing (off: put stores nothing, reads find nothing).
//
// Start-up (serve):
//   std::string error;
//   auto shared = store::io::open_shared_store(config, error);   // once
//   if (!error.empty()) -> refuse to start, print error (it names the file)
//   per worker, on its executor, before accepting:
//   auto [client, why] = co_await store::io::make_store_client(executor, config, shared);
//   if (!why.empty()) -> refuse to start (Redis unreachable)
// Per request (on the worker's executor):
//   co_await client.put(stored_response{...})  once the whole answer is known, and before its
//       last bytes are written (the non-streamed body, the response.completed event), so
//       that a client's immediate follow-up with previous_response_id finds it
//   co_await client.get(id) / find_item(item_id) / remove(id)
// A store_result with `error` set is a storage failure (answer 500 in OpenAI
// shape, log it); without error and value it is an unknown id (404).
#include "io_executor.hpp"
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "store/io/redis_store.hpp"
#include "store/response_store.hpp"

namespace mistral_proxy::store::io {

class store_client {
public:
    store_client() = default;  // responses.store: off
    explicit store_client(std::shared_ptr<response_store> embedded) : embedded_(std::move(embedded)) {}
    explicit store_client(std::unique_ptr<redis_store> redis) : redis_(std::move(redis)) {}

    // False with responses.store: off (store: true then keeps nothing).
    bool enabled() const noexcept { return embedded_ != nullptr || redis_ != nullptr; }

    io_awaitable<std::optional<std::string>> put(stored_response response);
    io_awaitable<store_result<stored_response>> get(std::string id);
    io_awaitable<store_result<std::string>> find_item(std::string item_id);
    io_awaitable<store_result<bool>> remove(std::string id);

private:
    std::shared_ptr<response_store> embedded_;
    std::unique_ptr<redis_store> redis_;
};

// responses.store embedded: opens state_dir/responses.sqlite3 (the retention
// applied). Otherwise null. On failure null and `error` set, naming the file.
std::shared_ptr<response_store> open_shared_store(const config::proxy_config& config, std::string& error);

// A worker's client: over `shared` (embedded), a new Redis connection
// (redis://), or none (off). `.second` is the error (Redis unreachable).
io_awaitable<std::pair<store_client, std::string>> make_store_client(io_executor executor,
                                                                               const config::proxy_config& config,
                                                                               std::shared_ptr<response_store> shared);

}  // namespace mistral_proxy::store::io
