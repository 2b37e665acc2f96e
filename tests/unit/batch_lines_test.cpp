// Batch input files (proxy/batches/input_lines.hpp, upload_form.hpp): OpenAI's
// JSONL lines rewritten into Mistral's as they stream, through the same plan
// as live calls, at any split of the input; refused lines named by number;
// the upload form around them.
#include <doctest/doctest.h>

#include <string>

#include "batches/input_lines.hpp"
#include "batches/upload_form.hpp"
#include "normalizer_support.hpp"
#include "plan/request_plan.hpp"

namespace {

using namespace mistral_proxy;

const plan::plan_inputs& inputs() {
    static const auto config = normalizer_test::config_with();
    static const auto aliases = plan::derive_model_aliases(normalizer_test::shipped());
    static const plan::plan_inputs made{config, normalizer_test::shipped(), aliases};
    return made;
}

constexpr std::string_view two_lines =
    R"({"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":"Hi"}],"max_completion_tokens":5,"user":"u"}})"
    "\n"
    R"({"custom_id":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"Bye"}]}})"
    "\n";

constexpr std::string_view two_lines_sent =
    R"({"custom_id":"r1","body":{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":5}})"
    "\n"
    R"({"custom_id":"r2","body":{"messages":[{"role":"user","content":"Bye"}]}})"
    "\n";

struct rewritten {
    bool ok = false;
    std::string out;
    std::optional<errors::openai_error> error;
    batches::file_facts facts;
};

rewritten rewrite_in_pieces(std::string_view file, std::size_t piece, std::size_t max_line = 1 << 20) {
    batches::input_line_rewriter lines(inputs(), max_line);
    rewritten result;
    result.ok = true;
    for (std::size_t at = 0; at < file.size() && result.ok; at += piece) {
        result.ok = lines.feed(file.substr(at, piece), result.out);
    }
    result.ok = result.ok && lines.finish(result.out);
    result.error = lines.error();
    result.facts = lines.facts();
    return result;
}

}  // namespace

TEST_CASE("batch lines: OpenAI's lines become Mistral's, each body through the live rules, at every split") {
    for (std::size_t piece = 1; piece <= two_lines.size(); ++piece) {
        CAPTURE(piece);
        const auto result = rewrite_in_pieces(two_lines, piece);
        REQUIRE(result.ok);
        CHECK(result.out == two_lines_sent);
        CHECK(result.facts.model == "mistral-large-latest");
        CHECK(result.facts.endpoint == "/v1/chat/completions");
    }
    // CRLF line ends, blank lines and no newline at the end.
    std::string crlf(two_lines);
    crlf.replace(crlf.find('\n'), 1, "\r\n\r\n   \n");
    crlf.pop_back();
    CHECK(rewrite_in_pieces(crlf, 7).out == two_lines_sent);

    const auto embeddings = rewrite_in_pieces(
        R"({"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"hi","encoding_format":"float"}})",
        64);
    REQUIRE(embeddings.ok);
    CHECK(embeddings.out == "{\"custom_id\":\"e\",\"body\":{\"input\":\"hi\",\"encoding_format\":\"float\"}}\n");
    CHECK(embeddings.facts.model == "mistral-embed");
    CHECK(embeddings.facts.endpoint == "/v1/embeddings");
}

