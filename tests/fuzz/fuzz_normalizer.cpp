// libFuzzer target: the request normalizer (normalize::normalize_request).
//
// Input: byte 0 picks the endpoint (b % 5: chat, fim, embeddings, completions,
// other) and the config ((b / 5) % 3: global, eu, eu with eu_strict); the rest
// is the request body, handed over with body_padding spare bytes after it as
// the server does. Rules: the shipped rules/mistral.yaml, loaded once.
//
// Invariants: no crash, no sanitizer report; an answer is either a request or
// an error, never both or neither; an error is 400/403 and serialises to valid
// JSON; a request's body is valid JSON (simdjson DOM) — one object for the JSON
// endpoints — and a normalized body fed back in is accepted again.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "fuzz_support.hpp"
#include "normalize/normalizer.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

namespace {

struct fixture {
    std::shared_ptr<const rules::rule_set> rules;
    std::array<config::proxy_config, 3> configs;
    normalize::normalize_scratch scratch;
    normalize::normalize_scratch scratch2;
};

fixture& get_fixture() {
    static fixture* f = [] {
        auto* made = new fixture;
        made->rules = rules::load_rule_files({std::string(MP_REPO_ROOT) + "/rules/mistral.yaml"});
        const std::string file = "/nonexistent-mistral-proxy-fuzz/mistral-proxy.yaml";
        made->configs[0] = config::parse_config("", file);
        made->configs[1] = config::parse_config("region: eu\n", file);
        made->configs[2] = config::parse_config("region: eu\neu_strict: true\n", file);
        return made;
    }();
    return *f;
}

constexpr std::array<normalize::endpoint, 5> endpoints{
    normalize::endpoint::chat_completions, normalize::endpoint::fim_completions, normalize::endpoint::embeddings,
    normalize::endpoint::completions, normalize::endpoint::other};

// The body in a buffer of exactly size + body_padding bytes, so that a read past
// the padding is an ASan report.
std::vector<char> padded(std::string_view body) {
    std::vector<char> buffer(body.size() + normalize::body_padding);
    if (!body.empty()) {
        std::memcpy(buffer.data(), body.data(), body.size());
    }
    std::memset(buffer.data() + body.size(), '}', normalize::body_padding);  // padding content must not matter
    return buffer;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    get_fixture();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    fixture& f = get_fixture();
    const normalize::endpoint which = endpoints[data[0] % 5];
    const config::proxy_config& config = f.configs[(data[0] / 5) % 3];
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::vector<char> buffer = padded(body);

    const normalize::normalize_result result =
        normalize::normalize_request(*f.rules, config, which, std::string_view(buffer.data(), body.size()), f.scratch);

    fuzz::check(result.request.has_value() != result.error.has_value(), "exactly one of request and error is set");
    if (result.error) {
        const unsigned status = result.error->status;
        fuzz::check(status == 400 || status == 403, "an error is 400 or 403");
        const std::string json = errors::to_json(*result.error);
        fuzz::check(fuzz::parse_dom(json).error() == simdjson::SUCCESS, "the error serialises to valid JSON", json);
        return 0;
    }
    const normalize::normalized_request& request = *result.request;
    fuzz::check(!request.upstream_path.empty() || which == normalize::endpoint::other, "a JSON endpoint has a path");
    if (which == normalize::endpoint::other) {
        fuzz::check(request.body == body, "other: the body passes unchanged");
        return 0;
    }
    if (request.fired.empty()) {
        fuzz::check(request.body == body, "no rule fired: the body passes unchanged", request.body);
    }
    bool is_object = false;
    fuzz::check(fuzz::valid_json(request.body, is_object), "the normalized body is valid JSON", request.body);
    fuzz::check(is_object, "the normalized body is an object", request.body);

    // What the proxy sends upstream must pass the proxy's own checks again.
    const std::string sent(request.body);
    const std::vector<char> again_buffer = padded(sent);
    const normalize::normalize_result again = normalize::normalize_request(
        *f.rules, config, which, std::string_view(again_buffer.data(), sent.size()), f.scratch2);
    if (!again.ok()) {
        fuzz::fail("the normalized body is accepted again", sent + "\n---- refused with ----\n" +
                                                               errors::to_json(*again.error));
    }
    return 0;
}
