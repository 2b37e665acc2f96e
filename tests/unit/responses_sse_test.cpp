#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "responses/sse.hpp"

using namespace mistral_proxy::responses;

namespace {

struct seen_event {
    std::string data;
    std::string type;
    std::string id;
    std::optional<std::uint64_t> retry;
    bool has_data = false;

    bool operator==(const seen_event&) const = default;
};

struct run_result {
    std::vector<seen_event> events;
    bool too_large = false;
};

seen_event copy(const sse_event& e) {
    return seen_event{std::string(e.data), std::string(e.type), std::string(e.id), e.retry_ms, e.has_data};
}

// Feeds `pieces` in order, drains after each, then finish(). Each piece is
// copied into its own buffer that dies after draining, as a relay's read buffer
// is reused: views that outlive their piece would show up as wrong data.
run_result run(const std::vector<std::string>& pieces, std::size_t max = default_max_sse_event_bytes) {
    run_result result;
    sse_splitter splitter(max);
    sse_event event;
    for (const std::string& piece : pieces) {
        std::string buffer = piece;
        splitter.feed(buffer);
        for (;;) {
            const sse_status status = splitter.next(event);
            if (status == sse_status::event) {
                result.events.push_back(copy(event));
                continue;
            }
            if (status == sse_status::too_large) {
                result.too_large = true;
                return result;
            }
            break;
        }
        buffer.assign(buffer.size(), '#');  // scribble: the splitter must have copied what it keeps
    }
    if (splitter.finish(event) == sse_status::event) {
        result.events.push_back(copy(event));
    }
    return result;
}

// A stream with each feature once: comments, CRLF, CR, LF, multi-line data,
// event/id/retry fields, a field without a colon, an unknown field, blank-line runs.
const std::string sample =
    ": keep-alive comment\n"
    "\n"
    "data: {\"a\":1}\n"
    "\n"
    "event: ping\r\n"
    "id: 7\r\n"
    "data: first\r\n"
    "data:second\r\n"
    "\r\n"
    "data: cr only\r"
    "retry: 1500\r"
    "\r"
    "\n\n\n"
    "data\n"
    "unknown: field\n"
    "\n"
    "data: : not a comment\n"
    ":comment between\n"
    "data:   spaced\n"
    "\n"
    "data: [DONE]\n"
    "\n";

const std::vector<seen_event> sample_events = {
    {R"({"a":1})", "", "", std::nullopt, true},
    {"first\nsecond", "ping", "7", std::nullopt, true},
    {"cr only", "", "", 1500, true},
    {"", "", "", std::nullopt, true},
    {": not a comment\n  spaced", "", "", std::nullopt, true},
    {"[DONE]", "", "", std::nullopt, true},
};

}  // namespace

TEST_CASE("sse_splitter: the sample stream in one piece") {
    const auto result = run({sample});
    CHECK_FALSE(result.too_large);
    CHECK(result.events == sample_events);
}

TEST_CASE("sse_splitter: the sample stream split at every byte position") {
    for (std::size_t cut = 0; cut <= sample.size(); ++cut) {
        CAPTURE(cut);
        const auto result = run({sample.substr(0, cut), sample.substr(cut)});
        CHECK_FALSE(result.too_large);
        CHECK(result.events == sample_events);
    }
}

TEST_CASE("sse_splitter: the sample stream split at every pair of positions") {
    // Three pieces: covers an event spread over three reads and CRLF across cuts.
    for (std::size_t a = 0; a <= sample.size(); a += 3) {
        for (std::size_t b = a; b <= sample.size(); b += 5) {
            CAPTURE(a);
            CAPTURE(b);
            const auto result = run({sample.substr(0, a), sample.substr(a, b - a), sample.substr(b)});
            REQUIRE(result.events == sample_events);
        }
    }
}

TEST_CASE("sse_splitter: one byte per piece") {
    std::vector<std::string> pieces;
    for (const char c : sample) {
        pieces.emplace_back(1, c);
    }
    CHECK(run(pieces).events == sample_events);
}

TEST_CASE("sse_splitter: line end styles") {
    struct row {
        std::string_view name;
        std::string stream;
        std::vector<std::string> data;
    };
    const row rows[] = {
        {"LF", "data: a\ndata: b\n\ndata: c\n\n", {"a\nb", "c"}},
        {"CRLF", "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", {"a\nb", "c"}},
        {"CR", "data: a\rdata: b\r\rdata: c\r\r", {"a\nb", "c"}},
        {"mixed", "data: a\r\ndata: b\n\rdata: c\r\n\n", {"a\nb", "c"}},
        {"CRLF then LF blank", "data: a\r\n\ndata: c\n\r\n", {"a", "c"}},
        {"leading blank lines", "\r\n\r\n\ndata: x\n\n", {"x"}},
        {"comments only", ":a\n:b\n\n:c\n\n", {}},
    };
    for (const row& r : rows) {
        CAPTURE(r.name);
        for (std::size_t cut = 0; cut <= r.stream.size(); ++cut) {
            CAPTURE(cut);
            const auto result = run({r.stream.substr(0, cut), r.stream.substr(cut)});
            std::vector<std::string> data;
            for (const auto& e : result.events) {
                data.push_back(e.data);
            }
            CHECK(data == r.data);
        }
    }
}

