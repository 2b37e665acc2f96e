// libFuzzer target: the error translator (errors::translate_upstream_error).
//
// Input: bytes 0-1 = the upstream status (big endian, modulo 1000); the rest is
// the upstream's error body.
//
// Invariants: the status is kept; errors::to_json is valid JSON of exactly
// {"error":{"message":string,"type":string,"param":string|null,"code":string|null}}
// (each member once, nothing else, message and type not empty); to_sse_event is
// "data: " + that + "\n\n".
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "errors/openai_error.hpp"
#include "fuzz_support.hpp"

using namespace mistral_proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const unsigned status = ((static_cast<unsigned>(data[0]) << 8) | data[1]) % 1000;
    const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

    const errors::openai_error error = errors::translate_upstream_error(status, body, "mistral");
    fuzz::check(error.status == status, "the upstream status is kept");
    const std::string json = errors::to_json(error);

    auto parsed = fuzz::parse_dom(json);
    fuzz::check(parsed.error() == simdjson::SUCCESS, "to_json is valid JSON", json);
    simdjson::dom::object root;
    fuzz::check(parsed.value_unsafe().get(root) == simdjson::SUCCESS && root.size() == 1, "one member at the top",
                json);
    simdjson::dom::object inner;
    fuzz::check(root["error"].get(inner) == simdjson::SUCCESS, "the member is the object \"error\"", json);
    int message = 0;
    int type = 0;
    int param = 0;
    int code = 0;
    for (const auto field : inner) {
        const auto kind = field.value.type();
        const bool is_string = kind == simdjson::dom::element_type::STRING;
        const bool string_or_null = is_string || kind == simdjson::dom::element_type::NULL_VALUE;
        if (field.key == "message") {
            ++message;
            fuzz::check(is_string && !field.value.get_string().value_unsafe().empty(), "message is a non-empty string",
                        json);
        } else if (field.key == "type") {
            ++type;
            fuzz::check(is_string && !field.value.get_string().value_unsafe().empty(), "type is a non-empty string",
                        json);
        } else if (field.key == "param") {
            ++param;
            fuzz::check(string_or_null, "param is a string or null", json);
        } else if (field.key == "code") {
            ++code;
            fuzz::check(string_or_null, "code is a string or null", json);
        } else {
            fuzz::fail("error has only message, type, param and code", json);
        }
    }
    fuzz::check(message == 1 && type == 1 && param == 1 && code == 1, "each of message/type/param/code once", json);

    const std::string event = errors::to_sse_event(error);
    fuzz::check(event == "data: " + json + "\n\n", "to_sse_event is data: + to_json + blank line", event);
    return 0;
}
