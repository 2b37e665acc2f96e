#pragma once
// Memory for the heads the proxy parses (the client's request, the
// upstream's answer: wire_fields.hpp), two blocks a head. With dozens of
// requests in flight on a worker, glibc's per-thread cache (7 blocks a size)
// overflows and most malloc and free calls take its slow paths. This
// allocator keeps freed blocks in per-thread lists by size class instead:
// taking one back is a few instructions. Light: no Asio, no Beast.
#include <cstddef>
#include <type_traits>

// Under AddressSanitizer every block goes to the heap and back, so that a
// header used after its message is gone is still caught (GCC names ASan with
// __SANITIZE_ADDRESS__, clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define MISTRAL_PROXY_FIELD_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MISTRAL_PROXY_FIELD_POOL 0
#endif
#endif
#ifndef MISTRAL_PROXY_FIELD_POOL
#define MISTRAL_PROXY_FIELD_POOL 1
#endif

namespace mistral_proxy::http {

namespace field_pool {
// A block of at least `bytes` (aligned for any type, as operator new's).
void* take(std::size_t bytes);
// A block take() gave for the same `bytes`, from this thread or another.
void give(void* block, std::size_t bytes) noexcept;
// Blocks kept on this thread now, by all size classes (for tests).
std::size_t kept_on_this_thread() noexcept;
}  // namespace field_pool

// Stateless: every instance shares the thread's lists, so parsers and
// messages are built as with std::allocator.
template <class T>
class field_pool_allocator {
public:
    using value_type = T;
    using is_always_equal = std::true_type;

    field_pool_allocator() noexcept = default;
    template <class U>
    field_pool_allocator(const field_pool_allocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)

    T* allocate(std::size_t n) { return static_cast<T*>(field_pool::take(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { field_pool::give(p, n * sizeof(T)); }

    template <class U>
    bool operator==(const field_pool_allocator<U>&) const noexcept {
        return true;
    }
};

}  // namespace mistral_proxy::http
