// The shared responses store (store/io/redis_store.hpp) against a real
// redis-server started on a free loopback port for this run. The store's
// clock is injected; TTLs are read back from Redis, nothing sleeps.
#define DOCTEST_CONFIG_IMPLEMENT
// Coroutine lambdas trip GCC 12's false -Wmismatched-new-delete (GCC bug 109224).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/io/redis_connection.hpp"
#include "redis_server.hpp"
#include "store/io/redis_store.hpp"
#include "store/io/store_client.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::store;
using namespace mistral_proxy::store::io;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

redis_test::redis_server server;

config::redis_endpoint endpoint(unsigned db = 4) { return {"127.0.0.1", server.port, db}; }

template <class F>
void run(F body) {
    asio::io_context ctx;
    auto done = asio::co_spawn(ctx, body(ctx.get_executor()), asio::use_future);
    ctx.run();
    done.get();
}

struct fake_clock {
    std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(1'760'000'000);
    unix_clock fn() const {
        return [n = now] { return n->load(); };
    }
};

io_awaitable<std::unique_ptr<redis_store>> make(io_executor ex, retention keep = {}, unix_clock now = {}) {
    // Not a structured binding: clang 14 cannot capture one in INFO's lambda.
    auto connected = co_await redis_store::connect(ex, endpoint(), keep, 2s, std::move(now));
    INFO(connected.second);
    REQUIRE(connected.first);
    co_return std::move(connected.first);
}

// A raw command, for what the store does not expose (TTL, DEL). Variadic, not
// a braced list: GCC 12 cannot brace-initialise inside a co_await expression.
template <class... Args>
io_awaitable<limits::io::redis_reply> raw(io_executor ex, Args... args) {
    std::vector<std::string> command{std::string(args)...};
    auto connected = co_await limits::io::redis_connection::connect(ex, endpoint(), 2s);
    REQUIRE(connected.first);
    auto r = co_await connected.first->command(std::move(command));
    REQUIRE(r.reply);
    co_return std::move(*r.reply);
}

stored_response make_response(const std::string& n, std::int64_t created_at) {
    stored_response r;
    r.id = "resp_" + n;
    r.created_at = created_at;
    r.response = R"({"id":"resp_)" + n + R"(","object":"response","output":[{"type":"message","id":"msg_)" + n +
                 R"(","role":"assistant","content":[{"type":"output_text","text":"answer )" + n + R"("}]}]})";
    r.input_items = R"([{"type":"message","id":"in_)" + n + R"(","role":"user","content":"question )" + n + R"("}])";
    r.conversation = "[]";
    return r;
}

}  // namespace

TEST_CASE("redis store: put, get, find_item, remove, unknown ids") {
    const fake_clock clock;
    run([&](io_executor ex) -> io_awaitable<void> {
        auto store = co_await make(ex, retention{}, clock.fn());
        const auto r = make_response("r1", *clock.now);
        const auto put = co_await store->put(r);
        CHECK_FALSE(put);
        const auto got = co_await store->get("resp_r1");
        CHECK(got.error.empty());
        REQUIRE(got.value);
        CHECK(got.value->id == "resp_r1");
        CHECK(got.value->created_at == r.created_at);
        CHECK(got.value->response == r.response);
        CHECK(got.value->input_items == r.input_items);
        CHECK(got.value->conversation == r.conversation);
        const auto item = co_await store->find_item("msg_r1");
        REQUIRE(item.value);
        CHECK(
            *item.value ==
            R"({"type":"message","id":"msg_r1","role":"assistant","content":[{"type":"output_text","text":"answer r1"}]})");
        CHECK((co_await store->find_item("in_r1")).value);

        const auto unknown = co_await store->get("resp_nope");
        CHECK(unknown.error.empty());
        CHECK_FALSE(unknown.value);
        CHECK_FALSE((co_await store->find_item("msg_nope")).value);

        const auto removed = co_await store->remove("resp_r1");
        REQUIRE(removed.value);
        CHECK(*removed.value);
        CHECK_FALSE((co_await store->get("resp_r1")).value);
        CHECK_FALSE((co_await store->find_item("msg_r1")).value);
        CHECK_FALSE((co_await raw(ex, "EXISTS", "mistral-proxy:item:msg_r1")).integer);
        const auto again = co_await store->remove("resp_r1");
        REQUIRE(again.value);
        CHECK_FALSE(*again.value);

        auto bad = make_response("bad", *clock.now);
        bad.input_items = "{}";
        CHECK((co_await store->put(bad)).value_or("") == "input_items is not a JSON array");
    });
}

TEST_CASE("redis store: two proxies share one store") {
    const fake_clock clock;
    run([&](io_executor ex) -> io_awaitable<void> {
        auto a = co_await make(ex, retention{}, clock.fn());
        auto b = co_await make(ex, retention{}, clock.fn());
        CHECK_FALSE(co_await a->put(make_response("shared", *clock.now)));
        CHECK((co_await b->get("resp_shared")).value);
        CHECK((co_await b->find_item("msg_shared")).value);
        CHECK(*(co_await b->remove("resp_shared")).value);
        CHECK_FALSE((co_await a->get("resp_shared")).value);
    });
}

