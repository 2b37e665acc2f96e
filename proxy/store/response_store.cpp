// The embedded responses store: one SQLite file in WAL mode with retention by
// age and bytes (see response_store.hpp). Long because the schema, the
// prepared statements, the retention and the checkpoint thread belong together.
#include "store/response_store.hpp"

#include <simdjson.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace mistral_proxy::store {

namespace {

// Schema version in PRAGMA user_version; a file of a newer version is refused.
constexpr int schema_version = 1;
// Rows deleted at most by one put() for age (the rest go with the next puts;
// get() never returns them meanwhile), and rows read per step of the byte pruning.
constexpr int age_batch = 256;
constexpr int bytes_batch = 64;
// A writer waits this long for another process's write lock before failing.
constexpr int busy_timeout_ms = 5000;

// WAL: a put() is one append to the -wal file, readers never block the writer.
// synchronous=NORMAL: a commit write()s its frames into the WAL without fsync.
// Once put() returns, the row is in the kernel's page cache, which outlives the
// process: a kill -9 (or a crash) of the proxy loses nothing, and the next open
// replays the WAL. Only an OS crash or power loss may lose the commits since
// the last checkpoint (which fsyncs) — the trade SQLite documents for WAL +
// NORMAL, and what keeps put() at tens of microseconds instead of an fsync
// (milliseconds) per response. The database itself is never corrupted.
constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS responses(
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses(created_at);
CREATE TABLE IF NOT EXISTS items(
    id TEXT NOT NULL,
    response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
    json TEXT NOT NULL,
    PRIMARY KEY(id, response_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id);
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(k, v) VALUES('bytes', 0);
-- The byte total lives in the file, kept by triggers: exact for every process
-- sharing the file, and read in one row instead of a SUM over the table.
CREATE TRIGGER IF NOT EXISTS responses_bytes_in AFTER INSERT ON responses
BEGIN UPDATE meta SET v = v + NEW.bytes WHERE k = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS responses_bytes_out AFTER DELETE ON responses
BEGIN UPDATE meta SET v = v - OLD.bytes WHERE k = 'bytes'; END;
)sql";

struct db_close {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct statement_finalize {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using database = std::unique_ptr<sqlite3, db_close>;
using statement = std::unique_ptr<sqlite3_stmt, statement_finalize>;

// Leaves a kept statement reset and unbound, whatever path the call takes.
class use {
public:
    explicit use(const statement& s) : s_(s.get()) {}
    ~use() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    use(const use&) = delete;
    use& operator=(const use&) = delete;
    sqlite3_stmt* get() const noexcept { return s_; }

private:
    sqlite3_stmt* s_;
};

int bind_text(sqlite3_stmt* s, int index, std::string_view text) {
    // SQLITE_STATIC: the caller's text outlives the statement's use.
    return sqlite3_bind_text64(s, index, text.data(), static_cast<sqlite3_uint64>(text.size()), SQLITE_STATIC,
                               SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* s, int index) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, index));
    const int size = sqlite3_column_bytes(s, index);
    return text == nullptr ? std::string() : std::string(text, static_cast<std::size_t>(size));
}

// Collects every object with a string "id" from a JSON array: `text` itself,
// or (response) the "output" array of the object `text`. Error text or nullopt.
std::optional<std::string> collect_items(std::string_view text, bool response, std::vector<stored_item>& out) {
    // The DOM parser validates every byte (On-Demand would not) and copies
    // the text to padded memory itself. One per thread, reused.
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) {
        return std::string(response ? "the response" : "input_items") + " is not valid JSON";
    }
    simdjson::dom::array array;
    if (response) {
        if (!root.is_object()) {
            return std::string("the response is not a JSON object");
        }
        simdjson::dom::element output;
        const auto found = root["output"].get(output);
        if (found == simdjson::NO_SUCH_FIELD) {
            return std::nullopt;
        }
        if (found != simdjson::SUCCESS || output.get_array().get(array) != simdjson::SUCCESS) {
            return std::string("the response's output is not an array");
        }
    } else if (root.get_array().get(array) != simdjson::SUCCESS) {
        return std::string("input_items is not a JSON array");
    }
    for (const simdjson::dom::element element : array) {
        simdjson::dom::object object;
        std::string_view id;
        if (element.get_object().get(object) != simdjson::SUCCESS ||
            object["id"].get_string().get(id) != simdjson::SUCCESS || id.empty()) {
            continue;
        }
        out.push_back({std::string(id), simdjson::minify(element)});
    }
    return std::nullopt;
}

// Checkpoints (copying the WAL into the database, with an fsync of each) run
// on a thread of the store's own, on a connection of its own, so that no put()
// ever waits for an fsync: the commit hook asks for one once the WAL holds
// checkpoint_pages. A passive checkpoint never blocks writers; under writes
// so steady that it never catches up, the WAL would grow without end, so past
// wal_cap_pages one truncating checkpoint waits for the writer (milliseconds,
// once per ~wal_cap_pages pages written).
class checkpointer {
public:
    static constexpr int checkpoint_pages = 1000;  // SQLite's own autocheckpoint figure (~4 MB)
    static constexpr int wal_cap_pages = 16000;    // ~64 MB

