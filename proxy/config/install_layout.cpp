// Where the installed or checked-out proxy finds its shipped config (see install_layout.hpp).
#include "config/install_layout.hpp"

namespace mistral_proxy::config {

namespace fs = std::filesystem;

fs::path sysconf_dir_for_prefix(const fs::path& prefix, const install_dirs& dirs) {
    if (dirs.sysconfdir.is_absolute()) {
        return dirs.sysconfdir;
    }
    const auto normal = prefix.lexically_normal();
    if (normal == "/" || normal == "/usr") {
        return fs::path("/") / dirs.sysconfdir;
    }
    const auto under_opt = normal.lexically_relative("/opt");
    if (!under_opt.empty() && *under_opt.begin() != ".." && under_opt != ".") {
        return fs::path("/") / dirs.sysconfdir / "opt" / under_opt;
    }
    return normal / dirs.sysconfdir;
}

fs::path installed_config_dir(const fs::path& executable, const install_dirs& dirs) {
    const auto bin = executable.parent_path().lexically_normal();
    const auto bindir = dirs.bindir.lexically_normal();
    if (bindir.is_absolute()) {  // no prefix to derive: only an absolute sysconfdir can be found
        return bin == bindir && dirs.sysconfdir.is_absolute() ? dirs.sysconfdir / "mistral-proxy" : fs::path();
    }
    if (bindir.empty()) {
        return {};
    }
    // PREFIX/bin -> PREFIX: the binary's folder must end with the bindir's components.
    auto prefix = bin;
    for (auto part = bindir.end(); part != bindir.begin();) {
        --part;
        if (prefix.filename() != *part) {
            return {};
        }
        prefix = prefix.parent_path();
    }
    if (prefix.empty()) {
        return {};
    }
    return sysconf_dir_for_prefix(prefix, dirs) / "mistral-proxy";
}

std::vector<fs::path> default_config_candidates(const fs::path& executable, const install_dirs& dirs) {
    std::vector<fs::path> candidates;
    if (const auto installed = installed_config_dir(executable, dirs); !installed.empty()) {
        candidates.push_back(installed / "mistral-proxy.yaml");
    }
    for (auto dir = executable.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
        candidates.push_back(dir / "config" / "mistral-proxy.yaml");
    }
    return candidates;
}

}  // namespace mistral_proxy::config
