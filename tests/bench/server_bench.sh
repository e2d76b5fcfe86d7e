#!/usr/bin/env bash
# jobq-server under load, with wrk, and the same status read from a minimal
# Node `http` server in the same run. A program, not a test: it asserts
# nothing about speed, and CTest does not run it. It builds nothing:
#
#   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DJOBQ_BUILD_TESTS=OFF -DJOBQ_BUILD_BENCH=OFF
#   cmake --build build-rel -j2 --target jobq_server example_jobq
#   tests/bench/server_bench.sh build-rel/examples/jobq-server build-rel/examples/jobq
#
# (Release: without assertions, -O3; the default RelWithDebInfo keeps them.)
#
# On a fresh SQLite file it starts jobq-server (--submit-only), submits
# BENCH_JOBS jobs (10,000) of the CLI's demo kind "echo" through it and runs
# them to success with a `jobq work` process, then measures with wrk, each
# run BENCH_DURATION (10s) with 64 keep-alive connections on 2 threads:
#   a. jobq-server: GET /v1/jobs/:id over random ids of those jobs;
#   c. the same GET against tests/bench/node_status_server.js on the same
#      file (one prepared SELECT by id through libsqlite3, read-only, the
#      same JSON body), jobq-server stopped meanwhile;
#   b. jobq-server: POST /v1/jobs submits; afterwards every id wrk got with
#      a 202 must be in the store, and the store may hold beyond them only
#      the submits wrk still had in flight when it stopped (at most one per
#      connection: stored, answered to nobody) -- no submit is lost.
# Then one table: requests/s, p50 and p99 per run, and jobq-server / Node.
#
# Needs: wrk (apt-get install wrk), sqlite3 (apt-get install sqlite3), node
# and npm (apt-get install nodejs npm), curl. The npm package koffi (Node's
# FFI, to call libsqlite3) is installed into a temporary directory, or taken
# from $BENCH_NODE_MODULES (a node_modules directory holding koffi).
# Environment: BENCH_JOBS (10000), BENCH_DURATION (10s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2); BENCH_QUEUED=1 leaves the jobs queued (jobq-server's GET
# then also computes each one's position, which Node does not); BENCH_KEEP=1
# keeps the temporary directory (the store, the logs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
server="${1:-$root/build/examples/jobq-server}"
cli="${2:-$root/build/examples/jobq}"
jobs="${BENCH_JOBS:-10000}"
duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
key="bench-key"

