// libFuzzer target: the batch file line rewriters (proxy/batches/input_lines.hpp,
// output_lines.hpp), which split a streamed body into JSONL lines.
//
// Input: byte 0 picks how many bytes arrive at a time (1 to 64) and byte 1 the
// longest line (64 bytes to 16 KiB); the rest is the file.
//
// Invariants: fed in pieces, each rewriter writes exactly what it writes fed
// whole, and the input rewriter refuses exactly when it refuses whole, with the
// same error. Every line the input rewriter writes is one JSON object with
// `custom_id` and an object `body` and nothing else; the output rewriter never
// loses a newline (its output has as many as its input).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "batches/input_lines.hpp"
#include "batches/output_lines.hpp"
#include "config/config.hpp"
#include "fuzz_support.hpp"
#include "plan/request_plan.hpp"
#include "responses/response_rules.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

namespace {

struct fixture {
    std::shared_ptr<const rules::rule_set> rules;
    config::proxy_config config;
    std::vector<responses::model_alias> aliases;
    responses::response_rules answer_rules;
};

const fixture& get_fixture() {
    static const fixture* f = [] {
        auto* made = new fixture;
        made->rules = rules::load_rule_files({std::string(MP_REPO_ROOT) + "/rules/mistral.yaml"});
        made->config = config::parse_config("", "/nonexistent-mistral-proxy-fuzz/mistral-proxy.yaml");
        made->aliases = plan::derive_model_aliases(*made->rules);
        made->answer_rules = responses::response_rules::from(*made->rules);
        return made;
    }();
    return *f;
}

struct input_result {
    bool ok = true;
    std::string out;
    std::string error;
};

input_result rewrite_input(std::string_view file, std::size_t piece, std::size_t max_line) {
    const auto& f = get_fixture();
    const plan::plan_inputs inputs{f.config, *f.rules, f.aliases};
    batches::input_line_rewriter lines(inputs, max_line);
    input_result result;
    for (std::size_t at = 0; result.ok && at < file.size(); at += piece) {
        result.ok = lines.feed(file.substr(at, piece), result.out);
    }
    result.ok = result.ok && lines.finish(result.out);
    if (lines.error()) {
        result.error = errors::to_json(*lines.error());
    }
    return result;
}

std::string rewrite_output(std::string_view file, std::size_t piece, std::size_t max_line) {
    batches::output_line_rewriter lines(get_fixture().answer_rules, max_line);
    std::string out;
    for (std::size_t at = 0; at < file.size(); at += piece) {
        lines.on_body(file.substr(at, piece), out);
    }
    lines.on_end(out);
    fuzz::check(lines.done(), "the output rewriter is done after the end");
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::size_t piece = 1 + data[0] % 64;
    const std::size_t max_line = 64 + static_cast<std::size_t>(data[1]) * 64;
    const std::string_view file(reinterpret_cast<const char*>(data) + 2, size - 2);

    const auto whole = rewrite_input(file, file.size() + 1, max_line);
    const auto pieces = rewrite_input(file, piece, max_line);
    fuzz::check(whole.ok == pieces.ok, "input lines: pieces and whole agree on success", whole.error + pieces.error);
    fuzz::check(whole.error == pieces.error, "input lines: the same error", whole.error + " | " + pieces.error);
    fuzz::check(whole.out == pieces.out, "input lines: the same bytes", whole.out);
    fuzz::check(whole.ok == whole.error.empty(), "input lines: an error exactly when refused");
    std::string_view written = whole.out;
    while (!written.empty()) {
        const auto end = written.find('\n');
        fuzz::check(end != std::string_view::npos, "input lines: every line written ends with a newline", whole.out);
        const auto line = written.substr(0, end);
        written.remove_prefix(end + 1);
        bool is_object = false;
        fuzz::check(fuzz::valid_json(line, is_object) && is_object, "input lines: a written line is an object", line);
        // Its members, read with On-Demand, which parses no number it is not
        // asked for: a body may hold an integer past 2^64, which JSON allows,
        // the rewriter passes on as written, and simdjson's DOM refuses.
        simdjson::ondemand::parser reader;
        const simdjson::padded_string padded(line);
        simdjson::ondemand::document document;
        simdjson::ondemand::object object;
        fuzz::check(reader.iterate(padded).get(document) == simdjson::SUCCESS &&
                        document.get_object().get(object) == simdjson::SUCCESS,
                    "input lines: a written line is an object", line);
        std::size_t members = 0;
        for (auto field : object) {
            ++members;
            std::string_view key;
            simdjson::ondemand::json_type type{};
            fuzz::check(field.unescaped_key().get(key) == simdjson::SUCCESS &&
                            field.value().type().get(type) == simdjson::SUCCESS,
                        "input lines: a member read", line);
            fuzz::check(key == "custom_id" || (key == "body" && type == simdjson::ondemand::json_type::object),
                        "input lines: only custom_id and an object body", line);
        }
        fuzz::check(members == 2, "input lines: custom_id and body", line);
    }

    const auto out_whole = rewrite_output(file, file.size() + 1, max_line);
    const auto out_pieces = rewrite_output(file, piece, max_line);
    fuzz::check(out_whole == out_pieces, "output lines: pieces and whole give the same bytes", out_whole);
    const auto newlines = [](std::string_view text) {
        std::size_t n = 0;
        for (const char c : text) {
            n += c == '\n' ? 1 : 0;
        }
        return n;
    };
    fuzz::check(newlines(out_whole) == newlines(file), "output lines: one line out per line in", out_whole);
    return 0;
}
