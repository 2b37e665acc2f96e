// Embeddings: the client's encoding read from the request, base64 float32
// built from Mistral's floats (see embeddings.hpp).
#include "responses/embeddings.hpp"

#include <bit>
#include <cstdint>

#include "responses/json_copy.hpp"

namespace mistral_proxy::responses {

namespace od = simdjson::ondemand;
using detail::begin_member;
using detail::copy_member;

namespace {

bool write_base64_embedding(od::array numbers, std::string& bytes, std::string& out) {
    bytes.clear();
    for (auto element : numbers) {
        double value = 0;
        if (element.get_double().get(value) != simdjson::SUCCESS) {
            return false;
        }
        append_float32_le(bytes, static_cast<float>(value));
    }
    out += '"';
    append_base64(out, bytes);
    out += '"';
    return true;
}

}  // namespace

body_result transform_embeddings_response(std::string_view body, embedding_encoding client_encoding) {
    body_result result;
    if (client_encoding == embedding_encoding::floats) {
        result.unchanged = true;
        return result;
    }
    const auto bad_body = [&]() -> body_result& {
        result.body.clear();
        result.error =
            errors::make_error(502, "upstream answered with a body that is not an embedding list", "upstream_bad_body");
        return result;
    };
    thread_local detail::json_reader reader;
    thread_local std::string bytes;
    od::document doc;
    od::object root;
    if (!reader.open(body, doc, root)) {
        return bad_body();
    }
    std::string& out = result.body;
    // base64 is 4/3 of 4 bytes per value where the decimal text was ~20: smaller.
    out.reserve(body.size());
    out += '{';
    bool first = true;
    bool saw_data = false;
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (!detail::member_of(field, key, value)) {
            return bad_body();
        }
        if (key != "data") {
            if (key == "usage") {
                std::string_view raw;
                usage_counts counts;
                if (detail::read_usage_value(value, raw, counts)) {
                    result.usage = counts;
                    begin_member(out, first, key);
                    out += raw;
                    continue;
                }
            }
            if (!copy_member(out, first, key, value)) {
                return bad_body();
            }
            continue;
        }
        od::array data;
        if (value.get_array().get(data) != simdjson::SUCCESS) {
            return bad_body();
        }
        saw_data = true;
        begin_member(out, first, key);
        out += '[';
        bool first_item = true;
        for (auto element : data) {
            od::object item;
            if (element.get_object().get(item) != simdjson::SUCCESS) {
                return bad_body();
            }
            if (!first_item) {
                out += ',';
            }
            first_item = false;
            out += '{';
            bool first_member = true;
            for (auto item_field : item) {
                std::string_view item_key;
                if (item_field.unescaped_key().get(item_key) != simdjson::SUCCESS) {
                    return bad_body();
                }
                od::value item_value = item_field.value();
                od::array numbers;
                if (item_key == "embedding" && item_value.get_array().get(numbers) == simdjson::SUCCESS) {
                    begin_member(out, first_member, item_key);
                    if (!write_base64_embedding(numbers, bytes, out)) {
                        return bad_body();
                    }
                } else if (!copy_member(out, first_member, item_key, item_value)) {
                    return bad_body();
                }
            }
            out += '}';
        }
        out += ']';
    }
    if (!saw_data || !detail::at_end(doc)) {
        return bad_body();
    }
    out += '}';
    result.hits.add(response_rule::embeddings_base64);
    return result;
}

void append_base64(std::string& out, std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
    const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])); };
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t triple = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += alphabet[(triple >> 18) & 0x3F];
        out += alphabet[(triple >> 12) & 0x3F];
        out += alphabet[(triple >> 6) & 0x3F];
        out += alphabet[triple & 0x3F];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const std::uint32_t triple = byte(i) << 16;
        out += alphabet[(triple >> 18) & 0x3F];
        out += alphabet[(triple >> 12) & 0x3F];
        out += "==";
    } else if (rest == 2) {
        const std::uint32_t triple = (byte(i) << 16) | (byte(i + 1) << 8);
        out += alphabet[(triple >> 18) & 0x3F];
        out += alphabet[(triple >> 12) & 0x3F];
        out += alphabet[(triple >> 6) & 0x3F];
        out += '=';
    }
}

void append_float32_le(std::string& out, float value) {
    const auto bits = std::bit_cast<std::uint32_t>(value);
    out += static_cast<char>(bits & 0xFF);
    out += static_cast<char>((bits >> 8) & 0xFF);
    out += static_cast<char>((bits >> 16) & 0xFF);
    out += static_cast<char>((bits >> 24) & 0xFF);
}

}  // namespace mistral_proxy::responses
