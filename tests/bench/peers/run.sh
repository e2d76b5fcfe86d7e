#!/usr/bin/env bash
# libjobq beside its peers, one no-op workload, one table. Not part of ctest
# or CI: it takes minutes and installs things.
#
#   tests/bench/peers/run.sh [--build DIR] [--jobs N] [--only NAME]
#
#   --build DIR  a release build of libjobq with the benchmarks (default
#                build-rel: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release
#                && cmake --build build-rel -j2)
#   --jobs N     jobs per run (default 100000)
#   --only NAME  only the rows whose system or storage contains NAME
#                (bullmq, graphile, libjobq, memory, sqlite, postgres)
#
# The workload, on every system: N no-op jobs, 1,000 per submit call.
#   drain  all N submitted first, then the workers start: jobs/s from their
#          start to the last job done
#   e2e    the workers run from the start; jobs/s from the first submit to
#          the last job done, submits and runs overlapping
# The systems:
#   libjobq          jobq_bench drain_batch_2w and e2e_batch_2w (2 workers,
#                    jobq_submit_many) on memory, on SQLite crash-safe and
#                    power-safe (a file in the build directory), and on the
#                    PostgreSQL below (a schema of its own per figure)
#   graphile-worker  graphile_bench.mjs (tests/bench) at the best
#                    configuration of its performance guide: concurrency 24,
#                    local queue of 500, batched completions; jobs added with
#                    graphile_worker.add_job, 1,000 per statement
#   BullMQ           bullmq_bench.mjs: Queue.addBulk of 1,000, one Worker
#                    process with concurrency 100 (autorun), removeOnComplete
# What it sets up, and takes down again on exit (trap):
#   - Debian's redis-server and postgresql, installed with apt-get when
#     missing (it says so first). Nothing else system-wide.
#   - the npm packages of package.json, exactly as package-lock.json pins
#     them (npm ci, install scripts off), in a temporary directory
#   - a Redis on 127.0.0.1 on a free port, in a temporary directory, with
#     redis-server's built-in defaults: no AOF, an RDB snapshot at most
#     every 60 s under this load (save 3600 1 300 100 60 10000), so a crash
#     loses up to a minute of jobs
#   - a PostgreSQL in a temporary directory (tests/servers/postgres.sh:
#     127.0.0.1, a free port, fsync on, synchronous_commit on)
# Each system's durability is printed beside its figures; the ratio columns
# divide by libjobq on SQLite crash-safe, same workload, same run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$root/build-rel
jobs=100000
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--jobs N] [--only NAME]" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
bench=$build/bench/jobq_bench
[ -x "$bench" ] || { echo "peers: $bench is not built (a release build with JOBQ_BUILD_BENCH=ON)" >&2; exit 2; }
wanted() { [ -z "$only" ] || [[ "$1" == *"$only"* ]]; }

need_bullmq=0 need_pg=0 need_node=0
wanted "bullmq redis" && need_bullmq=1 need_node=1
wanted "graphile-worker postgres" && need_pg=1 need_node=1
wanted "libjobq postgres" && need_pg=1

