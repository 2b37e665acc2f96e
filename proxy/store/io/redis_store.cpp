// Stored responses in Redis (responses.store: redis://), shared by several proxies (see redis_store.hpp).
#include "store/io/redis_store.hpp"

#include <array>

#include "limits/io/redis_connection.hpp"

namespace mistral_proxy::store::io {

namespace asio = boost::asio;
using limits::io::redis_connection;
using limits::io::redis_reply;
using limits::io::redis_result;

namespace {

// put: KEYS[1] the response's key. ARGV: ttl, created_at, response,
// input_items, conversation, response id, item key prefix, item ids
// ('\n'-separated), then (item id, item JSON) pairs. A response stored again
// first leaves the items it held. An item key keeps the longest TTL of the
// responses holding it.
constexpr std::string_view put_script = R"lua(
local old = redis.call('HGET', KEYS[1], 'items')
if old then
  for id in string.gmatch(old, '[^\n]+') do redis.call('HDEL', ARGV[7] .. id, ARGV[6]) end
end
redis.call('DEL', KEYS[1])
local ttl = tonumber(ARGV[1])
for i = 9, #ARGV, 2 do
  local k = ARGV[7] .. ARGV[i]
  redis.call('HSET', k, ARGV[6], ARGV[i + 1])
  if redis.call('TTL', k) < ttl then redis.call('EXPIRE', k, ttl) end
end
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'response', ARGV[3], 'input_items', ARGV[4],
           'conversation', ARGV[5], 'items', ARGV[8])
redis.call('EXPIRE', KEYS[1], ttl)
return 1
)lua";

// remove: KEYS[1] the response's key. ARGV: item key prefix, response id.
constexpr std::string_view remove_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local items = redis.call('HGET', KEYS[1], 'items')
if items then
  for id in string.gmatch(items, '[^\n]+') do redis.call('HDEL', ARGV[1] .. id, ARGV[2]) end
end
redis.call('DEL', KEYS[1])
return 1
)lua";

// find_item: KEYS[1] the item's key. ARGV: response key prefix. The first
// holder still stored answers; holders gone (expired) are dropped on the way.
constexpr std::string_view find_item_script = R"lua(
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[1] .. all[i]) == 1 then return all[i + 1] end
  redis.call('HDEL', KEYS[1], all[i])
end
return false
)lua";

enum script_index : std::size_t { put_index = 0, remove_index = 1, find_item_index = 2 };
constexpr std::array<std::string_view, 3> scripts{put_script, remove_script, find_item_script};

std::string key_of(std::string_view prefix, std::string_view id) {
    std::string key(prefix);
    key += id;
    return key;
}

}  // namespace

struct redis_store::script_result {
    std::optional<redis_reply> reply;
    std::string error;
};

redis_store::redis_store(io_executor executor, config::redis_endpoint endpoint, retention keep,
                         std::chrono::milliseconds timeout, unix_clock now)
    : executor_(std::move(executor)),
      endpoint_(std::move(endpoint)),
      keep_(keep),
      timeout_(timeout),
      now_(now ? std::move(now) : system_unix_now) {}

redis_store::~redis_store() {
    if (connection_) {
        connection_->close();  // its pending read would keep the worker's io_context running
    }
}

io_awaitable<std::pair<std::unique_ptr<redis_store>, std::string>> redis_store::connect(
    io_executor executor, config::redis_endpoint endpoint, retention keep, std::chrono::milliseconds timeout,
    unix_clock now) {
    std::unique_ptr<redis_store> self(new redis_store(executor, std::move(endpoint), keep, timeout, std::move(now)));
    if (std::string error = co_await self->ensure_connected(); !error.empty()) {
        co_return std::pair<std::unique_ptr<redis_store>, std::string>{nullptr, "responses.store " + error};
    }
    co_return std::pair<std::unique_ptr<redis_store>, std::string>{std::move(self), std::string()};
}

io_awaitable<std::string> redis_store::ensure_connected() {
    if (connection_ && connection_->connected()) {
        co_return std::string();
    }
    auto connected = co_await redis_connection::connect(executor_, endpoint_, timeout_);
    if (!connected.first) {
        co_return std::move(connected.second);
    }
    std::vector<std::string> shas;
    for (const std::string_view script : scripts) {
        std::vector<std::string> load{"SCRIPT", "LOAD", std::string(script)};
        const redis_result loaded = co_await connected.first->command(std::move(load));
        if (!loaded.reply || loaded.reply->type != redis_reply::kind::string) {
            co_return connected.first->name() +
                ": SCRIPT LOAD failed: " + (loaded.reply ? loaded.reply->text : loaded.error);
        }
        shas.push_back(loaded.reply->text);
    }
    shas_ = std::move(shas);
    connection_ = std::move(connected.first);
    co_return std::string();
}

