// libFuzzer target: the config and rule loaders. Each input is YAML text given
// to both config::parse_config and rules::parse_rule_text (their files are
// named in a folder that does not exist, so relative includes fail cleanly).
//
// Invariant: each either returns or throws config::config_error whose what()
// is not empty; any other exception, a crash or a sanitizer
// report is a bug.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <typeinfo>

#include "config/config.hpp"
#include "fuzz_support.hpp"
#include "rules/rule_set.hpp"

using namespace mistral_proxy;

namespace {

const std::string config_file = "/nonexistent-mistral-proxy-fuzz/mistral-proxy.yaml";
const std::string rule_file = "/nonexistent-mistral-proxy-fuzz/rules.yaml";

template <class Load>
void expect_result_or_config_error(std::string_view what, std::string_view text, Load&& load) {
    try {
        load();
    } catch (const config::config_error& error) {
        const std::string_view message = error.what();
        fuzz::check(!message.empty(), "a config_error has a message", text);
    } catch (const std::exception& error) {
        fuzz::fail(std::string(what) + " threw something else than config_error: " + typeid(error).name() + ": " +
                       error.what(),
                   text);
    } catch (...) {
        fuzz::fail(std::string(what) + " threw a non-std exception", text);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    expect_result_or_config_error("parse_config", text, [&] { (void)config::parse_config(text, config_file); });
    expect_result_or_config_error("parse_rule_text", text, [&] { (void)rules::parse_rule_text(text, rule_file); });
    return 0;
}
