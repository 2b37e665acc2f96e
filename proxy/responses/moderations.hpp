#pragma once
// POST /v1/moderations: OpenAI's CreateModerationRequest becomes Mistral's
// moderation request (ClassificationRequest: {model, input}), and Mistral's
// ModerationResponse goes back as OpenAI's CreateModerationResponse, its
// categories renamed by the rule files' `moderation_categories:` table. Pure.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/chat_response.hpp"
#include "responses/response_rules.hpp"

namespace mistral_proxy::responses {

// What OpenAI uses when a moderation request names no model (its schema's
// default); the rule files' model_alias then names Mistral's model for it.
inline constexpr std::string_view default_moderation_model = "omni-moderation-latest";

struct moderation_request {
    // The upstream body, `{"model":M,"input":I}` (when !error): M the client's
    // model (or default_moderation_model when absent or null), I its input as
    // a string or an array of strings. Model rules and routing are the
    // normalizer's, run on it afterwards (request_plan.cpp).
    std::string body;
    std::optional<errors::openai_error> error;  // 400 invalid_request_error
};

// Maps an OpenAI moderation request body (needs no padding):
//   input "text"                          -> "text"
//   input ["a","b"]                       -> ["a","b"]
//   input [{"type":"text","text":"a"},..] -> ["a",..] (strings and text parts may mix)
// Strings are copied as the client escaped them. Other members (OpenAI's
// request has none besides model and input) are dropped: Mistral's schema
// forbids extra fields. Duplicate keys: the last wins.
// 400 for: a body that is not a JSON object; input missing, empty, or of
// another type; an image_url part (code unsupported_content, param naming the
// part: Mistral's moderation classifies text only); a part of another type or
// a text part without a string `text`; a model that is not a string.
moderation_request map_moderation_request(std::string_view body);

// Mistral's ModerationResponse `{id, model, results:[{categories,
// category_scores}]}` -> OpenAI's `{id, model, results:[{flagged, categories,
// category_scores, category_applied_input_types}]}`. Per result and per OpenAI
// category (rules::openai_moderation_categories, in that order), with the
// Mistral categories `rules.moderation_categories` maps it from:
//   categories[c]      = any of them true;
//   category_scores[c] = the largest of their scores (its number copied as
//                        Mistral wrote it), 0 when none is present;
//   category_applied_input_types[c] = ["text"].
// A category with no counterpart is false and 0, never guessed. flagged = any
// OpenAI category true (Mistral categories that map to none, such as pii, do
// not flag). Other top-level members are copied through. A body that is not a
// moderation response (not JSON, no id/model/results, wrong types) gives a 502.
body_result transform_moderation_response(std::string_view body, const response_rules& rules);

}  // namespace mistral_proxy::responses
