#!/bin/sh
# The container's runtime stage (packaging/Containerfile), also run by CI on its
# own machine: installs the Debian package (its postinst creates the user
# mistral-proxy and /var/lib/mistral-proxy) and makes its config fit a container:
# listening on all addresses, so client keys are required
# (client_keys_env: MISTRAL_PROXY_CLIENT_KEYS).
#   packaging/container/runtime-stage.sh PACKAGE.deb
set -eu
package=${1:?usage: runtime-stage.sh PACKAGE.deb}
case $package in /*) ;; *) package=./$package ;; esac
# A slim image has no package lists (fetched, used, deleted to keep the image
# small); a machine that has them uses them.
fetched=false
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  apt-get update
  fetched=true
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package"
if $fetched; then
  rm -rf /var/lib/apt/lists/*
fi
config=/etc/mistral-proxy/mistral-proxy.yaml
sed -i -e 's/^listen: [^ ]*/listen: 0.0.0.0:8080/' \
       -e 's/^client_keys_env: [^ ]*/client_keys_env: MISTRAL_PROXY_CLIENT_KEYS/' "$config"
grep -q '^listen: 0.0.0.0:8080' "$config"
grep -q '^client_keys_env: MISTRAL_PROXY_CLIENT_KEYS' "$config"
mistral-proxy check
