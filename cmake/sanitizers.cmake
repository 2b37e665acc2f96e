# The instrumented build of tests/sanitize/run and tests/fuzz/run: one clang
# configuration (scripts/build-clang) serves both suites, so CI compiles the tree
# twice in all (this one and the Release build), not three times.
#
#   MISTRAL_PROXY_SANITIZE  ASan + UBSan on every target (UBSan stops at its first
#                           report, so libFuzzer keeps the input and tests fail)
#   MISTRAL_PROXY_FUZZ      coverage instrumentation (-fsanitize=fuzzer-no-link) on
#                           every target, and the libFuzzer executables of tests/fuzz
#                           (clang only; they link -fsanitize=fuzzer)
# Include from the top CMakeLists.txt before any target is defined.
option(MISTRAL_PROXY_SANITIZE "Build every target with ASan and UBSan" OFF)
option(MISTRAL_PROXY_FUZZ "Instrument every target for libFuzzer and build the fuzz targets (clang)" OFF)

if(MISTRAL_PROXY_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "MISTRAL_PROXY_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
endif()
if(MISTRAL_PROXY_FUZZ AND NOT MISTRAL_PROXY_SANITIZE)
  message(FATAL_ERROR "MISTRAL_PROXY_FUZZ goes with MISTRAL_PROXY_SANITIZE (the fuzz targets rely on ASan and UBSan)")
endif()

if(MISTRAL_PROXY_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14's UBSan `function` check cannot instrument coroutine functions:
    # with -g every TU with an Asio coroutine fails with "Cannot represent a
    # difference across sections". GCC has no such check, so nothing is lost
    # against the former g++ sanitizer build.
    add_compile_options(-fno-sanitize=function)
  endif()
endif()
if(MISTRAL_PROXY_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
