#!/usr/bin/env bash
# The SQLite benchmark of libjobq against the machine's own ceiling, both
# measured in the same run: for each durability mode (crash-safe, the
# default: synchronous NORMAL; power-safe: FULL), sqlite_ceiling (bare
# sqlite3, the backend's own statements, claims of 256: on 1 thread, on 1
# thread with finishes and the next claim in one transaction, and on 2
# threads; the best of the three is the ceiling), then jobq_bench's end-to-end figures on a fresh file, each
# printed with its share of that ceiling. Not part of ctest.
#
#   tests/bench/sqlite_bench.sh BUILD_DIR [JOBS] [DIR]
#
# JOBS: jobs per run (default 200000). DIR: where the database files go
# (default a temporary directory under /tmp, removed at the end); the disk
# under it is what is measured.
set -euo pipefail
build=${1:?usage: sqlite_bench.sh BUILD_DIR [JOBS] [DIR]}
jobs=${2:-200000}
build=$(cd "$build" && pwd)
ceiling=$build/bench/sqlite_ceiling
bench=$build/bench/jobq_bench
for p in "$ceiling" "$bench"; do
  [ -x "$p" ] || { echo "sqlite_bench: $p is not built (JOBQ_BUILD_BENCH=ON)" >&2; exit 2; }
done
if [ -n "${3:-}" ]; then
  mkdir -p "$3"
  dir=$(mktemp -d "$(cd "$3" && pwd)/jobq-sqlitebench.XXXXXX")
else
  dir=$(mktemp -d /tmp/jobq-sqlitebench.XXXXXX)
fi
trap 'rm -rf "$dir"' EXIT
echo "SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo '?') (library: see ldd), $jobs jobs per run, files in $dir"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
for mode in crash power; do
  opts=""
  [ "$mode" = power ] && opts="?durability=power"
  best=0
  for v in "--threads 1" "--threads 1 --merged" "--threads 2"; do
    # shellcheck disable=SC2086
    out=$("$ceiling" --db "$dir/ceiling.db" --jobs "$jobs" --durability "$mode" $v)
    echo "$out" | grep -v '^sqlite_ceiling e2e '
    v=$(echo "$out" | awk '/^sqlite_ceiling e2e / { print $3 }')
    best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b) ? a : b }')
  done
  echo "ceiling ($mode-safe, best of the above): $best jobs/s"
  for f in e2e_batch_1w e2e_batch_2w e2e_procs_2p; do
    line=$("$bench" --storage "sqlite:$dir/bench.db$opts" --jobs "$jobs" --only "$f" | grep "^$f") || continue
    v=$(echo "$line" | awk '{ print $2 }')
    echo "$mode-safe $line  [$(ratio "$v" "$best") of the ceiling]"
  done
done
