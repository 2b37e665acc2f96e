// libFuzzer target: the SSE transcoder (responses::stream_transcoder over
// responses::sse_splitter), as the relay drives it.
//
// Input: byte 0 = options (bit 0: legacy text_completion shape; bit 1:
// include_usage; bit 2: max_event_bytes 256 instead of 1 MiB; bit 3: the
// upstream fails at the end instead of ending normally); byte 1 = how many cut
// points (mod 16); then two bytes (little endian) per cut point, taken modulo
// the body's length + 1; the rest is the upstream body. Rules: the shipped
// rules/mistral.yaml, loaded once.
//
// Invariants: every call appends only whole events, each exactly
// `data: PAYLOAD\n\n` with no CR/LF inside PAYLOAD and PAYLOAD either [DONE]
// or valid JSON; nothing after [DONE] or an error event; after the end the
// stream is done and ends with [DONE] exactly when it did not fail; and the
// output, hits, usage and state are the same however the body is cut.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "errors/openai_error.hpp"
#include "fuzz_support.hpp"
#include "responses/response_rules.hpp"
#include "responses/stream_transcoder.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;
using namespace mistral_proxy::responses;

namespace {

struct run_result {
    std::string out;
    bool done = false;
    bool failed = false;
    std::uint32_t hits = 0;
    std::optional<usage_counts> usage;
    std::uint64_t events_in = 0;
};

// Checks that `appended` is zero or more whole events and that none follows the
// end of the stream; `ended` tracks whether [DONE] or an error was seen.
void check_events(std::string_view appended, bool& ended) {
    while (!appended.empty()) {
        fuzz::check(!ended, "no event after [DONE] or an error event", appended);
        fuzz::check(appended.substr(0, 6) == "data: ", "an event starts with 'data: '", appended);
        const std::size_t end = appended.find("\n\n");
        fuzz::check(end != std::string_view::npos, "an event ends with a blank line", appended);
        const std::string_view payload = appended.substr(6, end - 6);
        fuzz::check(payload.find_first_of("\r\n") == std::string_view::npos, "one data line per event", payload);
        if (payload == "[DONE]") {
            ended = true;
        } else {
            bool is_object = false;
            fuzz::check(fuzz::valid_json(payload, is_object), "an event's data is valid JSON", payload);
            fuzz::check(is_object, "an event's data is a JSON object", payload);
            if (payload.starts_with("{\"error\":")) {  // the proxy's own error event, always written this way
                ended = true;
            }
        }
        appended.remove_prefix(end + 2);
    }
}

// The answer rules of the shipped rules/mistral.yaml, loaded once as the server loads them.
const response_rules& shipped_rules() {
    static const response_rules* loaded = new response_rules(
        response_rules::from(*rules::load_rule_files({std::string(MP_REPO_ROOT) + "/rules/mistral.yaml"})));
    return *loaded;
}

std::uint32_t hit_bits(rule_hits hits) {
    std::uint32_t bits = 0;
    hits.for_each([&](response_rule rule) { bits |= 1U << static_cast<unsigned>(rule); });
    return bits;
}

run_result run(std::string_view body, const std::vector<std::size_t>& cuts, const stream_options& options,
               bool fail_at_end) {
    stream_transcoder transcoder(shipped_rules(), options);
    run_result result;
    bool ended = false;
    std::size_t from = 0;
    auto feed = [&](std::size_t to) {
        const std::size_t before = result.out.size();
        transcoder.on_body(body.substr(from, to - from), result.out);
        check_events(std::string_view(result.out).substr(before), ended);
        fuzz::check(ended == transcoder.done(), "done() is true exactly after [DONE] or an error event");
        from = to;
    };
    for (const std::size_t cut : cuts) {
        feed(cut);
    }
    feed(body.size());
    const std::size_t before = result.out.size();
    if (fail_at_end) {
        transcoder.on_failure(errors::make_error(502, "upstream reset the connection", "upstream_reset"), result.out);
    } else {
        transcoder.on_end(result.out);
    }
    check_events(std::string_view(result.out).substr(before), ended);
    fuzz::check(transcoder.done() && ended, "the stream has ended after on_end/on_failure", result.out);
    const bool ends_with_done = result.out.size() >= 14 && result.out.ends_with("data: [DONE]\n\n");
    fuzz::check(ends_with_done != transcoder.failed(), "ends with [DONE] exactly when it did not fail", result.out);
    if (fail_at_end && !transcoder.failed()) {
        // on_failure after a finished stream changes nothing: the stream had already ended.
        fuzz::check(before == result.out.size(), "on_failure after the end appends nothing");
    }
    result.done = transcoder.done();
    result.failed = transcoder.failed();
    result.hits = hit_bits(transcoder.hits());
    result.usage = transcoder.usage();
    result.events_in = transcoder.events_in();
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::split_input input;
    if (!fuzz::read_split_input(data, size, input)) {
        return 0;
    }
    const std::uint8_t flags = input.flags;
    const std::string_view body = input.body;
    const std::vector<std::size_t>& cuts = input.cuts;

    stream_options options;
    options.shape = (flags & 1) != 0 ? stream_shape::text_completion : stream_shape::chat_completion_chunk;
    options.include_usage = (flags & 2) != 0;
    if ((flags & 4) != 0) {
        options.max_event_bytes = 256;
    }
    const bool fail_at_end = (flags & 8) != 0;

    const run_result whole = run(body, {}, options, fail_at_end);
    const run_result split = run(body, cuts, options, fail_at_end);
    if (whole.out != split.out) {
        fuzz::fail("the output does not depend on how the body is cut",
                   "whole:\n" + whole.out + "\n---- split:\n" + split.out);
    }
    fuzz::check(whole.failed == split.failed && whole.hits == split.hits && whole.events_in == split.events_in &&
                    fuzz::same_usage(whole.usage, split.usage),
                "state after the stream does not depend on how the body is cut");
    return 0;
}
