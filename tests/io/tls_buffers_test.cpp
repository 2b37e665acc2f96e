// Memory of TLS streams through the proxy's Asio build: with Boost 1.81,
// third_party/asio-short-read's ssl/detail/stream_core.hpp allocates each
// stream's two 17 KB record buffers without writing zeros over them, so a
// stream costs resident memory only for the pages its records reach. The
// process's resident size is read from /proc/self/statm around making many
// streams that carry no record yet.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstddef>
#include <fstream>
#include <memory>
#include <vector>

#include <boost/version.hpp>

#include "http/asio_fwd.hpp"

#if BOOST_VERSION == 108100
namespace {

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t total_pages = 0;
    std::size_t resident_pages = 0;
    statm >> total_pages >> resident_pages;
    return resident_pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST_CASE("a TLS stream's record buffers are not resident before a record reaches them") {
    namespace asio = boost::asio;
    namespace ssl = boost::asio::ssl;
    asio::io_context context(1);
    ssl::context tls(ssl::context::tls_client);
    constexpr std::size_t streams = 200;
    constexpr std::size_t record_buffer = 17 * 1024;  // two of them a stream
    std::vector<std::unique_ptr<ssl::stream<asio::ip::tcp::socket>>> made;
    made.reserve(streams);
    const std::size_t before = resident_bytes();
    for (std::size_t i = 0; i < streams; ++i) {
        made.push_back(std::make_unique<ssl::stream<asio::ip::tcp::socket>>(context, tls));
    }
    const std::size_t grown = resident_bytes() - before;
    // Zero-filled, the two buffers alone add 200 x 34 KB (6.8 MB), on top of
    // what a stream costs anyway: its SSL object, and the first page of each
    // 17 KB block (the allocator writes its header there), about 26 KB.
    CHECK(grown < streams * 2 * record_buffer);
    MESSAGE("resident memory grew by " << grown / 1024 << " KB for " << streams << " TLS streams");
}
#endif  // BOOST_VERSION == 108100
