// http::field_pool: freed blocks come back for requests of their size class,
// on the thread that freed them; blocks past a class are the heap's.
#include <doctest/doctest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "http/field_pool.hpp"

using namespace mistral_proxy::http;

// Under AddressSanitizer the pool keeps nothing (field_pool.hpp): the
// counting cases have nothing to count there.
#define POOL_SKIP doctest::skip(MISTRAL_PROXY_FIELD_POOL == 0)

TEST_CASE("field_pool: a freed block is taken again by a request of its class" * POOL_SKIP) {
    const std::size_t before = field_pool::kept_on_this_thread();
    void* a = field_pool::take(70);  // class 65..96
    std::memset(a, 0xAB, 96);        // the whole class is usable
    field_pool::give(a, 70);
    CHECK(field_pool::kept_on_this_thread() == before + 1);
    void* b = field_pool::take(90);
    CHECK(b == a);
    CHECK(field_pool::kept_on_this_thread() == before);
    void* c = field_pool::take(40);  // another class: not that block
    CHECK(c != a);
    field_pool::give(b, 90);
    field_pool::give(c, 40);
}

TEST_CASE("field_pool: a head's text block (up to 2 KB) is kept" * POOL_SKIP) {
    const std::size_t before = field_pool::kept_on_this_thread();
    void* text = field_pool::take(1024);
    std::memset(text, 2, 1024);
    field_pool::give(text, 1024);
    CHECK(field_pool::kept_on_this_thread() == before + 1);
    void* larger = field_pool::take(2048);  // the class of 2017..2048 bytes, not 993..1024
    CHECK(larger != text);
    void* again = field_pool::take(1000);
    CHECK(again == text);
    field_pool::give(larger, 2048);
    field_pool::give(again, 1000);
}

TEST_CASE("field_pool: blocks over 2 KB are not kept") {
    const std::size_t before = field_pool::kept_on_this_thread();
    void* big = field_pool::take(4000);
    std::memset(big, 1, 4000);
    field_pool::give(big, 4000);
    CHECK(field_pool::kept_on_this_thread() == before);
}

TEST_CASE("field_pool: a class keeps at most 512 blocks; a block freed on another thread is kept there" * POOL_SKIP) {
    std::vector<void*> blocks;
    for (int i = 0; i < 600; ++i) {
        blocks.push_back(field_pool::take(200));
    }
    std::size_t kept_by_other = 0;
    std::thread other([&] {
        for (void* block : blocks) {
            field_pool::give(block, 200);
        }
        kept_by_other = field_pool::kept_on_this_thread();
    });
    other.join();
    CHECK(kept_by_other == 512);
}

TEST_CASE("field_pool_allocator: a vector grows and shrinks through the pool") {
    std::vector<int, field_pool_allocator<int>> numbers;
    for (int i = 0; i < 1000; ++i) {
        numbers.push_back(i);
    }
    CHECK(numbers[999] == 999);
    CHECK(field_pool_allocator<int>() == field_pool_allocator<char>());
}
