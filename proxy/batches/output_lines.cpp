// The batch output line rewriter; see output_lines.hpp.
#include "batches/output_lines.hpp"

#include "batches/batch_object.hpp"
#include "json/writer.hpp"
#include "errors/openai_error.hpp"
#include "responses/chat_response.hpp"

namespace mistral_proxy::batches {

namespace od = simdjson::ondemand;
using responses::detail::raw_value;

output_line_rewriter::output_line_rewriter(const responses::response_rules& rules, std::size_t max_line_bytes)
    : rules_(rules), max_line_bytes_(max_line_bytes) {}

void output_line_rewriter::on_body(std::string_view piece, std::string& out) {
    if (done_) {
        return;
    }
    if (mode_ == mode::relay) {
        out.append(piece);
        return;
    }
    if (mode_ == mode::undecided) {
        pending_.append(piece);
        const auto first = pending_.find_first_not_of(" \t\r\n");
        if (first != std::string::npos && pending_[first] != '{') {
            mode_ = mode::relay;
        } else if (const auto end = pending_.find('\n', first == std::string::npos ? pending_.size() : first);
                   end != std::string::npos) {
            // A first line over the limit is no batch output's, however it arrived.
            mode_ = end <= max_line_bytes_ && looks_like_batch_output(std::string_view(pending_).substr(0, end))
                        ? mode::translate
                        : mode::relay;
        } else if (pending_.size() > max_line_bytes_) {
            mode_ = mode::relay;
        } else {
            return;
        }
        decide(out);
        return;
    }
    while (!piece.empty()) {
        const auto end = piece.find('\n');
        if (overlong_) {
            // The rest of a line over the limit, as it came.
            out.append(piece.substr(0, end == std::string_view::npos ? piece.size() : end + 1));
            if (end == std::string_view::npos) {
                return;
            }
            overlong_ = false;
            piece.remove_prefix(end + 1);
            continue;
        }
        if (end == std::string_view::npos) {
            if (pending_.size() + piece.size() > max_line_bytes_) {
                out += pending_;
                out.append(piece);
                pending_.clear();
                overlong_ = true;
                return;
            }
            pending_.append(piece);
            return;
        }
        if (pending_.size() + end > max_line_bytes_) {
            // Over the limit, whether it came in one piece or several: as it came.
            ++lines_;
            out += pending_;
            out.append(piece.substr(0, end + 1));
            pending_.clear();
        } else if (pending_.empty()) {
            line(piece.substr(0, end), true, out);
        } else {
            pending_.append(piece.substr(0, end));
            line(pending_, true, out);
            pending_.clear();
        }
        piece.remove_prefix(end + 1);
    }
}

void output_line_rewriter::decide(std::string& out) {
    std::string held = std::move(pending_);
    pending_.clear();
    if (mode_ == mode::relay) {
        out += held;
    } else {
        on_body(held, out);
    }
}

void output_line_rewriter::on_end(std::string& out) {
    if (done_) {
        return;
    }
    if (mode_ == mode::undecided) {
        mode_ = looks_like_batch_output(pending_) ? mode::translate : mode::relay;
        if (mode_ == mode::relay) {
            decide(out);
        }
    }
    if (mode_ == mode::translate && !pending_.empty()) {
        line(pending_, false, out);
        pending_.clear();
    }
    done_ = true;
}

void output_line_rewriter::line(std::string_view text, bool ended, std::string& out) {
    ++lines_;
    const auto start = out.size();
    if (!translate(text, out)) {
        out.resize(start);
        out.append(text);  // not a batch output line: as it came
    }
    if (ended) {
        out += '\n';
    }
}

bool output_line_rewriter::translate(std::string_view text, std::string& out) {
    od::document doc;
    od::object root;
    if (!reader_.open(text, doc, root)) {
        return false;
    }
    std::string_view id = "null";
    std::string_view custom_id = "null";
    std::string_view error = "null";
    bool error_is_string = false;
    bool has_response = false;
    std::int64_t status_code = 0;
    std::string_view body = "null";
    for (auto field : root) {
        std::string_view key;
        od::value value;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS || field.value().get(value) != simdjson::SUCCESS) {
            return false;
        }
        od::json_type type;
        if (value.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        if (key == "id" && type == od::json_type::string) {
            if (!raw_value(value, id)) {
                return false;
            }
        } else if (key == "custom_id") {
            if (!raw_value(value, custom_id)) {
                return false;
            }
        } else if (key == "error") {
            error_is_string = type == od::json_type::string;
            if (!raw_value(value, error)) {
                return false;
            }
            if (type != od::json_type::string && type != od::json_type::object) {
                error = "null";
            }
        } else if (key == "response" && type == od::json_type::object) {
            od::object response;
            if (value.get_object().get(response) != simdjson::SUCCESS) {
                return false;
            }
            has_response = true;
            for (auto member : response) {
                std::string_view name;
                od::value inner;
                if (member.unescaped_key().get(name) != simdjson::SUCCESS ||
                    member.value().get(inner) != simdjson::SUCCESS) {
                    return false;
                }
                if (name == "status_code") {
                    if (inner.get_int64().get(status_code) != simdjson::SUCCESS) {
                        return false;
                    }
                } else if (name == "body") {
                    if (!raw_value(inner, body)) {
                        return false;
                    }
                }
            }
        }
    }
    if (!responses::detail::at_end(doc)) {
        return false;  // something after the line's object
    }
    out += "{\"id\":";
    out += id;
    out += ",\"custom_id\":";
    out += custom_id;
    out += ",\"response\":";
    if (has_response) {
        out += "{\"status_code\":";
        out += std::to_string(status_code);
        out += ",\"request_id\":";
        out += id;  // Mistral's line id: the one id its answer to this request has
        out += ",\"body\":";
        if (status_code >= 200 && status_code < 300) {
            // A chat answer as a live one is answered; other bodies as they are.
            auto chat = responses::transform_chat_response(body, rules_);
            if (!chat.error && !chat.unchanged) {
                out += chat.body;
                hits_.merge(chat.hits);
            } else {
                out += body;
            }
        } else {
            out +=
                errors::to_json(errors::translate_upstream_error(static_cast<unsigned>(status_code), body, "mistral"));
        }
        out += '}';
    } else {
        out += "null";
    }
    out += ",\"error\":";
    if (error_is_string) {
        out += "{\"code\":\"batch_error\",\"message\":";
        out += error;
        out += '}';
    } else {
        out += error;
    }
    out += '}';
    return true;
}

bool looks_like_batch_output(std::string_view line) {
    bool custom_id = false;
    bool outcome = false;
    return for_each_key(line,
                        [&](std::string_view key) {
                            custom_id = custom_id || key == "custom_id";
                            outcome = outcome || key == "response" || key == "error";
                        }) &&
           custom_id && outcome;
}

}  // namespace mistral_proxy::batches
