// Which Mistral host a request goes to (SPEC §5; see route.hpp).
#include "routing/route.hpp"

namespace mistral_proxy::routing {

std::string_view upstream_name(upstream_id id) noexcept {
    switch (id) {
        case upstream_id::mistral:
            return "mistral";
        case upstream_id::mistral_eu:
            return "mistral_eu";
        case upstream_id::codestral:
            return "codestral";
    }
    return "mistral";
}

route_result choose_upstream(const config::proxy_config& config, const rules::rule_set& rules, const endpoint_row& endpoint,
                             std::string_view model) {
    route_result result;
    const bool codestral = endpoint.codestral_only || (!model.empty() && rules.is_codestral_model(model));
    const bool eu = config.region == config::region_kind::eu;
    if (codestral) {
        if (eu && config.eu_strict) {
            std::string message = "this request needs the codestral upstream";
            if (!model.empty()) {
                message += " (model '" + std::string(model) + "')";
            }
            message +=
                ", but Codestral has no EU endpoint and the proxy runs with region: eu and eu_strict: true; "
                "the request was refused and nothing was sent to Mistral. Use a model served in the EU, or "
                "set eu_strict: false to allow Codestral calls outside the EU.";
            result.error = errors::make_error(403, std::move(message), "eu_residency_required");
            return result;
        }
        result.upstream = upstream_id::codestral;
        return result;
    }
    result.upstream = eu ? upstream_id::mistral_eu : upstream_id::mistral;
    return result;
}

}  // namespace mistral_proxy::routing
