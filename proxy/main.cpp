// mistral-proxy: command line (SPEC §1). Exit codes: 0 ok, 1 invalid
// config/rules/request, 2 usage error.
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audio/transcription_request.hpp"
#include "config/config.hpp"
#include "config/cpu_level.hpp"
#include "config/install_layout.hpp"
#include "http/server.hpp"
#include "json/writer.hpp"
#include "errors/openai_error.hpp"
#include "log/log.hpp"
#include "openai_responses/item_list.hpp"
#include "openai_responses/request.hpp"
#include "plan/request_plan.hpp"
#include "routing/endpoints.hpp"
#include "routing/keys.hpp"
#include "rules/rule_set.hpp"
#include "store/response_store.hpp"

namespace {

using namespace mistral_proxy;

constexpr int exit_ok = 0;
constexpr int exit_invalid = 1;
constexpr int exit_usage = 2;

constexpr std::string_view usage_text =
    R"(mistral-proxy — lets OpenAI clients talk to Mistral AI

Usage:
  mistral-proxy [serve] [--config FILE] [--listen HOST:PORT]
      Run the proxy. Point an OpenAI SDK's base_url at http://HOST:PORT/v1.
  mistral-proxy check [--config FILE]
      Validate the config and every rule file it names; print FILE:LINE:COL
      messages and exit 1 when something is wrong.
  mistral-proxy explain [--config FILE] [--endpoint PATH] [REQUEST.json | -]
      Dry run, no network: print {"upstream","url","rules","body"} -- exactly
      what serve would send for that request body (read from stdin with - or
      when no file is given). --endpoint defaults to /v1/chat/completions.
      Adds "fallbacks": [models] when the rule files give the model a chain.
      For /v1/responses, previous_response_id and item_reference items are
      read from the embedded responses store of state_dir (never created).
      For /v1/audio/transcriptions, REQUEST is the multipart form (its
      boundary read from its first line): prints "form" (the fields sent,
      the file by its size), "dropped" and "answer" instead of "body".
  mistral-proxy --version
  mistral-proxy --help

Options:
  --config FILE       configuration file (default: etc/mistral-proxy/mistral-proxy.yaml
                      of the install prefix, /etc/mistral-proxy/ for /usr, or
                      config/mistral-proxy.yaml of the checkout)
  --listen HOST:PORT  listen address, overriding the config's `listen`
                      (port 0 picks a free port)

Upstream keys are read from the environment variables the config names
(MISTRAL_API_KEY and CODESTRAL_API_KEY in the shipped config).

Exit codes: 0 ok, 1 invalid config/rules/request, 2 usage error.
)";

struct command_line {
    std::string command = "serve";
    std::optional<std::string> config_file;
    std::optional<std::string> listen;
    std::string endpoint = "/v1/chat/completions";  // explain
    std::optional<std::string> request_file;         // explain; "-" or absent = stdin
    bool help = false;
    bool version = false;
};

struct usage_error {
    std::string message;
};

command_line parse_command_line(int argc, char** argv) {
    command_line parsed;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    std::size_t i = 0;
    if (i < args.size() && !args[i].starts_with("-")) {
        parsed.command = std::string(args[i++]);
        if (parsed.command != "serve" && parsed.command != "check" && parsed.command != "explain") {
            throw usage_error{"unknown command '" + parsed.command + "'"};
        }
    }
    for (; i < args.size(); ++i) {
        const auto arg = args[i];
        auto value_of = [&](std::string_view option) -> std::string {
            if (arg.size() > option.size() && arg[option.size()] == '=') {
                return std::string(arg.substr(option.size() + 1));
            }
            if (i + 1 >= args.size()) {
                throw usage_error{std::string(option) + " needs a value"};
            }
            return std::string(args[++i]);
        };
        if (arg == "--help" || arg == "-h") {
            parsed.help = true;
        } else if (arg == "--version" || arg == "-V") {
            parsed.version = true;
        } else if (arg == "--config" || arg.starts_with("--config=")) {
            parsed.config_file = value_of("--config");
        } else if (arg == "--listen" || arg.starts_with("--listen=")) {
            if (parsed.command != "serve") {
                throw usage_error{"--listen only applies to serve"};
            }
            parsed.listen = value_of("--listen");
        } else if (arg == "--endpoint" || arg.starts_with("--endpoint=")) {
            if (parsed.command != "explain") {
                throw usage_error{"--endpoint only applies to explain"};
            }
            parsed.endpoint = value_of("--endpoint");
        } else if (parsed.command == "explain" && (arg == "-" || !arg.starts_with("-")) && !parsed.request_file) {
            parsed.request_file = std::string(arg);
        } else {
            throw usage_error{"unknown option '" + std::string(arg) + "'"};
        }
    }
    return parsed;
}

