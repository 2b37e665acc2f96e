// The month ledger: append, replay, compaction, torn tails, corrupt and foreign files.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "limits/estimate.hpp"
#include "limits/ledger.hpp"
#include "limits/limiter.hpp"
#include "limits/token_count.hpp"

using namespace mistral_proxy::limits;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace chr = std::chrono;

namespace {

const month_id march{2025, 3};
const month_id april{2025, 4};

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "mp-ledger-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string str() const { return path.string(); }
    fs::path file() const { return path / "month-ledger.log"; }
};

std::vector<char> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<char>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::unique_ptr<month_ledger> open_ok(const temp_dir& dir) {
    auto r = month_ledger::open(dir.str());
    INFO(r.error);
    REQUIRE(r.ledger);
    return std::move(r.ledger);
}

constexpr std::size_t header_size = 16;

// One record in the file's format (ledger.hpp), for forged files: any tokens,
// including what this version never writes.
std::vector<char> forged_record(const std::string& key, month_id m, std::uint64_t tokens) {
    std::vector<char> payload;
    payload.push_back(1);
    payload.push_back(static_cast<char>(m.year & 0xFF));
    payload.push_back(static_cast<char>(m.year >> 8));
    payload.push_back(static_cast<char>(m.month));
    payload.push_back(static_cast<char>(key.size()));
    payload.insert(payload.end(), key.begin(), key.end());
    for (unsigned shift = 0; shift < 64; shift += 8) {
        payload.push_back(static_cast<char>((tokens >> shift) & 0xFFU));
    }
    std::vector<char> out;
    const auto put_u32 = [&](std::uint32_t v) {
        for (unsigned shift = 0; shift < 32; shift += 8) {
            out.push_back(static_cast<char>((v >> shift) & 0xFFU));
        }
    };
    put_u32(static_cast<std::uint32_t>(payload.size()));
    put_u32(crc32(payload.data(), payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

}  // namespace

TEST_CASE("ledger: append and replay") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        CHECK(ledger->used("mistral", march) == 0);
        CHECK_FALSE(ledger->add("mistral", march, 100));
        CHECK_FALSE(ledger->add("mistral", march, 250));
        CHECK_FALSE(ledger->add("codestral", march, 7));
        CHECK_FALSE(ledger->add("mistral", april, 1));
        CHECK(ledger->used("mistral", march) == 350);
        CHECK(ledger->record_count() == 4);
    }
    auto again = open_ok(dir);
    CHECK(again->used("mistral", march) == 350);
    CHECK(again->used("codestral", march) == 7);
    CHECK(again->used("mistral", april) == 1);
    CHECK(again->used("nobody", march) == 0);
    CHECK(again->record_count() == 4);
}

TEST_CASE("ledger: state_dir is created, bad arguments refused") {
    temp_dir dir;
    const std::string nested = (dir.path / "a" / "b").string();
    auto r = month_ledger::open(nested);
    REQUIRE(r.ledger);
    CHECK(fs::exists(fs::path(nested) / "month-ledger.log"));
    CHECK(r.ledger->add("", march, 1) == std::errc::invalid_argument);
    CHECK(r.ledger->add(std::string(256, 'k'), march, 1) == std::errc::invalid_argument);
    CHECK(r.ledger->add("k", month_id{2025, 13}, 1) == std::errc::invalid_argument);
    CHECK_FALSE(r.ledger->add(std::string(255, 'k'), march, 1));
}

TEST_CASE("ledger: one process per state_dir") {
    temp_dir dir;
    auto first = open_ok(dir);
    const auto second = month_ledger::open(dir.str());
    CHECK_FALSE(second.ledger);
    CHECK(second.error.find("in use by another mistral-proxy process") != std::string::npos);
    first.reset();
    CHECK(month_ledger::open(dir.str()).ledger);
}

TEST_CASE("ledger: compaction keeps the totals") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        for (int i = 0; i < 50; ++i) {
            REQUIRE_FALSE(ledger->add("mistral", march, 10));
        }
        REQUIRE_FALSE(ledger->add("codestral", april, 5));
        const auto before = fs::file_size(dir.file());
        CHECK_FALSE(ledger->compact());
        CHECK(ledger->record_count() == 2);
        CHECK(fs::file_size(dir.file()) < before);
        CHECK(ledger->used("mistral", march) == 500);
        // Appends after a compaction go to the new file.
        CHECK_FALSE(ledger->add("mistral", march, 1));
        CHECK_FALSE(fs::exists(dir.file().string() + ".tmp"));
    }
    auto again = open_ok(dir);
    CHECK(again->used("mistral", march) == 501);
    CHECK(again->used("codestral", april) == 5);
    CHECK(again->record_count() == 3);
}

