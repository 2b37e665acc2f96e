// OpenAI's batches on Mistral's batch jobs (proxy/batches/batch_object.hpp):
// CreateBatchRequest -> CreateBatchJobRequest with the model the file registry
// learned at upload, BatchJob / its list / file objects -> OpenAI's Batch,
// ListBatchesResponse and OpenAIFile, and the plan of each batch and file row.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "batches/batch_object.hpp"
#include "batches/file_registry.hpp"
#include "normalizer_support.hpp"
#include "plan/request_plan.hpp"

namespace {

using namespace mistral_proxy;

const batches::file_registry& registry_with_chat_file() {
    static const auto files = [] {
        auto made = std::make_unique<batches::file_registry>();
        made->record("f-1", {"mistral-large-latest", "/v1/chat/completions"});
        return made;
    }();
    return *files;
}

constexpr std::string_view job_json =
    R"({"id":"b-1","object":"batch","input_files":["f-1"],"metadata":{"team":"a","n":3},"endpoint":"/v1/chat/completions",)"
    R"("model":"mistral-large-latest","agent_id":null,"output_file":"f-out","error_file":null,"errors":[],"outputs":null,)"
    R"("status":"SUCCESS","created_at":1700000000,"total_requests":3,"completed_requests":3,"succeeded_requests":2,)"
    R"("failed_requests":1,"started_at":1700000010,"completed_at":1700000100})";

}  // namespace

TEST_CASE("batches: a create request becomes Mistral's job request with the file's model") {
    const auto& files = registry_with_chat_file();
    const auto created = batches::map_batch_create(
        R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"team":"a"},"output_expires_after":{"anchor":"created_at","seconds":3600}})",
        files);
    REQUIRE_FALSE(created.error);
    CHECK(
        created.body ==
        R"({"input_files":["f-1"],"endpoint":"/v1/chat/completions","model":"mistral-large-latest","metadata":{"team":"a"},"timeout_hours":24})");
    CHECK(created.model == "mistral-large-latest");

    const auto plain = batches::map_batch_create(
        R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":null})",
        files);
    CHECK(
        plain.body ==
        R"({"input_files":["f-1"],"endpoint":"/v1/chat/completions","model":"mistral-large-latest","timeout_hours":24})");
}

TEST_CASE("batches: create requests the proxy refuses, each naming its parameter") {
    const auto& files = registry_with_chat_file();
    struct refused {
        std::string_view body;
        std::string_view param;
        std::string_view code;
    };
    const refused cases[] = {
        {R"({"endpoint":"/v1/chat/completions","completion_window":"24h"})", "input_file_id",
         "missing_required_parameter"},
        {R"({"input_file_id":"f-1","endpoint":"/v1/responses","completion_window":"24h"})", "endpoint",
         "unsupported_value"},
        {R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"48h"})", "completion_window",
         "invalid_value"},
        {R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":1}})",
         "metadata.k", "invalid_value"},
        {R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":""}})",
         "metadata.k", "invalid_value"},
        {R"({"input_file_id":"f-2","endpoint":"/v1/chat/completions","completion_window":"24h"})", "input_file_id",
         "unknown_batch_file"},
        {R"({"input_file_id":"f-1","endpoint":"/v1/embeddings","completion_window":"24h"})", "endpoint",
         "invalid_value"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        const auto created = batches::map_batch_create(c.body, files);
        REQUIRE(created.error);
        CHECK(created.error->status == 400);
        CHECK(created.error->param == c.param);
        CHECK(created.error->code == c.code);
        CHECK(created.body.empty());
    }
    const auto not_json = batches::map_batch_create("[1]", files);
    REQUIRE(not_json.error);
    CHECK(not_json.error->status == 400);
}

