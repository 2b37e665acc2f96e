// Responses API request -> OpenAI chat completions request (see request.hpp).
// Requests are read with simdjson's DOM: one strict pass validates every byte
// (syntax, UTF-8, trailing content), then the items are visited in any order.
// Values copied through are re-serialised from the DOM (numbers keep their
// value, not necessarily their spelling). Every item type, part type and
// top-level field of CreateResponse is mapped or refused, each with the
// message that names it. This file: the top-level fields, the settings and
// the run; request/tools.cpp the tools, tool_choice and text format;
// request/items.cpp the items; request/translator.hpp the class.
#include "openai_responses/request.hpp"

#include "openai_responses/request/translator.hpp"

namespace mistral_proxy::openai_responses {
namespace {

void translator::flush_assistant() {
    if (!pending_open_) {
        return;
    }
    begin_message();
    messages_ += R"({"role":"assistant")";
    if (pending_has_text_) {
        messages_ += R"(,"content":)";
        append_json_string(messages_, pending_text_);
    }
    if (!pending_calls_.empty()) {
        messages_ += R"(,"tool_calls":[)";
        messages_ += pending_calls_;
        messages_ += ']';
    }
    if (!pending_has_text_ && pending_calls_.empty()) {
        messages_ += R"(,"content":"")";
    }
    messages_ += '}';
    pending_open_ = false;
    pending_has_text_ = false;
    pending_text_.clear();
    pending_calls_.clear();
}

void translator::begin_input_item(std::string_view id, std::string_view prefix) {
    std::string& out = result_.input_items;
    if (!first_input_item_) {
        out += ',';
    }
    first_input_item_ = false;
    out += R"({"id":)";
    if (id.empty()) {
        id_scratch_.clear();
        ids_.append(id_scratch_, prefix);
        append_json_string(out, id_scratch_);
    } else {
        append_json_string(out, id);
    }
}

bool translator::read_fields(dom::object root) {
    for (dom::key_value_pair member : root) {
        const auto which = field_of(member.key);
        if (!which) {
            return fail("Unknown parameter: '" + std::string(member.key) +
                            "'. The Responses API (CreateResponse) has no such field; remove it.",
                        std::string(member.key), "unknown_parameter");
        }
        fields_[static_cast<std::size_t>(*which)] = member.value;  // duplicate keys: the last wins
    }
    return true;
}

bool translator::check_types() {
    struct rule {
        field f;
        bool (*ok)(dom::element);
        std::string_view expected;
    };
    static constexpr auto string_ok = [](dom::element v) { return v.type() == dom::element_type::STRING; };
    static constexpr auto object_ok = [](dom::element v) { return v.type() == dom::element_type::OBJECT; };
    static constexpr auto array_ok = [](dom::element v) { return v.type() == dom::element_type::ARRAY; };
    static constexpr auto bool_ok = [](dom::element v) { return v.type() == dom::element_type::BOOL; };
    static constexpr auto number_ok = [](dom::element v) { return is_number(v); };
    static constexpr auto integer_ok = [](dom::element v) { return is_integer(v); };
    static constexpr auto input_ok = [](dom::element v) {
        return v.type() == dom::element_type::STRING || v.type() == dom::element_type::ARRAY;
    };
    static constexpr auto choice_ok = [](dom::element v) {
        return v.type() == dom::element_type::STRING || v.type() == dom::element_type::OBJECT;
    };
    static constexpr rule rules[] = {
        {field::model, string_ok, "a string"},
        {field::input, input_ok, "a string or an array of items"},
        {field::instructions, string_ok, "a string"},
        {field::tools, array_ok, "an array"},
        {field::tool_choice, choice_ok, "a string or an object"},
        {field::parallel_tool_calls, bool_ok, "a boolean"},
        {field::text, object_ok, "an object"},
        {field::temperature, number_ok, "a number"},
        {field::top_p, number_ok, "a number"},
        {field::max_output_tokens, integer_ok, "an integer"},
        {field::reasoning, object_ok, "an object"},
        {field::stream, bool_ok, "a boolean"},
        {field::metadata, object_ok, "an object"},
        {field::user, string_ok, "a string"},
        {field::safety_identifier, string_ok, "a string"},
        {field::prompt_cache_key, string_ok, "a string"},
        {field::truncation, string_ok, "a string"},
        {field::include, array_ok, "an array"},
        {field::store, bool_ok, "a boolean"},
        {field::previous_response_id, string_ok, "a string"},
        {field::background, bool_ok, "a boolean"},
        {field::service_tier, string_ok, "a string"},
        {field::top_logprobs, integer_ok, "an integer"},
        {field::max_tool_calls, integer_ok, "an integer"},
        {field::stream_options, object_ok, "an object"},
        {field::prompt_cache_retention, string_ok, "a string"},
    };
    for (const rule& r : rules) {
        const auto value = given(r.f);
        if (value && !r.ok(*value)) {
            return wrong_type(field_names[static_cast<std::size_t>(r.f)], r.expected, *value);
        }
    }
    const auto model = given(field::model);
    if (!model || string_of(*model).empty()) {
        return fail("Missing required parameter: 'model'.", "model", "missing_required_parameter");
    }
    if (const auto background = given(field::background);
        background && background->is_bool() && bool(bool_of(*background))) {
        return fail(
            "'background': true is not supported by this proxy (Mistral has no background responses); send "
            "background: false or leave it out.",
            "background", "unsupported_parameter");
    }
    if (given(field::prompt)) {
        return fail(
            "'prompt' (a prompt template stored at OpenAI) is not supported by this proxy; send the text as "
            "'instructions' and 'input' instead.",
            "prompt", "unsupported_parameter");
    }
    if (given(field::conversation)) {
        return fail(
            "'conversation' is not supported by this proxy (it has no Conversations API); continue a "
            "conversation with 'previous_response_id' instead.",
            "conversation", "unsupported_parameter");
    }
    return true;
}

// The Response object's echo of the request.
bool translator::write_settings() {
    response_settings& s = result_.settings;
    s.model_asked = std::string(string_of(*given(field::model)));
    const auto copy = [&](field f, std::string& slot) {
        if (const auto value = given(f)) {
            slot = simdjson::minify(*value);
        }
    };
    copy(field::instructions, s.instructions);
    copy(field::temperature, s.temperature);
    copy(field::top_p, s.top_p);
    copy(field::max_output_tokens, s.max_output_tokens);
    copy(field::max_tool_calls, s.max_tool_calls);
    copy(field::metadata, s.metadata);
    copy(field::parallel_tool_calls, s.parallel_tool_calls);
    copy(field::truncation, s.truncation);
    copy(field::reasoning, s.reasoning);
    copy(field::top_logprobs, s.top_logprobs);
    copy(field::previous_response_id, s.previous_response_id);
    copy(field::user, s.user);
    copy(field::safety_identifier, s.safety_identifier);
    copy(field::prompt_cache_key, s.prompt_cache_key);
    if (const auto store = given(field::store)) {
        s.store = bool_of(*store);
    }
    result_.store = s.store;
    if (const auto stream = given(field::stream)) {
        result_.stream = bool_of(*stream);
    }
    return true;
}

void translator::run(std::string_view body) {
    dom::element root_element;
    dom::object root;
    if (body_parser.parse(body.data(), body.size()).get(root_element) != simdjson::SUCCESS ||
        root_element.get_object().get(root) != simdjson::SUCCESS) {
        fail("The request body must be a JSON object (a Responses API request).", "", std::nullopt);
        result_.error->param.reset();
        return;
    }
    result_.response_id = ids_.make("resp_");  // first, so that it is resp_...1 in tests
    if (!read_fields(root) || !check_types() || !write_settings()) {
        return;
    }
    if (const auto tools = given(field::tools); tools && !write_tools(*tools)) {
        return;
    }
    if (const auto choice = given(field::tool_choice); choice && !write_tool_choice(*choice)) {
        return;
    }
    if (const auto text = given(field::text); text && !write_text_format(*text)) {
        return;
    }
    if (const auto reasoning = given(field::reasoning)) {
        for (dom::key_value_pair member : object_of(*reasoning)) {
            if (member.key == "effort" && member.value.type() == dom::element_type::STRING) {
                reasoning_effort_ = simdjson::minify(member.value);
            }
        }
    }
    if (!write_messages()) {
        return;
    }
    // Accepted, not sent: noted when they ask for something Mistral will not do.
    if (given(field::max_tool_calls)) {
        note("max_tool_calls not enforced: Mistral has no such limit");
    }
    if (const auto v = given(field::top_logprobs); v && is_integer(*v) && simdjson::minify(*v) != "0") {
        note("top_logprobs dropped: logprobs are not available through this proxy");
    }
    if (const auto v = given(field::include); v && array_of(*v).size() != 0) {
        note("include dropped: none of its extra outputs is available from Mistral");
    }
    if (const auto v = given(field::truncation); v && string_of(*v) == "auto") {
        note("truncation 'auto' not applied: the conversation is sent whole");
    }
    if (given(field::moderation) || given(field::context_management)) {
        note("moderation/context_management dropped: Mistral's chat has no such settings");
    }
    if (given(field::service_tier) || given(field::prompt_cache_retention) || given(field::prompt_cache_options)) {
        note("service_tier/prompt_cache_* dropped: not Mistral settings");
    }

    std::string& out = result_.chat_body;
    out.reserve(messages_.size() + tools_chat_.size() + 256);
    out += R"({"model":)";
    out += simdjson::minify(*given(field::model));
    out += R"(,"messages":[)";
    out += messages_;
    out += ']';
    if (!tools_chat_.empty()) {
        out += R"(,"tools":)";
        out += tools_chat_;
    }
    if (!tool_choice_chat_.empty()) {
        out += R"(,"tool_choice":)";
        out += tool_choice_chat_;
    }
    if (const auto v = given(field::parallel_tool_calls)) {
        out += R"(,"parallel_tool_calls":)";
        out += simdjson::minify(*v);
    }
    if (!response_format_.empty()) {
        out += R"(,"response_format":)";
        out += response_format_;
    }
    if (const auto v = given(field::temperature)) {
        out += R"(,"temperature":)";
        out += simdjson::minify(*v);
    }
    if (const auto v = given(field::top_p)) {
        out += R"(,"top_p":)";
        out += simdjson::minify(*v);
    }
    if (const auto v = given(field::max_output_tokens)) {
        out += R"(,"max_tokens":)";
        out += simdjson::minify(*v);
    }
    if (!reasoning_effort_.empty()) {
        out += R"(,"reasoning_effort":)";
        out += reasoning_effort_;
    }
    if (result_.stream) {
        out += R"(,"stream":true,"stream_options":{"include_usage":true})";
    }
    out += '}';
    out.reserve(out.size() + simdjson::SIMDJSON_PADDING);
}

}  // namespace

references find_references(std::string_view body) {
    references found;
    struct release {
        ~release() { release_if_large(scan_parser); }
    } on_return;
    dom::element root_element;
    dom::object root;
    if (scan_parser.parse(body.data(), body.size()).get(root_element) != simdjson::SUCCESS ||
        root_element.get_object().get(root) != simdjson::SUCCESS) {
        found.error = errors::make_error(400, "The request body must be a JSON object (a Responses API request).");
        return found;
    }
    for (dom::key_value_pair member : root) {
        if (member.key == "previous_response_id") {
            found.previous_response_id = std::string(string_of(member.value));
        } else if (member.key == "input") {
            found.item_ids.clear();
            dom::array items;
            if (member.value.get_array().get(items) != simdjson::SUCCESS) {
                continue;
            }
            for (dom::element item : items) {
                dom::object object;
                if (item.get_object().get(object) != simdjson::SUCCESS) {
                    continue;
                }
                std::optional<dom::element> type;
                bool has_role = false;
                std::string_view id;
                for (dom::key_value_pair field_member : object) {
                    if (field_member.key == "type") {
                        type = field_member.value;
                    } else if (field_member.key == "role") {
                        has_role = true;
                    } else if (field_member.key == "id") {
                        id = string_of(field_member.value);
                    }
                }
                const bool reference = (type && string_of(*type) == "item_reference") ||
                                       ((!type || type->is_null()) && !has_role && !id.empty());
                if (reference && !id.empty()) {
                    found.item_ids.emplace_back(id);
                }
            }
        }
    }
    return found;
}

translated_request translate_request(std::string_view body, const history& earlier, id_source& ids) {
    translated_request result;
    translator t(result, earlier, ids);
    t.run(body);
    release_if_large(body_parser);
    release_if_large(history_parser);
    release_if_large(item_parser);
    if (result.error) {
        result.chat_body.clear();
        result.input_items.clear();
    }
    return result;
}

std::string join_items(std::string_view previous_items, std::string_view input_items, std::string_view output_items) {
    std::string out = "[";
    bool first = true;
    for (std::string_view items : {previous_items, input_items, output_items}) {
        // Trim whitespace and the brackets; what is left is the comma-separated items.
        while (!items.empty() &&
               (items.front() == ' ' || items.front() == '\n' || items.front() == '\t' || items.front() == '\r')) {
            items.remove_prefix(1);
        }
        while (!items.empty() &&
               (items.back() == ' ' || items.back() == '\n' || items.back() == '\t' || items.back() == '\r')) {
            items.remove_suffix(1);
        }
        if (items.size() < 2 || items.front() != '[' || items.back() != ']') {
            continue;
        }
        items = items.substr(1, items.size() - 2);
        bool blank = true;
        for (const char c : items) {
            blank = blank && (c == ' ' || c == '\n' || c == '\t' || c == '\r');
        }
        if (blank) {
            continue;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        out += items;
    }
    out += ']';
    return out;
}

}  // namespace mistral_proxy::openai_responses

// The translator's other parts: compiled here, as part of this translation
// unit, so that they share the class's anonymous namespace and simdjson's
// header is compiled once for all of them.
#include "openai_responses/request/tools.cpp"
#include "openai_responses/request/items.cpp"
