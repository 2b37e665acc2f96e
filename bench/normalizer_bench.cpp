// Normalizer throughput (not a test): a ~1 KB and a ~10 KB chat body with
// several rules firing (model_alias, params, ranges, messages, tool_call_ids,
// role_order, tools), normalized again and again with one scratch, as a worker
// thread does. Reports µs and GB/s of input a request (the median of rounds
// of 0.1 s, and the fastest round) and heap allocations per request in the
// steady state (operator new is counted; the target is zero).
//
//   bench_normalizer [RULES.yaml] [SECONDS_PER_BODY] [BODY_BYTES | BODY.json] [--no-floors]
//
// BODY_BYTES measures one body size only, BODY.json that body (bench/run's
// chat.json, say): for callgrind, instructions per request are the inclusive
// count of normalize_request over its calls.
//
// Under each body, two floors for the same bytes, with no rewriting at all:
// simdjson On-Demand (the normalizer's parser) walking the whole body and
// checking every value as json::validate does, and simdjson's DOM parse of
// it (stage 1 and a tape). The normalizer can only be as fast as its parser's
// walk of what it must check; these say how far that is. --no-floors leaves
// them out (for a profile of the normalizer alone).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "config/config.hpp"
#include "json/walk.hpp"
#include "normalize/normalizer.hpp"
#include "rules/rule_set.hpp"

namespace {
std::atomic<std::size_t> allocations{0};
}

void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace mistral_proxy;

// A multi-turn tool conversation the way the OpenAI SDK sends it.
std::string chat_body(std::size_t target_bytes) {
    std::string body = R"({"model":"gpt-4o","user":"user-1234","max_completion_tokens":512,"seed":42,"temperature":1.8,)"
                       R"("stream":true,"stream_options":{"include_usage":true},"messages":[)"
                       R"({"role":"developer","content":"You are a helpful assistant. Answer briefly."})";
    int turn = 0;
    while (body.size() + 600 < target_bytes || turn == 0) {
        const std::string id = "call_" + std::to_string(100000 + turn) + "AbCdEfGhIjKlMn";
        body += R"(,{"role":"user","content":"What is the weather in city number )" + std::to_string(turn) +
                R"( today? Please include temperature and wind.","name":"alice"})";
        body += R"(,{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":")" + id +
                R"(","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]})";
        body += R"(,{"role":"tool","tool_call_id":")" + id +
                R"(","content":"{\"temperature\":21,\"wind\":\"12 km/h NW\",\"sky\":\"partly cloudy\"}"})";
        ++turn;
    }
    body += R"(,{"role":"user","content":"Thanks, and tomorrow?"}],)"
            R"("tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city",)"
            R"("parameters":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",)"
            R"("properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}],)"
            R"("tool_choice":"auto","parallel_tool_calls":true})";
    return body;
}

// Microseconds a call of `once`, over about `seconds` cut into rounds of
// 0.1 s: the median round is the figure (as bench_sse_transcoder's), so
// that a stretch of the host's own load in one round does not move it.
struct timed_rounds {
    double median_us = 0;
    double min_us = 0;
    std::size_t rounds = 0;
    std::size_t calls = 0;
};
template <class F>
timed_rounds time_rounds(double seconds, F&& once) {
    const double round_seconds = std::min(0.1, seconds);
    const auto rounds = static_cast<std::size_t>(std::max(1.0, std::round(seconds / round_seconds)));
    std::vector<double> per_call_us;
    timed_rounds out;
    for (std::size_t r = 0; r < rounds; ++r) {
        std::size_t iterations = 0;
        const auto start = std::chrono::steady_clock::now();
        auto now = start;
        while (std::chrono::duration<double>(now - start).count() < round_seconds) {
            for (int i = 0; i < 64; ++i) {
                once();
            }
            iterations += 64;
            now = std::chrono::steady_clock::now();
        }
        out.calls += iterations;
        per_call_us.push_back(std::chrono::duration<double>(now - start).count() / static_cast<double>(iterations) * 1e6);
    }
    std::sort(per_call_us.begin(), per_call_us.end());
    out.rounds = rounds;
    out.min_us = per_call_us.front();
    out.median_us = rounds % 2 == 1 ? per_call_us[rounds / 2] : (per_call_us[rounds / 2 - 1] + per_call_us[rounds / 2]) / 2;
    return out;
}