    explicit checkpointer(database db) : db_(std::move(db)), thread_([this] { run(); }) {}
    ~checkpointer() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    checkpointer(const checkpointer&) = delete;
    checkpointer& operator=(const checkpointer&) = delete;

    // sqlite3_wal_hook: runs on the writer's thread after each commit.
    static int on_commit(void* self, sqlite3* /*db*/, const char* /*schema*/, int wal_pages) {
        if (wal_pages >= checkpoint_pages) {
            auto* c = static_cast<checkpointer*>(self);
            {
                const std::lock_guard lock(c->mutex_);
                c->wanted_ = true;
            }
            c->wake_.notify_one();
        }
        return SQLITE_OK;
    }

    std::uint64_t checkpoints() const { return done_.load(std::memory_order_relaxed); }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return wanted_ || stopping_; });
            if (stopping_) {
                return;
            }
            wanted_ = false;
            lock.unlock();
            int wal_frames = 0;
            int copied = 0;
            sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
            if (wal_frames > wal_cap_pages) {
                sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
            }
            done_.fetch_add(1, std::memory_order_relaxed);
            lock.lock();
        }
    }

    database db_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool wanted_ = false;
    bool stopping_ = false;
    std::atomic<std::uint64_t> done_{0};
    std::thread thread_;  // last: starts once the rest is built
};

class embedded_store final : public response_store {
public:
    embedded_store(std::string path, database db, const retention& keep, unix_clock now)
        : path_(std::move(path)), db_(std::move(db)), keep_(keep), now_(std::move(now)) {}

    ~embedded_store() override {
        if (checkpointer_) {
            sqlite3_wal_hook(db_.get(), nullptr, nullptr);
            checkpointer_.reset();
        }
    }
    embedded_store(const embedded_store&) = delete;
    embedded_store& operator=(const embedded_store&) = delete;

    // Moves checkpoints off the writers' threads (see checkpointer).
    void start_checkpointer(database db) {
        checkpointer_ = std::make_unique<checkpointer>(std::move(db));
        // Replaces SQLite's autocheckpoint, which would run in put().
        sqlite3_wal_hook(db_.get(), &checkpointer::on_commit, checkpointer_.get());
    }