// The default config (SPEC §1): the install prefix's (PREFIX/bin/mistral-proxy ->
// PREFIX/etc/mistral-proxy/mistral-proxy.yaml, /etc/mistral-proxy/ for /usr), else
// the checkout's config/ above a build folder. The install dirs come from the
// build (GNUInstallDirs, see cmake/install.cmake).
std::string default_config_file() {
    std::error_code ec;
    const auto executable = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const config::install_dirs dirs{MISTRAL_PROXY_INSTALL_BINDIR, MISTRAL_PROXY_INSTALL_SYSCONFDIR};
        for (const auto& candidate : config::default_config_candidates(executable, dirs)) {
            if (std::filesystem::exists(candidate, ec)) {
                return candidate.string();
            }
        }
    }
    return "config/mistral-proxy.yaml";
}

bool is_loopback(const std::string& host) {
    return host == "localhost" || host.starts_with("127.") || host == "::1";
}

struct loaded {
    config::proxy_config config;
    std::shared_ptr<const rules::rule_set> rules;
};

loaded load_everything(const command_line& args) {
    loaded result;
    result.config = config::load_config_file(args.config_file.value_or(default_config_file()));
    result.rules = rules::load_rule_files(result.config.rule_files);
    return result;
}

// What a POST /v1/responses body continues (previous_response_id,
// item_reference items), read for explain as serve reads it: from the embedded
// store, state_dir/responses.sqlite3, opened read-only. Explain never creates
// or changes that file: when it does not exist nothing was stored, and every
// id is unknown. A Redis store is
// not read (explain runs offline). Returns false when the request cannot be
// explained: `refusal` is then serve's error answer (unknown previous
// response, store off), or `failure` says why (the store is unreadable, Redis).
struct explain_history {
    std::string previous;                                    // the stored conversation of previous_response_id
    std::vector<std::pair<std::string, std::string>> items;  // item id -> stored item JSON
};

bool read_responses_history(const config::proxy_config& config, std::string_view body, explain_history& out,
                            std::optional<errors::openai_error>& refusal, std::string& failure) {
    auto references = openai_responses::find_references(body);
    if (references.error) {
        refusal = std::move(references.error);
        return false;
    }
    if (references.previous_response_id.empty() && references.item_ids.empty()) {
        return true;
    }
    const std::string& where = config.responses.store;
    if (where == "off") {
        refusal = openai_responses::store_disabled_error(!references.previous_response_id.empty());
        return false;
    }
    if (where != "embedded") {
        failure =
            "explain cannot read a Redis responses store (responses.store: redis://...), which the "
            "previous_response_id or item_reference of this request needs; send the whole conversation in "
            "input instead to see what serve would send";
        return false;
    }
    const auto file = std::filesystem::path(config.state_dir) / std::string(store::embedded_store_file);
    std::unique_ptr<store::response_store> stored;
    if (std::error_code ec; std::filesystem::exists(file, ec)) {  // open_embedded_store would create it
        std::string error;
        stored = store::open_embedded_store(file, store::retention_of(config.responses), error, {},
                                            store::store_access::read_only);
        if (!stored) {
            failure = "responses store: " + error;
            return false;
        }
    }
    if (!references.previous_response_id.empty()) {
        store::store_result<store::stored_response> found;
        if (stored) {
            found = stored->get(references.previous_response_id);
        }
        if (!found.error.empty()) {
            failure = "responses store: " + found.error;
            return false;
        }
        if (!found.value) {
            refusal = openai_responses::previous_response_not_found(references.previous_response_id);
            return false;
        }
        out.previous = std::move(found.value->conversation);
    }
    for (auto& id : references.item_ids) {
        bool known = !stored;  // no store file: unknown, the translation's 400 names the item
        for (const auto& item : out.items) {
            known = known || item.first == id;
        }
        if (known) {
            continue;
        }
        auto found = stored->find_item(id);
        if (!found.error.empty()) {
            failure = "responses store: " + found.error;
            return false;
        }
        if (found.value) {
            out.items.emplace_back(std::move(id), std::move(*found.value));
        }
    }
    return true;
}

