// The responses store seen from a session (SPEC §4 Responses API): reading
// the conversation a POST /v1/responses continues, keeping a Response once it
// is answered, and the local endpoints GET/DELETE /v1/responses/{id} and
// GET /v1/responses/{id}/input_items. The translation itself is pure
// (proxy/openai_responses); the store is store/io/store_client.hpp.
#include "http/session.hpp"
#include "log/log.hpp"
#include "openai_responses/item_list.hpp"
#include "openai_responses/request.hpp"

namespace mistral_proxy::http {

using logging::log_level;
using logging::log_line;

namespace {

errors::openai_error store_failure(const std::string& what) {
    return errors::make_error(500, "the responses store failed: " + what, "server_error");
}

}  // namespace

awaitable<bool> downstream_session::load_responses_history(request_context& context, std::string_view body,
                                                           std::vector<std::pair<std::string, std::string>>& items) {
    auto references = openai_responses::find_references(body);
    if (references.error) {
        co_await send_error(context, *references.error, context.client_keep_alive);
        co_return false;
    }
    if (references.previous_response_id.empty() && references.item_ids.empty()) {
        co_return true;
    }
    if (!worker_.store.enabled()) {
        co_await send_error(context, openai_responses::store_disabled_error(!references.previous_response_id.empty()),
                            context.client_keep_alive);
        co_return false;
    }
    if (!references.previous_response_id.empty()) {
        auto found = co_await worker_.store.get(references.previous_response_id);
        if (!found.error.empty()) {
            log_line(log_level::error, "request " + context.id + ": responses store: " + found.error);
            co_await send_error(context, store_failure(found.error), context.client_keep_alive);
            co_return false;
        }
        if (!found.value) {
            co_await send_error(context, openai_responses::previous_response_not_found(references.previous_response_id),
                                context.client_keep_alive);
            co_return false;
        }
        context.responses_previous = std::move(found.value->conversation);
    }
    for (auto& id : references.item_ids) {
        bool known = false;
        for (const auto& item : items) {
            known = known || item.first == id;
        }
        if (known) {
            continue;
        }
        auto found = co_await worker_.store.find_item(id);
        if (!found.error.empty()) {
            log_line(log_level::error, "request " + context.id + ": responses store: " + found.error);
            co_await send_error(context, store_failure(found.error), context.client_keep_alive);
            co_return false;
        }
        if (found.value) {  // an unknown id is the translation's 400, naming the item
            items.emplace_back(std::move(id), std::move(*found.value));
        }
    }
    co_return true;
}

awaitable<void> downstream_session::store_response(request_context& context, const answer_plan& plan,
                                                   std::string_view response, std::string_view output_items) {
    if (!plan.responses || !plan.responses->store || !worker_.store.enabled()) {
        co_return;
    }
    const auto& request = *plan.responses;
    store::stored_response stored;
    stored.id = request.response_id;
    stored.created_at = plan.created_at;
    stored.response = std::string(response);
    stored.input_items = request.input_items;
    stored.conversation = openai_responses::join_items(context.responses_previous, request.input_items, output_items);
    if (const auto error = co_await worker_.store.put(std::move(stored))) {
        log_line(log_level::error, "request " + context.id + ": response " + request.response_id +
                                       " not stored: " + *error);
    }
}

awaitable<bool> downstream_session::answer_response_object(request_context& context, std::string_view method,
                                                           std::string_view query, bool can_reuse) {
    // "/v1/responses/{id}" or "/v1/responses/{id}/input_items"
    std::string_view rest = std::string_view(context.path).substr(std::string_view("/v1/responses/").size());
    const auto slash = rest.find('/');
    const std::string id(rest.substr(0, slash));
    const std::string_view tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    const bool input_items = tail == "/input_items";
    if ((!tail.empty() && !input_items) || (input_items && method != "GET") ||
        (!input_items && method != "GET" && method != "DELETE")) {
        auto error = errors::make_error(
            tail == "/cancel" ? 400 : 405,
            tail == "/cancel" ? "only background responses can be cancelled, and this proxy runs none (background: true "
                                "is refused)"
                              : "the Responses API here serves GET and DELETE /v1/responses/{id} and GET "
                                "/v1/responses/{id}/input_items; not " +
                                    std::string(method) + " " + context.path,
            tail == "/cancel" ? "background_not_supported" : "method_not_allowed");
        co_return co_await send_error(context, error, can_reuse);
    }
    if (!worker_.store.enabled()) {
        co_return co_await send_error(context, openai_responses::response_not_found(id), can_reuse);
    }
    if (method == "DELETE") {
        auto removed = co_await worker_.store.remove(id);
        if (!removed.error.empty()) {
            log_line(log_level::error, "request " + context.id + ": responses store: " + removed.error);
            co_return co_await send_error(context, store_failure(removed.error), can_reuse);
        }
        if (!removed.value || !*removed.value) {
            co_return co_await send_error(context, openai_responses::response_not_found(id), can_reuse);
        }
        co_return co_await send_json(context, 200, openai_responses::deleted_response(id), can_reuse);
    }
    auto found = co_await worker_.store.get(id);
    if (!found.error.empty()) {
        log_line(log_level::error, "request " + context.id + ": responses store: " + found.error);
        co_return co_await send_error(context, store_failure(found.error), can_reuse);
    }
    if (!found.value) {
        co_return co_await send_error(context, openai_responses::response_not_found(id), can_reuse);
    }
    if (!input_items) {
        co_return co_await send_json(context, 200, std::move(found.value->response), can_reuse);
    }
    const auto parsed = openai_responses::parse_item_list_query(query);
    if (parsed.error) {
        co_return co_await send_error(context, *parsed.error, can_reuse);
    }
    auto list = openai_responses::build_item_list(found.value->input_items, parsed.query);
    if (list.error) {
        co_return co_await send_error(context, *list.error, can_reuse);
    }
    co_return co_await send_json(context, 200, std::move(list.body), can_reuse);
}

}  // namespace mistral_proxy::http