    // Prepares the kept statements; error text or nullopt.
    std::optional<std::string> prepare_all() {
        const std::pair<statement*, const char*> all[] = {
            {&begin_, "BEGIN IMMEDIATE"},
            {&commit_, "COMMIT"},
            {&rollback_, "ROLLBACK"},
            {&insert_response_,
             "INSERT INTO responses(id, created_at, bytes, response, input_items, conversation) "
             "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
            {&insert_item_, "INSERT OR IGNORE INTO items(id, response_id, json) VALUES(?1, ?2, ?3)"},
            {&delete_response_, "DELETE FROM responses WHERE id = ?1 RETURNING created_at"},
            {&select_response_,
             "SELECT created_at, response, input_items, conversation FROM responses "
             "WHERE id = ?1 AND created_at >= ?2"},
            {&select_item_,
             "SELECT i.json FROM items i JOIN responses r ON r.id = i.response_id "
             "WHERE i.id = ?1 AND r.created_at >= ?2 ORDER BY r.rowid DESC LIMIT 1"},
            {&select_total_, "SELECT v FROM meta WHERE k = 'bytes'"},
            {&select_count_, "SELECT count(*) FROM responses"},
            {&prune_age_,
             "DELETE FROM responses WHERE rowid IN "
             "(SELECT rowid FROM responses WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)"},
            {&select_oldest_, "SELECT id, bytes FROM responses ORDER BY created_at, rowid LIMIT ?1"},
        };
        for (const auto& [target, sql] : all) {
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
                return std::string("cannot prepare a statement: ") + sqlite3_errmsg(db_.get());
            }
            target->reset(s);
        }
        return std::nullopt;
    }

    // Applies the whole retention (every expired row, bytes under the bound).
    std::optional<std::string> prune_all() {
        const std::lock_guard lock(mutex_);
        if (auto e = begin_locked()) {
            return e;
        }
        const std::int64_t cutoff = cutoff_at(now_());
        for (;;) {
            int deleted = 0;
            if (auto e = prune_age_locked(cutoff, deleted)) {
                return rollback_locked(*e);
            }
            if (deleted < age_batch) {
                break;
            }
        }
        if (auto e = prune_bytes_locked()) {
            return rollback_locked(*e);
        }
        return commit_locked();
    }

