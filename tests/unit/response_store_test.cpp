// The embedded responses store (store/response_store.hpp): SQLite in a
// temporary folder, the clock injected (no test sleeps).
#include <doctest/doctest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/response_store.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::store;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A fresh folder, removed with everything in it at the end of the test.
struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "mp-store-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~temp_dir() {
        std::error_code ignored;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ignored);
        fs::remove_all(path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    fs::path file() const { return path / std::string(embedded_store_file); }
};

// The injected clock: unix seconds the test sets by hand.
struct fake_clock {
    std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(1'760'000'000);
    unix_clock fn() const {
        return [n = now] { return n->load(); };
    }
    void advance(std::int64_t seconds) const { *now += seconds; }
};

std::unique_ptr<response_store> open_ok(const fs::path& file, const retention& keep, const fake_clock& clock) {
    std::string error;
    auto store = open_embedded_store(file, keep, error, clock.fn());
    INFO(error);
    REQUIRE(store);
    CHECK(error.empty());
    return store;
}

// A response as the Responses translation would store it: one output message
// item, one input message item; `padding` makes it as large as a test needs.
stored_response make(const std::string& n, std::int64_t created_at, std::size_t padding = 0) {
    stored_response r;
    r.id = "resp_" + n;
    r.created_at = created_at;
    r.response = R"({"id":"resp_)" + n + R"(","object":"response","created_at":)" + std::to_string(created_at) +
                 R"(,"status":"completed","output":[{"type":"message","id":"msg_)" + n +
                 R"(","role":"assistant","status":"completed","content":[{"type":"output_text","text":"answer )" + n +
                 std::string(padding, 'x') + R"(","annotations":[]}]}],"usage":{"input_tokens":3}})";
    r.input_items = R"([{"type":"message","id":"in_)" + n +
                    R"(","role":"user","content":[{"type":"input_text","text":"question )" + n + R"("}]}])";
    r.conversation = "[" + r.input_items.substr(1, r.input_items.size() - 2) + R"(,{"type":"message","id":"msg_)" + n +
                     R"(","role":"assistant","content":[{"type":"output_text","text":"answer )" + n + R"("}]}])";
    return r;
}

void put_ok(response_store& store, const stored_response& r) {
    const auto error = store.put(r);
    INFO(error.value_or(""));
    REQUIRE_FALSE(error);
}

bool has(response_store& store, const std::string& id) {
    const auto got = store.get(id);
    INFO(got.error);
    REQUIRE(got.error.empty());
    return got.value.has_value();
}

}  // namespace

TEST_CASE("response store: put, get, find_item, remove, unknown ids") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {}, clock);
    const auto r = make("1", *clock.now);
    put_ok(*store, r);

    const auto got = store->get("resp_1");
    REQUIRE(got.error.empty());
    REQUIRE(got.value);
    CHECK(got.value->id == r.id);
    CHECK(got.value->created_at == r.created_at);
    CHECK(got.value->response == r.response);  // byte for byte
    CHECK(got.value->input_items == r.input_items);
    CHECK(got.value->conversation == r.conversation);

    // Output and input items are found by their ids (item_reference).
    const auto output_item = store->find_item("msg_1");
    REQUIRE(output_item.value);
    CHECK(
        *output_item.value ==
        R"({"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"answer 1","annotations":[]}]})");
    const auto input_item = store->find_item("in_1");
    REQUIRE(input_item.value);
    CHECK(input_item.value->find(R"("text":"question 1")") != std::string::npos);

    CHECK_FALSE(store->get("resp_unknown").value);
    CHECK(store->get("resp_unknown").error.empty());
    CHECK_FALSE(store->find_item("msg_unknown").value);
    CHECK(store->find_item("msg_unknown").error.empty());
    CHECK(store->stats().responses == 1);
    CHECK(store->stats().bytes > r.response.size() + r.input_items.size() + r.conversation.size());

    const auto removed = store->remove("resp_1");
    REQUIRE(removed.value);
    CHECK(*removed.value);
    CHECK_FALSE(has(*store, "resp_1"));
    CHECK_FALSE(store->find_item("msg_1").value);  // its items went with it
    CHECK_FALSE(store->find_item("in_1").value);
    const auto again = store->remove("resp_1");
    REQUIRE(again.value);
    CHECK_FALSE(*again.value);
    CHECK(store->stats().responses == 0);
    CHECK(store->stats().bytes == 0);
}

