// The endpoint table (routing/endpoints.hpp): every row found by its method and
// canonical path, the path spelling policy, the passthrough and unknown
// fallbacks, the facts each row carries, and the places that derive from the
// table (metrics labels, routing, the normalizer's upstream path) kept in step.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <string_view>

#include "metrics/metrics.hpp"
#include "normalizer_support.hpp"
#include "routing/endpoints.hpp"
#include "routing/route.hpp"

using namespace mistral_proxy;
using routing::body_mode;
using routing::endpoint_kind;
using routing::find_endpoint;

namespace {

// find_endpoint after canonical_path, as the session and explain call them.
endpoint_kind kind_of(std::string_view method, std::string_view raw_path) {
    const auto canonical = routing::canonical_path(raw_path);
    REQUIRE_MESSAGE(canonical.error.empty(), raw_path, ": ", canonical.error);
    return find_endpoint(method, canonical.path).kind;
}

std::string_view label_of(std::string_view method, std::string_view path) {
    return routing::endpoint_label_name(find_endpoint(method, path).label);
}

}  // namespace

TEST_CASE("endpoint table: every row is found by its method and canonical path") {
    for (const auto& row : routing::endpoint_table) {
        if (row.kind == endpoint_kind::other || row.kind == endpoint_kind::unknown) {
            continue;
        }
        CAPTURE(row.path);
        const std::string path = row.prefix ? std::string(row.path) + "some-id" : std::string(row.path);
        for (std::string_view method : {"GET", "POST", "DELETE", "PUT"}) {
            CAPTURE(method);
            const auto& found = find_endpoint(method, path);
            if (row.method.empty() || row.method == method) {
                CHECK(&found == &row);
            } else if (found.path == row.path && found.prefix == row.prefix && found.method == method) {
                // Another row takes this path with that method (GET and POST /v1/batches).
                CHECK(found.kind != endpoint_kind::other);
            } else {
                // A known path with another method is passthrough, like any /v1/ path.
                CHECK(found.kind == endpoint_kind::other);
            }
        }
        // The table is indexed by kind.
        CHECK(&routing::row_of(row.kind) == &row);
    }
}

TEST_CASE("endpoint table: spellings of a known endpoint get its row (SPEC §4 path spelling)") {
    for (std::string_view spelling : {"/v1/chat/completions", "/v1/chat/completions/", "/v1//chat/completions",
                                      "//v1/chat/completions", "/v1/chat//completions///", "/v1/chat/%63ompletions",
                                      "/v1/%63hat/completions", "/%76%31/chat/completions"}) {
        CAPTURE(spelling);
        CHECK(kind_of("POST", spelling) == endpoint_kind::chat_completions);
    }
    CHECK(kind_of("POST", "/v1/fim/completions/") == endpoint_kind::fim_completions);
    CHECK(kind_of("POST", "/v1//embeddings") == endpoint_kind::embeddings);
    CHECK(kind_of("POST", "/v1/completions//") == endpoint_kind::completions);
    CHECK(kind_of("GET", "/v1/models/") == endpoint_kind::model_list);
    CHECK(kind_of("GET", "/v1//models//mistral-small-latest/") == endpoint_kind::model_card);
    CHECK(kind_of("GET", "/healthz/") == endpoint_kind::healthz);
    CHECK(kind_of("GET", "//metrics") == endpoint_kind::metrics);
    // Case is part of the path (RFC 3986 §6.2.2.1): another case names no row.
    CHECK(kind_of("POST", "/v1/Chat/Completions") == endpoint_kind::other);
    CHECK(kind_of("POST", "/V1/chat/completions") == endpoint_kind::unknown);
    CHECK(kind_of("GET", "/HEALTHZ") == endpoint_kind::unknown);
    // Escapes of reserved characters stay escaped, in upper-case hex.
    CHECK(routing::canonical_path("/v1/files/a%3ab").path == "/v1/files/a%3Ab");
    CHECK(routing::canonical_path("").path == "/");
    CHECK(routing::canonical_path("///").path == "/");
}

