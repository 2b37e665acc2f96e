#pragma once
// GET /v1/models and /v1/models/{id}: Mistral's list plus the rule files'
// aliases, each shown as a model of its own that names the model it maps to.
// Pure.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "responses/chat_response.hpp"

namespace mistral_proxy::responses {

struct model_alias {
    std::string alias;   // what clients call it, e.g. "gpt-4o"
    std::string target;  // the Mistral model it becomes, e.g. "mistral-large-latest"
};

// The member naming an alias's target in the cards below.
inline constexpr std::string_view alias_target_member = "alias_for";
inline constexpr std::string_view alias_owner = "mistral-proxy";

// The alias entry for `id`, or nullptr (first match in `aliases` wins).
const model_alias* find_alias(std::span<const model_alias> aliases, std::string_view id) noexcept;

// Mistral's ModelList body (2xx) with one card per alias appended to `data`:
// the target's card when the list has it (capabilities, context length, ...),
// with "id": alias, "owned_by": "mistral-proxy", "alias_for": target and the
// target's own "aliases" list left out; else a synthesized card
// {"id","object":"model","created","owned_by","alias_for"}. An alias that is
// also an upstream id is not added (the real model wins), nor is an alias
// twice. Upstream cards are copied through untouched. A body that is not a
// model list gives a 502 (clients must see an error, not an empty list).
// `created` is used in synthesized cards (e.g. the proxy's start time).
body_result merge_model_list(std::string_view upstream_body, std::span<const model_alias> aliases,
                             std::int64_t created);

// GET /v1/models/{alias}, answered locally: `target_card` is the upstream's
// 2xx answer for /v1/models/{target}, or "" when there is none (404, or not
// fetched); the card is then synthesized.
std::string alias_model_card(std::string_view target_card, const model_alias& alias, std::int64_t created);

}  // namespace mistral_proxy::responses
