#pragma once
// One call of plan_request for the plan tests, with the shipped rule files:
// the body padded as the session pads it, and what the plan names kept.
#include <memory>
#include <string>
#include <string_view>

#include "normalizer_support.hpp"
#include "plan/request_plan.hpp"

namespace plan_test {

using namespace mistral_proxy;

struct planned {
    std::string input;  // the plan's views point into it
    plan::plan_result result;
    std::string body;
    std::string rules;
};

// Returned by pointer: the plan's views point into the input it holds.
inline std::unique_ptr<planned> plan_with(const config::proxy_config& config, std::string_view path, std::string json,
                                          std::string_view method = "POST", std::string_view model_override = {}) {
    static const auto aliases = plan::derive_model_aliases(normalizer_test::shipped());
    static plan::plan_scratch scratch;
    const plan::plan_inputs inputs{config, normalizer_test::shipped(), aliases};
    const auto& row = routing::find_endpoint(method, path);
    const auto length = json.size();
    json.append(normalize::body_padding, '\0');
    auto out = std::make_unique<planned>();
    out->input = std::move(json);
    out->result =
        plan::plan_request(inputs, {row, path, std::string_view(out->input.data(), length), model_override}, scratch);
    if (out->result.ok()) {
        out->body = std::string(out->result.plan->body);
        out->result.plan->fired.append_names(out->rules);
    }
    return out;
}

}  // namespace plan_test