TEST_CASE("response store: a response stored again replaces the old one; shared item ids") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {}, clock);
    put_ok(*store, make("1", *clock.now));
    const auto bytes_one = store->stats().bytes;
    auto changed = make("1", *clock.now, 10);
    put_ok(*store, changed);
    CHECK(store->get("resp_1").value->response == changed.response);
    CHECK(store->stats().responses == 1);
    CHECK(store->stats().bytes == bytes_one + 20);  // the padding, in the response and in its item

    // Two responses holding an item with one id: the newest wins, the other still has it.
    auto other = make("2", *clock.now);
    other.input_items = R"([{"type":"message","id":"msg_1","role":"user","content":"second copy"}])";
    put_ok(*store, other);
    CHECK(store->find_item("msg_1").value->find("second copy") != std::string::npos);
    REQUIRE(store->remove("resp_2").value);
    const auto left = store->find_item("msg_1");
    REQUIRE(left.value);
    CHECK(left.value->find("answer 1") != std::string::npos);
}

TEST_CASE("response store: what put refuses is not stored") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {24h, 4096}, clock);
    auto bad = make("1", *clock.now);
    bad.response = R"({"id":"resp_1","output":[)";
    CHECK(store->put(bad).value_or("") == "the response is not valid JSON");
    bad = make("1", *clock.now);
    bad.input_items = R"({"not":"an array"})";
    CHECK(store->put(bad).value_or("") == "input_items is not a JSON array");
    bad = make("1", *clock.now);
    bad.response = R"({"id":"resp_1","output":{}})";
    CHECK(store->put(bad).value_or("") == "the response's output is not an array");
    bad = make("1", *clock.now);
    bad.id.clear();
    CHECK(store->put(bad));
    const auto huge = store->put(make("big", *clock.now, 5000));
    REQUIRE(huge);
    CHECK(huge->find("more than responses.max_bytes (4096) on its own") != std::string::npos);
    CHECK(store->stats().responses == 0);
    CHECK(store->stats().bytes == 0);
}

TEST_CASE("response store: retention by age (injected clock)") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {std::chrono::seconds(3600), 1ULL << 30U}, clock);
    put_ok(*store, make("old", *clock.now));
    clock.advance(1800);
    put_ok(*store, make("mid", *clock.now));
    clock.advance(1801);  // "old" is now 3601 s old: gone for readers at once
    CHECK_FALSE(has(*store, "resp_old"));
    CHECK_FALSE(store->find_item("msg_old").value);
    CHECK(has(*store, "resp_mid"));
    REQUIRE(store->remove("resp_old").value);
    CHECK_FALSE(*store->remove("resp_old").value);    // expired counts as unknown
    put_ok(*store, make("old2", *clock.now - 7200));  // dated in the past: expired already
    put_ok(*store, make("new", *clock.now));          // each put deletes expired rows
    CHECK(store->stats().responses == 2);             // mid, new
    CHECK_FALSE(has(*store, "resp_old2"));

    // At open, every expired row goes.
    store.reset();
    clock.advance(3601);
    store = open_ok(dir.file(), {std::chrono::seconds(3600), 1ULL << 30U}, clock);
    CHECK(store->stats().responses == 0);
    CHECK(store->stats().bytes == 0);
}

