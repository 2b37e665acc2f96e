// The multipart/form-data parser (proxy/multipart/parser.hpp): the boundary
// from a Content-Type, bodies fed whole, at every split point and byte by
// byte (the same parts every time), and malformed bodies refused with their
// message.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "multipart/parser.hpp"

namespace {

using namespace mistral_proxy;

// Records the parts: data pieces joined, so that any split gives the same record.
struct recorder final : multipart::handler {
    struct part {
        multipart::part_headers headers;
        std::string data;
        bool ended = false;
    };
    std::vector<part> parts;
    std::size_t pieces = 0;

    void on_part_begin(const multipart::part_headers& headers) override { parts.push_back({headers, {}, false}); }
    void on_part_data(std::string_view data) override {
        REQUIRE(!parts.empty());
        CHECK(!data.empty());
        CHECK(!parts.back().ended);
        parts.back().data.append(data);
        ++pieces;
    }
    void on_part_end() override {
        REQUIRE(!parts.empty());
        parts.back().ended = true;
    }

    std::string summary() const {
        std::string out;
        for (const auto& p : parts) {
            out += "[" + p.headers.name + "|" + (p.headers.filename ? "file=" + *p.headers.filename : "-") + "|" +
                   p.headers.content_type + "|" + p.data + (p.ended ? "]" : "...");
        }
        return out;
    }
};

struct outcome {
    bool ok;
    std::string summary;
    std::string error;
};

outcome parse_whole(std::string_view boundary, std::string_view body) {
    recorder r;
    std::string error;
    const bool ok = multipart::parse_all(boundary, body, r, error);
    return {ok, r.summary(), error};
}

outcome parse_split(std::string_view boundary, std::string_view body, std::size_t at) {
    recorder r;
    multipart::parser p(boundary);
    const bool ok = p.feed(body.substr(0, at), r) && p.feed(body.substr(at), r) && p.finish();
    return {ok, r.summary(), p.error()};
}

outcome parse_bytes(std::string_view boundary, std::string_view body) {
    recorder r;
    multipart::parser p(boundary);
    bool ok = true;
    for (std::size_t i = 0; ok && i < body.size(); ++i) {
        ok = p.feed(body.substr(i, 1), r);
    }
    ok = ok && p.finish();
    return {ok, r.summary(), p.error()};
}

// Whole, at every split point and byte by byte: one outcome.
outcome parse_every_way(std::string_view boundary, std::string_view body) {
    const auto whole = parse_whole(boundary, body);
    for (std::size_t at = 0; at <= body.size(); ++at) {
        const auto split = parse_split(boundary, body, at);
        INFO("split at ", at);
        CHECK(split.ok == whole.ok);
        CHECK(split.summary == whole.summary);
        CHECK(split.error == whole.error);
    }
    const auto bytes = parse_bytes(boundary, body);
    CHECK(bytes.ok == whole.ok);
    CHECK(bytes.summary == whole.summary);
    CHECK(bytes.error == whole.error);
    return whole;
}

// What the openai SDK sends (undici's FormData), a file with CRLFs and
// near-delimiters in it.
const std::string sdk_body =
    "------formdata-undici-0123456789\r\n"
    "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
    "whisper-1\r\n"
    "------formdata-undici-0123456789\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a b.mp3\"\r\n"
    "Content-Type: audio/mpeg\r\n\r\n"
    "ID3\r\n\r\n--\r\n------formdata-undici-012345678\r\n-----formdata-undici-0123456789\r\rX\r\n"
    "------formdata-undici-0123456789\r\n"
    "Content-Disposition: form-data; name=\"timestamp_granularities[]\"\r\n\r\n"
    "segment\r\n"
    "------formdata-undici-0123456789--\r\n";

}  // namespace

