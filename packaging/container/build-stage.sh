#!/bin/sh
# The container's build stage (packaging/Containerfile), also run by CI on its
# own machine: a Release build of the proxy and its Debian package, left in
# BUILD/packages/. An existing build folder is reused as it is configured (CI
# passes the Release build its tests ran on).
#   packaging/container/build-stage.sh BUILD
set -eu
cd "$(dirname "$0")/../.."
build=${1:?usage: build-stage.sh BUILD_DIR}
scripts/install-deps --package
if [ ! -f "$build/CMakeCache.txt" ]; then
  # A user's build of a release: warnings are not errors (MISTRAL_PROXY_WERROR
  # is off), so another compiler's false positive cannot break it.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DMISTRAL_PROXY_BENCH=OFF
fi
# A package runs on any x86-64: not one built for a level (scripts/build --arch).
if grep -q '^MISTRAL_PROXY_ARCH:STRING=.' "$build/CMakeCache.txt"; then
  echo "build-stage.sh: $build is built for $(sed -n 's/^MISTRAL_PROXY_ARCH:STRING=//p' "$build/CMakeCache.txt")" \
    "(scripts/build --arch); a package must run on any x86-64: scripts/build --arch= first" >&2
  exit 1
fi
cmake --build "$build"
rm -rf "$build/packages"
(cd "$build" && cpack -G DEB)
# Only the .deb is for the next stage (CPack stages its files in the same folder).
rm -rf "$build/packages/_CPack_Packages"