TEST_CASE("batch lines: a refused line is a 400 naming its line number") {
    struct refused {
        std::string_view second_line;
        std::string_view message_start;
        std::string_view code;
    };
    const refused cases[] = {
        {"not json", "line 2 of the batch file: not a JSON object", "invalid_batch_line"},
        {R"({"method":"POST","url":"/v1/chat/completions","body":{}})",
         "line 2 of the batch file: 'custom_id' is required", "invalid_batch_line"},
        {R"({"custom_id":"x","method":"GET","url":"/v1/chat/completions","body":{}})",
         "line 2 of the batch file: 'method' must be \"POST\"", "invalid_batch_line"},
        {R"({"custom_id":"x","method":"POST","url":"/v1/responses","body":{}})",
         "line 2 of the batch file: 'url' must be /v1/chat/completions or /v1/embeddings", "unsupported_value"},
        {R"({"custom_id":"x","method":"POST","url":"/v1/embeddings","body":{"model":"mistral-embed","input":"a"}})",
         "line 2 of the batch file: calls /v1/embeddings where line 1 calls /v1/chat/completions",
         "invalid_batch_line"},
        {R"({"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"mistral-small-latest","messages":[{"role":"user","content":"a"}]}})",
         "line 2 of the batch file: names the model mistral-small-latest where line 1 names mistral-large-latest",
         "invalid_batch_line"},
        {R"({"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a"}]}})",
         "line 2 of the batch file: 'stream' cannot be true", "invalid_value"},
        {R"({"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"tool","content":"a","tool_call_id":"zz"}]}})",
         "line 2 of the batch file: ", ""},
    };
    const auto first_line = two_lines.substr(0, two_lines.find('\n') + 1);
    for (const auto& c : cases) {
        CAPTURE(c.second_line);
        const std::string file = std::string(first_line) + std::string(c.second_line) + "\n" + std::string(first_line);
        const auto result = rewrite_in_pieces(file, 5);
        CHECK_FALSE(result.ok);
        REQUIRE(result.error);
        CHECK(result.error->status == 400);
        CHECK(result.error->message.starts_with(c.message_start));
        if (!c.code.empty()) {
            CHECK(result.error->code == c.code);
        }
        // Nothing past the first line was written.
        CHECK(result.out == two_lines_sent.substr(0, two_lines_sent.find('\n') + 1));
    }
    const auto empty = rewrite_in_pieces("\n\n", 1);
    REQUIRE(empty.error);
    CHECK(empty.error->message == "the batch file has no request line");
}

TEST_CASE("batch lines: a line over the limit is refused before it is held whole") {
    const auto first_line = two_lines.substr(0, two_lines.find('\n') + 1);
    const std::string file = std::string(first_line) + std::string(300, ' ') + "{}\n";
    const auto result = rewrite_in_pieces(file, 64, 256);
    REQUIRE(result.error);
    CHECK(result.error->message.starts_with("line 2 of the batch file: longer than 256 bytes"));
    CHECK(result.error->code == "line_too_long");
    CHECK(rewrite_in_pieces(file, 64, 1024).error->message == "line 2 of the batch file: 'custom_id' is required");
}

namespace {

std::string form_with(std::string_view purpose_before, std::string_view content, std::string_view purpose_after = {}) {
    std::string form;
    auto field = [&](std::string_view name, std::string_view value) {
        form += "--XyZ\r\nContent-Disposition: form-data; name=\"" + std::string(name) + "\"\r\n\r\n" +
                std::string(value) + "\r\n";
    };
    if (!purpose_before.empty()) {
        field("purpose", purpose_before);
    }
    field("expires_after[anchor]", "created_at");
    form +=
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: "
        "application/jsonl\r\n\r\n";
    form += content;
    form += "\r\n";
    if (!purpose_after.empty()) {
        field("purpose", purpose_after);
    }
    form += "--XyZ--\r\n";
    return form;
}

std::string upstream_form(std::string_view purpose_before, std::string_view content,
                          std::string_view purpose_after = {}) {
    std::string form;
    auto field = [&](std::string_view value) {
        form += "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n" + std::string(value) + "\r\n";
    };
    if (!purpose_before.empty()) {
        field(purpose_before);
    }
    form +=
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: "
        "application/jsonl\r\n\r\n";
    form += content;
    form += "\r\n";
    if (!purpose_after.empty()) {
        field(purpose_after);
    }
    form += "--XyZ--\r\n";
    return form;
}

struct uploaded {
    bool ok = false;
    std::string out;
    batches::upload_facts facts;
    std::optional<errors::openai_error> error;
};

uploaded upload_in_pieces(std::string_view form, std::size_t piece) {
    batches::upload_rewriter rewriter(inputs(), "XyZ", 1 << 20);
    uploaded result;
    result.ok = true;
    for (std::size_t at = 0; at < form.size() && result.ok; at += piece) {
        result.ok = rewriter.feed(form.substr(at, piece), result.out);
    }
    result.ok = result.ok && rewriter.finish(result.out);
    result.facts = rewriter.facts();
    result.error = rewriter.error();
    return result;
}

}  // namespace

