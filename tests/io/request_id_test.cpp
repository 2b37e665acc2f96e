// Request ids (x-request-id, access log): 32 lowercase hex digits, never the
// same twice on a thread, different across threads.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>

#include "http/http_util.hpp"

using mistral_proxy::http::new_request_id;

namespace {
bool is_hex32(const std::string& id) {
    if (id.size() != 32) {
        return false;
    }
    for (const char c : id) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}
}  // namespace

TEST_CASE("request ids are 32 hex digits, unique on a thread and across threads") {
    std::set<std::string> seen;
    std::string id;
    for (int i = 0; i < 20000; ++i) {
        new_request_id(id);  // into a reused string, as the session does
        REQUIRE(is_hex32(id));
        REQUIRE(seen.insert(id).second);
    }
    std::set<std::string> other;
    std::thread([&] {
        for (int i = 0; i < 1000; ++i) {
            other.insert(new_request_id());
        }
    }).join();
    CHECK(other.size() == 1000);
    for (const auto& o : other) {
        CHECK(is_hex32(o));
        CHECK(seen.count(o) == 0);
    }
    // Every digit position takes every value: no position is stuck.
    std::set<char> first_digits, last_digits;
    for (const auto& s : seen) {
        first_digits.insert(s.front());
        last_digits.insert(s.back());
    }
    CHECK(first_digits.size() == 16);
    CHECK(last_digits.size() == 16);
}
