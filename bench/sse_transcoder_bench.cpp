// Cost the stream transcoder adds per SSE event (target: <= 2 us).
// Feeds a synthetic Mistral stream in 8 KB pieces, as the relay reads it, and
// reports ns per event for: the splitter alone, the full chat transcoder on
// content chunks, on tool call chunks, the text_completion shape, and the
// Responses API's events (openai_responses/stream.hpp) from the same chunks.
//
//   sse_transcoder_bench [events=20000] [rounds=15] [rules.yaml=rules/mistral.yaml of this checkout]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "openai_responses/ids.hpp"
#include "openai_responses/stream.hpp"
#include "responses/sse.hpp"
#include "responses/stream_transcoder.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy::responses;

namespace {

constexpr std::size_t piece_bytes = 8 * 1024;  // the relay's read buffer

// A typical mistral-small chunk: ~330 bytes of data.
std::string content_event(std::size_t i) {
    return R"(data: {"id":"5d5a1c4e8b7f4a2c9e3d1f0a6b8c7e9d","object":"chat.completion.chunk","created":1718000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":" token)" +
           std::to_string(i) + R"( and a few more words of text"},"finish_reason":null,"logprobs":null}]})" + "\n\n";
}

// One tool call whose arguments come in pieces: its name and id with the first
// event, then a piece of the arguments an event (the call's index, no name).
// Each event used to be a whole call of its own, so that a stream of 20,000
// events was a response of 20,000 calls, which no model sends.
std::string tool_event(std::size_t i) {
    const std::string prefix =
        R"(data: {"id":"5d5a1c4e8b7f4a2c9e3d1f0a6b8c7e9d","object":"chat.completion.chunk","created":1718000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"tool_calls":[)";
    const std::string suffix = R"(]},"finish_reason":null}]})" "\n\n";
    if (i == 0) {
        return prefix + R"({"index":0,"id":"null","function":{"name":"get_weather","arguments":"{\"cities\": [\"Paris\""}})" + suffix;
    }
    return prefix + R"({"index":0,"function":{"arguments":", \"City number )" + std::to_string(i) + R"(\""}})" + suffix;
}

std::string stream_of(std::size_t events, std::string (*make)(std::size_t)) {
    std::string body =
        R"(data: {"id":"5d5a1c4e8b7f4a2c9e3d1f0a6b8c7e9d","object":"chat.completion.chunk","created":1718000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
        "\n\n";
    for (std::size_t i = 0; i < events; ++i) {
        body += make(i);
    }
    body +=
        R"(data: {"id":"5d5a1c4e8b7f4a2c9e3d1f0a6b8c7e9d","object":"chat.completion.chunk","created":1718000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":300,"total_tokens":312}})"
        "\n\ndata: [DONE]\n\n";
    return body;
}

struct figures {
    double median_ns = 0;
    double min_ns = 0;
};

template <typename Run>
figures measure(std::size_t events, int rounds, Run&& run) {
    std::vector<double> per_event;
    for (int r = 0; r < rounds; ++r) {
        const auto start = std::chrono::steady_clock::now();
        run();
        const auto stop = std::chrono::steady_clock::now();
        per_event.push_back(std::chrono::duration<double, std::nano>(stop - start).count() /
                            static_cast<double>(events + 3));
    }
    std::sort(per_event.begin(), per_event.end());
    return figures{per_event[per_event.size() / 2], per_event.front()};
}

std::size_t sink = 0;  // keeps the optimiser from dropping the work

figures bench_splitter(const std::string& body, std::size_t events, int rounds) {
    return measure(events, rounds, [&] {
        sse_splitter splitter;
        sse_event event;
        for (std::size_t at = 0; at < body.size(); at += piece_bytes) {
            splitter.feed(std::string_view(body).substr(at, piece_bytes));
            while (splitter.next(event) == sse_status::event) {
                sink += event.data.size();
            }
        }
    });
}

figures bench_transcoder(const response_rules& rules, const std::string& body, std::size_t events, int rounds,
                         stream_options options) {
    std::string out;
    return measure(events, rounds, [&] {
        stream_transcoder transcoder(rules, options);
        for (std::size_t at = 0; at < body.size(); at += piece_bytes) {
            out.clear();  // the relay writes each piece's output and reuses the string
            transcoder.on_body(std::string_view(body).substr(at, piece_bytes), out);
            sink += out.size();
        }
        out.clear();
        transcoder.on_end(out);
        sink += out.size();
    });
}

// The Responses API transcoder on the same upstream chunks: each content chunk
// becomes one response.output_text.delta event (plus the item and part
// events around the text, and response.completed at the end).
figures bench_responses(const std::string& body, std::size_t events, int rounds) {
    std::string out;
    mistral_proxy::openai_responses::counter_ids ids;
    const mistral_proxy::openai_responses::response_settings settings;
    return measure(events, rounds, [&] {
        mistral_proxy::openai_responses::stream_context context;
        context.response_id = "resp_bench";
        context.created_at = 1718000000;
        context.settings = &settings;
        context.ids = &ids;
        mistral_proxy::openai_responses::stream_transcoder transcoder(std::move(context));
        for (std::size_t at = 0; at < body.size(); at += piece_bytes) {
            out.clear();
            transcoder.on_body(std::string_view(body).substr(at, piece_bytes), out);
            sink += out.size();
        }
        out.clear();
        transcoder.on_end(out);
        sink += out.size();
    });
}

void report(const char* name, figures f) {
    std::printf("%-40s median %7.0f ns/event   min %7.0f ns/event\n", name, f.median_ns, f.min_ns);
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t events = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 15;
    const std::filesystem::path here = std::filesystem::path(__FILE__).parent_path();
    const std::string rules_file =
        argc > 3 && argv[3][0] != '\0' ? argv[3] : (here.parent_path() / "rules" / "mistral.yaml").string();
    const response_rules rules = response_rules::from(*mistral_proxy::rules::load_rule_files({rules_file}));
    const std::string content = stream_of(events, content_event);
    const std::string tools = stream_of(events, tool_event);
    std::printf("%zu events per stream (%zu bytes, %.0f bytes/event), %d rounds, %zu-byte pieces\n", events,
                content.size(), static_cast<double>(content.size()) / static_cast<double>(events), rounds, piece_bytes);

    report("splitter only (content chunks)", bench_splitter(content, events, rounds));
    report("chat transcoder, content chunks", bench_transcoder(rules, content, events, rounds, {}));
    stream_options usage;
    usage.include_usage = true;
    report("chat transcoder, include_usage", bench_transcoder(rules, content, events, rounds, usage));
    report("chat transcoder, tool call chunks", bench_transcoder(rules, tools, events, rounds, {}));
    stream_options text;
    text.shape = stream_shape::text_completion;
    report("text_completion transcoder", bench_transcoder(rules, content, events, rounds, text));
    report("Responses API events, content chunks", bench_responses(content, events, rounds));
    report("Responses API events, tool call chunks", bench_responses(tools, events, rounds));
    return sink == 42 ? 1 : 0;
}
