#pragma once
// Where the proxy looks for its config when no --config is given (SPEC §1):
// the installed layout first, then a checkout. Pure path arithmetic: the caller
// supplies the executable's path and the install folders of the build
// (GNUInstallDirs' CMAKE_INSTALL_BINDIR and CMAKE_INSTALL_SYSCONFDIR).
#include <filesystem>
#include <vector>

namespace mistral_proxy::config {

struct install_dirs {
    std::filesystem::path bindir;      // relative to the prefix ("bin"), or absolute
    std::filesystem::path sysconfdir;  // relative to the prefix ("etc"), or absolute
};

// The configuration folder of an install prefix, with GNUInstallDirs' rule:
// prefix / or /usr -> /etc, /opt/NAME -> /etc/opt/NAME, any other -> PREFIX/etc
// (a relative sysconfdir; an absolute one is taken as it is). cmake/install.cmake
// applies the same rule when it installs the config.
std::filesystem::path sysconf_dir_for_prefix(const std::filesystem::path& prefix, const install_dirs& dirs);

// PREFIX/bin/mistral-proxy -> the prefix's etc/mistral-proxy folder, found from
// where the binary is, so that a prefix chosen at install time
// (`cmake --install build --prefix DIR`) or moved afterwards finds its own
// config. Empty when the binary is not in a prefix's bindir (a build folder).
std::filesystem::path installed_config_dir(const std::filesystem::path& executable, const install_dirs& dirs);

// The default config files to try, in order: the installed one, then
// config/mistral-proxy.yaml in each folder above the binary (a checkout's
// build folder, build/mistral-proxy -> config/mistral-proxy.yaml).
std::vector<std::filesystem::path> default_config_candidates(const std::filesystem::path& executable,
                                                             const install_dirs& dirs);

}  // namespace mistral_proxy::config