TEST_CASE("batches: Mistral's job is answered as OpenAI's Batch") {
    const auto batch = batches::transform_batch(job_json);
    REQUIRE_FALSE(batch.error);
    CHECK(batch.body ==
          R"({"id":"b-1","object":"batch","endpoint":"/v1/chat/completions","model":"mistral-large-latest",)"
          R"("input_file_id":"f-1","completion_window":"24h","status":"completed","output_file_id":"f-out",)"
          R"("created_at":1700000000,"in_progress_at":1700000010,"expires_at":1700086400,"completed_at":1700000100,)"
          R"("request_counts":{"total":3,"completed":2,"failed":1},"metadata":{"team":"a"}})");

    const auto queued = batches::transform_batch(
        R"({"id":"b-2","input_files":["f-1"],"endpoint":"/v1/embeddings","errors":[{"message":"bad line","count":2}],)"
        R"("status":"QUEUED","created_at":5,"total_requests":0,"completed_requests":0,"succeeded_requests":0,"failed_requests":0})");
    REQUIRE_FALSE(queued.error);
    CHECK(
        queued.body ==
        R"({"id":"b-2","object":"batch","endpoint":"/v1/embeddings","errors":{"object":"list","data":[{"code":"batch_error",)"
        R"("message":"bad line","param":null,"line":null}]},"input_file_id":"f-1","completion_window":"24h",)"
        R"("status":"validating","created_at":5,"expires_at":86405,"request_counts":{"total":0,"completed":0,"failed":0},)"
        R"("metadata":null})");
}

TEST_CASE("batches: every Mistral status has its OpenAI name, and its end its member") {
    const std::pair<std::string_view, std::string_view> statuses[] = {
        {"QUEUED", R"("status":"validating")"},        {"RUNNING", R"("status":"in_progress")"},
        {"SUCCESS", R"("status":"completed")"},        {"FAILED", R"("status":"failed")"},
        {"TIMEOUT_EXCEEDED", R"("status":"expired")"}, {"CANCELLATION_REQUESTED", R"("status":"cancelling")"},
        {"CANCELLED", R"("status":"cancelled")"},
    };
    const std::pair<std::string_view, std::string_view> ends[] = {{"SUCCESS", R"("completed_at":9)"},
                                                                  {"FAILED", R"("failed_at":9)"},
                                                                  {"TIMEOUT_EXCEEDED", R"("expired_at":9)"},
                                                                  {"CANCELLED", R"("cancelled_at":9)"}};
    for (const auto& status : statuses) {
        const std::string mistral =
            std::string(R"({"id":"b","input_files":["f"],"endpoint":"/v1/embeddings","errors":[],"status":")") +
            std::string(status.first) +
            R"(","created_at":1,"completed_at":9,"total_requests":1,"completed_requests":0,"succeeded_requests":0,"failed_requests":0})";
        const auto batch = batches::transform_batch(mistral);
        CAPTURE(mistral);
        REQUIRE_FALSE(batch.error);
        CHECK(batch.body.find(status.second) != std::string::npos);
        for (const auto& end : ends) {
            CHECK((batch.body.find(end.second) != std::string::npos) == (end.first == status.first));
        }
    }
    for (std::string_view bad : {"", "{}", R"({"id":"b","status":"DONE","endpoint":"e","created_at":1})", "[]"}) {
        CAPTURE(bad);
        const auto batch = batches::transform_batch(bad);
        REQUIRE(batch.error);
        CHECK(batch.error->status == 502);
    }
}

