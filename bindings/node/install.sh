#!/usr/bin/env bash
# Installs the Node binding's npm packages (bindings/node/node_modules: koffi,
# and typescript + @types/node for the type check) from package-lock.json, as
# CI does. Does nothing when they are already installed from the same lock
# file. Usage: bash bindings/node/install.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$here/node_modules/.installed-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# --prefer-offline: packages already in npm's cache (checked against the
# lock file's integrity hashes) are used without asking the registry.
npm ci --prefix "$here" --prefer-offline --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
