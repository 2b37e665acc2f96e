// The sessions' awaitable store client over the embedded or Redis store (see store_client.hpp).
#include "store/io/store_client.hpp"

#include <filesystem>

namespace mistral_proxy::store::io {

namespace asio = boost::asio;

io_awaitable<std::optional<std::string>> store_client::put(stored_response response) {
    if (embedded_) {
        co_return embedded_->put(response);
    }
    if (redis_) {
        co_return co_await redis_->put(std::move(response));
    }
    co_return std::nullopt;
}

io_awaitable<store_result<stored_response>> store_client::get(std::string id) {
    if (embedded_) {
        co_return embedded_->get(id);
    }
    if (redis_) {
        co_return co_await redis_->get(std::move(id));
    }
    co_return store_result<stored_response>{};
}

io_awaitable<store_result<std::string>> store_client::find_item(std::string item_id) {
    if (embedded_) {
        co_return embedded_->find_item(item_id);
    }
    if (redis_) {
        co_return co_await redis_->find_item(std::move(item_id));
    }
    co_return store_result<std::string>{};
}

io_awaitable<store_result<bool>> store_client::remove(std::string id) {
    if (embedded_) {
        co_return embedded_->remove(id);
    }
    if (redis_) {
        co_return co_await redis_->remove(std::move(id));
    }
    store_result<bool> none;
    none.value = false;
    co_return none;
}

std::shared_ptr<response_store> open_shared_store(const config::proxy_config& config, std::string& error) {
    error.clear();
    if (config.responses.store != "embedded") {
        return nullptr;
    }
    const auto file = std::filesystem::path(config.state_dir) / std::string(embedded_store_file);
    return open_embedded_store(file, retention_of(config.responses), error);
}

io_awaitable<std::pair<store_client, std::string>> make_store_client(io_executor executor,
                                                                        const config::proxy_config& config,
                                                                        std::shared_ptr<response_store> shared) {
    if (shared) {
        co_return std::pair<store_client, std::string>{store_client(std::move(shared)), std::string()};
    }
    const auto endpoint = config::parse_redis_backend(config.responses.store);
    if (!endpoint) {
        co_return std::pair<store_client, std::string>{store_client(), std::string()};  // off
    }
    auto connected = co_await redis_store::connect(std::move(executor), *endpoint, retention_of(config.responses));
    if (!connected.first) {
        co_return std::pair<store_client, std::string>{store_client(), std::move(connected.second)};
    }
    co_return std::pair<store_client, std::string>{store_client(std::move(connected.first)), std::string()};
}

}  // namespace mistral_proxy::store::io
