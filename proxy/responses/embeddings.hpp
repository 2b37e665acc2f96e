#pragma once
// /v1/embeddings: the answer in the encoding the client asked for (which the
// normalizer reads from the request: normalized_request::encoding).
// The official SDKs send encoding_format "base64" by default and decode the
// string as little-endian float32 without checking; Mistral's own base64 has
// been reported wrong, so the proxy always asks Mistral for floats and encodes
// them itself. Pure.
#include <optional>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "responses/chat_response.hpp"

namespace mistral_proxy::responses {

enum class embedding_encoding { floats, base64 };  // absent or null: floats (OpenAI's default)


// Mistral's EmbeddingResponse for a client that asked `client_encoding`:
// floats -> unchanged; base64 -> each data[].embedding array of numbers becomes
// the base64 of its values as little-endian float32 (an embedding that is
// already a string is kept). Hit: embeddings_base64. A body that is not an
// embedding list gives a 502 when base64 was asked (the SDK would decode garbage).
body_result transform_embeddings_response(std::string_view body, embedding_encoding client_encoding);

// Appends the base64 (RFC 4648, with padding) of `bytes`.
void append_base64(std::string& out, std::string_view bytes);

// Appends the 4 little-endian bytes of `value` as IEEE 754 binary32, whatever
// the host's byte order.
void append_float32_le(std::string& out, float value);

}  // namespace mistral_proxy::responses
