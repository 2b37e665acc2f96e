// The one translation unit that compiles Asio, Asio SSL and Beast. Every other
// file includes their headers with *_SEPARATE_COMPILATION defined, so a change
// elsewhere never recompiles this (the costliest TU in the project).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>

#include <boost/version.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

// Boost's assertions, in builds that keep them (no NDEBUG: the sanitizer and
// fuzz builds; CMake defines BOOST_ENABLE_ASSERT_DEBUG_HANDLER for every target
// that links Beast, so Release builds compile them out as before). Every failed
// assertion aborts, as assert() would, except one that is known to be wrong:
//
// Beast 1.81's chunked-body parser asserts `n >= 5` when it comes back to a
// final chunk ("0\r\n") whose end it had not seen yet. That holds only if the
// bytes after the first look arrive five or more at a time; a client (or an
// upstream) that sends "0\r\n" and then a single byte breaks it. The code
// after the assertion is right for any n: it looks for the end of the trailer
// again and answers need_more (fuzz_http splits bodies down to single bytes,
// and its corpus keeps the input that found this: tests/fuzz/corpus/http/
// final-chunk-in-pieces). So in the builds that check assertions, a client's
// byte-by-byte body must not abort the proxy on that line alone.
#if defined(BOOST_ENABLE_ASSERT_DEBUG_HANDLER) && !defined(NDEBUG)
namespace boost {

namespace {
bool known_false_assertion(std::string_view expr, std::string_view file) {
#if BOOST_VERSION == 108100
    return expr == "n >= 5" && file.ends_with("boost/beast/http/impl/basic_parser.ipp");
#else
    (void)expr;
    (void)file;
    return false;  // another Beast: check again before excusing anything
#endif
}
}  // namespace

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file, long line) {
    if (known_false_assertion(expr, file)) {
        return;
    }
    std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed%s%s\n", file, line, function, expr, msg ? ": " : "",
                 msg ? msg : "");
    std::abort();
}

void assertion_failed(char const* expr, char const* function, char const* file, long line) {
    assertion_failed_msg(expr, nullptr, function, file, line);
}

}  // namespace boost
#endif