TEST_CASE("upload form: a batch file's lines rewritten, whether purpose comes first or last") {
    for (std::size_t piece : {1, 3, 16, 1000}) {
        CAPTURE(piece);
        auto result = upload_in_pieces(form_with("batch", two_lines), piece);
        REQUIRE(result.ok);
        CHECK(result.out == upstream_form("batch", two_lines_sent));
        CHECK(result.facts.batch);
        CHECK(result.facts.file.model == "mistral-large-latest");
        CHECK(result.facts.file_bytes == two_lines_sent.size());

        result = upload_in_pieces(form_with({}, two_lines, "batch"), piece);
        REQUIRE(result.ok);
        CHECK(result.out == upstream_form({}, two_lines_sent, "batch"));
        CHECK(result.facts.batch);
    }
}

TEST_CASE("upload form: other files pass byte for byte, and the form's faults are 400s") {
    const std::string pdf = "%PDF-1.7\r\n-XyZ\n{\"url\":1,\"body\":2}\n\x00\xff";
    for (std::size_t piece : {1, 5, 1000}) {
        CAPTURE(piece);
        auto result = upload_in_pieces(form_with("ocr", pdf), piece);
        REQUIRE(result.ok);
        CHECK(result.out == upstream_form("ocr", pdf));
        CHECK_FALSE(result.facts.batch);
        CHECK(result.facts.file_bytes == pdf.size());
        // Fine-tuning JSONL, purpose last: its first line is no batch request.
        const std::string tune = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n";
        result = upload_in_pieces(form_with({}, tune, "fine-tune"), piece);
        REQUIRE(result.ok);
        CHECK(result.out == upstream_form({}, tune, "fine-tune"));
        CHECK_FALSE(result.facts.batch);
    }
    // Mistral's own batch lines, purpose batch (a Mistral client): passed as they are.
    const std::string mistral = "{\"custom_id\":\"m1\",\"body\":{\"messages\":[]}}\n";
    for (std::size_t piece : {1, 7, 1000}) {
        auto result = upload_in_pieces(form_with("batch", mistral), piece);
        REQUIRE(result.ok);
        CHECK(result.out == upstream_form("batch", mistral));
        CHECK_FALSE(result.facts.batch);
    }
    // With purpose batch, anything else is OpenAI's, refused by line.
    auto not_json = upload_in_pieces(form_with("batch", "%PDF-1.7\n"), 3);
    REQUIRE(not_json.error);
    CHECK(not_json.error->message == "line 1 of the batch file: not a JSON object");
    auto no_body = upload_in_pieces(form_with("batch", "{\"custom_id\":\"x\"}\n"), 3);
    REQUIRE(no_body.error);
    CHECK(no_body.error->message == "line 1 of the batch file: 'method' must be \"POST\"");

    const std::string refused_line = std::string(two_lines) + "{\"custom_id\":\"r3\"}\n";
    auto refused = upload_in_pieces(form_with("batch", refused_line), 9);
    REQUIRE(refused.error);
    CHECK(refused.error->message == "line 3 of the batch file: 'method' must be \"POST\"");
    CHECK(refused.error->param == "file");

    auto no_file =
        upload_in_pieces("--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ--\r\n", 4);
    REQUIRE(no_file.error);
    CHECK(no_file.error->param == "file");
    auto cut = upload_in_pieces(form_with("batch", two_lines).substr(0, 200), 4);
    REQUIRE(cut.error);
    CHECK(cut.error->code == "invalid_multipart");
}
