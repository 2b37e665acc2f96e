// The month ledger: tokens used per key and calendar month, kept in state_dir
// so that a restart or a crash loses nothing (see ledger.hpp).
#include "limits/ledger.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "limits/token_count.hpp"

namespace mistral_proxy::limits {

namespace {

constexpr char magic[8] = {'M', 'P', 'L', 'E', 'D', 'G', 'E', 'R'};
constexpr std::uint32_t version = 1;
constexpr std::size_t header_bytes = 16;
constexpr std::size_t record_head_bytes = 8;
constexpr std::uint8_t kind_tokens = 1;
constexpr std::size_t min_payload = 1 + 2 + 1 + 1 + 1 + 8;  // key of 1 byte
constexpr std::size_t max_payload = month_ledger::max_record_bytes - record_head_bytes;
// More records than this above the number of totals triggers compaction at open.
constexpr std::size_t compact_slack = 256;

constexpr auto crc_table = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) {
            c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1U) : c >> 1U;
        }
        table[i] = c;
    }
    return table;
}();

void put_u16(std::vector<unsigned char>& out, std::uint16_t v) {
    out.push_back(static_cast<unsigned char>(v & 0xFFU));
    out.push_back(static_cast<unsigned char>(v >> 8U));
}

void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (unsigned shift = 0; shift < 32; shift += 8) {
        out.push_back(static_cast<unsigned char>((v >> shift) & 0xFFU));
    }
}

void put_u64(std::vector<unsigned char>& out, std::uint64_t v) {
    for (unsigned shift = 0; shift < 64; shift += 8) {
        out.push_back(static_cast<unsigned char>((v >> shift) & 0xFFU));
    }
}

std::uint64_t get_le(const unsigned char* p, unsigned bytes) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) {
        v |= static_cast<std::uint64_t>(p[i]) << (8U * i);
    }
    return v;
}

std::vector<unsigned char> header() {
    std::vector<unsigned char> out(std::begin(magic), std::end(magic));
    put_u32(out, version);
    put_u32(out, crc32(out.data(), out.size()));
    return out;
}

void append_record(std::vector<unsigned char>& out, std::string_view key, month_id m, std::uint64_t tokens) {
    std::vector<unsigned char> payload;
    payload.push_back(kind_tokens);
    put_u16(payload, static_cast<std::uint16_t>(m.year));
    payload.push_back(static_cast<unsigned char>(m.month));
    payload.push_back(static_cast<unsigned char>(key.size()));
    payload.insert(payload.end(), key.begin(), key.end());
    put_u64(payload, tokens);
    put_u32(out, static_cast<std::uint32_t>(payload.size()));
    put_u32(out, crc32(payload.data(), payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
}

struct parsed_record {
    std::string key;
    month_id month;
    std::uint64_t tokens = 0;
};

// A whole, valid record's payload, or nullopt.
std::optional<parsed_record> parse_payload(const unsigned char* p, std::size_t size, std::uint32_t crc) {
    if (size < min_payload || size > max_payload || crc32(p, size) != crc || p[0] != kind_tokens) {
        return std::nullopt;
    }
    const std::size_t key_size = p[4];
    if (size != min_payload - 1 + key_size || key_size == 0) {
        return std::nullopt;
    }
    parsed_record r;
    r.month.year = static_cast<int>(get_le(p + 1, 2));
    r.month.month = p[3];
    if (r.month.month < 1 || r.month.month > 12) {
        return std::nullopt;
    }
    r.key.assign(reinterpret_cast<const char*>(p + 5), key_size);
    r.tokens = get_le(p + 5 + key_size, 8);
    return r;
}

std::error_code last_error() { return {errno, std::generic_category()}; }

std::error_code write_all(int fd, const unsigned char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return last_error();
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return {};
}

std::error_code read_all(int fd, std::vector<unsigned char>& out) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return last_error();
    }
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return last_error();
        }
        if (n == 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    out.resize(done);
    return {};
}

std::error_code sync_dir(const std::string& dir) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return last_error();
    }
    std::error_code ec;
    if (::fsync(dfd) != 0) {
        ec = last_error();
    }
    ::close(dfd);
    return ec;
}