TEST_CASE("ledger: a long log is compacted at open") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        for (int i = 0; i < 300; ++i) {
            REQUIRE_FALSE(ledger->add("mistral", march, 1));
        }
    }
    auto again = open_ok(dir);
    CHECK(again->record_count() == 1);
    CHECK(again->used("mistral", march) == 300);
}

TEST_CASE("ledger: a torn last record is cut off, complete ones kept") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        REQUIRE_FALSE(ledger->add("mistral", march, 100));
        REQUIRE_FALSE(ledger->add("mistral", march, 200));
    }
    const std::vector<char> whole = read_bytes(dir.file());
    const std::size_t record = (whole.size() - header_size) / 2;
    // Every way a crash can tear the second append: any strict prefix of it,
    // and the full length with a damaged payload.
    std::vector<std::vector<char>> torn;
    for (std::size_t keep = 1; keep < record; ++keep) {
        torn.emplace_back(whole.begin(), whole.end() - static_cast<std::ptrdiff_t>(keep));
    }
    std::vector<char> flipped = whole;
    flipped.back() = static_cast<char>(flipped.back() ^ 0x01);
    torn.push_back(flipped);
    std::vector<char> zeroed = whole;
    std::fill(zeroed.end() - static_cast<std::ptrdiff_t>(record), zeroed.end(), '\0');
    torn.push_back(zeroed);

    for (const auto& bytes : torn) {
        CAPTURE(bytes.size());
        write_bytes(dir.file(), bytes);
        auto r = month_ledger::open(dir.str());
        REQUIRE(r.ledger);
        CHECK(r.ledger->used("mistral", march) == 100);
        CHECK(r.warning.find("cut off an incomplete last record") != std::string::npos);
        CHECK(fs::file_size(dir.file()) == header_size + record);
        // The next append lands right after the good records.
        CHECK_FALSE(r.ledger->add("mistral", march, 5));
        r.ledger.reset();
        auto again = open_ok(dir);
        CHECK(again->used("mistral", march) == 105);
    }
}

TEST_CASE("ledger: corruption before the tail, foreign and damaged files are errors") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        for (int i = 0; i < 20; ++i) {
            REQUIRE_FALSE(ledger->add("mistral", march, 10));
        }
    }
    const std::vector<char> good = read_bytes(dir.file());
    struct row {
        std::string name;
        std::vector<char> bytes;
        std::string error;
    };
    std::vector<row> rows;
    {
        std::vector<char> b = good;
        b[header_size + 10] = static_cast<char>(b[header_size + 10] ^ 0x40);  // first record's payload
        rows.push_back({"bad record in the middle", b, "corrupt record at byte 16"});
    }
    rows.push_back({"foreign file", std::vector<char>{'{', '"', 'a', '"', ':', '1', '}', '\n'}, "bad magic"});
    rows.push_back({"empty file", {}, "bad magic"});
    {
        std::vector<char> b = good;
        b[8] = 2;  // version 2, header crc now wrong
        rows.push_back({"damaged header", b, "header is corrupt"});
    }
    {
        std::vector<char> b = good;
        b[8] = 2;
        const std::uint32_t crc = crc32(b.data(), 12);
        for (int i = 0; i < 4; ++i) {
            b[static_cast<std::size_t>(12 + i)] = static_cast<char>((crc >> (8 * i)) & 0xFFU);
        }
        rows.push_back({"future version", b, "unsupported month ledger version 2"});
    }
    for (const auto& r : rows) {
        CAPTURE(r.name);
        write_bytes(dir.file(), r.bytes);
        const auto opened = month_ledger::open(dir.str());
        CHECK_FALSE(opened.ledger);
        CHECK(opened.error.find(r.error) != std::string::npos);
        CHECK(opened.error.find(dir.file().string()) == 0);
        // Never reset: the file is left as it was.
        CHECK(read_bytes(dir.file()) == r.bytes);
    }
}