    std::optional<std::string> put(const stored_response& r) override {
        if (r.id.empty() || r.id.size() > 255) {
            return std::string("a stored response id must be 1 to 255 bytes");
        }
        std::vector<stored_item> items;
        if (auto e = collect_stored_items(r, items)) {
            return e;
        }
        std::uint64_t bytes = r.id.size() + r.response.size() + r.input_items.size() + r.conversation.size();
        for (const auto& i : items) {
            bytes += i.id.size() + i.json.size();
        }
        if (bytes > keep_.max_bytes) {
            return "response " + r.id + " takes " + std::to_string(bytes) + " bytes, more than responses.max_bytes (" +
                   std::to_string(keep_.max_bytes) + ") on its own: not stored";
        }
        const std::int64_t now = now_();

        const std::lock_guard lock(mutex_);
        if (auto e = begin_locked()) {
            return e;
        }
        {
            // A response stored again replaces the old row (and its items).
            const use s(delete_response_);
            bind_text(s.get(), 1, r.id);
            int rc = 0;
            while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
            }
            if (rc != SQLITE_DONE) {
                return rollback_locked(error_text("cannot replace"));
            }
        }
        {
            const use s(insert_response_);
            bind_text(s.get(), 1, r.id);
            sqlite3_bind_int64(s.get(), 2, r.created_at);
            sqlite3_bind_int64(s.get(), 3, static_cast<sqlite3_int64>(bytes));
            bind_text(s.get(), 4, r.response);
            bind_text(s.get(), 5, r.input_items);
            bind_text(s.get(), 6, r.conversation);
            if (sqlite3_step(s.get()) != SQLITE_DONE) {
                return rollback_locked(error_text("cannot store"));
            }
        }
        for (const auto& i : items) {
            const use s(insert_item_);
            bind_text(s.get(), 1, i.id);
            bind_text(s.get(), 2, r.id);
            bind_text(s.get(), 3, i.json);
            if (sqlite3_step(s.get()) != SQLITE_DONE) {
                return rollback_locked(error_text("cannot store an item"));
            }
        }
        int deleted = 0;
        if (auto e = prune_age_locked(cutoff_at(now), deleted)) {
            return rollback_locked(*e);
        }
        if (auto e = prune_bytes_locked()) {
            return rollback_locked(*e);
        }
        return commit_locked();
    }

    store_result<stored_response> get(std::string_view id) override {
        const std::int64_t cutoff = cutoff_at(now_());
        store_result<stored_response> result;
        const std::lock_guard lock(mutex_);
        const use s(select_response_);
        bind_text(s.get(), 1, id);
        sqlite3_bind_int64(s.get(), 2, cutoff);
        const int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
            stored_response r;
            r.id = std::string(id);
            r.created_at = sqlite3_column_int64(s.get(), 0);
            r.response = column_text(s.get(), 1);
            r.input_items = column_text(s.get(), 2);
            r.conversation = column_text(s.get(), 3);
            result.value = std::move(r);
        } else if (rc != SQLITE_DONE) {
            result.error = error_text("cannot read");
        }
        return result;
    }

    store_result<std::string> find_item(std::string_view item_id) override {
        const std::int64_t cutoff = cutoff_at(now_());
        store_result<std::string> result;
        const std::lock_guard lock(mutex_);
        const use s(select_item_);
        bind_text(s.get(), 1, item_id);
        sqlite3_bind_int64(s.get(), 2, cutoff);
        const int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
            result.value = column_text(s.get(), 0);
        } else if (rc != SQLITE_DONE) {
            result.error = error_text("cannot read an item");
        }
        return result;
    }

    store_result<bool> remove(std::string_view id) override {
        const std::int64_t cutoff = cutoff_at(now_());
        store_result<bool> result;
        const std::lock_guard lock(mutex_);
        const use s(delete_response_);
        bind_text(s.get(), 1, id);
        bool found = false;
        int rc = 0;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
            // An expired row not pruned yet is gone now, but was unknown already.
            found = sqlite3_column_int64(s.get(), 0) >= cutoff;
        }
        if (rc != SQLITE_DONE) {
            result.error = error_text("cannot delete");
        } else {
            result.value = found;
        }
        return result;
    }

    store_stats stats() override {
        store_stats out;
        const std::lock_guard lock(mutex_);
        {
            const use s(select_count_);
            if (sqlite3_step(s.get()) == SQLITE_ROW) {
                out.responses = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
            }
        }
        {
            const use s(select_total_);
            if (sqlite3_step(s.get()) == SQLITE_ROW) {
                out.bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
            }
        }
        return out;
    }

