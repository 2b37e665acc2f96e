#pragma once
// The x86-64 level the program was built for (CMake's MISTRAL_PROXY_ARCH,
// scripts/build --arch): empty for any x86-64 CPU. A binary built for a
// level refuses to start on a CPU without it (cpu_level.cpp), with a message
// rather than an illegal instruction somewhere later.
#include <string_view>

namespace mistral_proxy::config {

std::string_view built_cpu_level() noexcept;

}  // namespace mistral_proxy::config
