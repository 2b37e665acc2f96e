#pragma once
// Which Mistral host a request goes to (SPEC §5). Pure: no I/O.
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "errors/openai_error.hpp"
#include "rules/rule_set.hpp"
#include "routing/endpoints.hpp"

namespace mistral_proxy::routing {

enum class upstream_id { mistral = 0, mistral_eu = 1, codestral = 2 };
inline constexpr std::size_t upstream_count = 3;

std::string_view upstream_name(upstream_id id) noexcept;

struct route_result {
    std::optional<upstream_id> upstream;  // set on success
    std::optional<errors::openai_error> error;  // set when refused (403 eu_residency_required)
};

// `endpoint` is the request's endpoint table row (endpoints.hpp; for legacy
// completions, the chat or FIM row it becomes). `model` is the model id after
// rewriting, empty when the request has none.
route_result choose_upstream(const config::proxy_config& config, const rules::rule_set& rules,
                             const endpoint_row& endpoint, std::string_view model);

}  // namespace mistral_proxy::routing