private:
    std::int64_t cutoff_at(std::int64_t now) const { return now - static_cast<std::int64_t>(keep_.max_age.count()); }

    std::string error_text(const char* what) const { return path_ + ": " + what + ": " + sqlite3_errmsg(db_.get()); }

    std::optional<std::string> begin_locked() {
        const use s(begin_);
        if (sqlite3_step(s.get()) != SQLITE_DONE) {
            return error_text("cannot begin a transaction");
        }
        return std::nullopt;
    }

    std::optional<std::string> commit_locked() {
        const use s(commit_);
        if (sqlite3_step(s.get()) != SQLITE_DONE) {
            const std::string e = error_text("cannot commit");
            return rollback_locked(e);
        }
        return std::nullopt;
    }

    std::optional<std::string> rollback_locked(std::string error) {
        if (sqlite3_get_autocommit(db_.get()) == 0) {
            const use s(rollback_);
            sqlite3_step(s.get());
        }
        return error;
    }

    std::optional<std::string> prune_age_locked(std::int64_t cutoff, int& deleted) {
        const use s(prune_age_);
        sqlite3_bind_int64(s.get(), 1, cutoff);
        sqlite3_bind_int(s.get(), 2, age_batch);
        if (sqlite3_step(s.get()) != SQLITE_DONE) {
            return error_text("cannot delete expired responses");
        }
        deleted = sqlite3_changes(db_.get());
        return std::nullopt;
    }

    std::optional<std::uint64_t> total_locked() {
        const use s(select_total_);
        if (sqlite3_step(s.get()) != SQLITE_ROW) {
            return std::nullopt;
        }
        const sqlite3_int64 v = sqlite3_column_int64(s.get(), 0);
        return v < 0 ? 0 : static_cast<std::uint64_t>(v);
    }

    // While the total is over max_bytes, deletes the oldest rows (just enough).
    std::optional<std::string> prune_bytes_locked() {
        auto total = total_locked();
        if (!total) {
            return error_text("cannot read the byte total");
        }
        while (*total > keep_.max_bytes) {
            std::vector<std::pair<std::string, std::uint64_t>> victims;
            {
                const use s(select_oldest_);
                sqlite3_bind_int(s.get(), 1, bytes_batch);
                std::uint64_t freed = 0;
                int rc = SQLITE_DONE;
                while (*total - freed > keep_.max_bytes && (rc = sqlite3_step(s.get())) == SQLITE_ROW) {
                    const auto b = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 1));
                    victims.emplace_back(column_text(s.get(), 0), b);
                    freed += b;
                }
                if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                    return error_text("cannot find the oldest responses");
                }
            }
            if (victims.empty()) {
                break;  // nothing left to delete (a total out of step with the rows)
            }
            for (const auto& v : victims) {
                const use s(delete_response_);
                bind_text(s.get(), 1, v.first);
                int rc = 0;
                while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
                }
                if (rc != SQLITE_DONE) {
                    return error_text("cannot delete the oldest responses");
                }
            }
            total = total_locked();
            if (!total) {
                return error_text("cannot read the byte total");
            }
        }
        return std::nullopt;
    }

    std::string path_;
    std::mutex mutex_;  // one connection, one call at a time (each is microseconds)
    database db_;
    retention keep_;
    unix_clock now_;
    statement begin_, commit_, rollback_, insert_response_, insert_item_, delete_response_, select_response_,
        select_item_, select_total_, select_count_, prune_age_, select_oldest_;
    std::unique_ptr<checkpointer> checkpointer_;
};

// Runs one statement that returns at most one row; the first column as text.
std::optional<std::string> exec_one(sqlite3* db, const char* sql, std::string* first_column, std::string& error) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db);
        return std::nullopt;
    }
    const statement s(raw);
    int rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW && first_column != nullptr) {
        *first_column = column_text(raw, 0);
    }
    while (rc == SQLITE_ROW) {
        rc = sqlite3_step(raw);
    }
    if (rc != SQLITE_DONE) {
        error = sqlite3_errmsg(db);
        return std::nullopt;
    }
    return std::string();
}

}  // namespace

std::optional<std::string> collect_stored_items(const stored_response& response, std::vector<stored_item>& out) {
    if (auto e = collect_items(response.input_items, false, out)) {
        return e;
    }
    return collect_items(response.response, true, out);
}

retention retention_of(const config::responses_settings& settings) {
    retention r;
    r.max_age = std::chrono::duration_cast<std::chrono::seconds>(settings.max_age);
    r.max_bytes = settings.max_bytes;
    return r;
}

