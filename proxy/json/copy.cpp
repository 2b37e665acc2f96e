// The copy-through JSON writer's out-of-line pieces (see copy.hpp).
#include "json/copy.hpp"

#include <charconv>

namespace mistral_proxy::json {

bool raw_object(od::object& object, std::string_view& raw) {
    if (object.raw_json().get(raw) != simdjson::SUCCESS || object.reset().error() != simdjson::SUCCESS) {
        return false;
    }
    for (auto member : object) {
        od::field& field = field_in(member);
        std::string_view key;
        od::json_type type;
        if (member_of(member, key) != simdjson::SUCCESS ||
            field.value().type().get(type) != simdjson::SUCCESS ||
            validate(field.value(), type, 2) != simdjson::SUCCESS) {
            return false;
        }
    }
    return object.reset().error() == simdjson::SUCCESS;
}

void append_uint(std::string& out, std::uint64_t value) {
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, static_cast<std::size_t>(result.ptr - buffer));
}

void append_int(std::string& out, std::int64_t value) {
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, static_cast<std::size_t>(result.ptr - buffer));
}

}  // namespace mistral_proxy::json
