// libFuzzer target: the multipart/form-data parser (proxy/multipart/parser.hpp)
// and the transcription form rewriter built on it (audio/transcription_request.hpp).
//
// Input: byte 0 picks the boundary (one of a few, the SDK's among them) and
// byte 1 how many bytes arrive at a time (1 to 64); the rest is the body.
//
// Invariants: the body fed in pieces gives exactly what it gives fed whole
// (the same parts, headers, contents, and the same error); events come in
// order (data only inside a part, never empty); a body that parses, written
// out again with the same boundary, parses to the same parts. The rewriter,
// fed the same pieces, writes what it writes fed whole, and what it writes
// upstream is always one well-formed form with the client's boundary: no
// client bytes can end it early or add a part of their own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "audio/transcription_request.hpp"
#include "fuzz_support.hpp"
#include "multipart/parser.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

namespace {

struct recorder final : multipart::handler {
    struct part {
        multipart::part_headers headers;
        std::string data;
    };
    std::vector<part> parts;
    bool open = false;

    void on_part_begin(const multipart::part_headers& headers) override {
        fuzz::check(!open, "a part begins inside another");
        parts.push_back({headers, {}});
        open = true;
    }
    void on_part_data(std::string_view data) override {
        fuzz::check(open, "data outside a part");
        fuzz::check(!data.empty(), "an empty data piece");
        parts.back().data.append(data);
    }
    void on_part_end() override {
        fuzz::check(open, "a part ends that did not begin");
        open = false;
    }

    std::string record() const {
        std::string out;
        for (const auto& p : parts) {
            out += p.headers.name + '\0' + (p.headers.filename ? "F" + *p.headers.filename : "-") + '\0' +
                   p.headers.content_type + '\0' + std::to_string(p.data.size()) + ':' + p.data + '\0';
        }
        return out;
    }
};

std::string quote_param(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + '"';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    static constexpr std::string_view boundaries[] = {"x", "----formdata-undici-0123456789", "a'()+_,-./:=? b", "--"};
    const std::string_view boundary = boundaries[data[0] % 4];
    const std::size_t piece = 1 + data[1] % 64;
    const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

    recorder whole;
    std::string whole_error;
    const bool whole_ok = multipart::parse_all(boundary, body, whole, whole_error);
    fuzz::check(whole_ok == whole_error.empty(), "an error message exactly when parsing fails", whole_error);
    fuzz::check(!whole_ok || !whole.open, "a body that parses ends every part");

    // The rewriter: the same bytes upstream in pieces as whole, and a form that parses.
    static const auto rules = rules::load_rule_files({std::string(MP_REPO_ROOT) + "/rules/mistral.yaml"});
    std::string sent_whole;
    audio::transcription_rewriter whole_rewriter(*rules, boundary);
    const bool rewritten = whole_rewriter.feed(body, sent_whole) && whole_rewriter.finish(sent_whole);
    std::string sent_pieces;
    audio::transcription_rewriter piece_rewriter(*rules, boundary);
    bool piece_ok = true;
    for (std::size_t at = 0; piece_ok && at < body.size(); at += piece) {
        piece_ok = piece_rewriter.feed(body.substr(at, piece), sent_pieces);
    }
    piece_ok = piece_ok && piece_rewriter.finish(sent_pieces);
    fuzz::check(piece_ok == rewritten, "the rewriter: pieces and whole agree on success");
    fuzz::check(rewritten == !whole_rewriter.error().has_value(), "the rewriter: an error exactly when it refuses");
    if (rewritten) {
        fuzz::check(sent_pieces == sent_whole, "the rewriter: pieces and whole send the same bytes", sent_whole);
        fuzz::check(whole_ok, "the rewriter accepts only bodies the parser accepts");
        recorder upstream;
        std::string upstream_error;
        fuzz::check(multipart::parse_all(boundary, sent_whole, upstream, upstream_error),
                    "the rewritten form parses with the client's boundary", upstream_error + "\n" + sent_whole);
        std::size_t files = 0;
        for (const auto& p : upstream.parts) {
            files += p.headers.filename ? 1 : 0;
        }
        fuzz::check(files <= 1, "at most one file goes upstream", sent_whole);
    }

    recorder pieces;
    multipart::parser parser(boundary);
    bool ok = true;
    for (std::size_t at = 0; ok && at < body.size(); at += piece) {
        ok = parser.feed(body.substr(at, piece), pieces);
    }
    ok = ok && parser.finish();
    fuzz::check(ok == whole_ok, "pieces and whole agree on success", parser.error() + " | " + whole_error);
    fuzz::check(parser.error() == whole_error, "pieces and whole give the same error",
                parser.error() + " | " + whole_error);
    if (!ok) {
        return 0;
    }
    fuzz::check(pieces.record() == whole.record(), "pieces and whole give the same parts");

    // Written out again, the parts parse to themselves.
    std::string again;
    for (const auto& p : whole.parts) {
        again +=
            "--" + std::string(boundary) + "\r\nContent-Disposition: form-data; name=" + quote_param(p.headers.name);
        if (p.headers.filename) {
            again += "; filename=" + quote_param(*p.headers.filename);
        }
        again += "\r\n";
        if (!p.headers.content_type.empty()) {
            again += "Content-Type: " + p.headers.content_type + "\r\n";
        }
        again += "\r\n" + p.data + "\r\n";
    }
    again += "--" + std::string(boundary) + "--\r\n";
    recorder round;
    std::string round_error;
    fuzz::check(multipart::parse_all(boundary, again, round, round_error), "the parts written out again parse",
                round_error);
    fuzz::check(round.record() == whole.record(), "the parts written out again are the same parts", again);
    return 0;
}