TEST_CASE("multipart: the boundary of a Content-Type") {
    CHECK(multipart::boundary_of("multipart/form-data; boundary=abc").boundary == "abc");
    CHECK(multipart::boundary_of("Multipart/Form-Data;BOUNDARY=\"a b:c\"").boundary == "a b:c");
    CHECK(multipart::boundary_of("multipart/form-data; charset=utf-8; boundary=\"x\\\"y\"").error != "");
    CHECK(multipart::boundary_of("multipart/form-data; charset=utf-8; boundary=----x").boundary == "----x");
    CHECK(multipart::boundary_of("multipart/form-data").error ==
          "the multipart/form-data Content-Type has no boundary");
    CHECK(multipart::boundary_of("application/json; boundary=x").error ==
          "the Content-Type is not multipart/form-data");
    CHECK(multipart::boundary_of("multipart/form-data; boundary=\"\"")
              .error.starts_with("the multipart boundary is not"));
    CHECK(multipart::boundary_of("multipart/form-data; boundary=\"ab \"")
              .error.starts_with("the multipart boundary is not"));
    CHECK(multipart::boundary_of("multipart/form-data; boundary=" + std::string(71, 'a')).error != "");
    CHECK(multipart::boundary_of("multipart/form-data; boundary=" + std::string(70, 'a')).boundary ==
          std::string(70, 'a'));
    CHECK(multipart::boundary_of("multipart/form-data; boundary=a; boundary=b").error ==
          "the Content-Type names two boundaries");
    CHECK(multipart::boundary_of("multipart/form-data; boundary=\"abc").error.starts_with("malformed Content-Type"));
}

TEST_CASE("multipart: the SDK's body, at every split point") {
    const auto result = parse_every_way("----formdata-undici-0123456789", sdk_body);
    CHECK(result.ok);
    CHECK(result.error == "");
    CHECK(result.summary ==
          "[model|-||whisper-1]"
          "[file|file=a "
          "b.mp3|audio/mpeg|ID3\r\n\r\n--\r\n------formdata-undici-012345678\r\n-----formdata-undici-0123456789\r\rX]"
          "[timestamp_granularities[]|-||segment]");
}

TEST_CASE("multipart: a large part arrives in pieces, not held") {
    const std::string content(100000, 'a');
    const std::string body =
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=f\r\n\r\n" + content + "\r\n--b--";
    recorder r;
    multipart::parser p("b");
    for (std::size_t at = 0; at < body.size(); at += 4096) {
        REQUIRE(p.feed(std::string_view(body).substr(at, 4096), r));
    }
    REQUIRE(p.finish());
    REQUIRE(r.parts.size() == 1);
    CHECK(r.parts[0].data == content);
    CHECK(r.pieces >= content.size() / 4096);
}

TEST_CASE("multipart: headers, quoting, padding and the epilogue") {
    SUBCASE("empty parts, an unquoted name, header names in any case") {
        const auto result = parse_every_way(
            "x",
            "--x\r\ncontent-disposition: FORM-DATA; name=a\r\n\r\n\r\n--x\r\nCONTENT-TYPE: text/plain\r\n"
            "Content-Disposition: form-data; name=\"b\\\"q\"; filename=\"\"\r\n\r\n\r\n--x--");
        CHECK(result.ok);
        CHECK(result.summary == "[a|-||][b\"q|file=|text/plain|]");
    }
    SUBCASE("blanks after a delimiter, whitespace after the closing one") {
        const auto result =
            parse_every_way("x", "--x \t\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--x--\r\n\r\n \t");
        CHECK(result.ok);
        CHECK(result.summary == "[a|-||v]");
    }
    SUBCASE("other headers are ignored") {
        const auto result = parse_every_way(
            "x", "--x\r\nX-Other: 1\r\nContent-Disposition: form-data; name=a; other=\"z\"\r\n\r\nv\r\n--x--");
        CHECK(result.ok);
        CHECK(result.summary == "[a|-||v]");
    }
    SUBCASE("no parts at all") {
        const auto result = parse_every_way("x", "--x--\r\n");
        CHECK(result.ok);
        CHECK(result.summary == "");
    }
}

