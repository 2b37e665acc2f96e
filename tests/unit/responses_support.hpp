#pragma once
// The answer rules of the shipped rules/mistral.yaml, loaded through the rule set
// loader as the server loads them (response_rules::from), for the response tests.
#include "normalizer_support.hpp"
#include "responses/response_rules.hpp"

namespace responses_test {

inline const mistral_proxy::responses::response_rules& shipped_rules() {
    static const auto rules = mistral_proxy::responses::response_rules::from(normalizer_test::shipped());
    return rules;
}

}  // namespace responses_test