io_awaitable<redis_store::script_result> redis_store::run(std::size_t index, std::vector<std::string> keys,
                                                             std::vector<std::string> args) {
    if (std::string error = co_await ensure_connected(); !error.empty()) {
        co_return script_result{std::nullopt, std::move(error)};
    }
    std::vector<std::string> command{"EVALSHA", shas_[index], std::to_string(keys.size())};
    command.insert(command.end(), std::make_move_iterator(keys.begin()), std::make_move_iterator(keys.end()));
    command.insert(command.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
    redis_result r = co_await connection_->command(command);
    if (r.reply && r.reply->type == redis_reply::kind::error && r.reply->text.rfind("NOSCRIPT", 0) == 0) {
        // Redis restarted or its scripts were flushed: send the source once.
        command[0] = "EVAL";
        command[1] = std::string(scripts[index]);
        r = co_await connection_->command(std::move(command));
    }
    if (!r.reply) {
        co_return script_result{std::nullopt, std::move(r.error)};
    }
    if (r.reply->type == redis_reply::kind::error) {
        co_return script_result{std::nullopt, connection_->name() + ": " + r.reply->text};
    }
    co_return script_result{std::move(r.reply), std::string()};
}

io_awaitable<std::optional<std::string>> redis_store::put(stored_response response) {
    if (response.id.empty() || response.id.size() > 255) {
        co_return std::string("a stored response id must be 1 to 255 bytes");
    }
    std::vector<stored_item> items;
    if (auto e = collect_stored_items(response, items)) {
        co_return e;
    }
    const std::int64_t ttl = response.created_at + static_cast<std::int64_t>(keep_.max_age.count()) - now_();
    if (ttl <= 0) {
        co_return std::nullopt;  // expired already: kept for no time at all
    }
    std::string ids;
    std::vector<std::string> args{std::to_string(ttl),
                                  std::to_string(response.created_at),
                                  std::move(response.response),
                                  std::move(response.input_items),
                                  std::move(response.conversation),
                                  response.id,
                                  std::string(item_prefix),
                                  std::string()};
    for (auto& item : items) {
        if (item.id.find('\n') != std::string::npos) {
            continue;  // the separator of the id list; no real id holds one
        }
        ids += (ids.empty() ? "" : "\n") + item.id;
        args.push_back(std::move(item.id));
        args.push_back(std::move(item.json));
    }
    args[7] = std::move(ids);
    // Named, not braced in the call: GCC 12 cannot brace-initialise inside co_await.
    std::vector<std::string> keys{key_of(response_prefix, response.id)};
    const script_result r = co_await run(put_index, std::move(keys), std::move(args));
    if (!r.reply) {
        co_return r.error;
    }
    co_return std::nullopt;
}

io_awaitable<store_result<stored_response>> redis_store::get(std::string id) {
    store_result<stored_response> result;
    if (std::string error = co_await ensure_connected(); !error.empty()) {
        result.error = std::move(error);
        co_return result;
    }
    std::vector<std::string> command{
        "HMGET", key_of(response_prefix, id), "created_at", "response", "input_items", "conversation"};
    redis_result r = co_await connection_->command(std::move(command));
    if (!r.reply) {
        result.error = std::move(r.error);
        co_return result;
    }
    if (r.reply->type != redis_reply::kind::array || r.reply->elements.size() != 4) {
        result.error =
            connection_->name() + ": " + (r.reply->text.empty() ? "unexpected reply to HMGET" : r.reply->text);
        co_return result;
    }
    auto& e = r.reply->elements;
    if (e[1].type != redis_reply::kind::string) {
        co_return result;  // unknown, deleted or expired
    }
    stored_response out;
    out.id = std::move(id);
    out.created_at = std::strtoll(e[0].text.c_str(), nullptr, 10);
    out.response = std::move(e[1].text);
    out.input_items = std::move(e[2].text);
    out.conversation = std::move(e[3].text);
    result.value = std::move(out);
    co_return result;
}

io_awaitable<store_result<std::string>> redis_store::find_item(std::string item_id) {
    store_result<std::string> result;
    std::vector<std::string> keys{key_of(item_prefix, item_id)};
    std::vector<std::string> args{std::string(response_prefix)};
    script_result r = co_await run(find_item_index, std::move(keys), std::move(args));
    if (!r.reply) {
        result.error = std::move(r.error);
    } else if (r.reply->type == redis_reply::kind::string) {
        result.value = std::move(r.reply->text);
    }
    co_return result;
}

io_awaitable<store_result<bool>> redis_store::remove(std::string id) {
    store_result<bool> result;
    std::vector<std::string> keys{key_of(response_prefix, id)};
    std::vector<std::string> args{std::string(item_prefix), id};
    const script_result r = co_await run(remove_index, std::move(keys), std::move(args));
    if (!r.reply) {
        result.error = r.error;
    } else {
        result.value = r.reply->type == redis_reply::kind::integer && r.reply->integer == 1;
    }
    co_return result;
}

}  // namespace mistral_proxy::store::io