TEST_CASE("response store: a read-only open (explain) reads and changes nothing") {
    const temp_dir dir;
    const fake_clock clock;
    const retention keep{std::chrono::seconds(3600), 1ULL << 30U};
    {
        auto writer = open_ok(dir.file(), keep, clock);
        put_ok(*writer, make("old", *clock.now));
        clock.advance(1800);
        put_ok(*writer, make("mid", *clock.now));
    }
    clock.advance(1801);  // "old" has expired, and no writer has pruned it yet
    const auto size_before = fs::file_size(dir.file());
    std::string error;
    auto reader = open_embedded_store(dir.file(), keep, error, clock.fn(), store_access::read_only);
    REQUIRE_MESSAGE(reader, error);
    CHECK(has(*reader, "resp_mid"));
    CHECK(reader->find_item("msg_mid").value);
    CHECK_FALSE(has(*reader, "resp_old"));          // expired for a reader too
    CHECK(reader->stats().responses == 2);          // but still in the file: not pruned
    CHECK(reader->put(make("new", *clock.now)).has_value());  // writes are refused
    reader.reset();
    CHECK(fs::file_size(dir.file()) == size_before);

    SUBCASE("a missing file is an error, not a new store") {
        CHECK_FALSE(open_embedded_store(dir.path / "none.sqlite3", keep, error, clock.fn(), store_access::read_only));
        CHECK_FALSE(fs::exists(dir.path / "none.sqlite3"));
    }
}

TEST_CASE("response store: retention by bytes deletes the oldest first, just enough") {
    const temp_dir dir;
    const fake_clock clock;
    const auto one = make("0", *clock.now, 1000);
    std::uint64_t row_bytes = 0;
    {
        auto probe = open_ok(dir.path / "probe.sqlite3", {}, clock);
        put_ok(*probe, one);
        row_bytes = probe->stats().bytes;
    }
    REQUIRE(row_bytes > 1000);
    // Room for 3 such rows, not 4.
    const retention keep{24h, row_bytes * 3 + row_bytes / 2};
    auto store = open_ok(dir.file(), keep, clock);
    for (int i = 0; i < 3; ++i) {
        put_ok(*store, make(std::to_string(i), *clock.now + i, 1000));
    }
    CHECK(store->stats().responses == 3);
    put_ok(*store, make("3", *clock.now + 3, 1000));
    CHECK(store->stats().responses == 3);
    CHECK(store->stats().bytes <= keep.max_bytes);
    CHECK_FALSE(has(*store, "resp_0"));  // the oldest
    CHECK(has(*store, "resp_1"));
    CHECK(has(*store, "resp_3"));
    // A row stored out of order (older created_at) is the oldest then.
    put_ok(*store, make("early", *clock.now - 10, 1000));
    CHECK(store->stats().responses == 3);
    CHECK_FALSE(has(*store, "resp_early"));
    CHECK(has(*store, "resp_1"));

    // A smaller max_bytes at the next start prunes at open.
    store.reset();
    store = open_ok(dir.file(), {24h, row_bytes + row_bytes / 2}, clock);
    CHECK(store->stats().responses == 1);
    CHECK(has(*store, "resp_3"));  // the newest is kept
}

TEST_CASE("response store: rows survive close and reopen; two opens of one file see each other (WAL)") {
    const temp_dir dir;
    const fake_clock clock;
    {
        auto store = open_ok(dir.file(), {}, clock);
        put_ok(*store, make("1", *clock.now));
    }
    auto first = open_ok(dir.file(), {}, clock);
    CHECK(has(*first, "resp_1"));
    CHECK(first->find_item("msg_1").value);

    // Another proxy (or process) on the same state_dir while the first is open.
    auto second = open_ok(dir.file(), {}, clock);
    put_ok(*second, make("2", *clock.now));
    CHECK(has(*first, "resp_2"));
    put_ok(*first, make("3", *clock.now));
    CHECK(has(*second, "resp_3"));
    CHECK(second->stats().responses == 3);
    CHECK(first->stats().bytes == second->stats().bytes);  // one total, kept in the file
    REQUIRE(second->remove("resp_1").value);
    CHECK_FALSE(has(*first, "resp_1"));
}

