// plan_request (proxy/plan/request_plan.hpp): one call per endpoint row, with
// the shipped rule file, checking what serve and explain both act on — the
// upstream, its path, the body, the fired ids, the answer plan, the limiter's
// estimate — or the refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "normalizer_support.hpp"
#include "plan_support.hpp"
#include "plan/request_plan.hpp"

namespace {

using namespace mistral_proxy;
using normalizer_test::config_with;
using normalizer_test::shipped;

using plan_test::planned;

std::unique_ptr<planned> plan_of(std::string_view path, std::string json, std::string_view method = "POST",
                                 std::string_view model_override = {}) {
    static const auto config = config_with();
    return plan_test::plan_with(config, path, std::move(json), method, model_override);
}

}  // namespace

TEST_CASE("plan: chat is normalized, routed and answered through the chat rewriter") {
    const auto p = plan_of("/v1/chat/completions", R"({"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]})");
    REQUIRE(p->result.ok());
    const auto& plan = *p->result.plan;
    CHECK(plan.upstream == routing::upstream_id::mistral);
    CHECK(plan.upstream_path == "/chat/completions");
    CHECK(p->body == R"({"model":"mistral-large-latest","stream":true,"messages":[{"role":"user","content":"hi"}]})");
    CHECK(p->rules == "model_alias");
    CHECK(plan.model_requested == "gpt-4o");
    CHECK(plan.model_sent == "mistral-large-latest");
    CHECK(plan.stream);
    CHECK(plan.answer.mode == plan::answer_mode::transcode_stream);
    CHECK(plan.answer.whole == plan::whole_kind::chat);
    CHECK(plan.estimate.tokens > 0);
}