die() { echo "server_bench: $*" >&2; exit 2; }
[ -x "$server" ] || die "no jobq-server at $server (build it: see the top of this file)"
[ -x "$cli" ] || die "no jobq CLI at $cli (build it: see the top of this file)"
command -v wrk >/dev/null || die "wrk is missing: apt-get install wrk"
command -v sqlite3 >/dev/null || die "sqlite3 is missing: apt-get install sqlite3"
command -v node >/dev/null && command -v npm >/dev/null || die "node/npm are missing: apt-get install nodejs npm"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${BENCH_KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
db="$tmp/bench.db"

# ---- koffi ----
modules="${BENCH_NODE_MODULES:-}"
if [ -z "$modules" ]; then
  echo "installing koffi (npm) into a temporary directory" >&2
  npm install --prefix "$tmp/node" koffi --prefer-offline --no-audit --no-fund --loglevel=error >&2
  modules="$tmp/node/node_modules"
fi
[ -d "$modules/koffi" ] || die "no koffi in $modules"

# Starts a program that prints "listening on http://127.0.0.1:PORT/" on
# stderr; sets $port and $pid.
start() {
  local log="$1"
  shift
  "$@" 2>"$log" &
  pid=$!
  pids+=("$pid")
  port=""
  for _ in $(seq 1 200); do
    port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" | head -n1)"
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$log" >&2
  die "$1 did not start"
}
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
start_jobq() {
  start "$tmp/server.log" env JOBQ_API_KEYS="$key:*" "$server" --listen 127.0.0.1:0 \
    --storage "sqlite:$db" --submit-only --quiet
}

# ---- the jobs ----
start_jobq
srv_pid=$pid
echo "submitting $jobs jobs through jobq-server (port $port)" >&2
{
  echo 'header = "content-type: application/json"'
  echo "header = \"x-api-key: $key\""
  echo 'data = "{\"kind\":\"echo\",\"payload\":{\"ms\":0}}"'
  for _ in $(seq 1 "$jobs"); do echo "url = \"http://127.0.0.1:$port/v1/jobs\""; done
} > "$tmp/fill.curl"
curl -sS --parallel --parallel-max 32 -K "$tmp/fill.curl" > "$tmp/fill.out" 2>"$tmp/fill.err" ||
  { cat "$tmp/fill.err" >&2; die "curl could not submit the jobs"; }
grep -o '{"success":true,"id":"[^"]*"' "$tmp/fill.out" | sed 's/.*"id":"\([^"]*\)"/\1/' > "$tmp/ids"
[ "$(wc -l < "$tmp/ids")" -eq "$jobs" ] || die "only $(wc -l < "$tmp/ids") of $jobs submits succeeded"
if [ -z "${BENCH_QUEUED:-}" ]; then
  echo "running them to success (jobq work echo)" >&2
  "$cli" --storage "sqlite:$db" work echo --workers 4 >/dev/null 2>"$tmp/work.log" &
  work_pid=$!
  pids+=("$work_pid")
  while [ "$(sqlite3 -readonly "$db" 'SELECT count(*) FROM jobq_jobs WHERE state = 2')" -lt "$jobs" ]; do
    kill -0 "$work_pid" 2>/dev/null || { cat "$tmp/work.log" >&2; die "jobq work stopped"; }
    sleep 0.2
  done
  stop "$work_pid"
fi

# ---- wrk scripts ----
# Each prints one line: RESULT requests req/s p50_us p99_us non-2xx+errors [202s]
cat > "$tmp/get.lua" <<'EOF'
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local key = os.getenv("BENCH_KEY")
local n = 0
function setup(thread) n = n + 1; thread:set("seed", n) end
function init(args) math.randomseed(seed or 1) end
function request()
  return wrk.format("GET", "/v1/jobs/" .. ids[math.random(#ids)], {["x-api-key"] = key})
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format("RESULT %d %.1f %d %d %d\n", s.requests, s.requests / (s.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
EOF
cat > "$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.body = '{"kind":"bench_post","payload":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = os.getenv("BENCH_KEY")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ids = {}; n202 = 0 end
function response(status, headers, body)
  if status == 202 then
    n202 = n202 + 1
    ids[n202] = body:match('"id":"([^"]+)"')
  end
end
function done(s, latency, requests)
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  local total = 0
  for _, t in ipairs(threads) do
    for _, id in ipairs(t:get("ids")) do f:write(id, "\n") end
    total = total + t:get("n202")
  end
  f:close()
  local e = s.errors
  io.write(string.format("RESULT %d %.1f %d %d %d %d\n", s.requests, s.requests / (s.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout, total))
end
EOF
run_wrk() { # URL SCRIPT -> the RESULT line's fields
  BENCH_IDS="$tmp/ids" BENCH_KEY="$key" BENCH_OUT="$tmp/answered" \
    wrk -t"$threads" -c"$conns" -d"$duration" -s "$2" "$1" > "$tmp/wrk.out" 2>&1 ||
    { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
  grep '^RESULT ' "$tmp/wrk.out" | tail -n1 | cut -d' ' -f2-
}

# ---- a. jobq-server, GET ----
echo "a. jobq-server: GET /v1/jobs/:id, $conns connections, $duration" >&2
r="$(run_wrk "http://127.0.0.1:$port" "$tmp/get.lua")"
read -r a_n a_rps a_p50 a_p99 a_err <<< "$r"
stop "$srv_pid"

# ---- c. Node, GET ----
echo "c. Node http + koffi/libsqlite3: the same GET" >&2
start "$tmp/node.log" env NODE_PATH="$modules" node "$here/node_status_server.js" "$db" 0 "$key"
node_pid=$pid
curl -fsS -H "x-api-key: $key" "http://127.0.0.1:$port/v1/jobs/$(head -n1 "$tmp/ids")" > "$tmp/node_one.json" ||
  die "the Node server does not answer a GET"
r="$(run_wrk "http://127.0.0.1:$port" "$tmp/get.lua")"
read -r c_n c_rps c_p50 c_p99 c_err <<< "$r"
stop "$node_pid"

# ---- b. jobq-server, POST ----
start_jobq
srv_pid=$pid
curl -fsS -H "x-api-key: $key" "http://127.0.0.1:$port/v1/jobs/$(head -n1 "$tmp/ids")" > "$tmp/jobq_one.json"
echo "b. jobq-server: POST /v1/jobs, $conns connections, $duration" >&2
r="$(run_wrk "http://127.0.0.1:$port" "$tmp/post.lua")"
read -r b_n b_rps b_p50 b_p99 b_err b_202 <<< "$r"
# A submit wrk left in flight finishes on the server (its commit) and is
# stored, answered to nobody: wait until the count stands still.
count() { sqlite3 -readonly "$db" "SELECT count(*) FROM jobq_jobs WHERE kind = 'bench_post'"; }
stored="$(count)"
while sleep 0.2; [ "$(count)" != "$stored" ]; do stored="$(count)"; done
stop "$srv_pid"
sqlite3 -readonly "$db" "SELECT id FROM jobq_jobs WHERE kind = 'bench_post'" | sort > "$tmp/stored"
sort "$tmp/answered" > "$tmp/answered.sorted"
answered="$(wc -l < "$tmp/answered.sorted")"
lost="$(comm -23 "$tmp/answered.sorted" "$tmp/stored" | wc -l)"
unanswered=$((stored - answered + lost))

# ---- the table ----
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
echo
echo "jobq-server benchmark: $jobs ${BENCH_QUEUED:+queued }jobs on SQLite, wrk -t$threads -c$conns -d$duration ($(nproc) cores)"
printf '%-40s %12s %10s %10s %8s\n' "run" "req/s" "p50" "p99" "errors"
printf '%-40s %12.0f %10s %10s %8d\n' "a. jobq-server GET /v1/jobs/:id" "$a_rps" "$(ms "$a_p50")" "$(ms "$a_p99")" "$a_err"
printf '%-40s %12.0f %10s %10s %8d\n' "c. Node http GET /v1/jobs/:id" "$c_rps" "$(ms "$c_p50")" "$(ms "$c_p99")" "$c_err"
printf '%-40s %12.0f %10s %10s %8d\n' "b. jobq-server POST /v1/jobs" "$b_rps" "$(ms "$b_p50")" "$(ms "$b_p99")" "$b_err"
awk -v a="$a_rps" -v c="$c_rps" -v ap="$a_p99" -v cp="$c_p99" \
  'BEGIN { printf "GET, jobq-server / Node: %.2fx the requests/s, %.2fx the p99\n", a / c, ap / cp }'
echo "POST: wrk counted $b_202 answers 202 ($answered ids); the store holds $stored submitted jobs:" \
     "$lost answered but missing, $unanswered stored but unanswered (in flight when wrk stopped, at most $conns)"
status=0
if [ "$b_202" -eq 0 ] || [ "$lost" -ne 0 ] || [ "$b_202" -ne "$answered" ] || [ "$unanswered" -lt 0 ] || [ "$unanswered" -gt "$conns" ]; then
  echo "server_bench: SUBMITS LOST OR MISCOUNTED" >&2
  status=1
fi
if ! cmp -s "$tmp/node_one.json" "$tmp/jobq_one.json"; then
  echo "note: the Node body differs from jobq-server's for the same job:" >&2
  echo "  jobq-server: $(cat "$tmp/jobq_one.json")" >&2
  echo "  node:        $(cat "$tmp/node_one.json")" >&2
fi
exit $status
