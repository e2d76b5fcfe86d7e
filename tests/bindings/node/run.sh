#!/usr/bin/env bash
# Runs the Node binding's checks: `run.sh test` the node:test suite,
# `run.sh tsc` the type check of index.d.ts. JOBQ_LIBRARY names the built
# library. Exits 77 (skipped) only when node or npm is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node or npm not found: skipped"
  exit 77
fi
bash "$root/bindings/node/install.sh"
case "${1:-test}" in
  test)
    # One file at a time: the files' children and claim loops share 2 cores.
    # JOBQ_PRELOAD: a sanitizer's runtime, for an instrumented libjobq in an
    # uninstrumented node (set by ctest in sanitizer builds).
    if [ -n "${JOBQ_PRELOAD:-}" ]; then
      LD_PRELOAD="$JOBQ_PRELOAD" exec node --test --test-concurrency=1 "$here"/*.test.mjs
    fi
    exec node --test --test-concurrency=1 "$here"/*.test.mjs ;;
  tsc)
    exec "$root/bindings/node/node_modules/.bin/tsc" -p "$here/tsconfig.json" ;;
  *)
    echo "usage: run.sh test|tsc" >&2
    exit 2 ;;
esac
