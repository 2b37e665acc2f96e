#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/install_layout.hpp"

using namespace mistral_proxy::config;
namespace fs = std::filesystem;

namespace {

const install_dirs gnu{"bin", "etc"};

}  // namespace

TEST_CASE("installed config folder, from where the binary is") {
    struct row {
        const char* executable;
        install_dirs dirs;
        const char* expected;  // "" = not an install prefix
    };
    const row rows[] = {
        {"/usr/bin/mistral-proxy", gnu, "/etc/mistral-proxy"},           // Debian package: /etc, not /usr/etc
        {"/bin/mistral-proxy", gnu, "/etc/mistral-proxy"},
        {"/usr/local/bin/mistral-proxy", gnu, "/usr/local/etc/mistral-proxy"},
        {"/tmp/x/stage/bin/mistral-proxy", gnu, "/tmp/x/stage/etc/mistral-proxy"},  // cmake --install --prefix DIR
        {"/opt/mp/bin/mistral-proxy", gnu, "/etc/opt/mp/mistral-proxy"},          // GNUInstallDirs' /opt rule
        {"/opt/bin/mistral-proxy", gnu, "/opt/etc/mistral-proxy"},
        {"/home/u/mistral-proxy/build/mistral-proxy", gnu, ""},  // a build folder
        {"/srv/mp/sbin/mistral-proxy", {"sbin", "etc"}, "/srv/mp/etc/mistral-proxy"},
        {"/srv/mp/libexec/mp/mistral-proxy", {"libexec/mp", "conf"}, "/srv/mp/conf/mistral-proxy"},
        {"/srv/mp/other/mp/mistral-proxy", {"libexec/mp", "conf"}, ""},
        {"/srv/mp/bin/mistral-proxy", {"bin", "/etc/custom"}, "/etc/custom/mistral-proxy"},
        {"/srv/mp/bin/mistral-proxy", {"/srv/mp/bin", "/etc/custom"}, "/etc/custom/mistral-proxy"},
        {"/srv/mp/bin/mistral-proxy", {"/other/bin", "/etc/custom"}, ""},
        {"/srv/mp/bin/mistral-proxy", {"/srv/mp/bin", "etc"}, ""},  // no prefix to put etc under
        {"mistral-proxy", gnu, ""},
        {"/srv/mp/bin/mistral-proxy", {"", "etc"}, ""},
    };
    for (const auto& r : rows) {
        CAPTURE(r.executable);
        CAPTURE(r.dirs.bindir.string());
        CHECK(installed_config_dir(r.executable, r.dirs).string() == r.expected);
    }
}

TEST_CASE("default config candidates: the installed one first, then a checkout's config/") {
    const auto installed = default_config_candidates("/usr/local/bin/mistral-proxy", gnu);
    REQUIRE(installed.size() >= 2);
    CHECK(installed[0] == "/usr/local/etc/mistral-proxy/mistral-proxy.yaml");
    CHECK(installed[1] == "/usr/local/bin/config/mistral-proxy.yaml");

    const auto checkout = default_config_candidates("/home/u/mp/build/mistral-proxy", gnu);
    const std::vector<fs::path> expected{"/home/u/mp/build/config/mistral-proxy.yaml",
                                         "/home/u/mp/config/mistral-proxy.yaml", "/home/u/config/mistral-proxy.yaml",
                                         "/home/config/mistral-proxy.yaml"};
    CHECK(checkout == expected);
}

TEST_CASE("the checkout's build folder finds the shipped config") {
    // MISTRAL_PROXY_SOURCE_DIR/build/mistral-proxy, as scripts/build makes it.
    const fs::path source = MISTRAL_PROXY_SOURCE_DIR;
    const auto candidates = default_config_candidates(source / "build" / "mistral-proxy", gnu);
    REQUIRE(candidates.size() >= 2);
    CHECK(candidates[1] == source / "config" / "mistral-proxy.yaml");
    CHECK(fs::exists(candidates[1]));
}
