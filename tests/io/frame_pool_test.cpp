// Memory of coroutine frames through the proxy's Asio build: with Boost 1.81,
// third_party/asio-short-read's thread_info_base.hpp keeps freed frames per
// thread by size class, so concurrent requests whose frames are over 1 KB
// stop allocating once each size has been seen. Allocations are counted by
// wrapping the C library's aligned_alloc in this executable (Asio's
// aligned_new calls it by name); the coroutines run on one io_context, each
// step a post, never a clock.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <vector>

#include <boost/version.hpp>

#include "http/asio_fwd.hpp"

namespace {
std::atomic<int> aligned_allocations{0};
}

// The C library's aligned_alloc, counted; the real one found past this
// executable's definition.
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) {
    using function = void* (*)(std::size_t, std::size_t);
    static const function real = reinterpret_cast<function>(::dlsym(RTLD_NEXT, "aligned_alloc"));
    aligned_allocations.fetch_add(1, std::memory_order_relaxed);
    return real(alignment, size);
}

#if BOOST_VERSION == 108100
namespace {

namespace asio = boost::asio;
using mistral_proxy::io_executor;
using asio_thread = asio::detail::thread_info_base;

// A frame of about `Bytes`: the array lives across the suspension.
template <std::size_t Bytes>
asio::awaitable<std::size_t, io_executor> step(std::size_t seed) {
    std::array<unsigned char, Bytes> state{};
    state[seed % Bytes] = static_cast<unsigned char>(seed);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable_t<io_executor>{});
    std::size_t sum = 0;
    for (const unsigned char byte : state) {
        sum += byte;
    }
    co_return sum;
}

// A request's nest: frames of several sizes, two of them over Asio's 1020-byte slots.
asio::awaitable<void, io_executor> request(std::size_t seed, std::size_t& total) {
    total += co_await step<1800>(seed);
    total += co_await step<2400>(seed + 1);
    total += co_await step<300>(seed + 2);
    total += co_await step<700>(seed + 3);
}

// Runs rounds of `concurrency` requests at once, each round to completion,
// all in one io_context::run() (a thread's lists live as long as its run()).
// The aligned_alloc calls of each round.
asio::awaitable<void, io_executor> rounds(std::size_t concurrency, std::vector<int>& allocations) {
    const auto executor = co_await asio::this_coro::executor;
    for (std::size_t round = 0; round < 6; ++round) {
        const int before = aligned_allocations.load();
        std::size_t total = 0;
        std::size_t done = 0;
        for (std::size_t i = 0; i < concurrency; ++i) {
            asio::co_spawn(executor, request(i, total), [&done](std::exception_ptr) { ++done; });
        }
        while (done < concurrency) {  // the requests' steps run in between
            co_await asio::post(executor, asio::use_awaitable_t<io_executor>{});
        }
        allocations.push_back(aligned_allocations.load() - before);
        std::size_t expected = 0;  // each step's sum: its one byte set to its seed
        for (std::size_t i = 0; i < concurrency; ++i) {
            expected += (i % 256) + ((i + 1) % 256) + ((i + 2) % 256) + ((i + 3) % 256);
        }
        CHECK(total == expected);
    }
}

// Runs `body` with the thread information of an io_context's thread (whose
// lists the pool keeps), as a handler the context runs.
template <class Body>
void on_io_thread(Body body) {
    asio::io_context context(1);
    asio::post(context, [&body] {
        asio_thread* const self = asio::detail::thread_context::top_of_thread_call_stack();
        REQUIRE(self != nullptr);
        body(self);
    });
}

}  // namespace

TEST_CASE("32 concurrent requests with frames over 1 KB reuse their frames: no allocation after the first round") {
    asio::io_context context(1);
    std::vector<int> allocations;
    asio::co_spawn(io_executor(context.get_executor()), rounds(32, allocations), asio::detached);
    context.run();
    REQUIRE(allocations.size() == 6);
    CHECK(allocations[0] > 0);  // the first round allocates each frame once
    for (std::size_t round = 1; round < allocations.size(); ++round) {
        CHECK(allocations[round] == 0);
    }
}

TEST_CASE("a freed block is handed out again for a size of its class; over 4 KB or off an io_context's thread, none is kept") {
    on_io_thread([](asio_thread* self) {
        void* const first = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 1500);
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, first, 1500);
        const int before = aligned_allocations.load();
        // 1480 bytes plus the class byte fall in the same 64-byte class as 1500.
        void* const again = asio_thread::allocate(asio_thread::default_tag(), self, 1480);
        CHECK(again == first);
        CHECK(aligned_allocations.load() == before);
        // Another class: a new block.
        void* const bigger = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 2000);
        CHECK(bigger != first);
        CHECK(aligned_allocations.load() == before + 1);
        asio_thread::deallocate(asio_thread::default_tag(), self, again, 1480);
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, bigger, 2000);
        // Over 4 KB: never pooled, allocated every time.
        void* const huge = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 5000);
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, huge, 5000);
        const int before_huge = aligned_allocations.load();
        void* const huge_again = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 5000);
        CHECK(aligned_allocations.load() == before_huge + 1);
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, huge_again, 5000);
    });
    // Without a thread of an io_context there is no list: a block is freed at once.
    const int before = aligned_allocations.load();
    void* const outside = asio_thread::allocate(asio_thread::awaitable_frame_tag(), nullptr, 1500);
    asio_thread::deallocate(asio_thread::awaitable_frame_tag(), nullptr, outside, 1500);
    void* const outside_again = asio_thread::allocate(asio_thread::awaitable_frame_tag(), nullptr, 1500);
    asio_thread::deallocate(asio_thread::awaitable_frame_tag(), nullptr, outside_again, 1500);
    CHECK(aligned_allocations.load() == before + 2);
}

TEST_CASE("release_cached gives back every block a thread's lists hold") {
    on_io_thread([](asio_thread* self) {
        void* const block = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 900);
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, block, 900);
        asio_thread::release_cached(self);
        const int before = aligned_allocations.load();
        void* const again = asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, 900);
        CHECK(aligned_allocations.load() == before + 1);  // the list was empty
        asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, again, 900);
    });
}

namespace {

// Takes `count` blocks of `size` bytes, gives them back, takes them again:
// how many of the second round were new allocations.
int allocations_on_reuse(asio_thread* self, std::size_t size, int count) {
    std::vector<void*> blocks;
    const auto take = [&] {
        for (int i = 0; i < count; ++i) {
            blocks.push_back(asio_thread::allocate(asio_thread::awaitable_frame_tag(), self, size));
        }
    };
    const auto give_back = [&] {
        for (void* block : blocks) {
            asio_thread::deallocate(asio_thread::awaitable_frame_tag(), self, block, size);
        }
        blocks.clear();
    };
    take();
    give_back();
    const int before = aligned_allocations.load();
    take();
    const int allocated = aligned_allocations.load() - before;
    give_back();
    return allocated;
}

}  // namespace

TEST_CASE("a list keeps at most its cap: frees past it go back to the C library") {
    on_io_thread([](asio_thread* self) {
        // 4000-byte blocks (class 63, 4032 bytes): 128 KB holds 32 of them.
        CHECK(allocations_on_reuse(self, 4000, 40) == 40 - 32);
        // 100-byte blocks (class 2): 64 of them at most, far under 128 KB.
        CHECK(allocations_on_reuse(self, 100, 80) == 80 - 64);
    });
}
#endif  // BOOST_VERSION == 108100
