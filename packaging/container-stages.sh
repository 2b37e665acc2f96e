#!/usr/bin/env bash
# packaging/Containerfile's stages, run on this machine, which has no container
# runtime (CI does this after tests/package/run; root, since it installs the package):
#  - the build stage's script on the Release build CI already made and tested
#    (BUILD, default build/: no second build; cpack makes the .deb);
#  - the runtime stage's script with that .deb: installs it here and sets the
#    config up for a container (all addresses, client keys required);
#  - what `podman run` then starts: the recipe's ENTRYPOINT and CMD as its USER,
#    with only a client key in the environment (plus --listen 0.0.0.0:0 for a
#    free port); the recipe's HEALTHCHECK command (its port replaced) passes
#    while it runs and fails once it has stopped; a request without a client key,
#    or with a wrong one, gets 401; SIGTERM stops it with exit 0;
#  - then purges the package.
#   packaging/container-stages.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=packaging/Containerfile
build=${1:-build}
package=mistral-proxy
if [[ $(id -u) != 0 ]]; then
  echo "container-stages: run as root (the runtime stage installs the package)" >&2
  exit 1
fi
scripts/install-deps --test --package   # node and curl for the checks below

# The recipe's own lines, so that what runs here is what the image would run.
user=$(sed -n 's/^USER  *//p' "$recipe")
healthcheck=$(sed -n 's/^HEALTHCHECK .* CMD //p' "$recipe")
mapfile -t command < <(node -e '
  const text = require("fs").readFileSync(process.argv[1], "utf8");
  const line = (name) => JSON.parse(new RegExp(`^${name} (\\[.*\\])$`, "m").exec(text)[1]);
  for (const word of [...line("ENTRYPOINT"), ...line("CMD")]) console.log(word);' "$recipe")
[[ -n $user && -n $healthcheck && ${#command[@]} -ge 1 ]] || { echo "container-stages: USER, HEALTHCHECK, ENTRYPOINT or CMD not found in $recipe" >&2; exit 1; }
echo "container-stages: USER $user; ENTRYPOINT+CMD ${command[*]}"

passed=0
failed=0
not() { ! "$@"; }
check() {  # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "  ok    $name"; else failed=$((failed + 1)); echo "  FAIL  $name" >&2; fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/mistral-proxy-container.XXXXXX")
proxy_pid=
cleanup() {
  [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' $package 2>/dev/null | grep -q 'installed\|config-files'; then
    dpkg -P $package >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
if dpkg-query -W -f='${Status}' $package 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "container-stages: purging the $package package left installed by an earlier run"
  dpkg -P $package >/dev/null
fi

echo "container-stages: build stage (packaging/container/build-stage.sh $build)"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
packaging/container/build-stage.sh "$build" >"$work/build-stage.log" 2>&1 || { cat "$work/build-stage.log" >&2; exit 1; }
deb=$(ls "$build"/packages/${package}_*.deb)

echo "container-stages: runtime stage (packaging/container/runtime-stage.sh $(basename "$deb"))"
packaging/container/runtime-stage.sh "$deb" >"$work/runtime-stage.log" 2>&1 || { cat "$work/runtime-stage.log" >&2; exit 1; }

echo "container-stages: the container's command as $user"
client_key=container-stages-client-key
log=$work/proxy.log
# The process substitution runs setpriv, which execs the proxy: $! is the proxy's PID.
exec {out}< <(exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin MISTRAL_PROXY_CLIENT_KEYS=$client_key \
  setpriv --reuid="$user" --regid="$user" --init-groups -- "${command[@]}" --listen 0.0.0.0:0 2>&1)
proxy_pid=$!
port=
while IFS= read -r -t 15 line <&"$out"; do
  echo "$line" >>"$log"
  if [[ $line =~ listening\ on\ [^\ ]*:([0-9]+) ]]; then
    port=${BASH_REMATCH[1]}
    break
  fi
done
if [[ -z $port ]]; then
  echo "container-stages: the proxy did not start; its output:" >&2
  cat "$log" >&2
  exit 1
fi
cat <&"$out" >>"$log" &   # keep reading its log (access lines go to stderr)
check "listening on 0.0.0.0 (all addresses, as in the container)" grep -q 'listening on 0.0.0.0:' "$log"
check "no warning about listening without client keys" not grep -q 'without client keys' "$log"
health=${healthcheck//8080/$port}
check "the recipe's HEALTHCHECK passes" timeout 10 sh -c "$health"
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/models")
check "no client key: 401 (got $status)" test "$status" = 401
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong-key' "http://127.0.0.1:$port/v1/models")
check "a wrong client key: 401 (got $status)" test "$status" = 401
kill -TERM "$proxy_pid"
exit_status=0
wait "$proxy_pid" || exit_status=$?
proxy_pid=
check "SIGTERM: exit 0 (got $exit_status)" test "$exit_status" = 0
healthcheck_fails() { ! timeout 10 sh -c "$health" 2>/dev/null; }
check "the HEALTHCHECK fails once the proxy has stopped" healthcheck_fails

dpkg -P $package >/dev/null
echo "container-stages: $passed passed, $failed failed"
((failed == 0))
