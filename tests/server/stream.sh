#!/usr/bin/env bash
# jobq-server's streams with the real curl (curl -N) and a `jobq work`
# process on the same SQLite file: a job's Server-Sent Events from its
# snapshot to its result, /v1/events for administrators and owners, long
# polls (GET /v1/jobs/:id?wait=N), Last-Event-ID resumption within a server
# and across a restart, and SIGTERM with streams and long polls open.
#
#   stream.sh SERVER JOBQ      (the built jobq-server and jobq programs)
. "$(dirname "$0")/lib.sh" "$1"
JOBQ=${2:-NOT_BUILT}
[ -x "$JOBQ" ] || { echo "the jobq program is not built; skipped"; exit 77; }
JOBQ=$(cd "$(dirname "$JOBQ")" && pwd)/$(basename "$JOBQ")
command -v python3 >/dev/null || { echo "python3 is missing; skipped"; exit 77; }

cat >"$WORK/conf.json" <<'JSON'
{"keys": [{"key": "alice-key", "owner": "alice"}, {"key": "bob-key", "owner": "bob"},
          {"key": "admin-key", "owner": "*"}]}
JSON
DB=$WORK/q.db
# Webhooks: the endpoint "hooks" (the example secret of the Standard Webhooks
# libraries) in the servers and the worker processes alike, and a receiver on
# 127.0.0.1 that checks every signature with its own implementation.
export JOBQ_WEBHOOK_SECRET_HOOKS=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
export JOBQ_WEBHOOK_ALLOW=127.0.0.1
mkfifo "$WORK/recv.in"
python3 "$SRC/tests/servers/webhook_receiver.py" --secret "$JOBQ_WEBHOOK_SECRET_HOOKS" \
  <"$WORK/recv.in" >"$WORK/recv.out" 2>"$WORK/recv.err" &
SERVER_PIDS+=("$!")
exec 8>"$WORK/recv.in" # the receiver exits when this closes
for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/recv.out" && break; sleep 0.05; done
RECV=http://127.0.0.1:$(sed -n 's/^PORT //p' "$WORK/recv.out")
start_server a --storage "sqlite:$DB" --config "$WORK/conf.json" --submit-only
A=(-H 'x-api-key: alice-key')
B=(-H 'x-api-key: bob-key')
ADM=(-H 'x-api-key: admin-key')
J=(-H 'content-type: application/json')
CURL_PIDS=()

# sse FILE [CURL ARGS...] PATH: streams $BASE$PATH into FILE in the
# background (curl -N); curl's pid goes to FILE.pid, its exit code to
# FILE.rc when it ends.
sse() {
  local file=$1; shift
  local path=${*: -1}
  local args=("${@:1:$#-1}")
  ( curl -sN -D "$file.hdr" "${args[@]}" "$BASE$path" >"$file" &
    echo $! >"$file.pid"
    rc=0; wait $! || rc=$?; echo $rc >"$file.rc" ) &
  CURL_PIDS+=($!)
}

# wait_for WHAT PYTHON-EXPR: polls (up to 30 s) until the expression holds;
# `events(FILE)` parses an SSE file into [{"id", "event", "data"}] (data
# parsed as JSON), `exists(FILE)` and `text(FILE)` read files.
PYLIB='
import json, os
def text(f):
    try: return open(f).read()
    except OSError: return ""
def exists(f): return os.path.exists(f)
def events(f):
    out, cur = [], {}
    for line in text(f).split("\n"):
        if line == "":
            if "data" in cur:
                cur["data"] = json.loads(cur["data"])
                out.append(cur)
            cur = {}
        elif line.startswith(":"):
            continue
        else:
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            cur[k] = cur[k] + "\n" + v if k == "data" and k in cur else v
    return out
def rank(i):
    a, s = i.split(".")
    return int(a) * 128 + int(s)
