#pragma once
// The normalizer's walk, shared by normalizer.cpp (the member walk and the
// top level), the walk's levels in normalize/walk/ (messages, content parts,
// tool calls) and the rule units in normalize/rules/ (one file per SPEC §6
// rule id that is more than a few lines): the scratch memory and the engine
// class whose methods the units define (what it writes into, the arena and
// the member stack, is storage.hpp). Internal to proxy/normalize/: read by
// normalizer.cpp's translation unit only (the units are compiled as part of
// it, so everything here keeps internal linkage); no Asio, no Beast. Over
// 600 lines because it holds the engine's whole interface plus the small
// hot functions every unit uses (key_of, push_member, extent, capture_string).
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json/writer.hpp"
#include "json/walk.hpp"
#include "normalize/normalizer.hpp"
#include "normalize/storage.hpp"

namespace mistral_proxy::normalize {

namespace od = simdjson::ondemand;
using simdjson::error_code;
// Values, fields and items are used where the iterator built them and passed
// by reference (json::field_in, json::value_in): a copy of simdjson's fresh
// iterator state stalls on store forwarding, twice a member (28% of the 10 KB
// body's time before, bench/README.md).

namespace detail {
namespace {

using rules::rule_id;



// Out of line on purpose (normalizer.cpp): inlined into the long level
// functions, they pushed GCC past its growth limits there.
known_key classify_key(std::string_view key) noexcept;

enum class role_kind { system, user, assistant, tool, unknown };

// The schema's key lists the walk checks member by member (engine::allowed).
enum class keys_of : std::uint8_t {
    function_call,
    tool_call,
    system_message,
    user_message,
    assistant_message,
    tool_message,
};
constexpr std::size_t keys_of_count = 6;


// A text of the request as written between its quotes; `escaped`: it has
// escapes (valid: checked when read), to undo before reading it as text.
struct hint_text {
    std::string_view text;
    bool escaped = false;
};

// tool_call_ids: the ids this worker mapped lately, by the client's id. An
// agent sends its whole conversation again on every turn, so all its ids but
// the newest turn's were mapped on the turn before, and map_tool_call_id is
// a chain of one multiply per byte of the id (FNV-1a, whose values are
// pinned): 5% of bench_normalizer's 10 KB body in a build without a
// profile (the body's 21 ids mapped to a constant instead: 13.3-13.5 ->
// 12.6-12.9 µs), against a look-up here (12.7-13.0 µs). Direct-mapped, one
// 64-byte line a slot (16 KB a worker, of which a request touches a line
// per id); a miss maps the id and takes its slot. What comes out is the
// same either way: the map is a pure function.
struct mapped_id_memo {
    static constexpr std::size_t slot_count = 256;
    static constexpr std::size_t max_length = 54;  // a longer id is mapped each time
    struct alignas(64) slot {
        std::uint8_t length = 0;  // of `original`; 0: the slot is empty
        std::array<char, 9> mapped{};
        std::array<char, max_length> original{};
    };
    static_assert(sizeof(slot) == 64, "a slot is one cache line");
    std::array<slot, slot_count> slots{};
};

struct pending_call {
    std::array<char, 9> id{};
    std::string_view name;      // unescaped function name (for a synthesized result)
    std::string_view original;  // the id as the client sent it (unescaped)
};


// A message as it will be sent, plus what role_order needs to know about it.
// A message is written where the body is (engine::write_messages), from its
// members kept on the message stack (normalize_scratch::impl::message_members)
// with what the steps of the rules decided; one role_order synthesizes is
// written whole when it is made (`text`).
struct message_out {
    piece text;  // the whole object, when role_order made it; empty: written from its members
    role_kind role = role_kind::user;
    bool has_tool_calls = false;
    bool prefix = false;
    bool bridge_before = false;  // role_order: the assistant bridge goes before it
    // For the writer (engine::write_message): what the message walk found.
    bool has_content = false;
    bool map_result_id = false;     // tool_call_ids: its tool_call_id is written as mapped_result_id
    bool answers_in_order = false;  // role_order: it gets answered_id as its tool_call_id
    std::uint32_t first = 0;        // its members on the message stack: [first, end)
    std::uint32_t end = 0;
    std::string_view role_out;  // the role as sent (messages may rename it)
    std::array<char, 9> mapped_result_id{};
    std::array<char, 9> answered_id{};
};

// One message while it is read (engine::read_message): what its members said,
// for the steps of the rules that act on a whole message (messages,
// tool_call_ids, role_order), which run after the walk of its members.
struct message_walk {
    std::size_t index = 0;  // in the client's messages
    std::size_t base = 0;   // where its members start on the member stack
    std::string_view role_text;
    role_kind role = role_kind::unknown;
    std::string_view role_out;             // the role as sent (messages may rename it)
    std::size_t content_index = SIZE_MAX;  // its `content` member on the stack
    bool content_empty = true;
    bool has_content = false;
    bool calls_any = false;  // tool_calls with at least one call
    bool prefix = false;
    std::string_view tool_call_id;
    bool has_tool_call_id = false;
    // Assistant content OpenAI keeps outside `content`, which Mistral's schema lacks.
    std::string_view refusal_text;  // `refusal`: what the assistant said instead of answering
    piece refusal;
    piece legacy_call;  // `function_call`: the legacy form of one tool call
    std::string_view legacy_call_name;
    bool has_legacy_call = false;
    bool has_audio = false;  // `audio`: an answer stored at OpenAI, by id
    // tool_call_ids: the result's tool_call_id as mapped (when map_result_id is set).
    bool map_result_id = false;
    std::array<char, 9> mapped_result_id;  // read only when map_result_id is set
    // role_order: the id of the call a result without tool_call_id answers.
    bool answers_in_order = false;
    std::array<char, 9> answered_id;  // read only when answers_in_order is set