TEST_CASE("endpoint table: paths the spelling policy refuses") {
    for (std::string_view path : {"/v1/%2e%2e/admin", "/v1/%2E%2E/admin", "/v1/files/%2e/x", "/v1/../admin",
                                  "/v1/./models", "/v1/files/..", "/v1/files%2F..%2Fadmin", "/v1/files/a%2fb",
                                  "/v1/files/a%5Cb", "/v1/files/a%00b", "/v1/files/a\\b", "/v1/files/%zz",
                                  "/v1/files/%4"}) {
        CAPTURE(path);
        const auto canonical = routing::canonical_path(path);
        CHECK_FALSE(canonical.error.empty());
        CHECK(canonical.path.empty());
        const auto error = routing::refused_path_error(path, canonical.error);
        CHECK(error.status == 400);
        CHECK(error.code == "invalid_path");
        CHECK(error.message.find(std::string(path)) != std::string::npos);
    }
}

TEST_CASE("endpoint table: passthrough and unknown fallbacks") {
    for (std::string_view path : {"/v1/fine_tuning/jobs", "/v1/files/abc", "/v1/batch/jobs", "/v1/modelsx", "/v1/chat",
                                  "/v1/chat/completions/x", "/v1/fim/completionsx"}) {
        CAPTURE(path);
        const auto& row = find_endpoint("POST", path);
        CHECK(row.kind == endpoint_kind::other);
        CHECK(row.body == body_mode::streamed);
        CHECK(routing::upstream_path_of(row, path) == path.substr(3));
    }
    CHECK(find_endpoint("GET", "/v1/chat/completions").kind == endpoint_kind::other);
    CHECK(find_endpoint("POST", "/v1/models").kind == endpoint_kind::other);
    CHECK(find_endpoint("DELETE", "/v1/models/ft:abc").kind == endpoint_kind::other);
    for (std::string_view path : {"/", "/v1", "/v2/nowhere", "/healthzx", "/favicon.ico"}) {
        CAPTURE(path);
        const auto& row = find_endpoint("GET", path);
        CHECK(row.kind == endpoint_kind::unknown);
        CHECK(row.body == body_mode::local);
    }
    const auto error = routing::unknown_endpoint_error("GET", "/v2/nowhere");
    CHECK(error.status == 404);
    CHECK(error.code == "unknown_url");
}

