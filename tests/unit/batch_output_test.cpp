// Batch output files (proxy/batches/output_lines.hpp): Mistral's output and
// error lines rewritten into OpenAI's BatchRequestOutput lines as they stream,
// chat answers through the chat answer rules, at any split; other files
// relayed byte for byte.
#include <doctest/doctest.h>

#include <string>

#include "batches/output_lines.hpp"
#include "responses_support.hpp"

namespace {

using namespace mistral_proxy;

constexpr std::string_view mistral_lines =
    R"({"id":"req-1","custom_id":"r1","response":{"status_code":200,"body":{"id":"c1","object":"chat.completion","created":1,"model":"mistral-large-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","tool_calls":null},"finish_reason":"model_length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}},"error":null})"
    "\n"
    R"({"id":"req-2","custom_id":"r2","response":{"status_code":400,"body":{"object":"error","message":"bad","type":"invalid_request_error","param":null,"code":null}},"error":null})"
    "\n"
    R"({"id":"req-3","custom_id":"r3","response":null,"error":"timed out"})"
    "\n"
    R"({"id":"req-4","custom_id":"r4","response":{"status_code":200,"body":{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"mistral-embed","usage":{"prompt_tokens":1,"total_tokens":1}}},"error":null})"
    "\n";

constexpr std::string_view openai_lines =
    R"({"id":"req-1","custom_id":"r1","response":{"status_code":200,"request_id":"req-1","body":{"id":"c1","object":"chat.completion","created":1,"model":"mistral-large-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":"length","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}},"error":null})"
    "\n"
    R"({"id":"req-2","custom_id":"r2","response":{"status_code":400,"request_id":"req-2","body":{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}},"error":null})"
    "\n"
    R"({"id":"req-3","custom_id":"r3","response":null,"error":{"code":"batch_error","message":"timed out"}})"
    "\n"
    R"({"id":"req-4","custom_id":"r4","response":{"status_code":200,"request_id":"req-4","body":{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"mistral-embed","usage":{"prompt_tokens":1,"total_tokens":1}}},"error":null})"
    "\n";

std::string rewrite_in_pieces(std::string_view file, std::size_t piece, std::size_t max_line = 1 << 20,
                              bool* translated = nullptr) {
    batches::output_line_rewriter lines(responses_test::shipped_rules(), max_line);
    std::string out;
    for (std::size_t at = 0; at < file.size(); at += piece) {
        lines.on_body(file.substr(at, piece), out);
    }
    lines.on_end(out);
    CHECK(lines.done());
    if (translated != nullptr) {
        *translated = lines.translating();
    }
    return out;
}

}  // namespace

TEST_CASE("batch output: Mistral's lines as OpenAI's, at every split") {
    const auto whole = rewrite_in_pieces(mistral_lines, mistral_lines.size());
    CHECK(whole == openai_lines);
    for (std::size_t piece = 1; piece < 200; piece += 7) {
        CAPTURE(piece);
        CHECK(rewrite_in_pieces(mistral_lines, piece) == openai_lines);
    }
    // No newline at the end: none added.
    const auto last = mistral_lines.substr(0, mistral_lines.size() - 1);
    CHECK(rewrite_in_pieces(last, 13) == openai_lines.substr(0, openai_lines.size() - 1));
}

TEST_CASE("batch output: other files are relayed byte for byte") {
    for (std::string_view file : {std::string_view("%PDF-1.7\n{\"custom_id\":1,\"error\":2}\n"),
                                  std::string_view("{\"messages\":[]}\n{\"custom_id\":\"x\",\"error\":null}\n"),
                                  std::string_view(""), std::string_view("   "), std::string_view("{\"a\":1}")}) {
        CAPTURE(file);
        for (std::size_t piece : {1, 4, 100}) {
            bool translated = true;
            CHECK(rewrite_in_pieces(file, piece, 1 << 20, &translated) == file);
            CHECK_FALSE(translated);
        }
    }
    // A line of a batch output that is not JSON is kept as it is, the others translated.
    std::string mixed = std::string(mistral_lines.substr(0, mistral_lines.find('\n') + 1)) + "garbage\n";
    CHECK(rewrite_in_pieces(mixed, 9) ==
          std::string(openai_lines.substr(0, openai_lines.find('\n') + 1)) + "garbage\n");
}

TEST_CASE("batch output: a line over the limit passes unchanged, the next is translated again") {
    const auto first = mistral_lines.substr(0, mistral_lines.find('\n') + 1);
    const std::string third(mistral_lines.substr(mistral_lines.find("{\"id\":\"req-3\"")));
    const std::string third_line = third.substr(0, third.find('\n') + 1);
    const std::string long_line = "{\"custom_id\":\"x\",\"pad\":\"" + std::string(3000, 'a') + "\"}\n";
    const std::string file = std::string(first) + long_line + third_line;
    const auto out = rewrite_in_pieces(file, 100, 1024);
    const std::string expected_third =
        R"({"id":"req-3","custom_id":"r3","response":null,"error":{"code":"batch_error","message":"timed out"}})"
        "\n";
    CHECK(out == std::string(openai_lines.substr(0, openai_lines.find('\n') + 1)) + long_line + expected_third);
    // The same whether the long line comes in one piece or several (found by fuzz_batch_lines).
    CHECK(rewrite_in_pieces(file, file.size(), 1024) == out);
    // A first line over the limit: no batch output, relayed.
    bool translated = true;
    CHECK(rewrite_in_pieces(mistral_lines, mistral_lines.size(), 64, &translated) == mistral_lines);
    CHECK_FALSE(translated);
}
