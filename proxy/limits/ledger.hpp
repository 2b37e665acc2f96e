#pragma once
// The month ledger: tokens used per bucket key per calendar month (UTC), kept
// in `state_dir` so the monthly budget survives restarts and kill -9 (SPEC §8).
//
// File `<state_dir>/month-ledger.log`, little-endian:
//   header  "MPLEDGER" | u32 version (1) | u32 crc32(first 12 bytes)
//   record  u32 payload length | u32 crc32(payload) | payload
//   payload u8 kind (1 = tokens added) | u16 year | u8 month | u8 key length | key | u64 tokens
// Append-only: add() writes one record and fdatasync()s it before returning,
// so a completed request's usage is durable once add() returns. Replay sums
// the records. Compaction rewrites one record per (key, month) into a new file
// (fsync) and renames it over the old one, so a crash leaves the old or the
// new file, both whole.
//
// Damage policy (decided, never a silent reset):
//   - no file: a new, empty ledger is created;
//   - a file without the magic, with another version or a bad header: open()
//     fails ("not a mistral-proxy month ledger" / "unsupported version");
//   - a bad or incomplete record in the last 276 bytes (one record at most,
//     the only one a crash can tear, since every append is synced before the
//     next): a torn tail. It is cut off (ftruncate + fsync) and reported in
//     `warning`; every complete record before it is kept;
//   - a bad record followed by more than one record's worth of bytes:
//     corruption, open() fails with the offset;
//   - a whole record whose tokens are out of range (over max_token_count,
//     2^53; e.g. the 2^64 - 1 an older version booked for `max_tokens: 1e30`):
//     refused, i.e. not counted, and reported in `warning`; every other record
//     is kept, and the file is rewritten (compacted) without it.
// Totals saturate at max_token_count (token_count.hpp), never wrap.
// One process at a time: the file is locked with flock(); a second open()
// (another proxy on the same state_dir) fails. POSIX I/O only, no Asio.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include "limits/clock.hpp"

namespace mistral_proxy::limits {

class month_ledger {
public:
    struct open_result {
        std::unique_ptr<month_ledger> ledger;  // null on error
        std::string error;                     // "<path>: <what is wrong>" when ledger is null
        std::string warning;                   // set when a torn tail was cut off or records refused (log it)
    };

    // Creates state_dir (and parents) when missing, then opens or creates the
    // ledger in it and replays it. Compacts when the log holds many more
    // records than (key, month) totals.
    static open_result open(const std::string& state_dir);

    month_ledger(const month_ledger&) = delete;
    month_ledger& operator=(const month_ledger&) = delete;
    ~month_ledger();

    // Tokens booked to `key` in month `m` (0 when none). Thread-safe.
    std::uint64_t used(std::string_view key, month_id m) const;

    // Appends and syncs one record. `key` is 1..255 bytes, `tokens` at most
    // max_token_count (else invalid_argument, nothing written). On a failed write the
    // file is cut back to its last good size, so the log stays well-formed.
    // Thread-safe (writes are serialised).
    std::error_code add(std::string_view key, month_id m, std::uint64_t tokens);

    // Rewrites the log as one record per (key, month). Thread-safe.
    std::error_code compact();

    std::size_t record_count() const;  // records in the file now
    const std::string& path() const noexcept { return path_; }

    static constexpr std::size_t max_record_bytes = 8 + 1 + 2 + 1 + 1 + 255 + 8;

private:
    month_ledger(std::string path, int fd);
    std::error_code compact_locked();

    std::string path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;  // bytes of whole records (where the next one goes)
    std::size_t records_ = 0;
    mutable std::mutex mutex_;
    std::map<std::string, std::map<month_id, std::uint64_t>, std::less<>> totals_;
};

// CRC-32 (IEEE 802.3, as zlib's crc32), exposed for tests that forge files.
std::uint32_t crc32(const void* data, std::size_t size) noexcept;

}  // namespace mistral_proxy::limits