TEST_CASE("redis store: keys expire max_age after created_at; stored again, old items go") {
    const fake_clock clock;
    run([&](io_executor ex) -> io_awaitable<void> {
        const retention keep{std::chrono::seconds(3600), 1};
        auto store = co_await make(ex, keep, clock.fn());
        CHECK_FALSE(co_await store->put(make_response("ttl", *clock.now - 600)));
        const auto ttl = co_await raw(ex, "TTL", "mistral-proxy:resp:resp_ttl");
        CHECK(ttl.integer > 2990);
        CHECK(ttl.integer <= 3000);
        const auto item_ttl = co_await raw(ex, "TTL", "mistral-proxy:item:msg_ttl");
        CHECK(item_ttl.integer > 2990);
        CHECK(item_ttl.integer <= 3000);
        // max_bytes is not enforced in Redis (its maxmemory is): 1 byte allowed, stored anyway.
        CHECK((co_await store->get("resp_ttl")).value);

        // Older than max_age already: not stored, and not an error.
        CHECK_FALSE(co_await store->put(make_response("old", *clock.now - 3600)));
        CHECK_FALSE((co_await store->get("resp_old")).value);

        // Stored again with other items: the old ones are no longer found.
        auto changed = make_response("ttl", *clock.now);
        changed.response = R"({"id":"resp_ttl","output":[{"type":"message","id":"msg_ttl2","content":[]}]})";
        CHECK_FALSE(co_await store->put(changed));
        CHECK_FALSE((co_await store->find_item("msg_ttl")).value);
        CHECK((co_await store->find_item("msg_ttl2")).value);

        // A holder gone (expired: its key deleted by Redis) no longer answers for its items.
        co_await raw(ex, "DEL", "mistral-proxy:resp:resp_ttl");
        CHECK_FALSE((co_await store->find_item("msg_ttl2")).value);
        CHECK_FALSE((co_await raw(ex, "HLEN", "mistral-proxy:item:msg_ttl2")).integer);
    });
}

TEST_CASE("redis store: an unreachable Redis is an error at connect and a value afterwards") {
    run([&](io_executor ex) -> io_awaitable<void> {
        const config::redis_endpoint nowhere{"127.0.0.1", redis_test::free_port(), 0};
        const retention keep;
        auto connected = co_await redis_store::connect(ex, nowhere, keep, 1s);
        CHECK_FALSE(connected.first);
        INFO(connected.second);
        CHECK(connected.second.starts_with("responses.store redis://127.0.0.1:" + std::to_string(nowhere.port)));
    });
}

TEST_CASE("redis store: Redis lost its scripts, or the connection: the next call recovers") {
    const fake_clock clock;
    run([&](io_executor ex) -> io_awaitable<void> {
        auto store = co_await make(ex, retention{}, clock.fn());
        co_await raw(ex, "SCRIPT", "FLUSH");  // as after a Redis restart
        CHECK_FALSE(co_await store->put(make_response("flushed", *clock.now)));  // EVAL instead of EVALSHA
        CHECK(*(co_await store->remove("resp_flushed")).value);

        co_await raw(ex, "CLIENT", "KILL", "TYPE", "normal");  // every client but the one asking
        // The call that finds the connection dead may fail; the one after reconnects.
        auto first = co_await store->get("resp_none");
        if (!first.error.empty()) {
            first = co_await store->get("resp_none");
        }
        CHECK(first.error.empty());
        CHECK_FALSE(co_await store->put(make_response("after", *clock.now)));
        CHECK((co_await store->get("resp_after")).value);
    });
}

TEST_CASE("redis store: store_client over redis, embedded and off") {
    const fake_clock clock;
    run([&](io_executor ex) -> io_awaitable<void> {
        config::proxy_config config;
        config.responses.store = "redis://127.0.0.1:" + std::to_string(server.port) + "/4";
        std::string error;
        CHECK_FALSE(open_shared_store(config, error));
        CHECK(error.empty());
        auto redis = co_await make_store_client(ex, config, nullptr);
        CHECK(redis.second.empty());
        CHECK(redis.first.enabled());
        CHECK_FALSE(co_await redis.first.put(make_response("client", system_unix_now())));
        CHECK((co_await redis.first.get("resp_client")).value);

        const auto dir = std::filesystem::temp_directory_path() / ("mp-store-client-" + std::to_string(::getpid()));
        config.responses.store = "embedded";
        config.state_dir = dir.string();
        auto shared = open_shared_store(config, error);
        INFO(error);
        REQUIRE(shared);
        auto embedded = co_await make_store_client(ex, config, shared);
        CHECK(embedded.first.enabled());
        CHECK_FALSE(co_await embedded.first.put(make_response("client", system_unix_now())));
        CHECK((co_await embedded.first.find_item("msg_client")).value);
        CHECK(*(co_await embedded.first.remove("resp_client")).value);
        CHECK(std::filesystem::exists(dir / "responses.sqlite3"));

        config.responses.store = "off";
        auto off = co_await make_store_client(ex, config, nullptr);
        CHECK_FALSE(off.first.enabled());
        CHECK_FALSE(co_await off.first.put(make_response("off", system_unix_now())));
        CHECK_FALSE((co_await off.first.get("resp_off")).value);
        shared.reset();
        std::filesystem::remove_all(dir);
    });
}

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);  // hiredis writes to a socket Redis may have closed
    doctest::Context context(argc, argv);
    server.start();
    const int failed = context.run();
    server.stop();
    return failed;
}