// SPEC §1 explain: the same normalize_request() serve calls, printed instead of sent.
int explain(const command_line& args, const loaded& everything) {
    std::string body;
    if (!args.request_file || *args.request_file == "-") {
        body.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream in(*args.request_file, std::ios::binary);
        if (!in) {
            std::cerr << "mistral-proxy: cannot read " << *args.request_file << "\n";
            return exit_invalid;
        }
        body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const std::size_t length = body.size();
    body.resize(length + normalize::body_padding);  // the parser reads past the end; no copy
    // The path as serve reads it: the same spelling policy, the same table row
    // (explain sends a body, so the method is POST).
    const std::string_view raw_path = std::string_view(args.endpoint).substr(0, args.endpoint.find('?'));
    const auto canonical = routing::canonical_path(raw_path);
    std::optional<errors::openai_error> refusal;
    if (!canonical.error.empty()) {
        refusal = routing::refused_path_error(raw_path, canonical.error);
    }
    const std::string& path = canonical.path;
    const auto& row = routing::find_endpoint("POST", path);
    if (!refusal && row.kind == routing::endpoint_kind::unknown) {
        refusal = routing::unknown_endpoint_error("POST", path);
    } else if (!refusal && row.body == routing::body_mode::local) {
        std::cerr << "mistral-proxy: " << path << " is answered by the proxy itself; nothing is sent upstream\n";
        return exit_invalid;
    }
    // POST /v1/responses: the stored conversation it continues, as serve reads it.
    explain_history stored;
    openai_responses::history history;
    const bool responses_api = !refusal && row.kind == routing::endpoint_kind::responses;
    if (responses_api) {
        std::string failure;
        if (!read_responses_history(everything.config, std::string_view(body.data(), length), stored, refusal,
                                    failure) &&
            !failure.empty()) {
            std::cerr << "mistral-proxy: " << failure << "\n";
            return exit_invalid;
        }
        history.previous_items = stored.previous;
        history.find_item = [&stored](std::string_view id) -> std::string_view {
            for (const auto& [known, json] : stored.items) {
                if (known == id) {
                    return json;
                }
            }
            return {};
        };
    }
    const auto aliases = plan::derive_model_aliases(*everything.rules);
    const plan::plan_inputs inputs{everything.config, *everything.rules, aliases};
    plan::plan_scratch scratch;
    auto result =
        refusal
            ? plan::plan_result{std::nullopt, std::move(refusal)}
            : plan::plan_request(
                  inputs,
                  {row, path, std::string_view(body.data(), length), {}, responses_api ? &history : nullptr, nullptr},
                  scratch);
    // A transcription form: rewritten whole as serve rewrites it piece by piece.
    std::optional<audio::form_description> form;
    if (result.ok() && row.body == routing::body_mode::form) {
        form = audio::describe_form(*everything.rules, std::string_view(body.data(), length));
        if (form->error) {
            result = plan::plan_result{std::nullopt, form->error};
        } else {
            result.plan->fired = form->facts.fired;
            result.plan->model_sent = form->facts.model_sent;
        }
    }
    if (!result.ok()) {
        std::cout << errors::to_json(*result.error) << "\n";
        std::cerr << "mistral-proxy: the request would be refused with " << result.error->status << ": "
                  << result.error->message << "\n";
        return exit_invalid;
    }
    const auto& request = *result.plan;
    const auto& upstream = everything.config.upstreams.at(std::string(routing::upstream_name(request.upstream)));
    std::string url = upstream.base_url;
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    url += request.upstream_path;
    if (const auto query = args.endpoint.find('?'); query != std::string::npos) {
        url += std::string_view(args.endpoint).substr(query);  // serve keeps the client's query too
    }
    std::string out = "{\"upstream\":";
    json::append_json_string(out, routing::upstream_name(request.upstream));
    out += ",\"url\":";
    json::append_json_string(out, url);
    out += ",\"rules\":[";
    bool first = true;
    request.fired.for_each([&](std::string_view id) {
        out += first ? "\"" : ",\"";
        first = false;
        out += id;
        out += '"';
    });
    out += ']';
    // The rule files' fallback chain for the model sent (SPEC §6 `fallback`), when it has one.
    if (const auto chain = everything.rules->fallback_chain(request.model_sent); !chain.empty()) {
        out += ",\"fallbacks\":[";
        for (std::size_t i = 0; i < chain.size(); ++i) {
            out += i == 0 ? "" : ",";
            json::append_json_string(out, chain[i]);
        }
        out += ']';
    }
    if (form) {
        // The form as sent (the file by its size), what is not sent, and what the answer will be.
        out += ",\"form\":" + form->form + ",\"dropped\":[";
        for (std::size_t i = 0; i < form->facts.dropped.size(); ++i) {
            out += i == 0 ? "" : ",";
            json::append_json_string(out, form->facts.dropped[i]);
        }
        out += "],\"answer\":{\"response_format\":";
        json::append_json_string(out, audio::format_name(form->facts.format));
        out += form->facts.stream ? ",\"stream\":true}}\n" : ",\"stream\":false}}\n";
        std::cout << out;
        return exit_ok;
    }
    out += ",\"body\":";
    // A relayed body is sent as the client wrote it.
    std::string_view sent = request.relay_body ? std::string_view(body.data(), length) : request.body;
    while (!sent.empty() && (sent.back() == '\n' || sent.back() == '\r' || sent.back() == ' ' || sent.back() == '\t')) {
        sent.remove_suffix(1);  // the client's own trailing newline would end the line early
    }
    if (sent.empty()) {
        out += "null";
    } else if (request.relay_body && !json::is_json(sent)) {
        json::append_json_string(out, sent);  // relayed bytes that are not JSON: one JSON string
    } else {
        out += sent;
    }
    out += "}\n";
    std::cout << out;
    return exit_ok;
}

int run(const command_line& args) {
    if (args.help) {
        std::cout << usage_text;
        return exit_ok;
    }
    if (args.version) {
        std::cout << "mistral-proxy " << MISTRAL_PROXY_VERSION;
        if (const std::string_view level = config::built_cpu_level(); !level.empty()) {
            std::cout << " (built for " << level << ')';
        }
        std::cout << '\n';
        return exit_ok;
    }

    loaded everything;
    try {
        everything = load_everything(args);
    } catch (const config::config_error& e) {
        std::cerr << e.what() << "\n";
        return exit_invalid;
    }

    if (args.command == "check") {
        try {
            // The keys go into header lines: a broken one is a config error too.
            (void)routing::key_store::from_environment(everything.config,
                                                       [](const char* name) { return std::getenv(name); });
        } catch (const std::runtime_error& e) {
            std::cerr << "mistral-proxy: " << e.what() << "\n";
            return exit_invalid;
        }
        std::cout << everything.config.file << ": ok (" << everything.config.rule_files.size() << " rule file"
                  << (everything.config.rule_files.size() == 1 ? "" : "s") << ")\n";
        return exit_ok;
    }

    if (args.command == "explain") {
        return explain(args, everything);
    }

    if (args.listen) {
        try {
            config::parse_listen(*args.listen, everything.config.listen_host, everything.config.listen_port);
        } catch (const std::invalid_argument& e) {
            std::cerr << "--listen: " << e.what() << "\n";
            return exit_usage;
        }
    }

    const auto read_env = [](const char* name) { return std::getenv(name); };
    logging::set_min_level(logging::parse_log_level(everything.config.log.level));
    if (!is_loopback(everything.config.listen_host) && everything.config.client_keys_env.empty()) {
        logging::log_line(logging::log_level::warn,
                          "listening on " + everything.config.listen_host +
                              " without client keys: anyone who can reach this address can spend your Mistral quota "
                              "(set client_keys_env)");
    }

    std::signal(SIGPIPE, SIG_IGN);
    try {
        auto keys = routing::key_store::from_environment(everything.config, read_env);
        for (const auto& missing : keys.unset_pool_members()) {
            logging::log_line(logging::log_level::warn,
                              "key pool of upstream " + missing + " is unset: the pool goes on without it");
        }
        auto state = http::make_runtime_state(std::move(everything.config), std::move(everything.rules), std::move(keys));
        // SIGHUP: the same files again, from scratch; the listen override stays.
        http::server::reloader reload = [args, read_env]() {
            auto reloaded = load_everything(args);
            if (args.listen) {
                config::parse_listen(*args.listen, reloaded.config.listen_host, reloaded.config.listen_port);
            }
            auto reloaded_keys = routing::key_store::from_environment(reloaded.config, read_env);
            return http::make_runtime_state(std::move(reloaded.config), std::move(reloaded.rules),
                                            std::move(reloaded_keys));
        };
        http::server server(state, reload);
        const auto address = server.bind();
        logging::log_line(logging::log_level::info,
                          std::string("mistral-proxy ") + MISTRAL_PROXY_VERSION + " listening on " + address);
        server.run();
        logging::log_line(logging::log_level::info, "stopped");
    } catch (const std::exception& e) {
        std::cerr << "mistral-proxy: " << e.what() << "\n";
        return exit_invalid;
    }
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    command_line args;
    try {
        args = parse_command_line(argc, argv);
    } catch (const usage_error& e) {
        std::cerr << "mistral-proxy: " << e.message << "\n\n" << usage_text;
        return exit_usage;
    }
    return run(args);
}
