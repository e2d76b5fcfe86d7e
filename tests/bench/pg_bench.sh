#!/usr/bin/env bash
# The PostgreSQL benchmark of libjobq-pg against the machine's own ceiling.
# Starts a private server (tests/servers/postgres.sh: PostgreSQL on
# 127.0.0.1, fsync on), runs pg_ceiling (bare libpq, the backend's own
# statements) and jobq_bench on postgres (a fresh schema per figure), and
# prints each libjobq figure as a share of the ceiling. Not part of ctest.
# drain_procs_Np is the ceiling's own workload (all jobs queued first, then
# N worker processes claim and complete them); e2e_* also submit meanwhile.
# 100000 jobs give steadier figures than the default.
# Each end-to-end figure also says what it cost, which a machine shared
# with other work blurs less than the rate: the server's CPU per job (all
# its processes, from the postmaster's reaped children), the benchmark's
# own CPU per job (its worker processes included) and the server's
# transactions per 1,000 jobs (each statement outside BEGIN is one; with
# group commit and batched claims, about the round trips).
#
#   tests/bench/pg_bench.sh BUILD_DIR [JOBS]      (default 20000 jobs)
#
# Each end-to-end figure also counts what libjobq-pg asked of the server
# (JOBQ_PG_COUNTS, summed over the benchmark's processes): claims, claims
# that found nothing, batch fills and next-due reads per 1,000 jobs. With
# PG_BENCH_QUICK=1 only the batched ceiling and the end-to-end figures run
# (to compare a change's cost quickly; not for the issue's figures).
#
# With GRAPHILE_WORKER_DIR set to a folder whose node_modules holds
# graphile-worker (npm install graphile-worker), graphile-worker runs on the
# same server too (tests/bench/graphile_bench.mjs), with its defaults and
# with its performance guide's batching; the share of the ceiling is
# printed the same way.
set -euo pipefail
build=${1:?usage: pg_bench.sh BUILD_DIR [JOBS]}
jobs=${2:-20000}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
ceiling=$build/bench/pg_ceiling
bench=$build/bench/jobq_bench
for p in "$ceiling" "$bench"; do
  [ -x "$p" ] || { echo "pg_bench: $p is not built (JOBQ_BUILD_BENCH=ON)" >&2; exit 2; }
done
dir=$(mktemp -d /tmp/jobq-pgbench.XXXXXX)
trap 'bash "$here/../servers/postgres.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
url=$(bash "$here/../servers/postgres.sh" start "$dir")
echo "server: PostgreSQL $(psql "$url" -Atc 'SHOW server_version' 2>/dev/null || echo '?'), $jobs jobs per run"

pm=$(head -1 "$dir/data/postmaster.pid")
tck=$(getconf CLK_TCK)
srv_cpu() { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"; }

# The ceiling. Batch 1: a claim and a complete per job, each its own
# commit (what a worker pays without batching; bound by the WAL flush).
# Batch 1000: the most the server does with the same statements. The
# libjobq figures are divided by the best of these.
best=0
num() { awk '{for (i = 1; i <= NF; i++) if ($i == "jobs/s") print $(i - 1)}'; }
for b in $([ "${PG_BENCH_QUICK:-0}" = 1 ] && echo 1000 || echo 1 1000); do
  for w in 1 2 4; do
    nj=$jobs
    [ "$b" -eq 1 ] && nj=$((jobs / 4))
    c0=$(srv_cpu)
    line=$("$ceiling" --url "$url" --jobs "$nj" --batch "$b" --workers "$w" 2>/dev/null | tail -1)
    sleep 0.3 # its connections end; the server reaps them
    c1=$(srv_cpu)
    echo "$line$(awk -v c="$((c1 - c0))" -v t="$tck" -v j="$nj" 'BEGIN { printf "  {server CPU %.1f us/job, its inserts included}", c / t / j * 1e6 }')"
    v=$(echo "$line" | num)
    best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b) ? a : b }')
  done
done
echo "ceiling (best of the above): $best jobs/s"

n=0
commits() { psql "$url" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
# Each figure's schema is dropped after it: left, its dead rows would have
# autovacuum at work during the figures after it.
drop() { psql "$url" -qc "DROP SCHEMA IF EXISTS bench_$1 CASCADE" >/dev/null 2>&1 || true; }
fig() { # figure name -> its line of jobq_bench, on a fresh schema
  n=$((n + 1))
  "$bench" --storage "$url?schema=bench_$n" --jobs "$jobs" --only "$1" | grep "^$1"
  local rc=$?
  drop "$n"
  return $rc
}
costfig() { # fig, and what the run cost per job
  local c0 x0 t0 out c1 x1
  local k0
  c0=$(srv_cpu); x0=$(commits); t0=$(mktemp); k0=$(mktemp)
  out=$( { JOBQ_PG_COUNTS=$k0 /usr/bin/time -f "%U %S" -o "$t0" "$bench" \
            --storage "$url?schema=bench_$((n + 1))" --jobs "$jobs" --only "$1"; } | grep "^$1") ||
    { rm -f "$t0" "$k0"; return 1; }
  n=$((n + 1))
  sleep 0.3 # the benchmark's connections end; the server reaps them
  c1=$(srv_cpu); x1=$(commits)
  drop "$n"
  echo "$out" | tr -d '\n'
  awk -v c="$((c1 - c0))" -v t="$tck" -v j="$jobs" -v x="$((x1 - x0))" -v u="$(cat "$t0")" \
    'BEGIN { split(u, a, " "); printf "  {server CPU %.1f us/job, client CPU %.1f us/job, %.1f transactions/1000 jobs}", c / t / j * 1e6, (a[1] + a[2]) / j * 1e6, x / j * 1000 }'
  awk -v j="$jobs" '{ for (i = 1; i < NF; i += 2) v[$i] += $(i + 1) }
    END { printf "  {per 1000 jobs: %.1f claims, %.1f empty, %.1f batch fills, %.1f next-due reads, %.1f finish groups}", v["claims"] / j * 1000, v["empty"] / j * 1000, v["fills"] / j * 1000, v["next_due"] / j * 1000, v["finishes"] / j * 1000 }' "$k0"
  rm -f "$t0" "$k0"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
for f in drain e2e; do
  for p in 1 2 4; do
    line=$(costfig "${f}_procs_${p}p")
    v=$(echo "$line" | awk '{print $2}')
    echo "$line  [$(ratio "$v" "$best") of the ceiling]"
  done
done
for f in e2e_batch_1w e2e_batch_2w; do
  line=$(costfig "$f") || continue
  v=$(echo "$line" | awk '{print $2}')
  echo "$line  [$(ratio "$v" "$best") of the ceiling]"
done
[ "${PG_BENCH_QUICK:-0}" = 1 ] && exit 0
for f in e2e_single_1w submit_latency pickup_latency_idle pickup_xproc; do
  fig "$f" || true
done
if [ -n "${GRAPHILE_WORKER_DIR:-}" ]; then
  for mode in "" batched; do
    line=$(cd "$GRAPHILE_WORKER_DIR" && node "$here/graphile_bench.mjs" "$url" "$jobs" 24 $mode) || continue
    v=$(echo "$line" | num)
    echo "$line  [$(ratio "$v" "$best") of the ceiling]"
  done
fi
