// Malformed and hostile input: every byte is validated, nothing invalid is
// forwarded, and every refusal is a 400 in OpenAI shape.
#include <doctest/doctest.h>

#include <sys/mman.h>

#include "normalizer_support.hpp"

using namespace normalizer_test;
using normalize::endpoint;

TEST_CASE("malformed bodies get a 400 and nothing is sent") {
    struct row {
        std::string_view name;
        std::string input;
        std::string_view message_part;
    };
    std::string deep = R"({"model":"m","messages":[],"metadata":)";
    for (int i = 0; i < 200; ++i) {
        deep += "[";
    }
    for (int i = 0; i < 200; ++i) {
        deep += "]";
    }
    deep += "}";
    const std::vector<row> rows = {
        {"empty", "", "empty"},
        {"not JSON", "{not json", "not valid JSON"},
        {"trailing brace", R"({"model":"m","messages":[]}})", "not valid JSON"},
        {"trailing word", R"({"model":"m","messages":[]} x)", "not valid JSON"},
        {"second object", R"({"model":"m","messages":[]}{})", "not valid JSON"},
        {"bad atom in an untouched value", R"({"model":"m","messages":[],"metadata":{"a":[tru]}})", "not valid JSON"},
        {"bad atom in a dropped field", R"({"model":"m","messages":[],"user":nul})", "not valid JSON"},
        {"bad number", R"({"model":"m","messages":[],"temperature":1.})", "not valid JSON"},
        // A string read by its token alone, then a ':' where a ',' belongs: the
        // walk must see it (an unread value is skipped by counting brackets only).
        {"second colon after a string", R"({"model":"m","messages":[{"role":"user","content":"hi":"x"}]})",
         "not valid JSON"},
        {"second colon in an untouched value", R"({"model":"m","messages":[],"stop":[{"id":"g":"x"}}]})",
         "not valid JSON"},
        {"second colon in a dropped value",
         R"({"model":"m","messages":[],"response_format":{"type":"text","x":{"id":"g":"x"}}}})", "not valid JSON"},
        {"bad escape", R"({"model":"m","messages":[{"role":"user","content":"\q"}]})", "not valid JSON"},
        {"unterminated", R"({"model":"m","messages":[{"role":"user","content":"hi"})", "not valid JSON"},
        {"invalid UTF-8", std::string(R"({"model":"m","messages":[{"role":"user","content":")") + "\xff\xfe" + "\"}]}", "UTF-8"},
        {"too deep", deep, "nested too deeply"},
        {"array", R"([{"model":"m"}])", "must be a JSON object"},
        {"string", R"("hello")", "must be a JSON object"},
        {"model not a string", R"({"model":4,"messages":[]})", "'model' must be a string"},
        {"no model", R"({"messages":[]})", "model"},
        {"no messages", R"({"model":"m"})", "messages"},
        {"messages not an array", R"({"model":"m","messages":{}})", "'messages' must be an array"},
        {"message not an object", R"({"model":"m","messages":["hi"]})", "messages[0] must be an object"},
        {"unknown role", R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
        {"no role", R"({"model":"m","messages":[{"content":"x"}]})", "messages[0] needs a role"},
        {"content a number", R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
        {"temperature a string", R"({"model":"m","messages":[],"temperature":"hot"})", "'temperature' must be"},
        {"tools not an array", R"({"model":"m","messages":[],"tools":{}})", "'tools' must be an array"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const auto out = run(r.input);
        REQUIRE_FALSE(out.ok);
        CHECK(out.status == 400);
        CHECK_MESSAGE(out.message.find(r.message_part) != std::string::npos, out.message);
    }
}

TEST_CASE("errors come out in OpenAI's shape") {
    const auto out = run("{");
    REQUIRE_FALSE(out.ok);
    errors::openai_error error = errors::make_error(out.status, out.message);
    CHECK(errors::to_json(error).starts_with(R"({"error":{"message":")"));
    CHECK(error.type == "invalid_request_error");
}

TEST_CASE("the same scratch serves many requests of different sizes") {
    // Views of a previous result are not used after the next call; results stay right.
    std::string big = R"({"model":"gpt-4o","messages":[)";
    for (int i = 0; i < 2000; ++i) {
        big += std::string(i == 0 ? "" : ",") + R"({"role":"user","content":"message number )" + std::to_string(i) + R"("})";
    }
    big += "]}";
    for (int round = 0; round < 3; ++round) {
        auto out = run(big);
        REQUIRE(out.ok);
        CHECK(out.rules == "model_alias");
        CHECK(out.body.size() == big.size() + std::string_view("mistral-large-latest").size() - 6);
        out = run(R"({"model":"gpt-4o","messages":[]})");
        CHECK(out.body == R"({"model":"mistral-large-latest","messages":[]})");
    }
}

TEST_CASE("a body that grows the scratch past what it keeps is returned whole, and the next one is right too") {
    // Over 1 MiB rewritten: the arena and the parser grow past what the scratch
    // keeps between requests. The result points into them, so they may only be
    // given back when the next request starts (reading it here crashed before).
    const std::string content(3 * 1024 * 1024, 'a');
    const std::string big = R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + content + R"("}]})";
    for (int round = 0; round < 2; ++round) {
        auto out = run(big);
        REQUIRE(out.ok);
        CHECK(out.rules == "model_alias");
        CHECK(out.body == R"({"model":"mistral-large-latest","messages":[{"role":"user","content":")" + content + R"("}]})");
        out = run(R"({"model":"gpt-4o","messages":[]})");
        CHECK(out.body == R"({"model":"mistral-large-latest","messages":[]})");
    }
}

