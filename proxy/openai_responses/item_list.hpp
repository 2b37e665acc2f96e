#pragma once
// GET /v1/responses/{id}/input_items and DELETE /v1/responses/{id}: the
// answers built from what the responses store kept (OpenAI's
// ResponseItemList and the deletion object). Pure: no I/O, no exceptions.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"

namespace mistral_proxy::openai_responses {

// The query of an input_items call: order=asc|desc (OpenAI's default desc),
// limit=1..100 (default 20), after=ITEM_ID (the page starts after it).
struct item_list_query {
    bool ascending = false;
    std::size_t limit = 20;
    std::string after;
};

struct parsed_item_query {
    item_list_query query;
    std::optional<errors::openai_error> error;  // 400 naming the parameter
};
// `query` is the target's query string, with or without its leading '?'.
parsed_item_query parse_item_list_query(std::string_view query);

struct item_list_result {
    std::string body;  // {"object":"list","data":[...],"first_id","last_id","has_more"}
    std::optional<errors::openai_error> error;  // 400 for an `after` id the list lacks; 500 for a stored text that is not an array
};
// `input_items`: the stored JSON array of the response's input items.
item_list_result build_item_list(std::string_view input_items, const item_list_query& query);

// {"id":ID,"object":"response","deleted":true}
std::string deleted_response(std::string_view id);

// The 404 of an id the store does not hold (OpenAI's wording).
errors::openai_error response_not_found(std::string_view id, std::string_view param = {});

// The 404 of a previous_response_id the store does not hold (OpenAI's
// wording, param previous_response_id). What serve answers and explain prints.
errors::openai_error previous_response_not_found(std::string_view id);

// The 400 of a previous_response_id (`previous` true) or item_reference input
// item when responses.store is off: nothing to continue from.
errors::openai_error store_disabled_error(bool previous);

}  // namespace mistral_proxy::openai_responses
