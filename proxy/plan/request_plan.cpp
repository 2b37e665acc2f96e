// plan_request: see request_plan.hpp. The order is the request's own: the
// endpoint's translation (legacy completions become chat or FIM), the request
// rules of SPEC §6 (normalize_request), routing (SPEC §5, inside the
// normalizer for bodies it reads), then the answer plan and the limiter facts.
#include "plan/request_plan.hpp"

#include <algorithm>

#include "responses/embeddings.hpp"
#include "responses/legacy_completions.hpp"
#include "responses/moderations.hpp"

namespace mistral_proxy::plan {

namespace {

using routing::endpoint_kind;

// GET /v1/models, /v1/models/{id} and passthrough: nothing in the body is
// read. A transcription form is read as it streams, not here.
plan_result plan_relayed(const plan_inputs& inputs, const client_request& request) {
    const auto& row = request.row;
    const auto route = routing::choose_upstream(inputs.config, inputs.rules, row, {});
    if (route.error) {
        return {std::nullopt, route.error};
    }
    request_plan plan;
    plan.upstream = *route.upstream;
    plan.upstream_path = std::string(routing::upstream_path_of(row, request.path));
    plan.relay_body = true;
    // Model lists carry the rule files' aliases; an alias's card is its model's.
    if (row.kind == endpoint_kind::model_list) {
        plan.answer.mode = answer_mode::whole;
        plan.answer.whole = whole_kind::model_list;
    } else if (row.kind == endpoint_kind::transcriptions) {
        plan.answer.mode = answer_mode::whole;
        plan.answer.whole = whole_kind::transcription;
    } else if (row.kind == endpoint_kind::batch_list) {
        auto query = batches::parse_list_query(request.query);
        if (query.error) {
            return {std::nullopt, std::move(query.error)};
        }
        plan.upstream_path += batches::list_upstream_query;
        plan.own_query = true;
        plan.answer.mode = answer_mode::whole;
        plan.answer.whole = whole_kind::batch_list;
        plan.answer.batch_list = std::move(query);
    } else if (row.kind == endpoint_kind::batch_object || row.kind == endpoint_kind::batch_cancel) {
        // GET /v1/batches/{id} and POST /v1/batches/{id}/cancel: Mistral's job calls.
        const bool cancel = row.kind == endpoint_kind::batch_cancel;
        auto id = request.path.substr(row.path.size());
        if (cancel) {
            id = id.ends_with("/cancel") ? id.substr(0, id.size() - 7) : std::string_view{};
        }
        if (id.empty() || id.find('/') != std::string_view::npos) {
            return {std::nullopt, routing::unknown_endpoint_error(row.method, request.path)};
        }
        plan.upstream_path = "/batch/jobs/" + std::string(id) + (cancel ? "/cancel" : "");
        plan.answer.mode = answer_mode::whole;
        plan.answer.whole = whole_kind::batch;
    } else if (row.kind == endpoint_kind::file_object) {
        // GET /v1/files/{id}: the file object; .../content: a batch output's
        // lines translated as they stream (others relayed unchanged, which the
        // line rewriter tells from the first line); other paths relayed.
        const auto rest = request.path.substr(row.path.size());
        if (rest.find('/') == std::string_view::npos) {
            plan.answer.mode = answer_mode::whole;
            plan.answer.whole = whole_kind::file;
        } else if (rest.ends_with("/content") && rest.find('/') == rest.size() - 8) {
            plan.answer.mode = answer_mode::rewrite_lines;
        }
    } else if (row.kind == endpoint_kind::model_card) {
        const auto id = request.path.substr(row.path.size());
        if (const auto* alias = responses::find_alias(inputs.aliases, id)) {
            plan.answer.mode = answer_mode::whole;
            plan.answer.whole = whole_kind::alias_card;
            plan.answer.alias = alias;
            plan.upstream_path = "/models/" + alias->target;
            plan.fired.add(rules::rule_id::model_alias);
        }
    }
    return {std::move(plan), std::nullopt};
}

// Keeps a translated body in the scratch with the parser's padding after it
// (the parser reads past the end); the view of the body to normalize.
std::string_view keep_translated(plan_scratch& scratch, std::string body) {
    scratch.translated = std::move(body);
    const auto length = scratch.translated.size();
    scratch.translated.append(normalize::body_padding, '\0');
    return std::string_view(scratch.translated.data(), length);
}

// POST /v1/batches: OpenAI's CreateBatchRequest as Mistral's job request,
// with the model the registry learned from the file's lines.
plan_result plan_batch_create(const plan_inputs& inputs, const client_request& request, plan_scratch& scratch) {
    static const batches::file_registry no_files(0);
    auto translated = batches::map_batch_create(request.body_with_padding,
                                                request.batch_files != nullptr ? *request.batch_files : no_files);
    if (translated.error) {
        return {std::nullopt, std::move(translated.error)};
    }
    const auto route = routing::choose_upstream(inputs.config, inputs.rules, request.row, {});
    if (route.error) {
        return {std::nullopt, route.error};
    }
    scratch.translated = std::move(translated.body);
    request_plan plan;
    plan.upstream = *route.upstream;
    plan.upstream_path = std::string(request.row.upstream_path);
    plan.body = scratch.translated;
    // No model_sent: a job is workspace state like the passthrough calls, and
    // shares their breaker; its failing says nothing of the model's chat.
    plan.answer.mode = answer_mode::whole;
    plan.answer.whole = whole_kind::batch;
    // A job generates later, on Mistral's batch capacity: the request itself holds its bytes only.
    plan.estimate = limits::estimate_request(plan.body.size(), std::optional<std::uint64_t>(0));
    return {std::move(plan), std::nullopt};
}

}  // namespace

plan_result plan_request(const plan_inputs& inputs, const client_request& request, plan_scratch& scratch) {
    const auto& row = request.row;
    if (row.kind == routing::endpoint_kind::no_counterpart) {
        return {std::nullopt, routing::no_counterpart_error(request.path)};
    }
    if (row.body == routing::body_mode::local) {
        return {std::nullopt, routing::unknown_endpoint_error("POST", request.path)};
    }
    if (row.body == routing::body_mode::streamed || row.body == routing::body_mode::form) {
        return plan_relayed(inputs, request);
    }

    if (row.kind == endpoint_kind::batch_create) {
        return plan_batch_create(inputs, request, scratch);
    }

    // Bodies read whole: translate what Mistral lacks, then the request rules.
    const auto& rules = inputs.rules;
    const auto& config = inputs.config;
    const std::string_view body = request.body_with_padding;
    auto which = row.kind;
    std::string_view to_normalize = body;
    answer_plan answer;
    bool legacy = false;
    std::string_view legacy_model;
    bool translation_dropped = false;  // a member the translation itself left out (params)
    if (which == endpoint_kind::completions) {
        // OpenAI's legacy completions: validated and routed first, to know
        // whether the model makes it a FIM or a chat request.
        auto routed = normalize::normalize_request(rules, config, which, body, scratch.normalize, request.model_override);
        if (!routed.ok()) {
            return {std::nullopt, std::move(routed.error)};
        }
        const bool to_fim = routed.request->legacy_to_fim;
        // May point into the scratch (an unescaped id): kept before it is reused.
        scratch.legacy_model.assign(routed.request->model_requested);
        legacy_model = scratch.legacy_model;
        auto translated = responses::map_completions_request(
            body, to_fim ? responses::completions_target::fim : responses::completions_target::chat);
        if (translated.error) {
            return {std::nullopt, std::move(translated.error)};
        }
        to_normalize = keep_translated(scratch, std::move(translated.body));
        which = to_fim ? endpoint_kind::fim_completions : endpoint_kind::chat_completions;
        answer.mode = translated.stream ? answer_mode::transcode_stream : answer_mode::whole;
        answer.whole = whole_kind::text_completion;
        answer.shape = responses::stream_shape::text_completion;
        answer.include_usage = translated.include_usage;
        legacy = true;
    } else if (which == endpoint_kind::responses) {
        // OpenAI's Responses API: translated into a chat request, which the
        // chat rules then treat as any other (openai_responses/request.hpp).
        static const openai_responses::history no_history;
        thread_local openai_responses::random_ids random;
        auto translated = std::make_shared<openai_responses::translated_request>(openai_responses::translate_request(
            body, request.history != nullptr ? *request.history : no_history,
            request.ids != nullptr ? *request.ids : static_cast<openai_responses::id_source&>(random)));
        if (translated->error) {
            return {std::nullopt, std::move(translated->error)};
        }
        // The chat body keeps the parser's padding in its capacity.
        to_normalize = translated->chat_body;
        which = endpoint_kind::chat_completions;
        answer.mode = translated->stream ? answer_mode::transcode_stream : answer_mode::whole;
        answer.whole = whole_kind::response;
        answer.responses = std::move(translated);
    } else if (which == endpoint_kind::moderations) {
        // OpenAI's moderation body becomes Mistral's {model, input}; the model
        // rules (an OpenAI model name is an alias) and the schema then apply.
        auto translated = responses::map_moderation_request(body);
        if (translated.error) {
            return {std::nullopt, std::move(translated.error)};
        }
        to_normalize = keep_translated(scratch, std::move(translated.body));
        answer.mode = answer_mode::whole;
        answer.whole = whole_kind::moderation;
    } else if (which == endpoint_kind::speech) {
        // OpenAI's speech body becomes Mistral's (voice -> voice_id by the rule
        // files' speech_voices); the model rules and the speech_request schema
        // then apply, so `params` drops and reports what Mistral lacks. Mistral
        // is always asked to stream: the audio reaches the client as it is made.
        auto translated = audio::map_speech_request(body, rules, true);
        if (translated.error) {
            return {std::nullopt, std::move(translated.error)};
        }
        to_normalize = keep_translated(scratch, std::move(translated.body));
        answer.mode = answer_mode::transcode_stream;
        answer.whole = whole_kind::speech;
        answer.speech = translated.answer;
        translation_dropped = translated.dropped;
    }
    auto normalized = normalize::normalize_request(rules, config, which, to_normalize, scratch.normalize, request.model_override);
    if (!normalized.ok()) {
        return {std::nullopt, std::move(normalized.error)};
    }
    const auto& out = *normalized.request;
    request_plan plan;
    plan.upstream = out.upstream;
    plan.upstream_path = std::string(out.upstream_path);
    plan.body = out.body;
    plan.fired = out.fired;
    if (translation_dropped && rules.enabled(rules::rule_id::params)) {
        plan.fired.add(rules::rule_id::params);
    }
    plan.model_requested = legacy ? legacy_model : out.model_requested;
    plan.model_sent = out.model_sent;
    plan.stream = out.stream;
    if (!legacy && !answer.responses && which == endpoint_kind::chat_completions) {
        answer.mode = out.stream ? answer_mode::transcode_stream : answer_mode::whole;
        answer.whole = whole_kind::chat;
        answer.include_usage = out.include_usage;
    } else if (which == endpoint_kind::embeddings) {
        // Token-id input and unknown encodings were refused by the normalizer;
        // base64 is computed by the proxy from Mistral's floats.
        answer.mode = answer_mode::whole;
        answer.whole = out.encoding == normalize::encoding_format::base64 ? whole_kind::embeddings_base64
                                                                           : whole_kind::usage_only;
    } else if (!legacy && which == endpoint_kind::fim_completions) {
        // /v1/fim/completions is Mistral's own endpoint: its answer keeps Mistral's shape.
        answer.mode = out.stream ? answer_mode::relay : answer_mode::whole;
        answer.whole = whole_kind::usage_only;
    }
    plan.answer = answer;
    // A moderation generates no completion: its estimate is the prompt alone.
    const bool moderation = which == endpoint_kind::moderations;
    plan.estimate =
        limits::estimate_request(out.body.size(), moderation ? std::optional<std::uint64_t>(0) : out.max_tokens);
    return {std::move(plan), std::nullopt};
}

void plan_transcription_answer(const audio::transcription_facts& facts, answer_plan& answer) {
    answer.mode = facts.stream ? answer_mode::transcode_stream : answer_mode::whole;
    answer.whole = whole_kind::transcription;
    answer.transcription = {facts.format, facts.temperature};
}

std::vector<responses::model_alias> derive_model_aliases(const rules::rule_set& rules) {
    std::vector<responses::model_alias> aliases;
    if (!rules.enabled(rules::rule_id::model_alias)) {
        return aliases;
    }
    for (const auto& alias : rules.aliases) {
        // A glob names no model a client could list: an exact alias is shown as
        // it is, "gpt-4o*" as "gpt-4o"; other globs are not shown.
        const auto wildcard = alias.pattern.find_first_of("*?");
        if (wildcard == std::string::npos) {
            aliases.push_back({alias.pattern, alias.target});
        } else if (wildcard + 1 == alias.pattern.size() && alias.pattern.back() == '*' && wildcard > 0 &&
                   std::string_view("-._").find(alias.pattern[wildcard - 1]) == std::string_view::npos) {
            const auto stem = alias.pattern.substr(0, wildcard);
            const bool listed = std::any_of(aliases.begin(), aliases.end(),
                                            [&](const auto& known) { return known.alias == stem; });
            if (!listed && rules.find_alias(stem) == &alias) {
                aliases.push_back({stem, alias.target});
            }
        }
    }
    return aliases;
}

}  // namespace mistral_proxy::plan
