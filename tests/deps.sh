#!/usr/bin/env bash
# Installs the Debian packages libjobq needs to build, test and run its
# examples, when any is missing. Used by ./examples/run.sh, ./tests/run.sh and
# .ci/run, so that each works on a fresh Debian machine.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libcmocka-dev libsqlite3-dev libcurl4-openssl-dev libespeak-ng-dev espeak-ng-data libmp3lame-dev python3 python3-pytest python3-setuptools python3-venv python3-prometheus-client openssl valgrind binutils abigail-tools tzdata libh2o-dev libssl-dev curl groff-base man-db chromium python3-jsonschema postgresql libpq-dev)
# Node.js and npm (the Node binding, the test servers) are not listed: a
# machine may have them from elsewhere (NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package). tests/servers/install.sh installs
# Debian's nodejs and npm only when there is no npm at all.
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}"