TEST_CASE("batches: the list is cut after `after` and to `limit`") {
    const std::string job_b = std::string(job_json);
    auto job_with_id = [&](std::string_view id) {
        auto text = job_b;
        text.replace(text.find("\"b-1\""), 5, "\"" + std::string(id) + "\"");
        return text;
    };
    const std::string list = R"({"object":"list","total":3,"data":[)" + job_with_id("b-3") + "," + job_with_id("b-2") +
                             "," + job_with_id("b-1") + "]}";
    auto ids_of = [](const std::string& body) {
        std::string ids;
        for (auto at = body.find(R"({"id":")"); at != std::string::npos; at = body.find(R"({"id":")", at + 1)) {
            ids += body.substr(at + 7, 3) + ' ';
        }
        return ids;
    };
    batches::list_query query;
    query.limit = 2;
    auto page = batches::transform_batch_list(list, query);
    REQUIRE_FALSE(page.error);
    CHECK(ids_of(page.body) == "b-3 b-2 ");
    CHECK(page.body.starts_with(R"({"object":"list","data":[{"id":"b-3","object":"batch",)"));
    CHECK(page.body.ends_with(R"(}],"first_id":"b-3","last_id":"b-2","has_more":true})"));

    query.after = "b-2";
    page = batches::transform_batch_list(list, query);
    CHECK(ids_of(page.body) == "b-1 ");
    CHECK(page.body.ends_with(R"(}],"first_id":"b-1","last_id":"b-1","has_more":false})"));

    query.after = "gone";
    page = batches::transform_batch_list(list, query);
    CHECK(page.body == R"({"object":"list","data":[],"has_more":false})");

    // Mistral counts more jobs than its page holds: there are more.
    query = {};
    const std::string longer = R"({"object":"list","total":250,"data":[)" + job_with_id("b-3") + "]}";
    page = batches::transform_batch_list(longer, query);
    CHECK(page.body.ends_with(R"("has_more":true})"));

    CHECK(batches::transform_batch_list(R"({"object":"list","total":0})", query).error->status == 502);
}

TEST_CASE("batches: the list query") {
    auto query = batches::parse_list_query("?after=b-9&limit=5");
    CHECK(query.after == "b-9");
    CHECK(query.limit == 5);
    CHECK_FALSE(query.error);
    query = batches::parse_list_query("");
    CHECK(query.after.empty());
    CHECK(query.limit == 20);
    for (std::string_view bad : {"?limit=0", "?limit=101", "?limit=x", "?limit="}) {
        CAPTURE(bad);
        query = batches::parse_list_query(bad);
        REQUIRE(query.error);
        CHECK(query.error->param == "limit");
    }
}

TEST_CASE("batches: Mistral's file objects as OpenAI's") {
    const auto uploaded = batches::transform_file(
        R"({"id":"f-1","object":"file","bytes":null,"created_at":1759500189,"filename":"in.jsonl","purpose":"batch",)"
        R"("sample_type":"batch_request","source":"upload","num_lines":2,"mimetype":"application/jsonl","signature":null})",
        1234);
    REQUIRE_FALSE(uploaded.error);
    CHECK(
        uploaded.body ==
        R"({"id":"f-1","object":"file","bytes":1234,"created_at":1759500189,"filename":"in.jsonl","purpose":"batch","status":"processed"})");

    const auto output = batches::transform_file(
        R"({"id":"f-2","object":"file","bytes":99,"created_at":7,"filename":"out.jsonl","purpose":"batch",)"
        R"("sample_type":"batch_result","source":"mistral","deleted":false,"expires_at":70})");
    CHECK(
        output.body ==
        R"({"id":"f-2","object":"file","bytes":99,"created_at":7,"expires_at":70,"filename":"out.jsonl","purpose":"batch_output","status":"processed"})");

    const auto ocr = batches::transform_file(
        R"({"id":"f-3","object":"file","bytes":null,"created_at":7,"filename":"a.pdf","purpose":"ocr","sample_type":"instruct","source":"upload"})");
    CHECK(
        ocr.body ==
        R"({"id":"f-3","object":"file","bytes":0,"created_at":7,"filename":"a.pdf","purpose":"user_data","status":"processed"})");

    CHECK(batches::transform_file(R"({"id":"f"})").unchanged);
    CHECK(batches::transform_file(R"({"object":"passthrough"})").unchanged);
    CHECK(batches::file_id_of(R"({"id":"f-9","object":"file"})") == "f-9");
    CHECK(batches::file_id_of("nope").empty());
}

TEST_CASE("batches: the registry keeps the newest files within its capacity") {
    batches::file_registry files(2);
    files.record("a", {"m1", "/v1/chat/completions"});
    files.record("b", {"m2", "/v1/embeddings"});
    files.record("a", {"m3", "/v1/chat/completions"});  // replaced, still one entry
    CHECK(files.find("a")->model == "m3");
    files.record("c", {"m4", "/v1/chat/completions"});
    CHECK_FALSE(files.find("a"));
    CHECK(files.find("b")->endpoint == "/v1/embeddings");
    CHECK(files.find("c")->model == "m4");
}

namespace {

struct planned {
    std::string input;
    plan::plan_result result;
};

std::unique_ptr<planned> plan_of(std::string_view method, std::string_view path, std::string json = {},
                                 std::string_view query = {}, const batches::file_registry* files = nullptr) {
    static const auto config = normalizer_test::config_with();
    static plan::plan_scratch scratch;
    const plan::plan_inputs inputs{config, normalizer_test::shipped(), {}};
    const auto length = json.size();
    json.append(normalize::body_padding, '\0');
    auto out = std::make_unique<planned>();
    out->input = std::move(json);
    out->result = plan::plan_request(inputs,
                                     {routing::find_endpoint(method, path),
                                      path,
                                      std::string_view(out->input.data(), length),
                                      {},
                                      nullptr,
                                      nullptr,
                                      query,
                                      files},
                                     scratch);
    return out;
}

}  // namespace

TEST_CASE("batches: the plan of each batch and file row") {
    const auto& files = registry_with_chat_file();
    const auto create =
        plan_of("POST", "/v1/batches",
                R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h"})", {}, &files);
    REQUIRE(create->result.ok());
    CHECK(create->result.plan->upstream_path == "/batch/jobs");
    CHECK(
        create->result.plan->body ==
        R"({"input_files":["f-1"],"endpoint":"/v1/chat/completions","model":"mistral-large-latest","timeout_hours":24})");
    CHECK(create->result.plan->model_sent.empty());  // the upstream's passthrough breaker
    CHECK(create->result.plan->answer.whole == plan::whole_kind::batch);
    const auto unknown =
        plan_of("POST", "/v1/batches",
                R"({"input_file_id":"f-1","endpoint":"/v1/chat/completions","completion_window":"24h"})");
    REQUIRE_FALSE(unknown->result.ok());
    CHECK(unknown->result.error->code == "unknown_batch_file");

    const auto list = plan_of("GET", "/v1/batches", {}, "?limit=3&after=b-1");
    REQUIRE(list->result.ok());
    CHECK(list->result.plan->upstream_path == "/batch/jobs?page=0&page_size=100&order_by=-created");
    CHECK(list->result.plan->own_query);
    CHECK(list->result.plan->answer.whole == plan::whole_kind::batch_list);
    CHECK(list->result.plan->answer.batch_list.limit == 3);
    CHECK(list->result.plan->answer.batch_list.after == "b-1");
    CHECK(plan_of("GET", "/v1/batches", {}, "?limit=0")->result.error->param == "limit");

    const auto get = plan_of("GET", "/v1/batches/b-1");
    REQUIRE(get->result.ok());
    CHECK(get->result.plan->upstream_path == "/batch/jobs/b-1");
    CHECK(get->result.plan->answer.mode == plan::answer_mode::whole);
    CHECK(get->result.plan->answer.whole == plan::whole_kind::batch);
    const auto cancel = plan_of("POST", "/v1/batches/b-1/cancel");
    REQUIRE(cancel->result.ok());
    CHECK(cancel->result.plan->upstream_path == "/batch/jobs/b-1/cancel");
    CHECK(cancel->result.plan->answer.whole == plan::whole_kind::batch);
    const std::pair<std::string_view, std::string_view> not_rows[] = {
        {"GET", "/v1/batches/b-1/x"}, {"POST", "/v1/batches/b-1"}, {"POST", "/v1/batches/b-1/x/cancel"}};
    for (const auto& request : not_rows) {
        CAPTURE(request.second);  // not a structured binding: clang 14 cannot capture one
        const auto refused = plan_of(request.first, request.second);
        REQUIRE_FALSE(refused->result.ok());
        CHECK(refused->result.error->status == 404);
    }

    const auto file = plan_of("GET", "/v1/files/f-1");
    REQUIRE(file->result.ok());
    CHECK(file->result.plan->upstream_path == "/files/f-1");
    CHECK(file->result.plan->answer.whole == plan::whole_kind::file);
    const auto content = plan_of("GET", "/v1/files/f-1/content");
    REQUIRE(content->result.ok());
    CHECK(content->result.plan->upstream_path == "/files/f-1/content");
    CHECK(content->result.plan->answer.mode == plan::answer_mode::rewrite_lines);
    const auto upload = plan_of("POST", "/v1/files");
    REQUIRE(upload->result.ok());
    CHECK(upload->result.plan->upstream_path == "/files");
}