TEST_CASE("other endpoints are not parsed") {
    const auto out = run("not even json", endpoint::other);
    REQUIRE(out.ok);
    CHECK(out.upstream == "mistral");
    CHECK(out.body == "not even json");
}

TEST_CASE("embeddings: token-id input and unknown encodings are refused; the encoding asked is reported") {
    struct row {
        std::string_view body;
        normalize::encoding_format encoding;
        std::string_view error_param;  // "" = no error
    };
    using normalize::encoding_format;
    const row rows[] = {
        {R"({"model":"mistral-embed","input":"x"})", encoding_format::unspecified, ""},
        {R"({"model":"mistral-embed","input":["x","y"],"encoding_format":"base64"})", encoding_format::base64, ""},
        {R"({"model":"mistral-embed","input":"x","encoding_format":"float"})", encoding_format::float_values, ""},
        {R"({"model":"mistral-embed","input":"x","encoding_format":null})", encoding_format::unspecified, ""},
        {R"({"model":"mistral-embed","input":"x","encoding_format":"int8","encoding_format":"base64"})",
         encoding_format::unspecified, "encoding_format"},  // refused where it stands
        {R"({"model":"mistral-embed","input":[1,2,3]})", encoding_format::unspecified, "input"},
        {R"({"model":"mistral-embed","input":[ -1]})", encoding_format::unspecified, "input"},
        {R"({"model":"mistral-embed","input":[[1,2],[3]]})", encoding_format::unspecified, "input"},
        {R"({"model":"mistral-embed","input":"x","encoding_format":"int8"})", encoding_format::unspecified,
         "encoding_format"},
        {R"({"model":"mistral-embed","input":"x","encoding_format":1})", encoding_format::unspecified,
         "encoding_format"},
    };
    for (const row& r : rows) {
        CAPTURE(r.body);
        const auto out = normalizer_test::run(r.body, normalize::endpoint::embeddings);
        if (r.error_param.empty()) {
            REQUIRE(out.ok);
            CHECK(out.request.encoding == r.encoding);
        } else {
            REQUIRE_FALSE(out.ok);
            CHECK(out.status == 400);
            CHECK(out.param == r.error_param);
        }
    }
    const auto tokens = normalizer_test::run(R"({"model":"mistral-embed","input":[1]})", normalize::endpoint::embeddings);
    CHECK(tokens.message.find("token ids") != std::string::npos);
    // Chat has no `input`: the member is the params rule's, not refused.
    CHECK(normalizer_test::run(R"({"model":"m","input":[1],"messages":[{"role":"user","content":"x"}]})").ok);
}

TEST_CASE("a body over 2 GiB is refused with a 413 before it is read") {
    // The rewrite's offsets are 31 bits (normalize/engine.hpp, piece). The
    // body is address space only (never touched pages, no memory used).
    const std::size_t length = std::size_t{1} << 31;
    const std::size_t mapped = length + normalize::body_padding;
    void* memory = ::mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    static normalize::normalize_scratch scratch;
    const auto result = normalize::normalize_request(shipped(), config_with(), endpoint::chat_completions,
                                                     std::string_view(static_cast<const char*>(memory), length), scratch);
    ::munmap(memory, mapped);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error->status == 413);
    CHECK(result.error->message.find("2147483648 bytes") != std::string::npos);
}
