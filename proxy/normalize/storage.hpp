#pragma once
// Where the normalizer writes (internal to proxy/normalize/, included by
// engine.hpp): pieces of output (slices of the body or of the arena), the
// output arena itself, and the member stack each object level rebuilds on.
// Internal linkage like the rest of the engine: read by normalizer.cpp's
// translation unit only. No Asio, no Beast.
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace mistral_proxy::normalize::detail {
namespace {

namespace od = simdjson::ondemand;

// A parser keeps its buffers between requests; buffers that grew for a huge body
// are released afterwards instead of pinning that memory per thread.
constexpr std::size_t max_retained_capacity = 1024 * 1024;
constexpr std::size_t initial_capacity = 64 * 1024;

// A run of output bytes: a slice of the client's body, or of the scratch arena
// (offsets, since the arena may grow while pieces are alive).
// One 64-bit word (begin: 32 bits, end: 31, in_arena: 1), so that a piece is
// always stored with one 8-byte store and read with one 8-byte load. As a
// struct of two size_t and a bool it was written field by field inside a
// capture and then copied by its caller with a 16-byte load: a failed
// store-to-load forward at nearly every member (about 5% of the 10 KB body's
// time, bench/README.md). Offsets stay below max_piece_offset: the input is
// bounded by it too (engine::run refuses a longer body) and out_buffer throws
// arena_too_large rather than grow past it (normalize_request answers 413).
constexpr std::size_t max_piece_offset = (std::size_t{1} << 31) - 1;
struct arena_too_large {};
class piece {
public:
    constexpr piece() noexcept = default;
    constexpr piece(std::size_t from, std::size_t to, bool in_arena) noexcept
        : bits_(static_cast<std::uint64_t>(from) | (static_cast<std::uint64_t>(to) << 32) |
                (static_cast<std::uint64_t>(in_arena) << 63)) {}
    constexpr std::size_t from() const noexcept { return static_cast<std::uint32_t>(bits_); }
    constexpr std::size_t to() const noexcept { return static_cast<std::size_t>((bits_ >> 32) & max_piece_offset); }
    constexpr bool in_arena() const noexcept { return (bits_ >> 63) != 0; }
    constexpr std::size_t size() const noexcept { return to() - from(); }
    constexpr bool empty() const noexcept { return size() == 0; }
    // Without its first and last byte (a string's quotes, an array's brackets).
    constexpr piece inner() const noexcept { return piece(from() + 1, to() - 1, in_arena()); }
    // Without its last byte (an object's closing brace).
    constexpr piece without_last() const noexcept { return piece(from(), to() - 1, in_arena()); }

private:
    std::uint64_t bits_ = 0;
};

// Keys of messages and tool calls that the rules look at, classified once when
// read so that later checks compare small integers, not strings.
enum class known_key : std::uint8_t {
    other,
    role,
    content,
    tool_calls,
    tool_call_id,
    prefix,
    name,
    id,
    type,
    function,
    arguments,
};


// One member of an object being rebuilt. Duplicate keys: the last value wins,
// in the first one's position.
struct member {
    std::string_view key;  // unescaped; for written keys, the name to write
    piece value;
    od::json_type type = od::json_type::null;
    bool keep = true;
    known_key tag = known_key::other;  // set where the level classifies its keys
};

// The rewrite's output. std::string's push_back/append are compiled out of line
// (libstdc++ instantiates them once, extern) and keep a terminator up to date:
// the rewrite writes a few bytes per call, and those calls were ~8% of a request.
// This one checks capacity inline and then copies.
class out_buffer {
public:
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    const char* data() const noexcept { return data_.get(); }
    void clear() noexcept { size_ = 0; }
    void reserve(std::size_t wanted) {
        if (wanted > capacity_) {
            grow(wanted);
        }
    }
    // Frees the memory, keeping `keep` bytes of capacity.
    void shrink(std::size_t keep) {
        data_.reset();
        size_ = 0;
        capacity_ = 0;
        grow(keep);
    }
    [[gnu::always_inline]] void push_back(char c) {
        if (size_ == capacity_) {
            grow(size_ + 1);
        }
        data_[size_++] = c;
    }
    [[gnu::always_inline]] void append(const char* text, std::size_t length) {
        if (capacity_ - size_ < length) {
            grow(size_ + length);
        }
        char* to = data_.get() + size_;
        if (length <= 16) {
            copy_short(to, text, length);
        } else {
            std::memcpy(to, text, length);
        }
        size_ += length;
    }
    [[gnu::always_inline]] void append(std::string_view text) { append(text.data(), text.size()); }

private:
    // Most appends are short (a key, punctuation, a short value): two
    // overlapping moves inline, instead of a call to memcpy whose call and
    // dispatch on the length cost more than such a copy.
    [[gnu::always_inline]] static void copy_short(char* to, const char* from, std::size_t length) noexcept {
        if (length >= 8) {
            copy_ends<std::uint64_t>(to, from, length);
        } else if (length >= 4) {
            copy_ends<std::uint32_t>(to, from, length);
        } else {
            for (std::size_t i = 0; i < length; ++i) {
                to[i] = from[i];
            }
        }
    }
    // The first and the last sizeof(Word) bytes (they overlap when length is
    // under twice that): length bytes in all, for sizeof(Word) <= length.
    template <typename Word>
    [[gnu::always_inline]] static void copy_ends(char* to, const char* from, std::size_t length) noexcept {
        Word head;
        Word tail;
        std::memcpy(&head, from, sizeof head);
        std::memcpy(&tail, from + length - sizeof tail, sizeof tail);
        std::memcpy(to, &head, sizeof head);
        std::memcpy(to + length - sizeof tail, &tail, sizeof tail);
    }
    [[gnu::noinline]] void grow(std::size_t wanted) {
        if (wanted > max_piece_offset) {
            throw arena_too_large{};  // its offsets would not fit a piece
        }
        const std::size_t capacity = std::min(std::max(wanted, capacity_ * 2), max_piece_offset);
        std::unique_ptr<char[]> data(new char[capacity]);
        if (size_ != 0) {
            std::memcpy(data.get(), data_.get(), size_);
        }
        data_ = std::move(data);
        capacity_ = capacity;
    }
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

// The members of the objects being rebuilt: a stack, each object level uses its
// top. (std::vector's push_back was compiled out of line, ~3% of a request.)
class member_stack {
public:
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    member& operator[](std::size_t i) noexcept { return data_[i]; }
    const member& operator[](std::size_t i) const noexcept { return data_[i]; }
    void clear() noexcept { size_ = 0; }
    // Pops down to `size` (never grows).
    void resize(std::size_t size) noexcept { size_ = std::min(size, size_); }
    void reserve(std::size_t wanted) {
        if (wanted > capacity_) {
            grow(wanted);
        }
    }
    void shrink(std::size_t keep) {
        data_.reset();
        size_ = 0;
        capacity_ = 0;
        grow(keep);
    }
    // A new top member, its index. Filled field by field in its slot: a
    // member built on the stack and copied whole was read back with 16-byte
    // loads right after its separate stores (a failed store-to-load forward
    // each time: ~12% of the 10 KB body's time, bench/README.md).
    [[gnu::always_inline]] std::size_t push(std::string_view key, piece value, od::json_type type) {
        if (size_ == capacity_) {
            grow(size_ + 1);
        }
        member& slot = data_[size_];
        slot.key = key;
        slot.value = value;  // one word (see piece)
        slot.type = type;
        slot.keep = true;
        slot.tag = known_key::other;
        return size_++;
    }

private:
    [[gnu::noinline]] void grow(std::size_t wanted) {
        const std::size_t capacity = std::max(wanted, capacity_ * 2);
        std::unique_ptr<member[]> data(new member[capacity]);
        std::copy_n(data_.get(), size_, data.get());
        data_ = std::move(data);
        capacity_ = capacity;
    }
    std::unique_ptr<member[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace
}  // namespace mistral_proxy::normalize::detail
