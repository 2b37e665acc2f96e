#pragma once
// What a head parser made of a head given whole, as one string: its verdict
// and, when it read one, the start line, the fields and the framing Beast's
// flags say. The session's parser (http/head_parser.hpp) and Beast's own
// must agree on it, byte for byte, for any input: io_tests check it on
// chosen heads at every prefix, fuzz_http on what the fuzzer makes.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

namespace head_reading {

// What a request parser made of a head given whole: its verdict, and when
// it read one, the head and the framing Beast's flags say.
template <class Parser>
inline std::string start_line_of(const Parser& parser) {
    std::string out;
    if constexpr (Parser::is_request::value) {
        out += parser.get().method_string();
        out += ' ';
        out += parser.get().target();
    } else {
        out += std::to_string(parser.get().result_int());
        out += ' ';
        out += parser.get().reason();
    }
    return out;
}

template <class Parser>
inline std::string reading_of(Parser& parser, std::string_view input, std::uint32_t header_limit) {
    parser.header_limit(header_limit);
    parser.body_limit(boost::none);
    parser.eager(false);
    boost::system::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
    std::string out;
    if (ec) {
        out += "error ";
        out += ec.message();
        return out;
    }
    out += "used ";
    out += std::to_string(used);
    out += ' ';
    out += start_line_of(parser);
    out += ' ';
    out += std::to_string(parser.get().version());
    // Beast's field list puts a repeated name after the last field of that
    // name, head_parser keeps the wire's order: the same within a name (the
    // order RFC 9110 §5.3 keeps), so compared grouped by name.
    std::vector<std::pair<std::string, std::string>> fields;
    for (const auto& field : parser.get().base()) {
        std::string name(field.name_string());
        for (char& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::string line(field.name_string());
        line += '=';
        line += field.value();
        line += '#';
        line += std::to_string(static_cast<int>(field.name()));
        fields.emplace_back(std::move(name), std::move(line));
    }
    std::stable_sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& field : fields) {
        out += '|';
        out += field.second;
    }
    out += parser.keep_alive() ? " keep-alive" : " close";
    out += parser.chunked() ? " chunked" : "";
    if (parser.content_length()) {
        out += " length ";
        out += std::to_string(*parser.content_length());
    }
    out += parser.is_done() ? " done" : " body";
    out += parser.upgrade() ? " upgrade" : "";
    return out;
}


}  // namespace head_reading
