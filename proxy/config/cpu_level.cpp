// Compiled for any x86-64 whatever MISTRAL_PROXY_ARCH says (CMakeLists.txt),
// and linked into the proxy through built_cpu_level() (its --version): the
// check below must run, and run without the instructions it checks for.
#include "config/cpu_level.hpp"

#include <unistd.h>

#include <cstring>

#ifndef MISTRAL_PROXY_ARCH_LEVEL
#define MISTRAL_PROXY_ARCH_LEVEL ""
#endif

namespace mistral_proxy::config {

std::string_view built_cpu_level() noexcept { return MISTRAL_PROXY_ARCH_LEVEL; }

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// C strings and libc only: an inline function of a header (string_view's
// compare, say) may be linked from a unit built for the level.
bool cpu_has(const char* level) noexcept {
    __builtin_cpu_init();  // before libgcc's own constructor may have run
    // Feature by feature: GCC 12 also knows the levels' names here, Clang 14 does not.
    const bool v2 = __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.2") &&
                    __builtin_cpu_supports("popcnt");
    const bool v3 = v2 && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("fma");
    const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl");
    if (std::strcmp(level, "x86-64-v2") == 0) {
        return v2;
    }
    if (std::strcmp(level, "x86-64-v3") == 0) {
        return v3;
    }
    if (std::strcmp(level, "x86-64-v4") == 0) {
        return v4;
    }
    return true;  // no level (CMake accepts no other)
}

// Before the static initializers of the program's own units (priority 101;
// theirs run at the default 65535), which are built for the level already.
[[gnu::constructor(101)]] void refuse_a_cpu_below_the_build() {
    const char* const level = MISTRAL_PROXY_ARCH_LEVEL;
    if (level[0] == '\0' || cpu_has(level)) {
        return;
    }
    const char* const parts[] = {"mistral-proxy: this binary was built for ", level,
                                 " (scripts/build --arch) and this CPU lacks it; build it again without --arch\n"};
    for (const char* part : parts) {
        const ssize_t ignored = ::write(STDERR_FILENO, part, std::strlen(part));
        (void)ignored;
    }
    ::_exit(1);
}
#endif

}  // namespace
}  // namespace mistral_proxy::config