TEST_CASE("sse_splitter: an event whole inside a piece is a view into the piece") {
    const std::string piece = "data: {\"x\":1}\n\ndata: two\n\n";
    sse_splitter splitter;
    splitter.feed(piece);
    sse_event event;
    REQUIRE(splitter.next(event) == sse_status::event);
    CHECK(event.data.data() >= piece.data());
    CHECK(event.data.data() < piece.data() + piece.size());
    REQUIRE(splitter.next(event) == sse_status::event);
    CHECK(event.data == "two");
    CHECK(splitter.next(event) == sse_status::need_more);
    CHECK(splitter.pending_bytes() == 0);
}

TEST_CASE("sse_splitter: huge events are bounded") {
    const std::string big = "data: " + std::string(5000, 'x') + "\n\n";
    SUBCASE("one piece over the limit") {
        const auto result = run({"data: ok\n\n" + big}, 4096);
        CHECK(result.too_large);
        REQUIRE(result.events.size() == 1);
        CHECK(result.events[0].data == "ok");
    }
    SUBCASE("growing over many pieces") {
        std::vector<std::string> pieces;
        for (std::size_t i = 0; i < big.size(); i += 100) {
            pieces.push_back(big.substr(i, 100));
        }
        CHECK(run(pieces, 4096).too_large);
    }
    SUBCASE("exactly at the limit passes") {
        const std::string fits = "data: " + std::string(4096 - 8, 'y') + "\n\n";
        REQUIRE(fits.size() == 4096);
        const auto result = run({fits.substr(0, 1000), fits.substr(1000)}, 4096);
        CHECK_FALSE(result.too_large);
        REQUIRE(result.events.size() == 1);
        CHECK(result.events[0].data.size() == 4096 - 8);
    }
    SUBCASE("the splitter stays failed") {
        sse_splitter splitter(16);
        sse_event event;
        splitter.feed(big);
        CHECK(splitter.next(event) == sse_status::too_large);
        splitter.feed("data: x\n\n");
        CHECK(splitter.next(event) == sse_status::too_large);
        CHECK(splitter.finish(event) == sse_status::too_large);
    }
}

TEST_CASE("sse_splitter: garbage") {
    SUBCASE("an HTML page: lines without known fields dispatch nothing") {
        const auto result = run({"<html>\n<body>502 Bad Gateway</body>\n\n</html>\n\n"});
        CHECK_FALSE(result.too_large);
        CHECK(result.events.empty());
    }
    SUBCASE("binary bytes without a blank line grow until too_large") {
        std::string noise;
        for (int i = 0; i < 10000; ++i) {
            noise += static_cast<char>('A' + i % 26);
        }
        CHECK(run({noise}, 4096).too_large);
    }
    SUBCASE("NUL bytes and high bytes in data pass as they are") {
        const std::string stream = std::string("data: a\0b\xff\n\n", 12);
        const auto result = run({stream});
        REQUIRE(result.events.size() == 1);
        CHECK(result.events[0].data == std::string("a\0b\xff", 4));
    }
    SUBCASE("an id with NUL is ignored") {
        const auto result = run({std::string("id: a\0b\ndata: x\n\n", 17)});
        REQUIRE(result.events.size() == 1);
        CHECK(result.events[0].id.empty());
    }
    SUBCASE("retry that is not all digits is ignored") {
        const auto result = run({"retry: 12a\ndata: x\n\n"});
        REQUIRE(result.events.size() == 1);
        CHECK_FALSE(result.events[0].retry.has_value());
    }
}

TEST_CASE("sse_splitter: the end of the body") {
    SUBCASE("a last event without its blank line is flushed") {
        const auto result = run({"data: a\n\ndata: [DONE]\n"});
        REQUIRE(result.events.size() == 2);
        CHECK(result.events[1].data == "[DONE]");
    }
    SUBCASE("without any line end") {
        const auto result = run({"data: [DO", "NE]"});
        REQUIRE(result.events.size() == 1);
        CHECK(result.events[0].data == "[DONE]");
    }
    SUBCASE("a clean end has nothing pending") {
        sse_splitter splitter;
        sse_event event;
        splitter.feed("data: a\n\n");
        REQUIRE(splitter.next(event) == sse_status::event);
        CHECK(splitter.next(event) == sse_status::need_more);
        CHECK(splitter.finish(event) == sse_status::need_more);
    }
    SUBCASE("a pending comment is not an event") {
        sse_splitter splitter;
        sse_event event;
        splitter.feed(": tail");
        CHECK(splitter.next(event) == sse_status::need_more);
        CHECK(splitter.pending_bytes() == 6);
        CHECK(splitter.finish(event) == sse_status::need_more);
    }
}