// Writes `bytes` to `path` through a synced temporary file renamed over it.
std::error_code write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return last_error();
    }
    std::error_code ec = write_all(fd, bytes.data(), bytes.size());
    if (!ec && ::fsync(fd) != 0) {
        ec = last_error();
    }
    ::close(fd);
    if (!ec && ::rename(tmp.c_str(), path.c_str()) != 0) {
        ec = last_error();
    }
    if (ec) {
        ::unlink(tmp.c_str());
        return ec;
    }
    return sync_dir(std::filesystem::path(path).parent_path().string());
}

}  // namespace

std::uint32_t crc32(const void* data, std::size_t size) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = 0xFFFFFFFFU;
    for (std::size_t i = 0; i < size; ++i) {
        c = crc_table[(c ^ p[i]) & 0xFFU] ^ (c >> 8U);
    }
    return c ^ 0xFFFFFFFFU;
}

month_ledger::month_ledger(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

month_ledger::~month_ledger() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

month_ledger::open_result month_ledger::open(const std::string& state_dir) {
    open_result result;
    std::error_code fs_error;
    std::filesystem::create_directories(state_dir, fs_error);
    if (fs_error) {
        result.error = state_dir + ": cannot create state_dir: " + fs_error.message();
        return result;
    }
    const std::string path = (std::filesystem::path(state_dir) / "month-ledger.log").string();
    const auto fail = [&](const std::string& what) {
        result.ledger.reset();
        result.error = path + ": " + what;
        return std::move(result);
    };

    if (::access(path.c_str(), F_OK) != 0) {
        if (const auto ec = write_file_atomically(path, header())) {
            return fail("cannot create the month ledger: " + ec.message());
        }
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        return fail("cannot open the month ledger: " + last_error().message());
    }
    result.ledger.reset(new month_ledger(path, fd));
    month_ledger& self = *result.ledger;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        return fail("the month ledger is in use by another mistral-proxy process (one state_dir per proxy)");
    }

    std::vector<unsigned char> bytes;
    if (const auto ec = read_all(fd, bytes)) {
        return fail("cannot read the month ledger: " + ec.message());
    }
    if (bytes.size() < header_bytes || std::memcmp(bytes.data(), magic, sizeof magic) != 0) {
        return fail("not a mistral-proxy month ledger (bad magic); move it away or point state_dir elsewhere");
    }
    if (crc32(bytes.data(), 12) != static_cast<std::uint32_t>(get_le(bytes.data() + 12, 4))) {
        return fail("the month ledger's header is corrupt");
    }
    if (const auto v = get_le(bytes.data() + 8, 4); v != version) {
        return fail("unsupported month ledger version " + std::to_string(v) + " (this build reads version " +
                    std::to_string(version) + ")");
    }

    std::size_t offset = header_bytes;
    std::size_t out_of_range = 0;
    std::string first_out_of_range;
    while (offset < bytes.size()) {
        const std::size_t left = bytes.size() - offset;
        std::optional<parsed_record> record;
        std::size_t record_size = 0;
        if (left >= record_head_bytes) {
            const auto length = static_cast<std::size_t>(get_le(bytes.data() + offset, 4));
            const auto crc = static_cast<std::uint32_t>(get_le(bytes.data() + offset + 4, 4));
            if (length <= left - record_head_bytes) {
                record = parse_payload(bytes.data() + offset + record_head_bytes, length, crc);
                record_size = record_head_bytes + length;
            }
        }
        if (!record) {
            if (left > max_record_bytes) {
                return fail("corrupt record at byte " + std::to_string(offset) +
                            " (not the last one); the ledger needs repair, it is never reset silently");
            }
            // The torn tail of an append a crash interrupted: cut it off.
            if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fsync(fd) != 0) {
                return fail("cannot cut off the torn last record: " + last_error().message());
            }
            result.warning = path + ": cut off an incomplete last record of " + std::to_string(left) +
                             " bytes at byte " + std::to_string(offset) + " (a write interrupted by a crash)";
            break;
        }
        if (record->tokens > max_token_count) {
            // Whole and checksummed, but no request can have used that much: the
            // saturated estimate an older version booked for `max_tokens: 1e30`
            // (2^64 - 1), which would lock the month for good. Not counted.
            if (out_of_range == 0) {
                first_out_of_range = "the first, " + std::to_string(record->tokens) + " tokens for '" + record->key +
                                     "' in " + to_string(record->month) + ", at byte " + std::to_string(offset);
            }
            ++out_of_range;
        } else {
            std::uint64_t& total = self.totals_[record->key][record->month];
            total = add_tokens(total, record->tokens);
        }
        ++self.records_;
        offset += record_size;
    }
    self.size_ = offset;
    if (out_of_range > 0) {
        const std::string what = path + ": refused " + std::to_string(out_of_range) + " record(s) out of range (over " +
                                 std::to_string(max_token_count) + " tokens; " + first_out_of_range + "): not counted";
        result.warning += (result.warning.empty() ? "" : "; ") + what;
    }

    std::size_t totals = 0;
    for (const auto& [key, months] : self.totals_) {
        totals += months.size();
    }
    if (self.records_ > totals + compact_slack) {
        const std::lock_guard lock(self.mutex_);
        if (const auto ec = self.compact_locked()) {
            return fail("cannot compact the month ledger: " + ec.message());
        }
    } else if (out_of_range > 0) {
        // Rewritten without them, so the warning is given once. Failing that,
        // they are refused again at the next start: nothing is lost.
        const std::lock_guard lock(self.mutex_);
        if (const auto ec = self.compact_locked()) {
            result.warning += "; could not rewrite the ledger without them: " + ec.message();
        } else {
            result.warning += "; the ledger was rewritten without them";
        }
    }
    return result;
}

