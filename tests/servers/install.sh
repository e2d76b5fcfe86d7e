#!/usr/bin/env bash
# Installs the npm packages of the test servers (tests/servers/node_modules)
# from package-lock.json, as CI does. Does nothing when they are already
# installed from the same lock file. Usage: bash tests/servers/install.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$here/node_modules/.installed-lock.sha256"

if ! command -v npm >/dev/null 2>&1; then
  echo "installing Debian packages: nodejs npm"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends nodejs npm
fi

want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# --prefer-offline: packages already in npm's cache (checked against the
# lock file's integrity hashes) are used without asking the registry, so a
# machine that installed them once reinstalls without the network.
npm ci --prefix "$here" --prefer-offline --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
