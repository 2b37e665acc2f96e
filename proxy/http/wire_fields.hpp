#pragma once
// The fields of a head the proxy parsed (the client's request, the
// upstream's answer), as the wire had them: one block of text and a flat
// index of where each name and value lies in it. Beast's field list keeps
// each field in a heap element of its own, linked in a list and in a
// case-insensitive red-black tree: with the 16 fields the OpenAI SDK sends,
// inserting them cost about 6k instructions a request, and every lookup by
// name compared names letter by letter down the tree. Here a field costs an
// append, and a lookup by Beast's enum a walk comparing one integer a field.
// Light: no Asio, only Beast's field enum.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <vector>

#include <boost/beast/http/field.hpp>

#include "http/field_pool.hpp"

namespace mistral_proxy::http {

class wire_fields {
    struct entry {
        boost::beast::http::field name;
        std::uint32_t name_at;
        std::uint32_t name_size;
        std::uint32_t value_at;
        std::uint32_t value_size;
    };

public:
    // One field: Beast's enum for a name it knows (field::unknown for the
    // others), the name as the sender spelled it, and the value (Beast's
    // parser has taken the whitespace around it off). Views into the head's
    // text: valid while the head is, and until it changes.
    class value_type {
    public:
        value_type(boost::beast::http::field name, std::string_view name_string, std::string_view value) noexcept
            : name_(name), name_string_(name_string), value_(value) {}
        boost::beast::http::field name() const noexcept { return name_; }
        std::string_view name_string() const noexcept { return name_string_; }
        std::string_view value() const noexcept { return value_; }

    private:
        boost::beast::http::field name_;
        std::string_view name_string_;
        std::string_view value_;
    };

    // Yields each field as a value_type made on the spot (the index keeps
    // offsets, so that the text may grow while a head is parsed).
    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = wire_fields::value_type;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = value_type;

        const_iterator() noexcept = default;
        value_type operator*() const noexcept {
            return value_type(at_->name, std::string_view(text_ + at_->name_at, at_->name_size),
                              std::string_view(text_ + at_->value_at, at_->value_size));
        }
        const_iterator& operator++() noexcept {
            ++at_;
            return *this;
        }
        const_iterator operator++(int) noexcept {
            auto before = *this;
            ++at_;
            return before;
        }
        bool operator==(const const_iterator& other) const noexcept { return at_ == other.at_; }

    private:
        friend class wire_fields;
        const_iterator(const entry* at, const char* text) noexcept : at_(at), text_(text) {}
        const entry* at_ = nullptr;
        const char* text_ = nullptr;
    };
    using iterator = const_iterator;

    wire_fields() noexcept = default;
    wire_fields(const wire_fields&) = delete;
    wire_fields& operator=(const wire_fields&) = delete;
    ~wire_fields();

    const_iterator begin() const noexcept { return {entries_.data(), text_}; }
    const_iterator end() const noexcept { return {entries_.data() + entries_.size(), text_}; }
    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }

    // The first value of a field, "" when absent. By enum: `name` is one
    // Beast knows (not field::unknown). By name: any case.
    std::string_view operator[](boost::beast::http::field name) const noexcept;
    std::string_view operator[](std::string_view name) const noexcept;
    std::size_t count(boost::beast::http::field name) const noexcept;
    std::size_t count(std::string_view name) const noexcept;

    // Appends a field (a repeated name is a field more, as on the wire).
    // The parser passes Beast's enum for the name; the other forms work it
    // out (for heads made in tests).
    void insert(boost::beast::http::field name, std::string_view name_string, std::string_view value);
    void insert(boost::beast::http::field name, std::string_view value);
    void insert(std::string_view name_string, std::string_view value);
    void clear() noexcept;

    // Text a head keeps beside its fields (a request's method and target, an
    // answer's reason phrase), in the same block: where it was put, to read
    // it back with kept().
    struct span {
        std::uint32_t at = 0;
        std::uint32_t size = 0;
    };
    span keep(std::string_view text);
    std::string_view kept(span where) const noexcept { return {text_ + where.at, where.size}; }
    // Appends a field whose name and value are in text kept already (a
    // whole head kept at once, then indexed: no copy a field).
    void insert_kept(boost::beast::http::field name, span name_at, span value_at) {
        if (entries_.capacity() == 0) {
            entries_.reserve(initial_fields);
        }
        entries_.push_back(entry{name, name_at.at, name_at.size, value_at.at, value_at.size});
    }

private:
    static constexpr std::size_t initial_fields = 24;  // the OpenAI SDK sends 16
    std::string_view name_of(const entry& e) const noexcept { return {text_ + e.name_at, e.name_size}; }
    std::string_view value_of(const entry& e) const noexcept { return {text_ + e.value_at, e.value_size}; }
    void grow(std::size_t at_least);

    // Pooled (field_pool.hpp): with dozens of heads in flight on a worker,
    // their two blocks come back from a per-thread list, not from malloc.
    // The text is a plain block with a memcpy an append (a vector<char>'s
    // range insert cost about 200 instructions a field).
    char* text_ = nullptr;
    std::uint32_t text_size_ = 0;
    std::uint32_t text_capacity_ = 0;
    std::vector<entry, field_pool_allocator<entry>> entries_;
};

}  // namespace mistral_proxy::http