'
pyc() { python3 -c "$PYLIB
import sys
W = sys.argv[1]
sys.exit(0 if ($1) else 1)" "$WORK"; }
# pyrun SCRIPT: runs the Python statements (asserts) with the same helpers.
pyrun() { python3 -c "$PYLIB
import sys
W = sys.argv[1]
$1" "$WORK"; }
wait_for() {
  local what=$1 expr=$2 until=$((SECONDS + 30))
  while [ $SECONDS -le $until ]; do
    pyc "$expr" && { pass; return 0; }
    sleep 0.1
  done
  fail "$what: '$expr' did not come true within 30 s"
}
# start_worker NAME: a `jobq work echo` process on the file (log
# $WORK/worker-NAME.log); sets WORKER. stop_worker: SIGTERM, exit 0.
start_worker() {
  "$JOBQ" --storage "sqlite:$DB" work echo --for 300000 >"$WORK/worker-$1.log" 2>&1 &
  WORKER=$!
  SERVER_PIDS+=("$WORKER") # killed if the test fails
}
stop_worker() {
  kill -TERM "$WORKER"
  wait "$WORKER" || fail "the worker failed: $(cat "$WORK"/worker-*.log)"
}
submit() { # submit KEY-ARGS JSON: sets ID
  req POST /v1/jobs "$@"
  expect 202
  ID=$(jget 'j["id"]')
}

# ---- /v1/events before anything happens: an administrator's and bob's ----
sse "$WORK/g_adm" "${ADM[@]}" /v1/events
sse "$WORK/g_bob" "${B[@]}" /v1/events
wait_for "global streams open" 'text(W+"/g_adm").startswith(": ok") and text(W+"/g_bob").startswith(": ok")'
grep -qi '^content-type: text/event-stream' "$WORK/g_adm.hdr" || fail "SSE content type: $(cat "$WORK/g_adm.hdr")"
grep -qi '^cache-control: no-cache' "$WORK/g_adm.hdr" || fail "SSE without cache-control"
grep -qi '^x-accel-buffering: no' "$WORK/g_adm.hdr" || fail "SSE without x-accel-buffering"
pass

# ---- a job streamed while a worker process runs it ----
submit "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":1500}}'
ID1=$ID
sse "$WORK/s1" "${A[@]}" "/v1/jobs/$ID1/events"
wait_for "the snapshot first" 'events(W+"/s1")[:1] and events(W+"/s1")[0]["event"] == "snapshot" and events(W+"/s1")[0]["data"]["state"] == "queued" and events(W+"/s1")[0]["id"] == "0.0"'
req GET "/v1/jobs/$ID1/events" "${B[@]}"
expect 404
check "another owner's job stream is unknown" 'j["error"]["code"] == "JOBQ_ENOTFOUND"'
req GET "/v1/jobs/01a24a5f-0000-7000-8000-000000000000/events" "${A[@]}"
expect 404
req GET "/v1/jobs/$ID1/events"
expect 401

# long poll: answers when the worker starts the job
( curl -s "${A[@]}" "$BASE/v1/jobs/$ID1?wait=5" >"$WORK/poll1"; echo $? >"$WORK/poll1.rc" ) &
CURL_PIDS+=($!)
sleep 0.3 # the poll is waiting (if it were not yet, it would answer the same)
start_worker 1
wait_for "the long poll answers at the start" 'exists(W+"/poll1.rc") and json.loads(text(W+"/poll1"))["job"]["state"] in ("running", "succeeded")'
wait_for "the job stream ends" 'exists(W+"/s1.rc")'
[ "$(cat "$WORK/s1.rc")" = 0 ] || fail "curl on the job stream: exit $(cat "$WORK/s1.rc")"
pyrun '
ev = events(W+"/s1")
names = [e["event"] for e in ev]
prog = [e["data"]["progress"] for e in ev if e["event"] == "progress"]
ranks = [rank(e["id"]) for e in ev]
assert names[0] == "snapshot" and names[1] == "started", names
assert names[-1] == "succeeded", names
assert ev[-1]["data"]["result"] == {"ms": 1500} and ev[-1]["data"]["state"] == "succeeded"
assert ev[-1]["data"]["jobId"] == ev[0]["data"]["id"] and ev[-1]["data"]["progress"] == 100
assert prog == sorted(prog) and len(set(prog)) == len(prog) and prog[-1] == 100, prog
assert ranks == sorted(ranks), ranks
assert all("time" in e["data"] and e["data"]["type"] == e["event"] for e in ev[1:])' || fail "job stream: $(cat "$WORK/s1")"
pass

# a stream opened on a finished job: the snapshot and the terminal event, then the end
timeout 20 curl -sN "${A[@]}" "$BASE/v1/jobs/$ID1/events" >"$WORK/s1b" || fail "finished job's stream: curl $?"
pyc '[e["event"] for e in events(W+"/s1b")] == ["snapshot", "succeeded"] and events(W+"/s1b")[1]["data"]["result"] == {"ms": 1500} and events(W+"/s1b")[0]["data"]["state"] == "succeeded"' ||
  fail "finished job's stream: $(cat "$WORK/s1b")"
