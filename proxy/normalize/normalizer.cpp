// The request normalizer (SPEC §6; see normalizer.hpp): one simdjson
// On-Demand walk of the body that validates it, gathers what the rules need,
// then writes the members in the client's order with each rule applied,
// copying untouched values as raw slices. The walk's types and the engine
// class are in engine.hpp. Here: the member walk, the top level (its types,
// the fallback model, the order the rules act in, the writer) and run().
// The levels below the top are in walk/ (messages, content parts, tool
// calls) and the rules that are units of their own in rules/ (one file per
// SPEC id); both are compiled as part of this file (see its end).
#include "normalize/normalizer.hpp"
#include "normalize/engine.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <cstring>
#include <vector>

#include "json/writer.hpp"

namespace mistral_proxy::normalize {

static_assert(body_padding == simdjson::SIMDJSON_PADDING, "body buffers must reserve simdjson's padding");
static_assert(max_json_depth == json::max_depth, "one depth limit for requests and answers");



normalize_scratch::normalize_scratch() : impl_(std::make_unique<impl>()) {}
normalize_scratch::~normalize_scratch() = default;

void rule_mask::append_names(std::string& out, std::string_view separator) const {
    const auto append_each = [this](std::string& to, std::string_view between) {
        bool first = true;
        for_each([&](std::string_view name) {
            if (!first) {
                to.append(between);
            }
            first = false;
            to.append(name);
        });
    };
    if (separator != ",") {
        append_each(out, separator);
        return;
    }
    // The header's value for each request: an application's requests fire the
    // same rules again and again, so the names of the last mask this thread
    // wrote are kept and copied at once (the names one by one were ~400
    // instructions of a chat request, bench/instructions).
    struct last_names {
        std::uint32_t bits = 0;
        bool valid = false;
        std::string text;
    };
    thread_local last_names last;
    if (!last.valid || last.bits != bits_) {
        last.text.clear();
        append_each(last.text, separator);
        last.bits = bits_;
        last.valid = true;
    }
    out.append(last.text);
}

namespace detail {
namespace {

known_key classify_key(std::string_view key) noexcept {
    const auto is = [&](std::string_view name) { return std::memcmp(key.data(), name.data(), name.size()) == 0; };
    switch (key.size()) {
        case 2:
            return is("id") ? known_key::id : known_key::other;
        case 4:
            return is("role")   ? known_key::role
                   : is("name") ? known_key::name
                   : is("type") ? known_key::type
                                : known_key::other;
        case 6:
            return is("prefix") ? known_key::prefix : known_key::other;
        case 7:
            return is("content") ? known_key::content : known_key::other;
        case 8:
            return is("function") ? known_key::function : known_key::other;
        case 9:
            return is("arguments") ? known_key::arguments : known_key::other;
        case 10:
            return is("tool_calls") ? known_key::tool_calls : known_key::other;
        case 12:
            return is("tool_call_id") ? known_key::tool_call_id : known_key::other;
        default:
            return known_key::other;
    }
}

// rules::contains, inline (it is asked for nearly every member of every message).
bool has_key(const rules::key_list& list, std::string_view key) noexcept {
    for (const std::string& item : list) {
        if (same_key(item, key)) {
            return true;
        }
    }
    return false;
}


std::string_view kind_name(od::json_type type) noexcept {
    switch (type) {
        case od::json_type::array:
            return "an array";
        case od::json_type::object:
            return "an object";
        case od::json_type::number:
            return "a number";
        case od::json_type::string:
            return "a string";
        case od::json_type::boolean:
            return "a boolean";
        case od::json_type::null:
            return "null";
    }
    return "a value";
}



std::uint8_t kind_bit(od::json_type type) noexcept {
    switch (type) {
        case od::json_type::array:
            return rules::kind_array;
        case od::json_type::object:
            return rules::kind_object;
        case od::json_type::number:
            return rules::kind_number;
        case od::json_type::string:
            return rules::kind_string;
        case od::json_type::boolean:
            return rules::kind_boolean;
        case od::json_type::null:
            return rules::kind_null;
    }
    return 0;
}



std::string kinds_text(std::uint8_t kinds) {
    std::string text;
    const std::pair<std::uint8_t, std::string_view> names[] = {
        {rules::kind_string, "a string"}, {rules::kind_number, "a number"}, {rules::kind_boolean, "a boolean"},
        {rules::kind_object, "an object"}, {rules::kind_array, "an array"},  {rules::kind_null, "null"}};
    for (const auto& [bit, name] : names) {
        if ((kinds & bit) != 0) {
            text += (text.empty() ? "" : " or ") + std::string(name);
        }
    }
    return text;
}



std::string parse_error_message(error_code code) {
    switch (code) {
        case simdjson::EMPTY:
            return "request body is empty; expected a JSON object";
        case simdjson::DEPTH_ERROR:
            return "request body is nested too deeply (more than " + std::to_string(max_json_depth) + " levels)";
        case simdjson::UTF8_ERROR:
            return "request body is not valid UTF-8";
        case simdjson::CAPACITY:
            return "request body is too large to parse";
        case simdjson::MEMALLOC:
            return "request body could not be parsed: out of memory";
        default:
            break;
    }
    return std::string("request body is not valid JSON: ") + simdjson::error_message(code);
}


// Validates the value (all of it) and gives its bytes in the input.
bool engine::capture(od::value& value, std::size_t depth, piece& out, od::json_type& type) {
    const std::string_view token = value.raw_json_token();
    if (auto e = value.type().get(type)) {
        return fail_json(e);
    }
    if (auto e = json::validate(value, type, depth)) {
        return fail_json(e);
    }
    out = extent(token, value, type);
    return true;
}





// {"k":v,...} of the kept members from `base`, then pops them.
void engine::write_object(std::size_t base, piece& out) {
    if (compact_in_input(base, out)) {
        members_.resize(base);
        return;
    }
    const std::size_t start = mark();
    arena_.push_back('{');
    member_run run;
    for (std::size_t i = base; i < members_.size(); ++i) {
        const member& m = members_[i];
        if (m.keep) {
            write_member(run, m);
        }
    }
    flush(run);
    arena_.push_back('}');
    members_.resize(base);
    out = since(start);
}

// [v,...] of the items from `base` (each a written value on the member
// stack: parts, tool calls, tools), then pops them.
void engine::write_array(std::size_t base, piece& out) {
    const std::size_t start = mark();
    arena_.push_back('[');
    for (std::size_t i = base; i < members_.size(); ++i) {
        if (i != base) {
            arena_.push_back(',');
        }
        append(members_[i].value);
    }
    arena_.push_back(']');
    members_.resize(base);
    out = since(start);
}


// ---------------------------------------------------------------------------
// Tools






// ---------------------------------------------------------------------------
// Top level

namespace {

top_key classify(std::string_view name) noexcept {
    if (same_key(name, "model")) {
        return top_key::model;
    }
    if (same_key(name, "messages")) {
        return top_key::messages;
    }
    if (same_key(name, "tools")) {
        return top_key::tools;
    }
    if (same_key(name, "functions")) {
        return top_key::functions;
    }
    if (same_key(name, "tool_choice")) {
        return top_key::tool_choice;
    }
    if (same_key(name, "function_call")) {
        return top_key::function_call;
    }
    if (same_key(name, "response_format")) {
        return top_key::response_format;
    }
    if (same_key(name, "stream")) {
        return top_key::stream;
    }
    if (same_key(name, "stream_options")) {
        return top_key::stream_options;
    }
    if (same_key(name, "encoding_format")) {
        return top_key::encoding_format;
    }
    if (same_key(name, "input")) {
        return top_key::input;
    }
    return top_key::other;
}

}  // namespace


// POST /v1/embeddings, what Mistral cannot take and a rule cannot repair:
// input as token ids (OpenAI accepts [1,2,3] and [[1,2],[3]]; Mistral embeds
// text only), and an encoding other than float and base64 (base64 is computed
// by the proxy from Mistral's floats). `value` was validated whole.
bool engine::check_embedding_member(top_key id, od::json_type type, piece value) {
    if (id == top_key::input && type == od::json_type::array) {
        const std::string_view text = view(value);
        std::size_t at = 1;  // after '['
        while (at < text.size() && is_space(text[at])) {
            ++at;
        }
        const char first = at < text.size() ? text[at] : ']';
        if (first == '[' || first == '-' || (first >= '0' && first <= '9')) {
            return fail(
                "'input' as token ids (arrays of integers) is not supported: Mistral embeds text, so send the text "
                "as a string or an array of strings",
                "input");
        }
    }
    if (id == top_key::encoding_format && type != od::json_type::null && encoding_ == encoding_format::unspecified) {
        return fail("'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
    }
    return true;
}

normalize_result engine::run(const config::proxy_config& config, endpoint which) {
    normalize_result result;
    const std::size_t length = static_cast<std::size_t>(input_end_ - input_);
    normalized_request request;
    request.estimated_prompt_tokens = std::max<std::uint64_t>(1, length / 4);
    if (routing::row_of(which).body != routing::body_mode::buffered) {
        // Not parsed: forwarded as it is to the region's Mistral upstream.
        request.body = std::string_view(input_, length);
        request.upstream = config.region == config::region_kind::eu ? routing::upstream_id::mistral_eu
                                                                    : routing::upstream_id::mistral;
        result.request = request;
        return result;
    }
    auto parse_error = [&](error_code code) {
        result.error = errors::make_error(400, parse_error_message(code));
        return result;
    };
    if (length == 0) {
        return parse_error(simdjson::EMPTY);
    }
    if (length > max_piece_offset) {
        result.error = errors::make_error(413, "request body is " + std::to_string(length) +
                                                   " bytes; the rewrite reads bodies up to " +
                                                   std::to_string(max_piece_offset) + " bytes");
        return result;
    }
    od::document doc;
    if (auto e = s_.parser.iterate(input_, length, length + body_padding).get(doc)) {
        return parse_error(e);
    }
    od::json_type root_type;
    if (auto e = doc.type().get(root_type)) {
        return parse_error(e);
    }
    if (root_type != od::json_type::object) {
        result.error =
            errors::make_error(400, "request body must be a JSON object, got " + std::string(kind_name(root_type)));
        return result;
    }
    od::object top;
    if (auto e = doc.get_object().get(top)) {
        return parse_error(e);
    }
    members_.clear();
    s_.tops.clear();
    arena_.clear();
    piece body;
    if (!read_top(top, which, request, body)) {
        result.error = std::move(error_);
        return result;
    }
    // Trailing content after the object ("{..}}", "{..} x") is refused: On-Demand
    // stops at the object's end and would not notice it otherwise.
    const char* location = nullptr;
    if (doc.current_location().get(location) == simdjson::SUCCESS) {
        result.error = errors::make_error(400, "request body is not valid JSON: unexpected content after the object");
        return result;
    }
    request.stream = stream_;
    request.include_usage = include_usage_;
    request.encoding = encoding_;
    // A count past 2^64 ("max_tokens": 1e300) saturates: converting it to an
    // integer as is would be undefined behaviour (UBSan, the fuzzer found it).
    constexpr double count_limit = 18446744073709551616.0;  // 2^64
    const auto as_count = [](double value) {
        return value >= count_limit ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(value);
    };
    if (max_tokens_ && *max_tokens_ >= 0) {
        request.max_tokens = as_count(*max_tokens_);
    } else if (max_completion_tokens_ && *max_completion_tokens_ >= 0) {
        request.max_tokens = as_count(*max_completion_tokens_);
    }

    // Routing (SPEC §5) on the model as sent.
    const routing::endpoint_row* route_row = &routing::row_of(which);
    if (route_row->target == routing::upstream_target::by_model) {
        request.legacy_to_fim = rules_.is_codestral_model(request.model_sent);
        route_row = &routing::row_of(request.legacy_to_fim ? endpoint::fim_completions : endpoint::chat_completions);
    }
    auto route = routing::choose_upstream(config, rules_, *route_row, request.model_sent);
    if (route.error) {
        result.error = std::move(route.error);
        return result;
    }
    request.upstream = *route.upstream;
    request.upstream_path = route_row->upstream_path;  // relative to base_url
    request.fired = fired_;
    request.body = fired_.empty() || which == endpoint::completions ? std::string_view(input_, length) : view(body);
    result.request = request;
    return result;
}

bool engine::read_top(od::object top, endpoint which, normalized_request& request, piece& body) {
    const bool chat = which == endpoint::chat_completions;
    const std::size_t base = 0;
    std::string_view model;
    bool has_model = false;
    bool has_messages = false;
    std::size_t functions_count = 0;
    bool functions_given = false;
    for (auto field_result : top) {
        od::field& field = json::field_in(field_result);
        std::string_view name;
        if (auto e = json::member_of(field_result, name)) {
            return fail_json(e);
        }
        od::value& child = field.value();
        od::json_type type;
        if (auto e = child.type().get(type)) {
            return fail_json(e);
        }
        top_member t;
        t.id = classify(name);
        if (!chat && t.id != top_key::model && t.id != top_key::stream && t.id != top_key::stream_options &&
            t.id != top_key::encoding_format && t.id != top_key::input) {
            t.id = top_key::other;
        }
        piece p;
        switch (t.id) {
            case top_key::model:
                if (type != od::json_type::string) {
                    return fail("'model' must be a string, got " + std::string(kind_name(type)), "model");
                }
                if (!capture_string(child, p, model)) {
                    return false;
                }
                has_model = true;
                break;
            case top_key::messages:
                if (type != od::json_type::array) {
                    return fail("'messages' must be an array of messages, got " + std::string(kind_name(type)),
                                "messages");
                }
                if (!read_messages(child)) {  // written with the body: p stays empty
                    return false;
                }
                has_messages = true;
                break;
            case top_key::tools:
            case top_key::functions:
                if (type == od::json_type::array) {
                    if (!read_tools(child, t.id == top_key::functions, p)) {
                        return false;
                    }
                    if (t.id == top_key::tools) {
                        tools_given_ = true;
                    } else {
                        functions_given = true;
                        functions_count = tool_count_;
                    }
                } else if (type == od::json_type::null) {
                    if (!capture(child, 1, p, type)) {
                        return false;
                    }
                    t.keep = false;  // "tools": null means none
                    fire(rule_id::params);
                } else {
                    return fail("'" + std::string(name) + "' must be an array, got " + std::string(kind_name(type)),
                                std::string(name));
                }
                break;
            case top_key::tool_choice:
                if (!read_tool_choice(child, p, t.keep)) {
                    return false;
                }
                break;
            case top_key::function_call:
                if (!read_function_call(child, p, t.keep)) {
                    return false;
                }
                break;
            case top_key::response_format:
                if (!read_response_format(child, p, t.keep)) {
                    return false;
                }
                break;
            case top_key::stream_options:
                if (type == od::json_type::object) {
                    od::object options;
                    if (auto e = child.get_object().get(options)) {
                        return fail_json(e);
                    }
                    for (auto option_result : options) {
                        od::field& option = json::field_in(option_result);
                        std::string_view option_name;
                        if (auto e = json::member_of(option_result, option_name)) {
                            return fail_json(e);
                        }
                        piece q;
                        od::json_type option_type;
                        if (!capture(option.value(), 2, q, option_type)) {
                            return false;
                        }
                        if (same_key(option_name, "include_usage")) {
                            include_usage_ = view(q) == "true";
                        }
                    }
                    p = piece{};
                } else if (!capture(child, 1, p, type)) {
                    return false;
                }
                break;
            default:
                if (type == od::json_type::number) {
                    const std::string_view token = child.raw_json_token();
                    double number = 0;
                    if (auto e = json::get_number(child, number)) {  // not get_double: see json/number.hpp
                        return fail_json(e);
                    }
                    std::size_t n = 0;
                    while (n < token.size() && token[n] != ' ' && token[n] != '\n' && token[n] != '\r' &&
                           token[n] != '\t' && token[n] != ',' && token[n] != '}') {
                        ++n;
                    }
                    p = piece{static_cast<std::size_t>(token.data() - input_),
                              static_cast<std::size_t>(token.data() - input_) + n, false};
                    t.number = number;
                    if (same_key(name, "max_tokens")) {
                        max_tokens_ = number;
                    } else if (same_key(name, "max_completion_tokens")) {
                        max_completion_tokens_ = number;
                    }
                } else if (!capture(child, 1, p, type)) {
                    return false;
                }
                if (t.id == top_key::stream && type == od::json_type::boolean) {
                    stream_ = view(p) == "true";
                }
                if (t.id == top_key::encoding_format) {  // the last one counts, as for every duplicate key
                    const std::string_view value = type == od::json_type::string ? view(p) : std::string_view();
                    encoding_ = value == "\"base64\"" ? encoding_format::base64
                                : value == "\"float\"" ? encoding_format::float_values
                                                       : encoding_format::unspecified;
                }
                if (which == endpoint::embeddings && !check_embedding_member(t.id, type, p)) {
                    return false;
                }
                break;
        }
        const std::size_t at = push_member(base, name, p, type);
        if (s_.tops.size() <= at) {
            s_.tops.resize(at + 1);
        }
        s_.tops[at] = t;
    }

    if (!has_model) {
        return fail("you must provide a model parameter", "model");
    }
    if (chat && !has_messages) {
        return fail("'messages' is required: a list of {role, content} messages", "messages");
    }

    // model_rewrite, model_alias: the chains were resolved when the rules loaded.
    request.model_requested = model;
    std::string_view sent = mapped_model(model);
    // A fallback model replaces the model the rules chose; the capability rules
    // below then judge the new one.
    use_fallback(sent);
    if (which == endpoint::completions) {
        request.model_sent = sent;
        fired_ = rule_mask{};  // the body is passed through unchanged
        return true;
    }

    // vision_route, then tool_capable on the model that will really be used.
    if (chat && !route_vision(sent)) {
        return false;
    }
    const bool tools_empty = tools_given_ && tool_count_ == 0;
    const bool drop_empty_tools = on(rule_id::tools) && tools_empty;
    const std::size_t effective_tools = tools_given_ ? tool_count_ : functions_count;
    if (chat && !check_tool_capable(sent, effective_tools)) {
        return false;
    }
    request.model_sent = sent;
    const bool hint = chat && response_json_object_ && on(rule_id::json_mode_hint) &&
                      std::none_of(s_.hint_texts.begin(), s_.hint_texts.end(),
                                   [&](const hint_text& text) { return mentions_json(unescaped(text)); });

    // Write the object: members in the client's order, each as its rule says.
    const auto target = routing::row_of(which).schema.value_or(rules::schema_target::chat);
    const rules::request_schema& schema = rules_.request_schema_for(target);
    const auto& renames = rules_.renames_for(target);
    const bool params = on(rule_id::params);
    auto present = [&](std::string_view key) {
        for (std::size_t i = base; i < members_.size(); ++i) {
            if (members_[i].key == key && s_.tops[i].keep) {
                return true;
            }
        }
        return false;
    };
    const bool has_tool_choice = present("tool_choice");
    const std::size_t start = mark();
    arena_.push_back('{');
    bool first = true;
    auto open_member = [&](std::string_view name) {  // a name from the request or the rule file
        if (!first) {
            arena_.push_back(',');
        }
        first = false;
        key(name);
    };
    auto open_known = [&](std::string_view name) {  // a name of Mistral's schema: nothing to escape
        if (!first) {
            arena_.push_back(',');
        }
        first = false;
        plain_key(name);
    };
    for (std::size_t i = base; i < members_.size(); ++i) {
        const member& m = members_[i];
        const top_member& t = s_.tops[i];
        if (!t.keep) {
            continue;
        }
        switch (t.id) {
            case top_key::model:
                open_known("model");
                if (sent.data() == model.data()) {
                    append(m.value);
                } else {
                    string_value(sent);
                }
                continue;
            case top_key::messages:
                open_known("messages");
                write_messages(hint);
                continue;
            case top_key::tools:
                if (drop_empty_tools) {
                    fire(rule_id::tools);
                    continue;
                }
                if (tools_empty && params) {
                    continue;  // every tool was of a kind Mistral's chat cannot take
                }
                open_known("tools");
                append(m.value);
                continue;
            case top_key::functions:
                fire(rule_id::params);
                if (!params || tools_given_ || functions_count == 0) {
                    if (!params) {
                        open_known("functions");
                        append(m.value);
                    }
                    continue;
                }
                open_known("tools");
                append(m.value);
                continue;
            case top_key::tool_choice:
                if (tools_empty && (drop_empty_tools || params)) {
                    fire(rule_id::tools);
                    continue;
                }
                open_known("tool_choice");
                append(m.value);
                continue;
            case top_key::function_call:
                if (!params) {
                    open_known("function_call");
                    append(m.value);
                    continue;
                }
                fire(rule_id::params);
                if (!has_tool_choice && !tools_given_ && functions_given) {
                    open_known("tool_choice");
                    append(m.value);
                }
                continue;
            case top_key::response_format:
                open_known("response_format");
                append(m.value);
                continue;
            default:
                break;
        }
        // Everything else: rename, schema check, clamp, copy.
        std::string_view name = m.key;
        if (params) {
            for (const auto& [from, to] : renames) {
                if (from == name) {
                    fire(rule_id::params);
                    name = present(to) ? std::string_view() : std::string_view(to);  // the client's own `to` wins
                    break;
                }
            }
            if (name.empty()) {
                continue;
            }
        }
        const rules::field_spec* spec = schema_.present ? schema.find(name) : nullptr;
        if (schema_.present && params) {
            if (spec == nullptr || (t.id == top_key::encoding_format && encoding_ == encoding_format::base64)) {
                // Not in Mistral's schema (user, store, logit_bias, stream_options, ...);
                // base64 embeddings are encoded by the proxy from floats.
                fire(rule_id::params);
                continue;
            }
            if ((spec->kinds & kind_bit(m.type)) == 0) {
                if (m.type == od::json_type::null) {
                    fire(rule_id::params);  // null where Mistral wants a value: same as absent
                    continue;
                }
                return fail("'" + std::string(m.key) + "' must be " + kinds_text(spec->kinds) + ", got " +
                                std::string(kind_name(m.type)),
                            std::string(m.key));
            }
            if (!spec->enum_values.empty() && m.type == od::json_type::string) {
                const std::string_view raw = view(m.value);
                if (!rules::contains(spec->enum_values, raw.substr(1, raw.size() - 2))) {
                    fire(rule_id::params);  // e.g. OpenAI's service_tier "default"/"flex"
                    continue;
                }
            }
        }
        open_member(name);
        if (!write_clamped(name, t.number)) {
            append(m.value);
        }
    }
    arena_.push_back('}');
    body = since(start);
    return true;
}

}  // namespace
}  // namespace detail

normalize_result normalize_request(const rules::rule_set& rules, const config::proxy_config& config, endpoint which,
                                   std::string_view body_with_padding, normalize_scratch& scratch,
                                   std::string_view model_override) {
    normalize_scratch::impl& s = scratch.get();
    // What a huge body grew the previous call leaves is released now, never
    // after this call's walk: the result's views point into the arena and the
    // parser's strings, and stay valid until the next call (normalizer.hpp).
    s.trim();
    normalize_result result;
    try {
        detail::engine e(rules, s, body_with_padding, model_override);
        result = e.run(config, which);
    } catch (const detail::arena_too_large&) {
        result = normalize_result{};
        result.error = errors::make_error(413, "the rewritten request would be over " +
                                                   std::to_string(detail::max_piece_offset) +
                                                   " bytes; send a smaller body");
    }
    return result;
}

}  // namespace mistral_proxy::normalize

// The rule units: compiled here, as part of this translation unit, so that the
// walk's functions keep internal linkage and GCC specializes and inlines them
// across the units as it did when they were one file (split into separate
// units they cost bench_normalizer ~15% on the 10 KB body). A new unit is
// added to this list (rules/README.md, "Adding a rule"). The walk's own
// levels below the top (walk/) are compiled here for the same reason.
#include "normalize/walk/content_parts.cpp"
#include "normalize/walk/message_walk.cpp"
#include "normalize/walk/tool_calls.cpp"
#include "normalize/rules/documents.cpp"
#include "normalize/rules/fallback.cpp"
#include "normalize/rules/json_mode_hint.cpp"
#include "normalize/rules/messages.cpp"
#include "normalize/rules/model_mapping.cpp"
#include "normalize/rules/params.cpp"
#include "normalize/rules/ranges.cpp"
#include "normalize/rules/role_order.cpp"
#include "normalize/rules/tool_call_ids.cpp"
#include "normalize/rules/tool_choice.cpp"
#include "normalize/rules/tool_capable.cpp"
#include "normalize/rules/tools.cpp"
#include "normalize/rules/vision_route.cpp"