TEST_CASE("endpoint table: the facts of each row") {
    struct expected {
        std::string_view method;
        std::string_view path;
        endpoint_kind kind;
        body_mode body;
        std::string_view label;
        std::string_view upstream_path;
    };
    const expected rows[] = {
        {"POST", "/v1/chat/completions", endpoint_kind::chat_completions, body_mode::buffered, "chat_completions",
         "/chat/completions"},
        {"POST", "/v1/fim/completions", endpoint_kind::fim_completions, body_mode::buffered, "fim_completions",
         "/fim/completions"},
        {"POST", "/v1/embeddings", endpoint_kind::embeddings, body_mode::buffered, "embeddings", "/embeddings"},
        {"POST", "/v1/completions", endpoint_kind::completions, body_mode::buffered, "completions", ""},
        {"GET", "/v1/models", endpoint_kind::model_list, body_mode::streamed, "models", "/models"},
        {"GET", "/v1/models/mistral-small-latest", endpoint_kind::model_card, body_mode::streamed, "models",
         "/models/mistral-small-latest"},
        {"GET", "/healthz", endpoint_kind::healthz, body_mode::local, "healthz", ""},
        {"POST", "/healthz", endpoint_kind::healthz, body_mode::local, "healthz", ""},
        {"GET", "/metrics", endpoint_kind::metrics, body_mode::local, "metrics", ""},
        {"GET", "/readyz", endpoint_kind::readyz, body_mode::local, "readyz", ""},
        {"POST", "/v1/responses", endpoint_kind::responses, body_mode::buffered, "responses", "/chat/completions"},
        {"GET", "/v1/responses", endpoint_kind::other, body_mode::streamed, "other_v1", "/responses"},
        {"GET", "/v1/responses/resp_1", endpoint_kind::response_object, body_mode::local, "responses", ""},
        {"DELETE", "/v1/responses/resp_1", endpoint_kind::response_object, body_mode::local, "responses", ""},
        {"GET", "/v1/responses/resp_1/input_items", endpoint_kind::response_object, body_mode::local, "responses", ""},
        {"POST", "/v1/moderations", endpoint_kind::moderations, body_mode::buffered, "moderations", "/moderations"},
        {"GET", "/v1/moderations", endpoint_kind::other, body_mode::streamed, "other_v1", "/moderations"},
        {"POST", "/v1/audio/transcriptions", endpoint_kind::transcriptions, body_mode::form, "audio_transcriptions",
         "/audio/transcriptions"},
        {"POST", "/v1/audio/speech", endpoint_kind::speech, body_mode::buffered, "audio_speech", "/audio/speech"},
        {"GET", "/v1/audio/speech", endpoint_kind::other, body_mode::streamed, "other_v1", "/audio/speech"},
        // Mistral has nothing for it: answered by the proxy with what to use instead.
        {"POST", "/v1/audio/translations", endpoint_kind::no_counterpart, body_mode::local, "other_v1", ""},
        {"GET", "/v1/audio/translations", endpoint_kind::other, body_mode::streamed, "other_v1", "/audio/translations"},
        {"GET", "/v1/files", endpoint_kind::other, body_mode::streamed, "other_v1", "/files"},
        {"POST", "/v1/files", endpoint_kind::file_upload, body_mode::form, "files", "/files"},
        {"GET", "/v1/files/f1", endpoint_kind::file_object, body_mode::streamed, "files", "/files/f1"},
        {"GET", "/v1/files/f1/content", endpoint_kind::file_object, body_mode::streamed, "files", "/files/f1/content"},
        {"DELETE", "/v1/files/f1", endpoint_kind::other, body_mode::streamed, "other_v1", "/files/f1"},
        {"POST", "/v1/batches", endpoint_kind::batch_create, body_mode::buffered, "batches", "/batch/jobs"},
        {"GET", "/v1/batches", endpoint_kind::batch_list, body_mode::streamed, "batches", "/batch/jobs"},
        {"GET", "/v1/batches/b1", endpoint_kind::batch_object, body_mode::streamed, "batches", "/batches/b1"},
        {"POST", "/v1/batches/b1/cancel", endpoint_kind::batch_cancel, body_mode::streamed, "batches",
         "/batches/b1/cancel"},
        {"GET", "/v2", endpoint_kind::unknown, body_mode::local, "unknown", ""},
    };
    for (const auto& r : rows) {
        CAPTURE(r.method);
        CAPTURE(r.path);
        const auto& row = find_endpoint(r.method, r.path);
        CHECK(row.kind == r.kind);
        CHECK(row.body == r.body);
        CHECK(label_of(r.method, r.path) == r.label);
        CHECK(routing::upstream_path_of(row, r.path) == r.upstream_path);
    }
    // Only the JSON endpoints the proxy rewrites (the Responses API's once
    // translated to chat, POST /v1/batches into Mistral's job, POST /v1/audio/speech) are buffered, and only POST.
    std::size_t buffered = 0;
    for (const auto& row : routing::endpoint_table) {
        if (row.body == body_mode::buffered) {
            ++buffered;
            CHECK(row.method == "POST");
        }
    }
    CHECK(buffered == 8);
    // The schema each rewritten body is validated against; legacy completions
    // take the chat or FIM row's once translated.
    using rules::schema_target;
    CHECK(routing::row_of(endpoint_kind::chat_completions).schema == schema_target::chat);
    CHECK(routing::row_of(endpoint_kind::fim_completions).schema == schema_target::fim);
    CHECK(routing::row_of(endpoint_kind::embeddings).schema == schema_target::embeddings);
    CHECK(routing::row_of(endpoint_kind::moderations).schema == schema_target::moderations);
    CHECK(routing::row_of(endpoint_kind::transcriptions).schema == schema_target::transcriptions);
    CHECK(routing::row_of(endpoint_kind::speech).schema == schema_target::speech);
    CHECK_FALSE(routing::row_of(endpoint_kind::completions).schema);
    CHECK(routing::row_of(endpoint_kind::completions).target == routing::upstream_target::by_model);
    // Only FIM goes to codestral whatever the model.
    for (const auto& row : routing::endpoint_table) {
        CHECK(row.codestral_only == (row.kind == endpoint_kind::fim_completions));
    }
}