pass
# ... and with the terminal id as Last-Event-ID: 204, nothing more to say
LAST=$(python3 -c "$PYLIB
import sys; print(events(sys.argv[1])[-1]['id'])" "$WORK/s1b")
req GET "/v1/jobs/$ID1/events" "${A[@]}" -H "Last-Event-ID: $LAST"
expect 204

# ---- /v1/events: the administrator sees it all, bob sees only his ----
submit "${B[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":0,"bob":1}}'
ID_B=$ID
wait_for "administrator's events" '(lambda ev:
  [e["event"] for e in ev if e["data"].get("jobId") == "'"$ID1"'"][-1:] == ["succeeded"] and
  [e["event"] for e in ev if e["data"].get("jobId") == "'"$ID_B"'"][-1:] == ["succeeded"])(events(W+"/g_adm"))'
wait_for "bob's events" '[e["event"] for e in events(W+"/g_bob")][-1:] == ["succeeded"]'
pyrun '
ev = events(W+"/g_bob")
assert ev and all(e["data"]["jobId"] == "'"$ID_B"'" for e in ev), ev
adm = events(W+"/g_adm")
ids = [e["id"] for e in adm]
assert "submitted" in [e["event"] for e in adm if e["data"].get("jobId") == "'"$ID1"'"]
seqs = [int(i.split("-")[1]) for i in ids]
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len({i.split("-")[0] for i in ids}) == 1' || fail "global streams: bob: $(cat "$WORK/g_bob")"
pass
# resumption: from an id in the middle, exactly the events after it
MID=$(python3 -c "$PYLIB
import sys; print(events(sys.argv[1])[2]['id'])" "$WORK/g_adm")
sse "$WORK/g_res" "${ADM[@]}" -H "Last-Event-ID: $MID" /v1/events
wait_for "resumed /v1/events" '[e["id"] for e in events(W+"/g_res")] == [e["id"] for e in events(W+"/g_adm")][3:]'
sse "$WORK/g_reset" "${ADM[@]}" -H "Last-Event-ID: 12345-7" /v1/events
wait_for "an id it cannot resume from" '[e["event"] for e in events(W+"/g_reset")] == ["reset"]'

# ---- long polls: timeout, bad input ----
submit "${A[@]}" "${J[@]}" -d '{"kind":"nobody-runs-this"}'
ID_IDLE=$ID
req GET "/v1/jobs/$ID_IDLE?wait=1" "${A[@]}"
expect 200
check "the poll's timeout answers the job as it is" 'j["success"] and j["job"]["state"] == "queued" and j["job"]["id"] == "'"$ID_IDLE"'"'
req GET "/v1/jobs/$ID_IDLE?wait=99" "${A[@]}"
expect 400
req GET "/v1/jobs/$ID_IDLE?wait=soon" "${A[@]}"
expect 400
req GET "/v1/jobs/$ID1?wait=5" "${A[@]}"
expect 200
check "a finished job answers at once" 'j["job"]["state"] == "succeeded"'
stop_worker

# ---- a client that goes away: its long poll and its stream end then, not
# at their timeout or next ping (the log line says the call ended) ----
submit "${A[@]}" "${J[@]}" -d '{"kind":"nobody-runs-this"}'
ID5=$ID
python3 - "$PORT" "$ID5" <<'PY'
import socket, sys, time
port, jid = int(sys.argv[1]), sys.argv[2]
socks = []
for path in (f"/v1/jobs/{jid}?wait=60", f"/v1/jobs/{jid}/events"):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nx-api-key: alice-key\r\n\r\n".encode())
    socks.append(s)
s = socks[1]
s.settimeout(10)
got = b""
while b"event: snapshot" not in got:
    got += s.recv(4096)
for s in socks:
    s.close()
PY
wait_for "the long poll of a client that left ends" '"\"path\":\"/v1/jobs/'"$ID5"'\"" in text(W+"/server-a.log")'
wait_for "the stream of a client that left ends" '"\"path\":\"/v1/jobs/'"$ID5"'/events\"" in text(W+"/server-a.log")'

# ---- Last-Event-ID mid-job: nothing older comes again ----
start_worker 2
submit "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":3000}}'
ID2=$ID
sse "$WORK/s2" "${A[@]}" "/v1/jobs/$ID2/events"
wait_for "mid-job progress" '[e for e in events(W+"/s2") if e["event"] == "progress" and e["data"]["progress"] >= 30]'
kill "$(cat "$WORK/s2.pid")"
LAST=$(python3 -c "$PYLIB
import sys; print(events(sys.argv[1])[-1]['id'])" "$WORK/s2")
sse "$WORK/s2b" "${A[@]}" -H "Last-Event-ID: $LAST" "/v1/jobs/$ID2/events"
wait_for "the resumed job stream ends" 'exists(W+"/s2b.rc")'
pyrun '
L = rank("'"$LAST"'")
ev = events(W+"/s2b")
assert ev and ev[-1]["event"] == "succeeded" and ev[-1]["data"]["result"] == {"ms": 3000}, ev
assert all(rank(e["id"]) > L for e in ev), [e["id"] for e in ev]
before = max(e["data"]["progress"] for e in events(W+"/s2") if e["event"] != "snapshot")
assert all((e["data"]["progress"] > before) for e in ev if e["event"] == "progress")' || fail "resumed after $LAST: $(cat "$WORK/s2b")"
pass
stop_worker

# ---- a restart while the job runs in the worker process: the job, its
# stream (Last-Event-ID) and its webhook survive ----
start_worker 3
submit "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":3000,"restart":true},"webhook":{"url":"'"$RECV/ok/restart"'"}}'
ID3=$ID
sse "$WORK/s3" "${A[@]}" "/v1/jobs/$ID3/events"
wait_for "progress before the restart" '[e for e in events(W+"/s3") if e["event"] == "progress" and e["data"]["progress"] >= 20]'
stop_server "$SERVER_PID"
wait_for "the stream ended with the server" 'exists(W+"/s3.rc")'
LAST=$(python3 -c "$PYLIB
import sys; print(events(sys.argv[1])[-1]['id'])" "$WORK/s3")
pyc 'events(W+"/s3")[-1]["event"] in ("progress", "started")' || fail "before restart: $(cat "$WORK/s3")"
start_server b --storage "sqlite:$DB" --config "$WORK/conf.json" --submit-only
sse "$WORK/s3b" "${A[@]}" -H "Last-Event-ID: $LAST" "/v1/jobs/$ID3/events"
wait_for "the stream after the restart ends" 'exists(W+"/s3b.rc")'
pyrun '
L = rank("'"$LAST"'")
ev = events(W+"/s3b")
assert ev and ev[-1]["event"] == "succeeded" and ev[-1]["data"]["result"] == {"ms": 3000, "restart": True}, ev
assert all(rank(e["id"]) > L for e in ev), [e["id"] for e in ev]' || fail "after the restart, from $LAST: $(cat "$WORK/s3b")"
pass
for _ in $(seq 1 300); do
  curl -s "$RECV/log?prefix=/ok/restart" >"$WORK/hook.json"
  python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])) else 1)' "$WORK/hook.json" && break
  sleep 0.1
