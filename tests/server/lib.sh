# Shared by the jobq-server tests (tests/server/*.sh): start and stop a
# server on a free port of 127.0.0.1, send requests with the real curl, and
# check the answers. Every answer is also appended to $WORK/responses.jsonl
# (method, route, status, content type, body) so that openapi_check.py can
# validate each against the OpenAPI document at the end of a test.
#
#   . "$(dirname "$0")/lib.sh" "$SERVER"     # SERVER: the built jobq-server
set -euo pipefail
SERVER=${1:-NOT_BUILT}
if [ "$SERVER" = NOT_BUILT ] || [ ! -x "$SERVER" ]; then
  echo "jobq-server is not built (needs libh2o-dev and libssl-dev); skipped"
  exit 77
fi
SERVER=$(cd "$(dirname "$SERVER")" && pwd)/$(basename "$SERVER")
command -v curl >/dev/null || { echo "curl is missing; skipped"; exit 77; }
SRC=${JOBQ_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jobq-server-test.XXXXXX")
RESPONSES=$WORK/responses.jsonl
: >"$RESPONSES"
SERVER_PIDS=()
ok=0

cleanup() {
  local rc=$?
  for p in "${SERVER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in "$WORK"/server*.log; do
      [ -f "$f" ] && { echo "--- $f (last 40 lines)"; tail -40 "$f"; }
    done
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { ok=$((ok + 1)); }

# start_server NAME ARGS...: runs the server with ARGS on 127.0.0.1:0 in
# $WORK (log $WORK/server-NAME.log), waits until it listens; sets PORT,
# BASE and the variable SERVER_PID.
start_server() {
  local name=$1; shift
  local log=$WORK/server-$name.log
  (cd "$WORK" && exec "$SERVER" --listen 127.0.0.1:0 "$@" 2>"$log") &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  for _ in $(seq 1 200); do
    if grep -q "listening on" "$log" 2>/dev/null; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log"; fail "server $name exited at start"; }
    sleep 0.05
  done
  PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\)\/.*/\1/p' "$log" | head -1)
  [ -n "$PORT" ] || fail "server $name did not say its port"
  BASE=http://127.0.0.1:$PORT
}

# stop_server PID: SIGTERM, then waits for it to exit; fails if it does not
# within 20 s or exits non-zero.
stop_server() {
  local pid=$1
  kill -TERM "$pid"
  for _ in $(seq 1 400); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && fail "server $pid did not stop within 20 s of SIGTERM"
  local rc=0
  wait "$pid" || rc=$?
  [ $rc -eq 0 ] || fail "server $pid exited with $rc after SIGTERM"
}

# req METHOD PATH [CURL ARGS...]: sends the request to $BASE; sets STATUS,
# BODY and CTYPE, and records the answer for the OpenAPI check.
req() {
  local method=$1 path=$2; shift 2
  local out=$WORK/body.$$ hdr=$WORK/hdr.$$
  LAST_WHAT="$method $path"
  : >"$out" # curl writes no file for an empty body (304)
  STATUS=$(curl -s -o "$out" -D "$hdr" -w '%{http_code}' -X "$method" "$@" "$BASE$path") || true
  BODY=$(cat "$out")
  CTYPE=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$hdr" | tail -1)
  HEADERS=$(cat "$hdr")
  python3 - "$method" "$path" "$STATUS" "$CTYPE" "$out" >>"$RESPONSES" <<'PY'
import json, sys
m, p, s, ct, f = sys.argv[1:6]
body = open(f, 'rb').read().decode('utf-8', 'replace')
print(json.dumps({"method": m, "path": p, "status": int(s or 0), "type": ct, "body": body}))
PY
  rm -f "$out" "$hdr"
}

# expect STATUS: the last answer's status must be STATUS.
expect() {
  [ "$STATUS" = "$1" ] || fail "$LAST_WHAT: status $STATUS, expected $1; body: $BODY"
  pass
}

# jget EXPR: evaluates a Python expression on the last body parsed as `j`.
jget() {
  python3 -c 'import json,sys; j=json.loads(sys.argv[2]); v=eval(sys.argv[1]); print(json.dumps(v) if not isinstance(v,str) else v)' "$1" "$BODY"
}

# check WHAT EXPR: the Python expression EXPR on the last body `j` must hold.
check() {
  python3 -c 'import json,sys; j=json.loads(sys.argv[2]); sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" "$BODY" ||
    fail "$1: '$2' does not hold for $BODY"
  pass
}

# finish: validates every recorded answer against the OpenAPI document (once
# tests/server/openapi_check.py exists), then reports.
finish() {
  if [ -f "$SRC/tests/server/openapi_check.py" ]; then
    python3 "$SRC/tests/server/openapi_check.py" "$SRC/examples/server/assets/openapi.json" "$RESPONSES" ||
      fail "answers that do not match the OpenAPI document (above)"
  fi
  echo "ok: $ok checks"
}
