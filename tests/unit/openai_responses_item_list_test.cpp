// GET /v1/responses/{id}/input_items and DELETE answers built from a stored
// response (proxy/openai_responses/item_list.hpp).
#include <doctest/doctest.h>

#include <string>

#include "openai_responses/item_list.hpp"

namespace {

using namespace mistral_proxy::openai_responses;

constexpr std::string_view stored =
    R"([{"id":"msg_1","type":"message","role":"user","content":[{"type":"input_text","text":"a"}]},)"
    R"({"id":"fco_2","type":"function_call_output","call_id":"c","output":"x"},)"
    R"({"id":"msg_3","type":"message","role":"user","content":[{"type":"input_text","text":"b"}]}])";

std::string list(std::string_view query) {
    const auto parsed = parse_item_list_query(query);
    REQUIRE_FALSE(parsed.error);
    auto result = build_item_list(stored, parsed.query);
    REQUIRE_FALSE(result.error);
    return result.body;
}

}  // namespace

TEST_CASE("input items: newest first by default, as OpenAI lists them") {
    const auto body = list("");
    CHECK(body.starts_with(R"({"object":"list","data":[{"id":"msg_3",)"));
    CHECK(body.ends_with(R"(],"first_id":"msg_3","last_id":"msg_1","has_more":false})"));
}

TEST_CASE("input items: order, limit and after page through the list") {
    CHECK(list("?order=asc&limit=2") ==
          R"({"object":"list","data":[{"id":"msg_1","type":"message","role":"user","content":[{"type":"input_text","text":"a"}]},)"
          R"({"id":"fco_2","type":"function_call_output","call_id":"c","output":"x"}],"first_id":"msg_1","last_id":"fco_2","has_more":true})");
    CHECK(list("order=asc&after=fco_2") ==
          R"({"object":"list","data":[{"id":"msg_3","type":"message","role":"user","content":[{"type":"input_text","text":"b"}]}],"first_id":"msg_3","last_id":"msg_3","has_more":false})");
    CHECK(list("after=msg_1") == R"({"object":"list","data":[],"first_id":"","last_id":"","has_more":false})");
}

TEST_CASE("input items: bad parameters and ids are 400s naming the parameter") {
    for (const auto* query : {"order=up", "limit=0", "limit=101", "limit=ten"}) {
        CAPTURE(query);
        const auto parsed = parse_item_list_query(query);
        REQUIRE(parsed.error);
        CHECK(parsed.error->status == 400);
        CHECK(parsed.error->param.has_value());
    }
    const auto unknown = build_item_list(stored, {false, 20, "msg_9"});
    REQUIRE(unknown.error);
    CHECK(unknown.error->param == "after");
    CHECK(build_item_list("{not an array", {}).error->status == 500);
}

TEST_CASE("deleted and not found answers") {
    CHECK(deleted_response("resp_1") == R"({"id":"resp_1","object":"response","deleted":true})");
    const auto missing = response_not_found("resp_x");
    CHECK(missing.status == 404);
    CHECK(missing.message == "Response with id 'resp_x' not found.");
    CHECK(missing.type == "invalid_request_error");
}
