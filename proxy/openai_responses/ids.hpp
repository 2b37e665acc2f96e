#pragma once
// Ids of the objects the Responses API names (resp_..., msg_..., fc_..., rs_...):
// OpenAI's look (a prefix and 48 hex digits). Injected into the translators so
// that tests get exact, repeatable output and production gets random ids.
#include <cstdint>
#include <string>
#include <string_view>

namespace mistral_proxy::openai_responses {

class id_source {
public:
    virtual ~id_source() = default;
    // Appends `prefix` (e.g. "resp_") and 48 lowercase hex digits to `out`.
    virtual void append(std::string& out, std::string_view prefix) = 0;
    std::string make(std::string_view prefix) {
        std::string id;
        append(id, prefix);
        return id;
    }
};

// Counts up from `start`: the 48 digits are the counter, zero padded
// (resp_000...001, msg_000...002, ...). For tests.
class counter_ids final : public id_source {
public:
    explicit counter_ids(std::uint64_t start = 1) noexcept : next_(start) {}
    void append(std::string& out, std::string_view prefix) override;

private:
    std::uint64_t next_;
};

// 192 random bits per id from a std::mt19937_64 seeded once per thread from
// std::random_device. Not a secret (ids are not capabilities); unique enough
// that two proxies sharing one store never collide in practice.
class random_ids final : public id_source {
public:
    void append(std::string& out, std::string_view prefix) override;
};

}  // namespace mistral_proxy::openai_responses