std::int64_t system_unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::unique_ptr<response_store> open_embedded_store(const std::filesystem::path& file, const retention& keep,
                                                    std::string& error, unix_clock now, store_access access) {
    const bool read_only = access == store_access::read_only;
    const std::string path = file.string();
    const auto fail = [&](const std::string& what) -> std::unique_ptr<response_store> {
        error = path + ": " + what;
        return nullptr;
    };
    if (file.has_parent_path() && !read_only) {
        std::error_code ec;
        std::filesystem::create_directories(file.parent_path(), ec);
        if (ec) {
            return fail("cannot create its folder: " + ec.message());
        }
    }
    sqlite3* raw = nullptr;
    // NOMUTEX: the store's own mutex serialises the connection.
    const int rc = sqlite3_open_v2(
        path.c_str(), &raw,
        (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, nullptr);
    database db(raw);
    if (rc != SQLITE_OK) {
        return fail(std::string("cannot open the responses store: ") +
                    (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, busy_timeout_ms);
    if (!read_only && sqlite3_db_readonly(raw, "main") == 1) {
        return fail("cannot write the responses store (read-only file or folder)");
    }
    std::string text;
    std::string why;
    // The first read of the file: a file that is not SQLite fails here ("file is not a database").
    if (!exec_one(raw, read_only ? "PRAGMA journal_mode" : "PRAGMA journal_mode=WAL", &text, why)) {
        return fail("not a usable responses store (" + why +
                    "); move it away or point state_dir elsewhere, it is never reset silently");
    }
    if (read_only) {
        // A reader changes nothing: no tables created, no retention applied
        // (its reads skip expired rows), no checkpoints.
        if (!exec_one(raw, "PRAGMA user_version", &text, why)) {
            return fail("cannot read the schema version: " + why);
        }
        if (std::atoi(text.c_str()) != schema_version) {
            return fail("schema " + text + " where this build reads " + std::to_string(schema_version) +
                        " (serve upgrades an older one)");
        }
        auto store =
            std::make_unique<embedded_store>(path, std::move(db), keep, now ? std::move(now) : system_unix_now);
        if (auto e = store->prepare_all()) {
            return fail(*e);
        }
        return store;
    }
    if (text != "wal") {
        return fail("cannot use WAL mode (journal_mode is '" + text + "'); put state_dir on a local file system");
    }
    if (!exec_one(raw, "PRAGMA synchronous=NORMAL", nullptr, why) ||
        !exec_one(raw, "PRAGMA foreign_keys=ON", nullptr, why)) {
        return fail("cannot set up the connection: " + why);
    }
    if (!exec_one(raw, "PRAGMA user_version", &text, why)) {
        return fail("cannot read the schema version: " + why);
    }
    if (const int version = std::atoi(text.c_str()); version > schema_version) {
        return fail("written by a newer mistral-proxy (schema " + std::to_string(version) + ", this build reads " +
                    std::to_string(schema_version) + ")");
    }
    char* message = nullptr;
    const std::string schema = std::string("BEGIN IMMEDIATE;") + schema_sql +
                               "PRAGMA user_version = " + std::to_string(schema_version) + "; COMMIT;";
    if (sqlite3_exec(raw, schema.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
        why = message != nullptr ? message : sqlite3_errmsg(raw);
        sqlite3_free(message);
        sqlite3_exec(raw, "ROLLBACK", nullptr, nullptr, nullptr);
        return fail("cannot create the tables: " + why);
    }
    auto store = std::make_unique<embedded_store>(path, std::move(db), keep, now ? std::move(now) : system_unix_now);
    if (auto e = store->prepare_all()) {
        return fail(*e);
    }
    if (auto e = store->prune_all()) {
        error = *e;  // already "<path>: ..."
        return nullptr;
    }
    sqlite3* checkpoint_raw = nullptr;
    const int checkpoint_rc =
        sqlite3_open_v2(path.c_str(), &checkpoint_raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    database checkpoint_db(checkpoint_raw);
    if (checkpoint_rc != SQLITE_OK) {
        return fail(std::string("cannot open a second connection for checkpoints: ") +
                    (checkpoint_raw != nullptr ? sqlite3_errmsg(checkpoint_raw) : sqlite3_errstr(checkpoint_rc)));
    }
    sqlite3_busy_timeout(checkpoint_raw, busy_timeout_ms);
    // A connection knows the file is in WAL mode (and checkpoints it) only once it has read it.
    if (!exec_one(checkpoint_raw, "PRAGMA journal_mode=WAL", &text, why) || text != "wal") {
        return fail("cannot open a second connection for checkpoints: " + why);
    }
    store->start_checkpointer(std::move(checkpoint_db));
    return store;
}

}  // namespace mistral_proxy::store
