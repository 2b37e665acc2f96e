#pragma once
// Every non-2xx answer leaves the proxy in OpenAI's shape (SPEC §7):
//   {"error":{"message":string,"type":string,"param":string|null,"code":string|null}}
// This header holds that value type, its serialisation and the translation of
// every shape Mistral answers errors in. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "errors/redact.hpp"

namespace mistral_proxy::errors {

struct openai_error {
    unsigned status = 500;
    std::string type;     // invalid_request_error, authentication_error, permission_error,
                          // not_found_error, rate_limit_error, api_error, ...
    std::string message;  // shown by the SDKs; never contains a key
    std::optional<std::string> param;
    std::optional<std::string> code;
};

// OpenAI's type for a status: 400/413/415/422 invalid_request_error, 401
// authentication_error, 403 permission_error, 404 not_found_error, 409 conflict_error,
// 429 rate_limit_error, 5xx api_error (502/504 too), others invalid_request_error.
std::string_view type_for_status(unsigned status) noexcept;

// Builds an error of the proxy's own with the type for the status.
openai_error make_error(unsigned status, std::string message, std::optional<std::string> code = std::nullopt,
                        std::optional<std::string> param = std::nullopt);

// {"error":{...}} — the body of a non-2xx answer.
std::string to_json(const openai_error& error);

// data: {"error":{...}}\n\n — the last event of a stream that failed.
std::string to_sse_event(const openai_error& error);

// Translates an upstream non-2xx body into OpenAI shape, keeping the status and
// Mistral's message text. Handles:
//   {"object":"error","message":"...","type":...,"param":...,"code":...}
//   {"object":"error","message":{"detail":[...]},...}   (message as an object)
//   {"detail":[{"loc":[...],"msg":"...","type":"..."}]} (FastAPI 422)
//   {"detail":"..."}
//   {"message":"Unauthorized","request_id":"..."}
//   {"error":{...}} already OpenAI-shaped (kept, missing members filled)
//   anything else, JSON or not: the text itself (trimmed, bounded) or the reason phrase when empty.
// `upstream_name` is used in messages only when Mistral gave no text.
// `hide` redacts the keys in every text taken from the body (before it is cut
// to length, so no part of a key survives a cut): an upstream may echo the
// Authorization header it was sent.
openai_error translate_upstream_error(unsigned status, std::string_view body, std::string_view upstream_name,
                                      const redactor& hide = {});

}  // namespace mistral_proxy::errors
