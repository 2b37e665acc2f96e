// A parsed head's fields in one block of text (see wire_fields.hpp).
#include "http/wire_fields.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <boost/beast/core/string.hpp>

namespace mistral_proxy::http {

namespace bhttp = boost::beast::http;

namespace {

// What a head's text and index start at: the OpenAI SDK's 16 fields take
// about 420 bytes, an answer of Mistral's about 600 with its rate-limit
// fields. Reserved at once, they grow at most once for a larger head.
constexpr std::size_t initial_text_bytes = 1024;

bool same_name(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && boost::beast::iequals(a, b);
}

}  // namespace

std::string_view wire_fields::operator[](bhttp::field name) const noexcept {
    for (const auto& e : entries_) {
        if (e.name == name) {
            return value_of(e);
        }
    }
    return {};
}

std::string_view wire_fields::operator[](std::string_view name) const noexcept {
    for (const auto& e : entries_) {
        if (same_name(name_of(e), name)) {
            return value_of(e);
        }
    }
    return {};
}

std::size_t wire_fields::count(bhttp::field name) const noexcept {
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.name == name; }));
}

std::size_t wire_fields::count(std::string_view name) const noexcept {
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [&](const entry& e) { return same_name(name_of(e), name); }));
}

wire_fields::~wire_fields() {
    if (text_ != nullptr) {
        field_pool::give(text_, text_capacity_);
    }
}

void wire_fields::grow(std::size_t at_least) {
    // A head is bounded by the parser's header limit, far below 4 GB; the
    // check keeps the offsets honest if a caller ever feeds more.
    if (at_least > std::numeric_limits<std::uint32_t>::max() / 2) {
        throw std::length_error("wire_fields: head text over 2 GB");
    }
    const std::size_t capacity = std::max({initial_text_bytes, at_least, std::size_t{text_capacity_} * 2});
    char* text = static_cast<char*>(field_pool::take(capacity));
    if (text_ != nullptr) {
        if (text_size_ != 0) {
            std::memcpy(text, text_, text_size_);
        }
        field_pool::give(text_, text_capacity_);
    }
    text_ = text;
    text_capacity_ = static_cast<std::uint32_t>(capacity);
}

wire_fields::span wire_fields::keep(std::string_view text) {
    if (text.size() > text_capacity_ - text_size_) {
        grow(std::size_t{text_size_} + text.size());
    }
    const span where{text_size_, static_cast<std::uint32_t>(text.size())};
    if (!text.empty()) {
        std::memcpy(text_ + text_size_, text.data(), text.size());
    }
    text_size_ += static_cast<std::uint32_t>(text.size());
    return where;
}

void wire_fields::insert(bhttp::field name, std::string_view name_string, std::string_view value) {
    if (entries_.capacity() == 0) {
        entries_.reserve(initial_fields);
    }
    const span name_at = keep(name_string);
    const span value_at = keep(value);
    entries_.push_back(entry{name, name_at.at, name_at.size, value_at.at, value_at.size});
}

void wire_fields::insert(bhttp::field name, std::string_view value) {
    const auto canonical = bhttp::to_string(name);
    insert(name, std::string_view(canonical.data(), canonical.size()), value);
}

void wire_fields::insert(std::string_view name_string, std::string_view value) {
    insert(bhttp::string_to_field(name_string), name_string, value);
}

void wire_fields::clear() noexcept {
    text_size_ = 0;
    entries_.clear();
}

}  // namespace mistral_proxy::http