TEST_CASE("multipart: malformed bodies") {
    const std::string part = "Content-Disposition: form-data; name=a\r\n\r\n";
    struct bad {
        std::string body;
        std::string error;
    };
    const std::vector<bad> cases{
        {"", "the multipart body has no boundary"},
        {"hello", "the multipart body does not start with its boundary"},
        {"preamble\r\n--x\r\n" + part + "v\r\n--x--", "the multipart body does not start with its boundary"},
        {"\r\n--x\r\n" + part + "v\r\n--x--", "the multipart body does not start with its boundary"},
        {"--x\r\n" + part + "v", "the multipart body ends without its closing boundary (an unterminated part)"},
        {"--x\r\n" + part + "v\r\n--x", "the multipart body ends without its closing boundary (an unterminated part)"},
        {"--x\r\n" + part + "v\r\n--x-", "the multipart body ends without its closing boundary (an unterminated part)"},
        {"--x\r\n" + part + "v\r\n--x\r\n", "the multipart body ends inside a part's headers"},
        {"--x\r\nContent-Disposition: form-data; name=a\r\n", "the multipart body ends inside a part's headers"},
        {"--x\r\n" + part + "v\r\n--x--junk", "junk after the closing multipart boundary"},
        {"--x\r\n" + part + "v\r\n--xy\r\n", "junk after a multipart boundary"},
        {"--x\r\n" + part + "v\r\n--x-y", "junk after a multipart boundary"},
        {"--x\r\n" + part + "v\r\n--x \rz", "junk after a multipart boundary"},
        {"--x\r\n\r\nv\r\n--x--", "a multipart part without a Content-Disposition header"},
        {"--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--", "a multipart part without a Content-Disposition header"},
        {"--x\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--x--",
         "a multipart part whose Content-Disposition is not form-data"},
        {"--x\r\nContent-Disposition: form-data; filename=a\r\n\r\nv\r\n--x--",
         "a multipart part's Content-Disposition has no name"},
        {"--x\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nv\r\n--x--",
         "a multipart part's Content-Disposition repeats name"},
        {"--x\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--x--",
         "a malformed multipart Content-Disposition: an unterminated quoted parameter value"},
        {"--x\r\nContent-Disposition: form-data; name\r\n\r\nv\r\n--x--",
         "a malformed multipart Content-Disposition: a parameter without '='"},
        {"--x\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\nv\r\n--x--",
         "a multipart part with two Content-Disposition headers"},
        {"--x\r\nNo colon\r\n\r\nv\r\n--x--", "a malformed multipart part header line"},
        {"--x\r\n: empty name\r\n\r\nv\r\n--x--", "a malformed multipart part header line"},
        {"--x\r\nContent-Type: a\rb\r\n" + part + "v\r\n--x--", "a malformed multipart part header line"},
        {"--x\r\nContent-Type: a\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--x--",
         "a malformed multipart part header line"},
    };
    for (const auto& c : cases) {
        INFO(c.body);
        const auto result = parse_every_way("x", c.body);
        CHECK(!result.ok);
        CHECK(result.error == c.error);
    }
}

TEST_CASE("multipart: a part's headers are bounded") {
    const std::string big =
        "--x\r\nContent-Disposition: form-data; name=a\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\nv\r\n--x--";
    recorder r;
    multipart::parser small("x", 100);
    CHECK(!(small.feed(big, r) && small.finish()));
    CHECK(small.error() == "a multipart part's headers exceed 100 bytes");
    CHECK(r.parts.empty());
    recorder r2;
    multipart::parser fits("x", 300);
    CHECK((fits.feed(big, r2) && fits.finish()));
    CHECK(r2.summary() == "[a|-||v]");
    // A header block that never ends is cut at the bound too, fed in small pieces.
    multipart::parser endless("x", 100);
    recorder r3;
    bool ok = endless.feed("--x\r\nX: ", r3);
    for (int i = 0; ok && i < 100; ++i) {
        ok = endless.feed("aaaaaaaaaa", r3);
    }
    CHECK(!ok);
    CHECK(endless.error() == "a multipart part's headers exceed 100 bytes");
}

TEST_CASE("multipart: after an error every feed is refused") {
    recorder r;
    multipart::parser p("x");
    CHECK(!p.feed("junk", r));
    CHECK(!p.feed("--x--", r));
    CHECK(!p.finish());
    CHECK(p.error() == "the multipart body does not start with its boundary");
}
