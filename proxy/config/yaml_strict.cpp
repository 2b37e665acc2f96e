// Strict YAML helpers (config/yaml_strict.hpp), shared by the config and
// rule-file loaders: duplicate keys, YAML 1.1 booleans and quoted numbers
// refused, each error at its FILE:LINE:COL.
#include "config/yaml_strict.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <sstream>

namespace mistral_proxy::config::yaml_strict {

namespace {

[[noreturn]] void fail_at_mark(const std::string& file, const YAML::Mark& mark, const std::string& message) {
    if (mark.is_null()) {
        throw config_error(file, 0, 0, message);
    }
    throw config_error(file, mark.line + 1, mark.column + 1, message);
}

}  // namespace

// Counts a stream's documents without building them and notes where the
// first node of the first two begins (what the old LoadAll-based check reported).
class document_counter : public YAML::EventHandler {
public:
    void OnDocumentStart(const YAML::Mark&) override {
        ++documents;
        noted = false;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { note(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { note(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
        note(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        note(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        note(mark);
    }
    void OnMapEnd() override {}

    int documents = 0;
    YAML::Mark first = YAML::Mark::null_mark();
    YAML::Mark second = YAML::Mark::null_mark();

private:
    void note(const YAML::Mark& mark) {
        if (!noted) {
            noted = true;
            (documents == 1 ? first : second) = mark;
        }
    }
    bool noted = false;
};

YAML::Node load(std::string_view text, const std::string& file) {
    // Not YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on a stray
    // flow token at a document start (",", "]", "}" — yaml-cpp issue 1040,
    // fixed upstream after 0.8; tests/fuzz found it). Counting at most two
    // documents bounds the loop; YAML::Load then builds the first one only.
    const std::string input(text);
    YAML::Node root;
    try {
        std::istringstream stream(input);
        YAML::Parser parser(stream);
        document_counter counter;
        while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
        }
        if (counter.documents >= 2) {
            // yaml-cpp 0.7's endless loop starts each "document" where the last one did.
            fail_at_mark(file, counter.second,
                         counter.second.pos == counter.first.pos
                             ? "YAML syntax error: unexpected flow indicator (',', ']' or '}')"
                             : "only one YAML document is allowed per file");
        }
        root = YAML::Load(input);
    } catch (const YAML::Exception& e) {
        // e.msg is the bare message; what() would repeat the position in yaml-cpp's words.
        fail_at_mark(file, e.mark, "YAML syntax error: " + e.msg);
    }
    return root;
}

void fail(const std::string& file, const YAML::Node& node, const std::string& message) {
    fail_at_mark(file, node.Mark(), message);
}

void fail_at_value(const std::string& file, const YAML::Node& key, const YAML::Node& value,
                   const std::string& message) {
    // yaml-cpp marks an empty value ("key:" then newline) at the next token,
    // which may be lines below: the key is the honest position then.
    if (value.IsNull() || value.Mark().is_null()) {
        fail(file, key, message);
    }
    fail(file, value, message);
}

std::string kind_of(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return "a scalar";
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            return "nothing (null)";
    }
    return "an unknown node";
}

std::string path_of(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
}

void for_each_field(const std::string& file, const YAML::Node& map, const std::string& where,
                    const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& visit) {
    if (!map.IsMap()) {
        fail(file, map, (where.empty() ? std::string("the file") : where) + " must be a map, got " + kind_of(map));
    }
    std::map<std::string, int> seen;  // key -> 1-based line of its first occurrence
    for (auto it = map.begin(); it != map.end(); ++it) {
        const YAML::Node key_node = it->first;
        const YAML::Node value = it->second;
        if (!key_node.IsScalar()) {
            fail(file, key_node, "keys must be plain strings, got " + kind_of(key_node));
        }
        const std::string& key = key_node.Scalar();
        const int line = key_node.Mark().is_null() ? 0 : key_node.Mark().line + 1;
        if (const auto [first, inserted] = seen.emplace(key, line); !inserted) {
            std::string message = "duplicate key '" + key + "'";
            if (!where.empty()) {
                message += " in " + where;
            }
            if (first->second > 0) {
                message += " (first defined at line " + std::to_string(first->second) + ")";
            }
            fail(file, key_node, message);
        }
        visit(key, key_node, value);
    }
}

void fail_unknown_key(const std::string& file, const YAML::Node& key_node, const std::string& key,
                      const std::string& where, std::string_view allowed) {
    std::string message = "unknown key '" + key + "'";
    if (!where.empty()) {
        message += " in " + where;
    }
    message += "; expected one of: ";
    message += allowed;
    fail(file, key_node, message);
}

}  // namespace mistral_proxy::config::yaml_strict