std::uint64_t month_ledger::used(std::string_view key, month_id m) const {
    const std::lock_guard lock(mutex_);
    const auto k = totals_.find(key);
    if (k == totals_.end()) {
        return 0;
    }
    const auto it = k->second.find(m);
    return it == k->second.end() ? 0 : it->second;
}

std::error_code month_ledger::add(std::string_view key, month_id m, std::uint64_t tokens) {
    if (key.empty() || key.size() > 255 || m.month < 1 || m.month > 12 || m.year < 0 || m.year > 65535 ||
        tokens > max_token_count) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::vector<unsigned char> bytes;
    append_record(bytes, key, m, tokens);
    const std::lock_guard lock(mutex_);
    if (fd_ < 0) {
        return std::make_error_code(std::errc::bad_file_descriptor);
    }
    std::error_code ec = write_all(fd_, bytes.data(), bytes.size());
    if (!ec && ::fdatasync(fd_) != 0) {
        ec = last_error();
    }
    if (ec) {
        // Keep the log well-formed: a half-written record in the middle would
        // read as corruption at the next start.
        if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
        return ec;
    }
    size_ += bytes.size();
    ++records_;
    std::uint64_t& total = totals_[std::string(key)][m];
    total = add_tokens(total, tokens);
    return {};
}

std::error_code month_ledger::compact() {
    const std::lock_guard lock(mutex_);
    return compact_locked();
}

std::error_code month_ledger::compact_locked() {
    std::vector<unsigned char> bytes = header();
    std::size_t records = 0;
    for (const auto& [key, months] : totals_) {
        for (const auto& [month, tokens] : months) {
            append_record(bytes, key, month, tokens);
            ++records;
        }
    }
    if (const auto ec = write_file_atomically(path_, bytes)) {
        return ec;
    }
    // The lock and the descriptor follow the new file (the old inode is gone).
    const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        return last_error();
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const auto ec = last_error();
        ::close(fd);
        return ec;
    }
    ::close(fd_);
    fd_ = fd;
    size_ = bytes.size();
    records_ = records;
    return {};
}

std::size_t month_ledger::record_count() const {
    const std::lock_guard lock(mutex_);
    return records_;
}

}  // namespace mistral_proxy::limits
