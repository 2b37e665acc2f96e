#pragma once
// The stored-responses store of OpenAI's Responses API (
// SPEC §2 `responses:`): what `store: true` keeps so that a response can be
// read back (GET /v1/responses/{id}), its input listed
// (GET /v1/responses/{id}/input_items), continued (previous_response_id),
// referenced item by item (input items of type item_reference) and deleted.
//
// Pure core: no Asio. The interface is synchronous and thread-safe; the
// embedded implementation never fsyncs on the calling thread, so a worker
// thread calls it inline. Measured on the 2-core dev VM (ext4): get ~6 us,
// find_item ~10 us, put ~0.1 ms at p50 for a 2-18 KB response (one SQLite
// commit of ~12 WAL pages; an empty commit alone costs ~60 us there: the
// pwrite and lock syscalls), p99 0.4-1.5 ms under 1000 puts/s while the
// background checkpoint fsyncs. Calls from several workers queue on one
// mutex; a put waits up to 5 s for another process's write lock only when
// several processes share the file. The shared
// Redis store (store/io/redis_store.hpp) is asynchronous and per worker;
// store/io/store_client.hpp puts both behind one awaitable interface for the
// HTTP session.
//
// Only bodies are stored: the caller hands in the Response object and items
// as JSON, never a header, so no API key (the client's bearer or an upstream
// key) can reach a stored row. Keep it so: do not put request headers,
// x-request-id-style metadata or upstream URLs with credentials in here.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace mistral_proxy::store {

struct stored_response {
    std::string id;               // "resp_..." (1..255 bytes)
    std::int64_t created_at = 0;  // unix seconds: the Response's created_at, what max_age is measured from
    std::string response;         // the Response object JSON exactly as returned to the client
    std::string input_items;      // JSON array: this request's input items (each with "id"), for .../input_items
    std::string conversation;     // JSON array: every item of the chain up to and including this
                                  // response's output, for previous_response_id
};

// A read's answer. `error` is set (and `value` empty) when the storage itself
// failed: answer 500/503, not 404. No error and no value: unknown id (404).
template <class T>
struct store_result {
    std::optional<T> value;
    std::string error;
};

struct store_stats {
    std::uint64_t responses = 0;
    std::uint64_t bytes = 0;  // as counted for max_bytes: the three JSON texts and the indexed items
};

// How long and how much is kept (SPEC §2 responses.max_age, max_bytes).
struct retention {
    std::chrono::seconds max_age{std::chrono::hours(24 * 30)};
    std::uint64_t max_bytes = std::uint64_t{1} << 30U;
};
retention retention_of(const config::responses_settings& settings);

// Unix seconds now. Injected so that tests age rows without sleeping.
using unix_clock = std::function<std::int64_t()>;
std::int64_t system_unix_now();

class response_store {
public:
    virtual ~response_store() = default;

    // Stores (or replaces) one response and indexes, for find_item(), every
    // object with a string "id" in `input_items` and in the Response's
    // "output" array. Then applies the retention: rows older than max_age go,
    // and while the total is over max_bytes the oldest rows go. Returns the
    // error text on failure (nothing is stored then): a body that is not
    // JSON of the expected shape, a response larger than max_bytes on its
    // own, a storage error. Durable against a crash of the process once it
    // returns.
    virtual std::optional<std::string> put(const stored_response& response) = 0;

    // A stored response younger than max_age (an older one not yet pruned is
    // not returned).
    virtual store_result<stored_response> get(std::string_view id) = 0;

    // The JSON of an item (input or output) of a stored response, by the
    // item's "id": what an item_reference names. When two stored responses
    // hold an item with the same id, the most recently stored wins.
    virtual store_result<std::string> find_item(std::string_view item_id) = 0;

    // Deletes a response and its items. value: true deleted, false unknown id.
    virtual store_result<bool> remove(std::string_view id) = 0;

    virtual store_stats stats() = 0;
};

// An item a stored response holds, for find_item(): every object with a
// string "id" in `input_items` and in the Response's "output" array, its JSON
// minified. Shared by the embedded and the Redis store. Returns the error
// text when a body is not JSON of the expected shape.
struct stored_item {
    std::string id;
    std::string json;
};
std::optional<std::string> collect_stored_items(const stored_response& response, std::vector<stored_item>& out);

// The embedded store: one SQLite file (WAL mode). Creates the file and its
// folder when missing, and applies the retention once before returning.
// Returns null with `error` = "<file>: <what is wrong>" when the file cannot
// be opened or written, is not a SQLite database, or was written by a newer
// schema: `serve` refuses to start with that message. Several processes may
// open the same file (SQLite's locking; the byte total is kept in the file).
// `read_only` (explain): the file must exist with this build's schema; it is
// opened read-only and nothing in it or beside it is changed.
enum class store_access { read_write, read_only };
std::unique_ptr<response_store> open_embedded_store(const std::filesystem::path& file, const retention& keep,
                                                    std::string& error, unix_clock now = {},
                                                    store_access access = store_access::read_write);

// The embedded store's file name in state_dir.
inline constexpr std::string_view embedded_store_file = "responses.sqlite3";

}  // namespace mistral_proxy::store