    std::string where() const { return "messages[" + std::to_string(index) + "]"; }  // error path only
};

enum class top_key : std::uint8_t {
    other,
    model,
    messages,
    tools,
    functions,
    tool_choice,
    function_call,
    response_format,
    stream,
    stream_options,
    encoding_format,
    input,
};

// A top-level member plus what the top level needs to decide about it.
struct top_member {
    top_key id = top_key::other;
    bool keep = true;
    std::optional<double> number;
};


}  // namespace
}  // namespace detail

// Its members' types have internal linkage (the walk is one translation unit,
// see normalizer.cpp), and this header is read by that unit only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
struct normalize_scratch::impl {
    od::parser parser{32 * 1024 * 1024};  // max capacity; grows on demand up to it
    detail::out_buffer arena;
    std::string escaped;  // append_json_string's output before it goes to the arena
    detail::member_stack members;
    // The members of every message read, each message's own run, kept until
    // the body is written (the walk of messages swaps it with `members`).
    detail::member_stack message_members;
    std::vector<detail::message_out> messages;
    std::vector<detail::pending_call> pending;
    std::vector<detail::pending_call> calls;  // calls of the message being read
    std::vector<detail::top_member> tops;     // parallel to the top level's members
    std::vector<detail::piece> texts;         // raw text of the text parts of the content being read
    // Message texts that json_mode_hint looks for "json" in: only scanned when
    // response_format asks for json_object, which few requests do, so a text
    // with escapes is kept as written and unescaped only then.
    std::vector<detail::hint_text> hint_texts;
    std::string unescaped;  // a hint text unescaped, when one is looked at
    std::string model_buffer;         // the requested model, kept past the parser's reuse
    detail::mapped_id_memo mapped_ids;  // tool_call_ids, across this worker's requests