TEST_CASE("response store: a corrupt, unwritable or newer file is a clear error at open") {
    const temp_dir dir;
    const fake_clock clock;
    std::string error;
    SUBCASE("not a database") {
        std::ofstream(dir.file()) << "this is not SQLite, it is the month ledger or anything else\n";
        CHECK_FALSE(open_embedded_store(dir.file(), {}, error, clock.fn()));
        CHECK(error.starts_with(dir.file().string() + ": not a usable responses store ("));
        CHECK(error.find("file is not a database") != std::string::npos);
        // Never reset silently.
        std::ifstream in(dir.file());
        std::string first_line;
        std::getline(in, first_line);
        CHECK(first_line.starts_with("this is not SQLite"));
    }
    SUBCASE("a folder where the file should be") {
        fs::create_directory(dir.file());
        CHECK_FALSE(open_embedded_store(dir.file(), {}, error, clock.fn()));
        CHECK(error.starts_with(dir.file().string() + ": "));
    }
    SUBCASE("read-only folder and file") {
        {
            auto store = open_ok(dir.file(), {}, clock);
            put_ok(*store, make("1", *clock.now));
        }
        fs::remove(dir.path / (std::string(embedded_store_file) + "-wal"));
        fs::remove(dir.path / (std::string(embedded_store_file) + "-shm"));
        fs::permissions(dir.file(), fs::perms::owner_read);
        fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
        if (::geteuid() != 0) {  // root writes anyway
            CHECK_FALSE(open_embedded_store(dir.file(), {}, error, clock.fn()));
            CHECK(error.starts_with(dir.file().string() + ": "));
        }
    }
    SUBCASE("a folder that cannot be created") {
        std::ofstream(dir.path / "plain") << "x";
        CHECK_FALSE(open_embedded_store(dir.path / "plain" / "responses.sqlite3", {}, error, clock.fn()));
        CHECK(error.find("cannot create its folder") != std::string::npos);
    }
    SUBCASE("a newer schema") {
        { auto store = open_ok(dir.file(), {}, clock); }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(dir.file().c_str(), &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "PRAGMA user_version = 9", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
        CHECK_FALSE(open_embedded_store(dir.file(), {}, error, clock.fn()));
        CHECK(error == dir.file().string() + ": written by a newer mistral-proxy (schema 9, this build reads 1)");
    }
}

TEST_CASE("response store: a completed put survives kill -9 of the process") {
    const temp_dir dir;
    const fake_clock clock;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child stores one response and dies without closing anything.
        std::string error;
        auto store = open_embedded_store(dir.file(), {}, error, clock.fn());
        if (!store || store->put(make("crash", *clock.now)).has_value()) {
            ::_exit(3);
        }
        ::raise(SIGKILL);
        ::_exit(4);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    auto store = open_ok(dir.file(), {}, clock);
    const auto got = store->get("resp_crash");
    REQUIRE(got.value);
    CHECK(got.value->response == make("crash", *clock.now).response);
    CHECK(store->find_item("msg_crash").value);
}

TEST_CASE("response store: one store from many threads") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {}, clock);
    constexpr int threads = 4;
    constexpr int per_thread = 50;
    std::atomic<int> failures{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                const std::string n = std::to_string(t) + "_" + std::to_string(i);
                if (store->put(make(n, *clock.now)) || !store->get("resp_" + n).value ||
                    !store->find_item("msg_" + n).value) {
                    ++failures;
                }
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    CHECK(failures.load() == 0);
    CHECK(store->stats().responses == threads * per_thread);
}

TEST_CASE("response store: checkpoints run off the writers' threads, and the WAL does not grow without end") {
    const temp_dir dir;
    const fake_clock clock;
    auto store = open_ok(dir.file(), {}, clock);
    const auto db_size = [&] { return fs::file_size(dir.file()); };
    const auto initial = db_size();
    // ~12 MB written: three checkpoints' worth (one every ~4 MB of WAL).
    for (int i = 0; i < 1500; ++i) {
        put_ok(*store, make(std::to_string(i), *clock.now, 4000));
    }
    // The checkpointer copies the WAL into the database on its own thread;
    // wait for it (bounded), without any put() having done it.
    for (int tries = 0; tries < 1000 && db_size() < initial + 4'000'000; ++tries) {
        std::this_thread::sleep_for(10ms);
    }
    CHECK(db_size() >= initial + 4'000'000);
    const fs::path wal = dir.path / (std::string(embedded_store_file) + "-wal");
    CHECK(fs::file_size(wal) < 80ULL << 20U);
    CHECK(has(*store, "resp_0"));
    CHECK(has(*store, "resp_1499"));
}
