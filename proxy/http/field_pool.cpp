// Per-thread lists of freed blocks by size class (see field_pool.hpp).
#include "http/field_pool.hpp"

#include <array>
#include <new>

namespace mistral_proxy::http::field_pool {

namespace {

constexpr bool pooling = MISTRAL_PROXY_FIELD_POOL != 0;  // off under ASan (field_pool.hpp)

// Classes of 32 bytes up to 2 KB: a head's text block and its index
// (wire_fields.hpp) fit; a larger head's go to operator new.
constexpr std::size_t class_bytes = 32;
constexpr std::size_t class_count = 64;
// Enough for a few hundred heads in flight on a worker; past it blocks go
// back to the heap, so a burst does not pin its memory. A head takes two
// blocks (its text, about 1 KB, and its index, about 500 bytes), so what a
// thread keeps after a burst of some hundred requests in flight is under a
// megabyte, and bounded by 512 blocks a class.
constexpr std::size_t max_kept_per_class = 512;

struct free_block {
    free_block* next;
};

// True once this thread's lists are gone (its thread_local objects are
// destroyed at its exit): a head freed after that, by a static object's
// destructor say, goes back to the heap. Trivially destructible, so it is
// still readable then.
thread_local bool lists_gone = false;

struct lists {
    std::array<free_block*, class_count> heads{};
    std::array<std::size_t, class_count> counts{};
    lists() noexcept = default;
    lists(const lists&) = delete;
    lists& operator=(const lists&) = delete;
    ~lists() {
        lists_gone = true;
        for (free_block* head : heads) {
            while (head != nullptr) {
                free_block* next = head->next;
                ::operator delete(head);
                head = next;
            }
        }
    }
};

thread_local lists kept;

// 0 for 1..32 bytes, 1 for 33..64, ...; class_count and past: not kept.
std::size_t class_of(std::size_t bytes) noexcept { return bytes == 0 ? 0 : (bytes - 1) / class_bytes; }

}  // namespace

void* take(std::size_t bytes) {
    const std::size_t c = class_of(bytes);
    if (!pooling || c >= class_count || lists_gone) {
        return ::operator new(bytes);
    }
    lists& l = kept;
    if (free_block* block = l.heads[c]) {
        l.heads[c] = block->next;
        --l.counts[c];
        return block;
    }
    // The whole class's size, so that any request of the class can reuse it.
    return ::operator new((c + 1) * class_bytes);
}

void give(void* block, std::size_t bytes) noexcept {
    const std::size_t c = class_of(bytes);
    if (pooling && c < class_count && !lists_gone) {
        lists& l = kept;
        if (l.counts[c] < max_kept_per_class) {
            auto* b = static_cast<free_block*>(block);
            b->next = l.heads[c];
            l.heads[c] = b;
            ++l.counts[c];
            return;
        }
    }
    ::operator delete(block);
}

std::size_t kept_on_this_thread() noexcept {
    std::size_t total = 0;
    for (const std::size_t count : kept.counts) {
        total += count;
    }
    return total;
}

}  // namespace mistral_proxy::http::field_pool