TEST_CASE("limiter + ledger: the month survives a restart") {
    temp_dir dir;
    mistral_proxy::config::limits_settings settings;
    settings.buckets["mistral"] = {0, 0, 1000};
    const time_point t = time_point{chr::sys_days{chr::year{2025} / chr::March / 10}.time_since_epoch()};
    {
        auto ledger = open_ok(dir);
        limiter lim(settings, ledger.get());
        const auto a = lim.reserve("mistral_eu", t, 10);
        REQUIRE(a.granted);
        const auto s = lim.settle(*a.granted, t + 1s, 1200);
        CHECK_FALSE(s.ledger_error);
        CHECK(s.month == march);
        CHECK(ledger->used("mistral", march) == 1200);
    }
    auto ledger = open_ok(dir);
    limiter lim(settings, ledger.get());
    const auto refused = lim.reserve("mistral", t + 1min, 1);
    REQUIRE(refused.refused);
    CHECK(refused.refused->limit == limit_kind::tokens_per_month);
    CHECK(lim.month_used("mistral", t + 1min) == 1200);
    // Zero usage (the upstream refused) writes nothing.
    limiter other(mistral_proxy::config::limits_settings{}, ledger.get());
    const auto z = other.reserve("codestral", t, 5);
    other.settle(*z.granted, t, 0);
    CHECK(ledger->record_count() == 1);
}

TEST_CASE("ledger: a record out of range is refused at replay, every other one kept") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        REQUIRE_FALSE(ledger->add("mistral", march, 100));
    }
    // What an older version booked for a cut `max_tokens: 1e30` stream, then
    // more usage after it; and a record just in range.
    std::vector<char> bytes = read_bytes(dir.file());
    for (const auto& r : {forged_record("mistral", march, std::numeric_limits<std::uint64_t>::max()),
                          forged_record("mistral", march, 50), forged_record("codestral", march, max_token_count),
                          forged_record("mistral", april, max_token_count + 1), forged_record("mistral", april, 9)}) {
        bytes.insert(bytes.end(), r.begin(), r.end());
    }
    write_bytes(dir.file(), bytes);

    auto r = month_ledger::open(dir.str());
    INFO(r.error);
    REQUIRE(r.ledger);
    CHECK(r.ledger->used("mistral", march) == 150);
    CHECK(r.ledger->used("codestral", march) == max_token_count);
    CHECK(r.ledger->used("mistral", april) == 9);
    CHECK(r.warning.find("refused 2 record(s) out of range") != std::string::npos);
    CHECK(r.warning.find("18446744073709551615 tokens for 'mistral' in 2025-03") != std::string::npos);
    // Rewritten without them: one record per total, and no warning next time.
    CHECK(r.ledger->record_count() == 3);
    CHECK_FALSE(r.ledger->add("mistral", march, 1));
    r.ledger.reset();
    auto again = month_ledger::open(dir.str());
    REQUIRE(again.ledger);
    CHECK(again.warning.empty());
    CHECK(again.ledger->used("mistral", march) == 151);
    CHECK(again.ledger->used("mistral", april) == 9);
}

TEST_CASE("ledger: totals saturate, out-of-range amounts are not written") {
    temp_dir dir;
    {
        auto ledger = open_ok(dir);
        CHECK(ledger->add("mistral", march, max_token_count + 1) == std::errc::invalid_argument);
        CHECK(ledger->add("mistral", march, std::numeric_limits<std::uint64_t>::max()) == std::errc::invalid_argument);
        CHECK(ledger->record_count() == 0);
        CHECK_FALSE(ledger->add("mistral", march, max_token_count));
        CHECK_FALSE(ledger->add("mistral", march, max_token_count));
        CHECK(ledger->used("mistral", march) == max_token_count);
    }
    // Replayed, the two in-range records still sum to the cap, not past it.
    auto again = open_ok(dir);
    CHECK(again->used("mistral", march) == max_token_count);
    CHECK_FALSE(again->compact());
    CHECK(again->used("mistral", march) == max_token_count);
}

TEST_CASE("limiter + ledger: a cut max_tokens: 1e30 stream does not spend the month, restart included") {
    temp_dir dir;
    mistral_proxy::config::limits_settings settings;
    settings.buckets["mistral"] = {0, 0, 100000};
    const time_point t = time_point{chr::sys_days{chr::year{2025} / chr::March / 10}.time_since_epoch()};
    const token_estimate estimate = estimate_request(400, std::numeric_limits<std::uint64_t>::max());
    {
        auto ledger = open_ok(dir);
        limiter lim(settings, ledger.get());
        const auto cut = lim.reserve("mistral", t, estimate.tokens);
        REQUIRE(cut.granted);
        // The client read one event and hung up: no usage from Mistral.
        const std::uint64_t booked = tokens_to_book(std::nullopt, false, estimate.tokens, estimate.unreported);
        CHECK(booked == 100 + 512);
        CHECK_FALSE(lim.settle(*cut.granted, t + 1s, booked).ledger_error);
    }
    auto ledger = open_ok(dir);
    limiter lim(settings, ledger.get());
    CHECK(lim.month_used("mistral", t + 1min) == 612);
    CHECK(lim.reserve("mistral", t + 1min, 600).granted);
}