TEST_CASE("endpoint table: the places that derive from it stay in step") {
    // Every metrics label is produced by some row; names unique and stable.
    constexpr auto label_count = static_cast<std::size_t>(routing::endpoint_label::count_);
    std::set<std::size_t> produced;
    for (const auto& row : routing::endpoint_table) {
        produced.insert(static_cast<std::size_t>(row.label));
    }
    CHECK(produced.size() == label_count);
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < label_count; ++i) {
        const auto label = static_cast<routing::endpoint_label>(i);
        CHECK(metrics::name(label) == routing::endpoint_label_name(label));
        CHECK_FALSE(routing::endpoint_label_name(label).empty());
        names.insert(routing::endpoint_label_name(label));
    }
    CHECK(names.size() == label_count);
    CHECK(names == std::set<std::string_view>{"chat_completions", "fim_completions", "embeddings", "completions",
                                              "models", "other_v1", "healthz", "metrics", "unknown",
                                              "responses", "readyz", "moderations", "audio_transcriptions",
                                              "audio_speech", "batches", "files"});

    // The metrics text carries the row's label.
    metrics::registry registry;
    auto& shard = registry.add_shard();
    shard.count_request(find_endpoint("GET", "/v1/models/x").label, 0, 200);
    CHECK(registry.render().find("mistral_proxy_requests_total{endpoint=\"models\",upstream=\"mistral\",status=\"200\"} 1") !=
          std::string::npos);

    // Routing: FIM by its row, chat by its model.
    const auto config = normalizer_test::config_with();
    const auto& rules = normalizer_test::shipped();
    CHECK(routing::choose_upstream(config, rules, routing::row_of(endpoint_kind::fim_completions), "").upstream ==
          routing::upstream_id::codestral);
    CHECK(routing::choose_upstream(config, rules, routing::row_of(endpoint_kind::other), "").upstream ==
          routing::upstream_id::mistral);

    // The normalizer sends each buffered row to that row's upstream path.
    auto out = normalizer_test::run(R"({"model":"mistral-small-latest","messages":[{"role":"user","content":"x"}]})",
                                    endpoint_kind::chat_completions);
    REQUIRE(out.ok);
    CHECK(out.path == routing::row_of(endpoint_kind::chat_completions).upstream_path);
    out = normalizer_test::run(R"({"model":"codestral-latest","prompt":"x"})", endpoint_kind::fim_completions);
    REQUIRE(out.ok);
    CHECK(out.path == routing::row_of(endpoint_kind::fim_completions).upstream_path);
    out = normalizer_test::run(R"({"model":"mistral-embed","input":"x"})", endpoint_kind::embeddings);
    REQUIRE(out.ok);
    CHECK(out.path == routing::row_of(endpoint_kind::embeddings).upstream_path);
    out = normalizer_test::run(R"({"model":"codestral-latest","prompt":"x"})", endpoint_kind::completions);
    REQUIRE(out.ok);
    CHECK(out.path == routing::row_of(endpoint_kind::fim_completions).upstream_path);
    out = normalizer_test::run(R"({"model":"mistral-small-latest","prompt":"x"})", endpoint_kind::completions);
    REQUIRE(out.ok);
    CHECK(out.path == routing::row_of(endpoint_kind::chat_completions).upstream_path);
    // Rows that are not buffered are not parsed.
    out = normalizer_test::run("not json", endpoint_kind::model_list);
    CHECK(out.ok);
}

TEST_CASE("endpoint table: an OpenAI endpoint Mistral has nothing for is a 404 that says what to use instead") {
    const auto error = routing::no_counterpart_error("/v1/audio/translations");
    CHECK(error.status == 404);
    CHECK(error.code == std::optional<std::string>("unsupported_endpoint"));
    CHECK(error.message.find("POST /v1/audio/transcriptions") != std::string::npos);
    CHECK(error.message.find("POST /v1/chat/completions") != std::string::npos);
}
