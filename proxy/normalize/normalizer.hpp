#pragma once
// The request normalizer (SPEC §6): one pure function from (rule set, config,
// endpoint, request body) to what is sent upstream — body, upstream, path, the
// rule ids that changed it — or an OpenAI-shaped error. `serve` and `explain`
// call the same function. No I/O, no Asio, no exceptions for any input.
//
// How: one simdjson On-Demand pass that visits (and so validates) every byte of
// the body, copies untouched values through as raw slices of the input and writes
// only what changes; see normalizer.cpp for the rules and their order.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "routing/endpoints.hpp"
#include "routing/route.hpp"
#include "rules/rule_set.hpp"

namespace mistral_proxy::normalize {

// Spare bytes a body buffer keeps after the data for the JSON parser to read
// past the end (equals simdjson::SIMDJSON_PADDING; normalizer.cpp checks it).
inline constexpr std::size_t body_padding = 64;

// Which endpoint table row (routing/endpoints.hpp) a body is for: the table
// decides the schema it is validated against, its upstream path and routing.
using endpoint = routing::endpoint_kind;

// Which rule ids fired, as a bit set; names come out in SPEC order.
class rule_mask {
public:
    void add(rules::rule_id id) noexcept { bits_ |= 1u << static_cast<unsigned>(id); }
    bool has(rules::rule_id id) const noexcept { return (bits_ & (1u << static_cast<unsigned>(id))) != 0; }
    bool empty() const noexcept { return bits_ == 0; }
    std::uint32_t bits() const noexcept { return bits_; }
    // Calls visit(std::string_view name) per fired id, in SPEC order (static strings).
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (std::size_t i = 0; i < rules::rule_count; ++i) {
            if ((bits_ & (1u << i)) != 0) {
                visit(rules::rule_name(static_cast<rules::rule_id>(i)));
            }
        }
    }
    // "model_alias,params" (the x-mistral-proxy-rules header value); appends to `out`.
    void append_names(std::string& out, std::string_view separator = ",") const;

private:
    std::uint32_t bits_ = 0;
};

// Embeddings: what the client asked for. base64 is answered by the proxy from
// floats (SPEC §4), so the normalizer asks Mistral for floats.
enum class encoding_format { unspecified, float_values, base64 };

// Every string_view below stays valid until the next normalize_request() with the
// same scratch, as long as the body buffer and the rule set live.
struct normalized_request {
    std::string_view body;  // what to send: the client's bytes when no rule fired, else the rewrite
    routing::upstream_id upstream = routing::upstream_id::mistral;
    std::string_view upstream_path;  // relative to the upstream's base_url: "/chat/completions", ...
    rule_mask fired;                 // ids that changed the request (x-mistral-proxy-rules)
    std::string_view model_requested;  // as the client sent it (unescaped), "" when absent
    std::string_view model_sent;       // after model_rewrite/model_alias/vision_route/tool_capable
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage was true (stream_options is never sent)
    encoding_format encoding = encoding_format::unspecified;
    std::uint64_t estimated_prompt_tokens = 0;  // body bytes / 4, at least 1: for the rate limiter
    std::optional<std::uint64_t> max_tokens;    // max_tokens / max_completion_tokens when given
    // /v1/completions (legacy): the body is passed through as is (its translation is
    // separate work); true when the model routes to FIM rather than chat.
    bool legacy_to_fim = false;
};

struct normalize_result {
    std::optional<normalized_request> request;  // set on success
    std::optional<errors::openai_error> error;  // 400 (bad JSON, wrong types, tool_capable/vision_route deny),
                                                // 403 eu_residency_required
    bool ok() const noexcept { return request.has_value(); }
};

// Reusable per-thread working memory: the JSON parser and the output buffers.
// After a few requests of a given size, normalize_request allocates nothing.
// Not thread-safe: one per worker thread. Buffers that grew past 1 MiB for a
// huge body are released when the next request starts (the result of a call
// points into them until then).
class normalize_scratch {
public:
    normalize_scratch();
    ~normalize_scratch();
    normalize_scratch(const normalize_scratch&) = delete;
    normalize_scratch& operator=(const normalize_scratch&) = delete;

    struct impl;
    impl& get() noexcept { return *impl_; }

private:
    std::unique_ptr<impl> impl_;
};

// Nesting deeper than this many levels is refused with a 400.
inline constexpr std::size_t max_json_depth = 128;

// `body_with_padding` must be followed by at least body_padding (64) readable
// bytes (the caller reserves them when it reads the body; their value does not
// matter), so the body is parsed in place without a copy.
//
// chat_completions, fim_completions, embeddings: the body must be one valid JSON
// object (whole body validated: syntax, UTF-8, trailing content, depth <= 128,
// types of the fields Mistral's schema names) else a 400 in OpenAI shape; then
// every enabled request rule of SPEC §6 applies. With duplicate keys the last
// wins and earlier copies are dropped (as Python's json, which Mistral uses).
// completions: validated, model rewritten/aliased for routing only; the body is
// returned unchanged. Every row that is not buffered (other, model_list, ...):
// not parsed; routed to the region's mistral upstream.
//
// `model_override` (a fallback model, SPEC §6 `fallback`): sent instead of the
// model the model rules chose, with rule id `fallback`; the capability rules
// (tool_capable, vision_route) and routing then apply to it.
normalize_result normalize_request(const rules::rule_set& rules, const config::proxy_config& config, endpoint which,
                                   std::string_view body_with_padding, normalize_scratch& scratch,
                                   std::string_view model_override = {});

}  // namespace mistral_proxy::normalize