TEST_CASE("plan: legacy completions become chat, or FIM for codestral models, answered as text_completion") {
    SUBCASE("chat") {
        const auto p = plan_of("/v1/completions", R"({"model":"gpt-4o","prompt":"Say hi","max_tokens":7,"user":"u"})");
        REQUIRE(p->result.ok());
        const auto& plan = *p->result.plan;
        CHECK(plan.upstream == routing::upstream_id::mistral);
        CHECK(plan.upstream_path == "/chat/completions");
        CHECK(p->body ==
              R"({"model":"mistral-large-latest","max_tokens":7,"messages":[{"role":"user","content":"Say hi"}]})");
        CHECK(p->rules == "model_alias");
        CHECK(plan.model_requested == "gpt-4o");
        CHECK(plan.answer.mode == plan::answer_mode::whole);
        CHECK(plan.answer.whole == plan::whole_kind::text_completion);
    }
    SUBCASE("FIM, streamed") {
        const auto p = plan_of("/v1/completions", R"({"model":"codestral-latest","prompt":"def f(","suffix":"  return","stream":true})");
        REQUIRE(p->result.ok());
        const auto& plan = *p->result.plan;
        CHECK(plan.upstream == routing::upstream_id::codestral);
        CHECK(plan.upstream_path == "/fim/completions");
        CHECK(p->body.find(R"("suffix":"  return")") != std::string::npos);
        CHECK(plan.answer.mode == plan::answer_mode::transcode_stream);
        CHECK(plan.answer.shape == responses::stream_shape::text_completion);
    }
    SUBCASE("several prompts are refused") {
        const auto p = plan_of("/v1/completions", R"({"model":"gpt-4o","prompt":["a","b"]})");
        REQUIRE_FALSE(p->result.ok());
        CHECK(p->result.error->status == 400);
    }
}

TEST_CASE("plan: embeddings — base64 is computed by the proxy, token ids are refused") {
    const auto base64 = plan_of("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"x","encoding_format":"base64"})");
    REQUIRE(base64->result.ok());
    CHECK(base64->result.plan->answer.whole == plan::whole_kind::embeddings_base64);
    CHECK(base64->body.find("encoding_format") == std::string::npos);
    const auto floats = plan_of("/v1/embeddings", R"({"model":"mistral-embed","input":["a","b"]})");
    REQUIRE(floats->result.ok());
    CHECK(floats->result.plan->answer.whole == plan::whole_kind::usage_only);
    for (const auto* input : {"[1,2,3]", "[[1,2],[3]]"}) {
        CAPTURE(input);
        const auto tokens = plan_of("/v1/embeddings", std::string(R"({"model":"mistral-embed","input":)") + input + "}");
        REQUIRE_FALSE(tokens->result.ok());
        CHECK(tokens->result.error->param == "input");
    }
}

TEST_CASE("plan: relayed rows are routed, not read") {
    const auto files = plan_of("/v1/files/abc/url", "", "GET");
    REQUIRE(files->result.ok());
    CHECK(files->result.plan->relay_body);
    CHECK(files->result.plan->upstream_path == "/files/abc/url");
    CHECK(files->result.plan->answer.mode == plan::answer_mode::relay);

    const auto list = plan_of("/v1/models", "", "GET");
    REQUIRE(list->result.ok());
    CHECK(list->result.plan->answer.whole == plan::whole_kind::model_list);

    const auto card = plan_of("/v1/models/gpt-4o", "", "GET");
    REQUIRE(card->result.ok());
    CHECK(card->result.plan->upstream_path == "/models/mistral-large-latest");
    CHECK(card->result.plan->answer.whole == plan::whole_kind::alias_card);
    CHECK(card->rules == "model_alias");

    const auto real = plan_of("/v1/models/mistral-small-latest", "", "GET");
    REQUIRE(real->result.ok());
    CHECK(real->result.plan->upstream_path == "/models/mistral-small-latest");
    CHECK(real->result.plan->answer.mode == plan::answer_mode::relay);
}

TEST_CASE("plan: a transcription form is routed, and its answer planned once the form is read") {
    const auto form = plan_of("/v1/audio/transcriptions", "", "POST");
    REQUIRE(form->result.ok());
    auto plan = *form->result.plan;
    CHECK(plan.relay_body);
    CHECK(plan.upstream == routing::upstream_id::mistral);
    CHECK(plan.upstream_path == "/audio/transcriptions");
    CHECK(plan.answer.mode == plan::answer_mode::whole);
    CHECK(plan.answer.whole == plan::whole_kind::transcription);

    audio::transcription_facts facts;
    facts.format = audio::transcript_format::vtt;
    facts.temperature = 0.5;
    plan::plan_transcription_answer(facts, plan.answer);
    CHECK(plan.answer.mode == plan::answer_mode::whole);
    CHECK(plan.answer.transcription.format == audio::transcript_format::vtt);
    CHECK(plan.answer.transcription.temperature == 0.5);
    facts.stream = true;
    plan::plan_transcription_answer(facts, plan.answer);
    CHECK(plan.answer.mode == plan::answer_mode::transcode_stream);
    CHECK(plan.answer.whole == plan::whole_kind::transcription);
}

TEST_CASE("plan: the aliases /v1/models lists are the exact ones and the simple globs' stems") {
    const auto aliases = plan::derive_model_aliases(shipped());
    REQUIRE_FALSE(aliases.empty());
    bool gpt4o = false;
    for (const auto& alias : aliases) {
        CHECK(alias.alias.find_first_of("*?") == std::string::npos);
        gpt4o = gpt4o || alias.alias == "gpt-4o";
    }
    CHECK(gpt4o);
    // OpenAI's transcription models are listed, ahead of the gpt-4o* chat glob.
    const auto voxtral = [&](std::string_view name) {
        return std::any_of(aliases.begin(), aliases.end(), [&](const auto& a) {
            return a.alias == name && a.target == "voxtral-mini-latest";
        });
    };
    CHECK(voxtral("whisper-1"));
    CHECK(voxtral("gpt-4o-transcribe"));
    CHECK(voxtral("gpt-4o-mini-transcribe"));
}

TEST_CASE("plan: a fallback model is planned with every rule, and named by the fallback id") {
    const std::string tools =
        R"({"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"user","content":"hi"}]})";
    const auto small = plan_of("/v1/chat/completions", tools, "POST", "mistral-small-latest");
    REQUIRE(small->result.ok());
    CHECK(small->result.plan->model_sent == "mistral-small-latest");
    CHECK(small->result.plan->model_requested == "gpt-4o");
    CHECK(small->body.find(R"("model":"mistral-small-latest")") != std::string::npos);
    CHECK(small->rules == "model_alias,fallback");

    // tool_capable judges the fallback: a model without tools refuses it.
    const auto nemo = plan_of("/v1/chat/completions", tools, "POST", "open-mistral-nemo");
    REQUIRE_FALSE(nemo->result.ok());
    CHECK(nemo->result.error->code == "model_without_tools");

    // Routing follows the fallback's own model.
    const auto codestral = plan_of("/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})",
                                   "POST", "codestral-latest");
    REQUIRE(codestral->result.ok());
    CHECK(codestral->result.plan->upstream == routing::upstream_id::codestral);
}