    impl() {
        arena.reserve(detail::initial_capacity);
        members.reserve(256);
        message_members.reserve(256);
        messages.reserve(64);
        pending.reserve(16);
        calls.reserve(16);
        texts.reserve(16);
        hint_texts.reserve(256);
        escaped.reserve(1024);
        model_buffer.reserve(128);
    }
    void trim() {
        if (arena.capacity() > detail::max_retained_capacity) {
            arena.shrink(detail::initial_capacity);
        }
        if (escaped.capacity() > detail::max_retained_capacity) {
            std::string().swap(escaped);
            escaped.reserve(1024);
        }
        if (unescaped.capacity() > detail::max_retained_capacity) {
            std::string().swap(unescaped);
        }
        if (hint_texts.capacity() > 65536) {
            std::vector<detail::hint_text>().swap(hint_texts);
            hint_texts.reserve(256);
        }
        if (parser.capacity() > detail::max_retained_capacity) {
            parser = od::parser{32 * 1024 * 1024};
        }
        if (members.capacity() > 65536) {
            members.shrink(256);
        }
        if (message_members.capacity() > 65536) {
            message_members.shrink(256);
        }
        if (messages.capacity() > 65536) {
            std::vector<detail::message_out>().swap(messages);
            messages.reserve(64);
        }
    }
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace detail {
namespace {

// Shared functions, each defined where it is used most (normalizer.cpp unless said).
std::string_view kind_name(od::json_type type) noexcept;
std::uint8_t kind_bit(od::json_type type) noexcept;
std::string kinds_text(std::uint8_t kinds);
std::string parse_error_message(error_code code);
// tool_call_ids (rules/tool_call_ids.cpp)
bool is_tool_call_id(std::string_view id) noexcept;
std::array<char, 9> map_tool_call_id(std::string_view id) noexcept;
std::array<char, 9> map_tool_call_id(std::string_view id, mapped_id_memo& memo) noexcept;  // the same, remembered
// documents (rules/documents.cpp)
bool has_media_type(const std::vector<std::string>& list, std::string_view type) noexcept;
bool data_url_media_type(std::string_view url, std::string_view& media) noexcept;
bool is_uuid(std::string_view id) noexcept;
std::string joined(const std::vector<std::string>& items, std::string_view separator = ", ");
// json_mode_hint (rules/json_mode_hint.cpp)
bool mentions_json(std::string_view text) noexcept;

// The first and last sizeof(Word) bytes of two texts of `length` bytes, at
// least sizeof(Word), are equal (so all of them, up to twice that length).
template <typename Word>
[[gnu::always_inline]] inline bool same_ends(const char* a, const char* b, std::size_t length) noexcept {
    Word a_head;
    Word a_tail;
    Word b_head;
    Word b_tail;
    std::memcpy(&a_head, a, sizeof a_head);
    std::memcpy(&a_tail, a + length - sizeof a_tail, sizeof a_tail);
    std::memcpy(&b_head, b, sizeof b_head);
    std::memcpy(&b_tail, b + length - sizeof b_tail, sizeof b_tail);
    return ((a_head ^ b_head) | (a_tail ^ b_tail)) == 0;
}

// Keys are short and mostly differ in length or first byte: those are checked
// before memcmp is called. Against a literal of 4 to 16 bytes (the walk's
// `same_key(name, "function")`), the compare is two words that may overlap,
// inline: memcmp was called for it, its length not being a constant there
// (about 3% of bench_normalizer's 10 KB body in the profile-guided build).
// Two texts of run-time lengths (a duplicate-key check) keep the short call:
// the inline compare there grew the hot loops, and the build without a
// profile was 5% slower for it.
[[gnu::always_inline]] inline bool same_key(std::string_view a, std::string_view b) noexcept {
    const std::size_t length = b.size();
    if (__builtin_constant_p(length) && length >= 4 && length <= 16) {
        return a.size() == length && (length >= 8 ? same_ends<std::uint64_t>(a.data(), b.data(), length)
                                                  : same_ends<std::uint32_t>(a.data(), b.data(), length));
    }
    return a.size() == length && (a.empty() || (a[0] == b[0] && std::memcmp(a.data(), b.data(), length) == 0));
}

// rules::contains for the walk (normalizer.cpp); out of line like classify_key.
bool has_key(const rules::key_list& list, std::string_view key) noexcept;

using json::is_space;
using json::key_of;
using json::member_of;

char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// An OpenAI file part's `file` object, as read (documents). Values are the raw
// JSON strings; texts their unescaped form.
struct file_member {
    bool present = false;  // there and not null
    od::json_type type = od::json_type::null;
    piece value;
    std::string_view text;
};
struct file_fields {
    file_member data;  // file_data
    file_member id;    // file_id
    file_member name;  // filename
};

// What the parts of one message's content are, for the checks made once the
// role is known (the role may come after the content).
struct content_facts {
    std::size_t first_other = SIZE_MAX;       // the first part that is not text
    std::size_t first_not_system = SIZE_MAX;  // the first part a system message cannot hold
    std::string_view first_not_system_type;
};

// The whole request, walked once.
class engine {
public:
    engine(const rules::rule_set& rules, normalize_scratch::impl& scratch, std::string_view body,
           std::string_view model_override)
        : rules_(rules),
          schema_(rules.schema),
          s_(scratch),
          arena_(scratch.arena),
          members_(scratch.members),
          input_(body.data()),
          input_end_(body.data() + body.size()),
          model_override_(model_override) {}

    normalize_result run(const config::proxy_config& config, endpoint which);

private:
    const rules::rule_set& rules_;
    const rules::schema_set& schema_;
    normalize_scratch::impl& s_;
    out_buffer& arena_;
    member_stack& members_;
    const char* input_;
    const char* input_end_;
    std::string_view model_override_;  // a fallback model (SPEC §6 `fallback`), "" for none
    rule_mask fired_;
    std::optional<errors::openai_error> error_;

    // Facts gathered on the way.
    bool has_image_ = false;
    content_facts content_;  // of the content array read last
    bool include_usage_ = false;
    bool stream_ = false;
    std::size_t tool_count_ = 0;
    bool tools_given_ = false;
    bool response_json_object_ = false;
    std::optional<double> max_tokens_;
    std::optional<double> max_completion_tokens_;
    encoding_format encoding_ = encoding_format::unspecified;

    struct allowed_memo {
        std::uint16_t known = 0;    // bits of known_key looked up
        std::uint16_t allowed = 0;  // ... and found in the list
    };
    std::array<allowed_memo, keys_of_count> allowed_memos_{};
    // The schema's lists, in keys_of order.
    std::array<const rules::key_list*, keys_of_count> key_lists_{
        &schema_.function_call,  &schema_.tool_call,         &schema_.system_message,
        &schema_.user_message,   &schema_.assistant_message, &schema_.tool_message};
    // Rule texts escaped once per request (a bridge message is written per turn).
    piece bridge_text_;
    piece missing_result_text_;

    // ---- small tools
    bool on(rule_id id) const noexcept { return rules_.enabled(id); }
    void fire(rule_id id) noexcept { fired_.add(id); }
    bool allowed(const rules::key_list& keys, std::string_view key) const noexcept {
        return !schema_.present || has_key(keys, key);
    }
    // The schema's list `list` names.
    const rules::key_list& keys_for(keys_of list) const noexcept { return *key_lists_[static_cast<std::size_t>(list)]; }
    // allowed() for a classified key in one of the lists the walk checks per
    // member (`list` names it): each (list, known key) is looked up once per
    // request, then read from a bit.
    bool allowed(keys_of list, std::string_view key, known_key tag) noexcept {
        if (!schema_.present) {
            return true;
        }
        const rules::key_list& keys = keys_for(list);
        if (tag == known_key::other) {
            return has_key(keys, key);
        }
        allowed_memo& memo = allowed_memos_[static_cast<std::size_t>(list)];
        const auto bit = static_cast<std::uint16_t>(1u << static_cast<unsigned>(tag));
        if ((memo.known & bit) == 0) {
            memo.known = static_cast<std::uint16_t>(memo.known | bit);
            if (has_key(keys, key)) {
                memo.allowed = static_cast<std::uint16_t>(memo.allowed | bit);
            }
        }
        return (memo.allowed & bit) != 0;
    }
    bool in_input(std::string_view text) const noexcept {
        return text.data() >= input_ && text.data() < input_end_;
    }
    std::string_view view(const piece& p) const noexcept {
        return p.in_arena() ? std::string_view(arena_.data() + p.from(), p.size())
                            : std::string_view(input_ + p.from(), p.size());
    }
    void append(const piece& p) {
        if (p.in_arena()) {
            // append from itself: reserve first so the source cannot move mid-copy
            arena_.reserve(arena_.size() + p.size());
            arena_.append(arena_.data() + p.from(), p.size());
        } else {
            arena_.append(input_ + p.from(), p.size());
        }
    }
    std::size_t mark() const noexcept { return arena_.size(); }
    piece since(std::size_t start) const noexcept { return piece{start, arena_.size(), true}; }
    void key(std::string_view name) {
        // A key that is a view of the input had no backslash (see key_of), and
        // stage 1 refused raw control characters: it is written as it is.
        const bool plain = in_input(name) || std::none_of(name.begin(), name.end(), [](char c) {
                               return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
                           });
        if (plain && in_input(name) && name.data()[name.size() + 1] == ':') {
            arena_.append(name.data() - 1, name.size() + 3);  // "name": as the client wrote it
        } else if (plain) {
            arena_.push_back('"');
            arena_.append(name);
            arena_.append("\":");
        } else {
            string_value(name);
            arena_.push_back(':');
        }
    }
    void string_value(std::string_view text) {
        s_.escaped.clear();
        json::append_json_string(s_.escaped, text);
        arena_.append(s_.escaped);
    }
    // A member name known to need no escaping, written from the program's
    // text (never a view of the request: key() looks around those).
    void plain_key(std::string_view name) {
        arena_.push_back('"');
        arena_.append(name);
        arena_.append("\":");
    }
    // A text known to need no escaping (role names, mapped ids).
    void plain_string_value(std::string_view text) {
        arena_.push_back('"');
        arena_.append(text);
        arena_.push_back('"');
    }

    // Members written side by side: a run of members that stand side by side
    // in the input too ("a":1,"b":2, with their comma) is copied with one
    // append when the run ends (flush), not two appends (key, value) per member.
    struct member_run {
        const char* begin = nullptr;
        const char* end = nullptr;
        bool first = true;  // nothing written yet in this object (no ',' before the next member)
    };
    void flush(member_run& run) {
        if (run.begin != nullptr) {
            arena_.append(run.begin, static_cast<std::size_t>(run.end - run.begin));
            run.begin = nullptr;
        }
    }
    // Starts the next member: ',' unless it is the first. What follows (its key
    // and value) is written by the caller.
    void next_member(member_run& run) {
        flush(run);
        if (!run.first) {
            arena_.push_back(',');
        }
        run.first = false;
    }
    // ',' unless first, then "key":value.
    void write_member(member_run& run, const member& m) {
        const char* key_end = m.key.data() + m.key.size();  // its closing quote when in the input
        if (!m.value.in_arena() && in_input(m.key) && key_end[1] == ':' && input_ + m.value.from() == key_end + 2) {
            const char* begin = m.key.data() - 1;
            const char* end = input_ + m.value.to();
            if (run.begin != nullptr && run.end + 1 == begin && *run.end == ',') {
                run.end = end;  // the next member in the input: the run grows over the comma
                return;
            }
            next_member(run);
            run.begin = begin;
            run.end = end;
            return;
        }
        next_member(run);
        key(m.key);
        append(m.value);
    }

    bool fail_json(error_code code) {
        if (!error_) {
            error_ = errors::make_error(400, parse_error_message(code));
        }
        return false;
    }
    bool fail(std::string message, std::string param) {
        if (!error_) {
            error_ = errors::make_error(400, std::move(message), std::nullopt, std::move(param));
        }
        return false;
    }
    // Content a rule cannot pass on: refused, never dropped. `param` names the
    // part or message; the message says what to send instead.
    bool refuse(std::string message, std::string param, rule_id rule) {
        if (!error_) {
            message += " (mistral-proxy rule ";
            message += rules::rule_name(rule);
            message += ')';
            error_ = errors::make_error(400, std::move(message), "unsupported_content", std::move(param));
        }
        return false;
    }

    // ---- generic walking
    bool capture(od::value& value, std::size_t depth, piece& out, od::json_type& type);
    piece extent(std::string_view token, od::value& value, od::json_type type) const noexcept;
    bool capture_string(od::value& value, piece& out, std::string_view& text);
    bool capture_text(od::value& value, piece& out, hint_text& text);
    std::string_view string_token(od::value& value, piece& out) const noexcept;
    [[gnu::always_inline]] inline std::size_t push_member(std::size_t base, std::string_view name, piece value,
                                                          od::json_type type);
    // An element of an array being rebuilt (write_array): a member without a key.
    [[gnu::always_inline]] void push_element(piece value, od::json_type type) { members_.push({}, value, type); }
    void write_object(std::size_t base, piece& out);
    void write_array(std::size_t base, piece& out);
    bool compact_in_input(std::size_t base, piece& out) const noexcept;

    // ---- levels
    bool read_top(od::object top, endpoint which, normalized_request& request, piece& body);
    bool check_embedding_member(top_key id, od::json_type type, piece value);
    // Reads the messages; write_messages writes them where the body is.
    bool read_messages(od::value& value);
    void write_messages(bool hint);
    bool read_message(od::value& value, std::size_t index, message_out& out, bool& keep);
    void write_message(const message_out& m, bool add_prefix);
    // messages (rules/messages.cpp)
    bool message_role(message_walk& w);
    bool legacy_call_to_tool_call(message_walk& w);
    void join_refusal(message_walk& w);
    bool join_system_parts(message_walk& w);
    bool message_drops(keys_of list, const member& m);
    void fill_required_content(const message_out& m);
    // tool_call_ids (rules/tool_call_ids.cpp)
    void map_result_id(message_walk& w);
    // role_order (rules/role_order.cpp)
    bool keep_unless_empty(const message_walk& w, bool& keep);
    bool match_tool_result(message_walk& w);
    void await_results(const message_out& out);
    bool read_content(od::value& value, std::size_t depth, piece& out, bool& is_empty, std::size_t message_index);
    bool read_part(od::value& value, std::size_t depth, piece& out, std::string_view& out_type,
                   std::size_t message_index, std::size_t part_index);
    bool read_inner_string(od::value& value, std::size_t depth, std::string_view wanted, piece& out);
    bool read_file_fields(od::value& value, std::size_t depth, file_fields& fields, piece& out);
    bool write_file_part(const file_fields& fields, piece& out, std::string_view& out_type, const std::string& where);
    bool read_tool_calls(od::value& value, std::size_t depth, piece& out, bool& any, std::size_t message_index);
    bool read_call_function(od::value& value, std::size_t depth, piece& out, std::string_view& name);
    bool read_tools(od::value& value, bool legacy_functions, piece& out);
    bool read_function(od::value& value, std::size_t depth, piece& out);
    bool read_filtered(od::value& value, std::size_t depth, const rules::key_list& keys, piece& out);
    bool read_tool_choice(od::value& value, piece& out, bool& keep);
    bool read_function_call(od::value& value, piece& out, bool& keep);
    bool read_response_format(od::value& value, piece& out, bool& keep);
    std::string_view unescaped(const hint_text& text);  // json_mode_hint (rules/json_mode_hint.cpp)
    // role_order (rules/role_order.cpp): results for the first `count` pending calls.
    void write_synthesized_results(std::size_t count = SIZE_MAX);
    void order_before(std::size_t pending_before);  // role_order, on the last message read
    bool write_clamped(std::string_view name, std::optional<double> number);  // ranges (rules/ranges.cpp)
    std::string_view mapped_model(std::string_view model);  // model_rewrite, model_alias (rules/model_mapping.cpp)
    void use_fallback(std::string_view& sent);              // fallback (rules/fallback.cpp)
    bool route_vision(std::string_view& sent);              // vision_route (rules/vision_route.cpp)
    bool check_tool_capable(std::string_view& sent, std::size_t tools);  // tool_capable (rules/tool_capable.cpp)
    bool reroute_or_refuse(const rules::capability_rule& rule, rule_id id, std::string_view& sent,
                           std::string_view cannot, std::string_view instead, const char* code,
                           const char* param);  // both (rules/tool_capable.cpp)
};

inline std::size_t engine::push_member(std::size_t base, std::string_view name, piece value, od::json_type type) {
    for (std::size_t i = base; i < members_.size(); ++i) {
        if (same_key(members_[i].key, name)) {
            members_[i].value = value;
            members_[i].type = type;
            members_[i].keep = true;
            return i;
        }
    }
    return members_.push(name, value, type);
}

// The bytes of a value just read whole: a scalar's token runs to the next
// structural character; a container ends where the iterator stopped after it.
piece engine::extent(std::string_view token, od::value& value, od::json_type type) const noexcept {
    const std::string_view raw = json::extent(token, value, type, input_end_);
    return piece{static_cast<std::size_t>(raw.data() - input_),
                 static_cast<std::size_t>(raw.data() + raw.size() - input_), false};
}

// A string value's bytes (quotes included, whitespace after it left out) as
// `out`, and its text as written between the quotes.
std::string_view engine::string_token(od::value& value, piece& out) const noexcept {
    const std::string_view token = value.raw_json_token();
    const char* begin = token.data();
    const char* end = begin + token.size();
    while (is_space(end[-1])) {
        --end;
    }
    out = piece{static_cast<std::size_t>(begin - input_), static_cast<std::size_t>(end - input_), false};
    return std::string_view(begin + 1, static_cast<std::size_t>(end - begin) - 2);
}

// The caller has checked that the value is a string. Without a backslash its
// text is its raw bytes (nothing to validate or copy; the value is still
// consumed: json::consume_string); else simdjson unescapes it, which
// validates the escapes.
bool engine::capture_string(od::value& value, piece& out, std::string_view& text) {
    const std::string_view written = string_token(value, out);
    if (json::find_backslash(written.data(), written.data() + written.size()) == nullptr) {
        text = written;
        return json::consume_string(value) || fail_json(simdjson::TAPE_ERROR);
    }
    if (auto e = value.get_string().get(text)) {
        return fail_json(e);
    }
    return true;
}

// capture_string for a text read only as a json_mode_hint text (content):
// escapes are checked in place, not undone (see hint_text).
bool engine::capture_text(od::value& value, piece& out, hint_text& text) {
    std::string_view written;
    bool escaped = false;
    if (auto e = json::check_string(value, written, escaped)) {
        return fail_json(e);
    }
    out = piece{static_cast<std::size_t>(written.data() - 1 - input_),
                static_cast<std::size_t>(written.data() + written.size() + 1 - input_), false};
    text = hint_text{written, escaped};
    return true;
}

// True when {"k":v,...} of the members from `base` is, byte for byte, the
// client's own object: every member kept, unchanged, in place (no duplicate
// moved a value), with no whitespace and no escaped key. Then the object is
// passed on as a slice of the input, as most are, and nothing is copied.
bool engine::compact_in_input(std::size_t base, piece& out) const noexcept {
    if (members_.size() == base) {
        return false;
    }
    const char* expected = nullptr;  // where the next key's quote must be
    for (std::size_t i = base; i < members_.size(); ++i) {
        const member& m = members_[i];
        if (!m.keep || m.value.in_arena() || m.value.empty() || !in_input(m.key)) {
            return false;
        }
        const char* quote = m.key.data() - 1;
        if (i == base ? quote[-1] != '{' : quote != expected) {
            return false;
        }
        const char* key_end = m.key.data() + m.key.size();  // the closing quote
        if (key_end[1] != ':' || input_ + m.value.from() != key_end + 2) {
            return false;
        }
        expected = input_ + m.value.to() + 1;  // after the ','
        if (expected[-1] != (i + 1 == members_.size() ? '}' : ',')) {
            return false;
        }
    }
    out = piece{static_cast<std::size_t>(members_[base].key.data() - 2 - input_),
                static_cast<std::size_t>(expected - input_), false};
    return true;
}

}  // namespace
}  // namespace detail
}  // namespace mistral_proxy::normalize