void measure(const rules::rule_set& set, const config::proxy_config& config, const std::string& json, double seconds) {
    std::string buffer = json;
    buffer.append(normalize::body_padding, '\0');
    const std::string_view body(buffer.data(), json.size());
    normalize::normalize_scratch scratch;
    const auto which = normalize::endpoint::chat_completions;
    auto first = normalize::normalize_request(set, config, which, body, scratch);
    if (!first.ok()) {
        std::fprintf(stderr, "refused: %s\n", first.error->message.c_str());
        std::exit(1);
    }
    std::string fired;
    first.request->fired.append_names(fired);
    const std::size_t out_size = first.request->body.size();
    for (int i = 0; i < 1000; ++i) {  // warm up: buffers reach their steady size
        (void)normalize::normalize_request(set, config, which, body, scratch);
    }
    std::size_t sink = 0;
    const std::size_t before = allocations.load();
    const timed_rounds timing = time_rounds(seconds, [&] {
        auto result = normalize::normalize_request(set, config, which, body, scratch);
        sink += result.request->body.size();
        return true;
    });
    const std::size_t allocated = allocations.load() - before;
    const double per_request_us = timing.median_us;
    const double gbps = static_cast<double>(json.size()) / per_request_us / 1e3;
    std::printf("%6zu B in -> %6zu B out  %8.2f us/request  %6.2f GB/s  (median of %zu rounds of 0.1 s, fastest %.2f us)  "
                "allocations/request %.3f  rules: %s\n",
                json.size(), out_size, per_request_us, gbps, timing.rounds, timing.min_us,
                static_cast<double>(allocated) / static_cast<double>(timing.calls), fired.c_str());
    if (sink == 0) {
        std::puts("");
    }
}

// The median microseconds a call of `once` (true when the body parsed).
template <class F>
double time_per_call(double seconds, F&& once) {
    return time_rounds(seconds, [&] {
        if (!once()) {
            std::fprintf(stderr, "the floor's parse failed\n");
            std::exit(1);
        }
        return true;
    }).median_us;
}

void floors(const std::string& json, double seconds) {
    std::string buffer = json;
    buffer.append(simdjson::SIMDJSON_PADDING, '\0');
    simdjson::ondemand::parser on_demand;
    const double walk_us = time_per_call(seconds, [&] {
        simdjson::ondemand::document doc;
        simdjson::ondemand::value root;
        return on_demand.iterate(buffer.data(), json.size(), buffer.size()).get(doc) == simdjson::SUCCESS &&
               doc.get_value().get(root) == simdjson::SUCCESS &&
               json::validate(root, simdjson::ondemand::json_type::object, 0) == simdjson::SUCCESS;
    });
    simdjson::dom::parser dom;
    const double dom_us = time_per_call(seconds, [&] {
        simdjson::dom::element root;
        return dom.parse(buffer.data(), json.size(), false).get(root) == simdjson::SUCCESS;
    });
    const auto gbps = [&](double us) { return static_cast<double>(json.size()) / us / 1e3; };
    std::printf("        floors, no rewriting: On-Demand walk checking every value %.2f us (%.2f GB/s), "
                "DOM parse %.2f us (%.2f GB/s)\n",
                walk_us, gbps(walk_us), dom_us, gbps(dom_us));
}

}  // namespace

int main(int argc, char** argv) {
    const std::filesystem::path here = std::filesystem::path(__FILE__).parent_path();
    const std::string rules_file = argc > 1 && argv[1][0] != '\0' ? argv[1] : (here.parent_path() / "rules" / "mistral.yaml").string();
    const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
    const auto set = rules::load_rule_files({rules_file});
    const auto config = config::parse_config("", "/tmp/bench-config.yaml");
    const bool with_floors = !(argc > 4 && std::string_view(argv[4]) == "--no-floors");
    const auto floors_if_asked = [&](const std::string& body) {
        if (with_floors) {
            floors(body, seconds / 2);
        }
    };
    if (argc > 3) {
        const std::string which = argv[3];
        if (!which.empty() && which.find_first_not_of("0123456789") == std::string::npos) {
            const std::string body = chat_body(static_cast<std::size_t>(std::stoul(which)));
            measure(*set, config, body, seconds);
            floors_if_asked(body);
            return 0;
        }
        std::ifstream file(which, std::ios::binary);
        if (!file) {
            std::fprintf(stderr, "cannot read %s\n", which.c_str());
            return 1;
        }
        std::string body((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) {
            body.pop_back();
        }
        measure(*set, config, body, seconds);
        floors_if_asked(body);
        return 0;
    }
    for (const std::size_t size : {1024u, 10240u}) {
        const std::string body = chat_body(size);
        measure(*set, config, body, seconds);
        floors_if_asked(body);
    }
    return 0;
}