done
python3 - "$WORK/hook.json" "$ID3" <<'PY' || fail "the job's webhook after the restart: $(cat "$WORK/hook.json")"
import json, sys
log, job = json.load(open(sys.argv[1])), sys.argv[2]
assert log and all(r["verified"] for r in log), log
assert len({r["id"] for r in log}) == 1 and log[0]["id"] == job + ":0:succeeded", log
body = json.loads(log[0]["body"])
assert body["type"] == "job.succeeded" and body["data"]["jobId"] == job, body
assert body["data"]["result"] == {"ms": 3000, "restart": True}, body
PY
pass
stop_worker

# ---- SIGTERM with streams and long polls open: they end, the server exits 0 ----
submit "${A[@]}" "${J[@]}" -d '{"kind":"nobody-runs-this"}'
ID4=$ID
sse "$WORK/s4" "${A[@]}" "/v1/jobs/$ID4/events"
sse "$WORK/g4" "${ADM[@]}" /v1/events
( curl -s "${A[@]}" "$BASE/v1/jobs/$ID4?wait=60" >"$WORK/poll4"; echo $? >"$WORK/poll4.rc" ) &
CURL_PIDS+=($!)
wait_for "streams open" 'events(W+"/s4") and text(W+"/g4").startswith(": ok")'
sleep 0.3
stop_server "$SERVER_PID"
wait_for "the long poll answered at SIGTERM" 'exists(W+"/poll4.rc") and json.loads(text(W+"/poll4"))["job"]["state"] == "queued"'
wait_for "the streams ended" 'exists(W+"/s4.rc") and exists(W+"/g4.rc")'
[ "$(cat "$WORK/s4.rc")" = 0 ] && [ "$(cat "$WORK/g4.rc")" = 0 ] ||
  fail "streams cut instead of ended: curl exits $(cat "$WORK/s4.rc") $(cat "$WORK/g4.rc")"
grep -q "still unanswered" "$WORK/server-b.log" && fail "SIGTERM waited for the streams"
grep -q '"path":"/v1/jobs/'"$ID4"'/events","status":200' "$WORK/server-b.log" || fail "no log line for the stream"
pass
for p in "${CURL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
exec 8>&- # the receiver exits
finish