# ---- what this machine lacks ----
missing=()
[ $need_bullmq = 1 ] && ! command -v redis-server >/dev/null && missing+=(redis-server)
[ $need_pg = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "peers: installing Debian packages system-wide: ${missing[*]} (apt-get)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts an installed server at once; this script runs its own
  for s in redis-server postgresql; do
    [[ " ${missing[*]} " == *" $s "* ]] && { $sudo systemctl stop "$s" 2>/dev/null || $sudo service "$s" stop 2>/dev/null || true; }
  done
fi
if [ $need_node = 1 ] && ! command -v npm >/dev/null; then
  echo "peers: node and npm are needed for BullMQ and graphile-worker (Debian: nodejs npm)" >&2
  exit 2
fi

# ---- temporary servers and files, gone on exit ----
tmp=$(mktemp -d /tmp/jobq-peers.XXXXXX)
pgdir=""
redis_pid=""
db=$build/peers-bench.db
cleanup() {
  if [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; then
    while kill -0 "$redis_pid" 2>/dev/null; do sleep 0.1; done
  fi
  if [ -n "$pgdir" ]; then bash "$root/tests/servers/postgres.sh" stop "$pgdir" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp" "$db"*
}
trap cleanup EXIT
on_signal() { exit 130; }
trap on_signal INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ $need_node = 1 ]; then
  echo "peers: npm ci into $tmp/npm (package-lock.json)"
  mkdir "$tmp/npm"
  cp "$here/package.json" "$here/package-lock.json" "$tmp/npm/"
  (cd "$tmp/npm" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [ $need_bullmq = 1 ]; then
  port=$(free_port)
  mkdir "$tmp/redis"
  # No config file: redis-server's built-in defaults (RDB snapshots, no AOF).
  redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/redis" --logfile "$tmp/redis/log" \
    --daemonize no &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis_ver=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
fi
if [ $need_pg = 1 ]; then
  pgdir=$(mktemp -d /tmp/jobq-peers-pg.XXXXXX)
  url=$(bash "$root/tests/servers/postgres.sh" start "$pgdir")
  pg_ver=$(psql "$url" -Atc 'SHOW server_version' | cut -d' ' -f1)
fi

# ---- the figures ----
rows=() # "system|storage|durability|drain|e2e"
num() { awk '{ for (i = 1; i <= NF; i++) if ($i == "jobs/s" || $i == "jobs/s,") { print $(i - 1); exit } }'; }
row() { rows+=("$1|$2|$3|${4:-?}|${5:-?}"); echo "  $1, $2: drain ${4:-?}, e2e ${5:-?} jobs/s"; }
# Each figure runs in this shell, not inside $(...): an interrupt then
# reaches the trap between commands, and the counter below is kept.
fig() { # command... -> its jobs/s in $fig (empty if it failed)
  fig=""
  "$@" >"$tmp/fig" || { echo "    (failed: $*)" >&2; return 0; }
  sed 's/^/    /' "$tmp/fig" >&2
  fig=$(num <"$tmp/fig")
}
n=0
jobq() { # storage-url figure
  fig=""
  "$bench" --storage "$1" --jobs "$jobs" --only "$2" >"$tmp/fig" || { echo "    (failed: $2 on $1)" >&2; return 0; }
  grep "^$2:" "$tmp/fig" | sed 's/^/    /' >&2
  fig=$(grep "^$2:" "$tmp/fig" | num)
}
# A fresh schema per figure; the one before is dropped, so that autovacuum
# of its dead rows does not run during the next figures.
fresh_pg() {
  [ "$n" -gt 0 ] && psql "$url" -qc "DROP SCHEMA IF EXISTS peers_$n CASCADE" >/dev/null 2>&1
  n=$((n + 1)); pg_url="$url?schema=peers_$n"
}
in_npm() { (cd "$tmp/npm" && "$@"); }

echo "peers: $jobs no-op jobs per run; $(nproc) cores; $(uname -sr)"
if wanted "libjobq memory"; then
  jobq memory: drain_batch_2w; d=$fig
  jobq memory: e2e_batch_2w; e=$fig
  row libjobq memory "none (in process)" "$d" "$e"
fi
if wanted "libjobq sqlite"; then
  sq="SQLite $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)' 2>/dev/null || echo '?')"
  jobq "sqlite:$db" drain_batch_2w; d=$fig
  jobq "sqlite:$db" e2e_batch_2w; e=$fig
  row libjobq "$sq" "crash-safe (synchronous NORMAL)" "$d" "$e"
  jobq "sqlite:$db?durability=power" drain_batch_2w; d=$fig
  jobq "sqlite:$db?durability=power" e2e_batch_2w; e=$fig
  row libjobq "$sq" "power-safe (synchronous FULL)" "$d" "$e"
fi
if wanted "libjobq postgres"; then
  fresh_pg; jobq "$pg_url" drain_batch_2w; d=$fig
  fresh_pg; jobq "$pg_url" e2e_batch_2w; e=$fig
  fresh_pg # drops the last
  row libjobq "PostgreSQL $pg_ver" "power-safe (fsync, synchronous_commit on)" "$d" "$e"
fi
if wanted "graphile-worker postgres"; then
  gw=$root/tests/bench/graphile_bench.mjs
  fig in_npm node "$gw" "$url" "$jobs" 24 batched; d=$fig
  fig in_npm node "$gw" "$url" "$jobs" 24 batched e2e; e=$fig
  row graphile-worker "PostgreSQL $pg_ver" "power-safe (fsync, synchronous_commit on)" "$d" "$e"
fi
if wanted "bullmq redis"; then
  fig in_npm node "$here/bullmq_bench.mjs" drain "$port" "$jobs" 100; d=$fig
  fig in_npm node "$here/bullmq_bench.mjs" e2e "$port" "$jobs" 100; e=$fig
  row BullMQ "Redis $redis_ver" "none: RDB snapshots, no AOF (defaults)" "$d" "$e"
fi

# ---- the table ----
base_d="" base_e=""
for r in "${rows[@]}"; do
  IFS='|' read -r sys sto dur d e <<<"$r"
  if [ "$sys" = libjobq ] && [[ "$dur" == crash-safe* ]]; then base_d=$d base_e=$e; fi
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
echo
printf '| %-15s | %-18s | %-42s | %12s | %7s | %12s | %7s |\n' system storage durability "drain jobs/s" ratio \
  "e2e jobs/s" ratio
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..17})" "$(printf -- '-%.0s' {1..20})" \
  "$(printf -- '-%.0s' {1..44})" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..8}):" \
  "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..8}):"
for r in "${rows[@]}"; do
  IFS='|' read -r sys sto dur d e <<<"$r"
  printf '| %-15s | %-18s | %-42s | %12s | %7s | %12s | %7s |\n' "$sys" "$sto" "$dur" "$d" \
    "$(ratio "$d" "$base_d")" "$e" "$(ratio "$e" "$base_e")"
done
echo
echo "ratio: jobs/s divided by libjobq's on SQLite crash-safe, same workload, this run"
