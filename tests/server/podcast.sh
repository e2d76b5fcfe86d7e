#!/usr/bin/env bash
# jobq-server's podcast service with the real curl: POST
# /api/podcast/generate/async (202 ticket, then the job polled to its audio,
# which /audio/ serves with ranges), the cache (200 cached: true) and
# forceRegenerate, a user's jobs newest first and paged, keys bound to
# owners, bad input (400, 415), POST /api/cron/pregenerate (401 without the
# secret, the batch's summary with it); then two submit-only servers and a
# worker process (examples/podcast --work) on one SQLite file.
#
#   podcast.sh SERVER JOBQ PODCAST   (the built jobq-server, jobq, examples/podcast)
# Offline: the podcasts are spoken by espeak-ng; without its data, skipped.
. "$(dirname "$0")/lib.sh" "$1"
PODCAST=${3:-NOT_BUILT}
if [ "$PODCAST" = NOT_BUILT ] || [ ! -x "$PODCAST" ]; then
  echo "examples/podcast is not built (no libjobq-stages or no espeak-ng); skipped"
  exit 77
fi
PODCAST=$(cd "$(dirname "$PODCAST")" && pwd)/$(basename "$PODCAST")

cat >"$WORK/conf.json" <<'JSON'
{"keys": [{"key": "alice-key", "owner": "alice"}, {"key": "bob-key", "owner": "bob"},
          {"key": "admin-key", "owner": "*"}],
 "cronSecret": "cron-secret",
 "podcast": {"cacheTtlMs": 3600000},
 "pregenerate": {"users": ["u1", "u2", "u3"], "types": ["daily", "weekly"], "tz": "UTC",
                 "maxRunning": 2}}
JSON
mkdir -p "$WORK/audio"
start_server a --storage "sqlite:$WORK/a.db" --config "$WORK/conf.json" --audio-dir "$WORK/audio"
if grep -q "offline podcast pipeline cannot run here" "$WORK/server-a.log"; then
  echo "espeak-ng cannot speak here (its data is missing?): $(grep -m1 warning "$WORK/server-a.log"); skipped"
  exit 77
fi
A=(-H 'x-api-key: alice-key')
B=(-H 'x-api-key: bob-key')
ADM=(-H 'x-api-key: admin-key')
J=(-H 'content-type: application/json')
GEN=/api/podcast/generate/async
NOTE='Counties must inspect small bridges every four years. A weak bridge gets a weight limit. The state pays for half of the repairs.'
body() { # body NOTE_ID [EXTRA JSON MEMBERS]
  printf '{"noteId": "%s", "noteContent": "%s", "userId": "alice", "duration": "short"%s}' \
    "$1" "$NOTE" "${2:+, $2}"
}

# ---- bad input: each a JSON error, nothing stored ----
req POST $GEN "${J[@]}" -d "$(body n1)"
expect 401
req POST $GEN "${A[@]}" -H 'content-type: text/plain' -d "$(body n1)"
expect 415
check "415 is a JSON error" 'j["success"] is False and j["error"]["code"] == "unsupported_media_type"'
req POST $GEN "${A[@]}" "${J[@]}" -d '{"noteId": "n1", '
expect 400
check "malformed JSON" 'j["error"]["code"] == "malformed_json"'
req POST $GEN "${A[@]}" "${J[@]}" -d '{"noteId": "n1", "userId": "alice"}'
expect 400
check "noteContent is required" '"noteContent" in j["error"]["message"]'
req POST $GEN "${A[@]}" "${J[@]}" -d '{"noteContent": ""}'
expect 400
check "empty noteContent" '"noteContent" in j["error"]["message"]'
req POST $GEN "${A[@]}" "${J[@]}" -d '{"noteContent": 42}'
expect 400
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1 '"duration": "huge"' | sed 's/, "duration": "short"//')"
expect 400
check "duration is short, medium or long" '"short, medium, long" in j["error"]["message"]'
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1 '"forceRegenerate": "yes"')"
expect 400
req POST $GEN "${ADM[@]}" "${J[@]}" -d "{\"noteContent\": \"$NOTE\"}"
expect 400
check "an administrator names the user" '"userId" in j["error"]["message"]'
req POST $GEN "${B[@]}" "${J[@]}" -d "$(body n1)"
expect 403
check "bob cannot submit for alice" 'j["error"]["code"] == "forbidden"'
req GET /api/podcast/jobs/user/alice "${ADM[@]}"
expect 200
check "refused requests stored nothing" 'j["success"] and j["jobs"] == [] and j["nextCursor"] is None'

# ---- generate: the ticket, then the job polled to its audio ----
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1)"
expect 202
check "the ticket" 'j["success"] is True and len(j["jobId"]) == 36 and j["status"] == "queued" and j["message"] and isinstance(j["position"], int) and j["position"] >= 0 and isinstance(j["estimatedWaitSeconds"], int) and j["estimatedWaitSeconds"] > 0'
ID1=$(jget 'j["jobId"]')

# poll_done BASE_URL KEY ID: polls the job every 0.1 s (60 s at most) until
# it has completed or failed; STATUSES gets each status seen, in order.
poll_done() {
  local base=$1 key=$2 id=$3 saved=$BASE
  BASE=$base
  STATUSES=""
  for _ in $(seq 1 600); do
    req GET "/api/podcast/jobs/$id" -H "x-api-key: $key"
    expect 200
    local s
    s=$(jget 'j["job"]["status"] + ":" + str(j["job"]["progress"])')
    STATUSES="$STATUSES $s"
    case $s in completed:* | failed:*) break ;; esac
    sleep 0.1
  done
  BASE=$saved
}
# ordered STATUSES: statuses never go back, progress never falls.
ordered() {
  python3 - "$STATUSES" <<'PY' || fail "statuses out of order: $STATUSES"
import sys
rank = {"queued": 0, "processing": 1, "completed": 2, "failed": 2}
seen = [(rank[s.split(":")[0]], int(s.split(":")[1])) for s in sys.argv[1].split()]
sys.exit(0 if seen == sorted(seen) else 1)
PY
  pass
}
poll_done "$BASE" alice-key "$ID1"
ordered
check "completed with its audio" 'j["success"] and j["job"]["jobId"] == "'"$ID1"'" and j["job"]["status"] == "completed" and j["job"]["progress"] == 100 and j["job"]["currentStep"] == "Done" and "error" not in j["job"]'
check "the transcript is a list of {speaker, text}" 'len(j["job"]["transcript"]) >= 3 and all(set(t) == {"speaker", "text"} and t["speaker"] and t["text"] for t in j["job"]["transcript"]) and j["job"]["transcript"][0]["speaker"] == "Alex"'
check "audioDuration in seconds" 'isinstance(j["job"]["audioDuration"], (int, float)) and j["job"]["audioDuration"] > 0'
check "ISO 8601 times" 'j["job"]["createdAt"].endswith("Z") and j["job"]["completedAt"] >= j["job"]["createdAt"] and len(j["job"]["completedAt"]) == 24'
check "the audio is served by this server" 'j["job"]["audioUrl"] == "'"$BASE/audio/$ID1.wav"'"'
URL1=$(jget 'j["job"]["audioUrl"]')
DUR1=$(jget 'j["job"]["audioDuration"]')
[ "$(curl -s -o "$WORK/a1.wav" -w '%{http_code}' "$URL1")" = 200 ] || fail "GET $URL1"
[ "$(head -c 4 "$WORK/a1.wav")" = RIFF ] || fail "the audio is not WAV: $(head -c 16 "$WORK/a1.wav" | od -c | head -2)"
cmp -s "$WORK/a1.wav" "$WORK/audio/$ID1.wav" || fail "the served audio differs from the uploaded file"
pass
[ "$(curl -s -r 0-99 -o "$WORK/range" -w '%{http_code}' "$URL1")" = 206 ] || fail "a range request is not 206"
[ "$(stat -c %s "$WORK/range")" = 100 ] || fail "the range is not 100 bytes"
cmp -s "$WORK/range" <(head -c 100 "$WORK/a1.wav") || fail "the range holds other bytes"
pass

# ---- the cache: the same request answers the job; forceRegenerate does not ----
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1)"
expect 200
check "cached" 'j["success"] and j["cached"] is True and j["jobId"] == "'"$ID1"'" and j["status"] == "completed" and j["audioUrl"] == "'"$URL1"'" and j["audioDuration"] == '"$DUR1"' and len(j["transcript"]) >= 3 and j["job"]["jobId"] == "'"$ID1"'"'
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1 | sed 's/"short"/"long"/')"
expect 202
check "another duration is another podcast" 'j["jobId"] != "'"$ID1"'"'
ID2=$(jget 'j["jobId"]')
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1 '"forceRegenerate": true')"
expect 202
check "forceRegenerate makes a new job" 'j["jobId"] not in ("'"$ID1"'", "'"$ID2"'") and j["status"] == "queued"'
ID3=$(jget 'j["jobId"]')
# an owner key may leave userId out: the job is its owner's
req POST $GEN "${A[@]}" "${J[@]}" -d "{\"noteId\": \"n2\", \"noteContent\": \"$NOTE Two.\"}"
expect 202
ID4=$(jget 'j["jobId"]')
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1)"
expect 200
check "the forced job holds the key now" 'j["cached"] is True and j["jobId"] == "'"$ID3"'"'
for id in "$ID2" "$ID3" "$ID4"; do
  poll_done "$BASE" alice-key "$id"
  ordered
  check "completed" 'j["job"]["status"] == "completed"'
done

# ---- a user's jobs: newest first, paged; owners see their own ----
req GET /api/podcast/jobs/user/alice "${A[@]}"
expect 200
check "newest first" '[x["jobId"] for x in j["jobs"]] == ["'"$ID4"'", "'"$ID3"'", "'"$ID2"'", "'"$ID1"'"] and j["nextCursor"] is None'
check "the job shape" 'all(x["status"] == "completed" and x["audioUrl"].startswith("'"$BASE"'/audio/") for x in j["jobs"])'
req GET "/api/podcast/jobs/user/alice?limit=3" "${A[@]}"
expect 200
check "a page" '[x["jobId"] for x in j["jobs"]] == ["'"$ID4"'", "'"$ID3"'", "'"$ID2"'"] and j["nextCursor"]'
CUR=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$(jget 'j["nextCursor"]')")
req GET "/api/podcast/jobs/user/alice?limit=3&cursor=$CUR" "${A[@]}"
expect 200
check "the next page" '[x["jobId"] for x in j["jobs"]] == ["'"$ID1"'"] and j["nextCursor"] is None'
req GET "/api/podcast/jobs/user/alice?limit=0" "${A[@]}"
expect 400
req GET /api/podcast/jobs/user/alice "${B[@]}"
expect 403
check "bob cannot list alice" 'j["error"]["code"] == "forbidden"'
req GET /api/podcast/jobs/user/bob "${B[@]}"
expect 200
check "bob has none" 'j["jobs"] == []'
req GET /api/podcast/jobs/user/alice "${ADM[@]}"
expect 200
check "an administrator lists anyone" 'len(j["jobs"]) == 4'
req GET "/api/podcast/jobs/$ID1" "${B[@]}"
expect 404
check "alice's job is unknown to bob" 'j["error"]["code"] == "JOBQ_ENOTFOUND"'
req GET "/api/podcast/jobs/$ID1" "${ADM[@]}"
expect 200
req GET /api/podcast/jobs/01a24a5f-0000-7000-8000-000000000000 "${A[@]}"
expect 404
req GET /api/podcast/jobs/not-an-id "${A[@]}"
expect 404
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind": "other", "payload": {}}'
expect 202
OTHER=$(jget 'j["id"]')
req GET "/api/podcast/jobs/$OTHER" "${A[@]}"
expect 404
check "a job of another kind is no podcast" 'j["error"]["code"] == "JOBQ_ENOTFOUND"'
req PUT "/api/podcast/jobs/$ID1" "${A[@]}"
expect 405

# ---- the nightly batch on demand ----
req POST /api/cron/pregenerate
expect 401
req POST /api/cron/pregenerate -H 'Authorization: Bearer wrong-secret'
expect 401
check "401 is a JSON error" 'j["error"]["code"] == "unauthorized"'
req POST /api/cron/pregenerate "${A[@]}"
expect 403
req GET /api/podcast/jobs/user/u1 "${ADM[@]}"
expect 200
check "refused cron requests stored nothing" 'j["jobs"] == []'
req POST /api/cron/pregenerate -H 'Authorization: Bearer cron-secret'
expect 200
check "the summary" 'j["total"] == 6 and j["successful"] == 6 and j["failed"] == 0 and j["errors"] == [] and j["cached"] == 0'
req GET /api/podcast/jobs/user/u1 "${ADM[@]}"
expect 200
check "one podcast per type, done" 'len(j["jobs"]) == 2 and all(x["status"] == "completed" and x["audioDuration"] > 0 for x in j["jobs"])'
req POST /api/cron/pregenerate -H 'Authorization: Bearer cron-secret'
expect 200
check "the same day again: all cached" 'j["total"] == 6 and j["successful"] == 6 and j["cached"] == 6 and j["failed"] == 0'
req POST "/api/cron/pregenerate?force=1" "${ADM[@]}"
expect 200
check "an administrator key, forced: all made again" 'j["total"] == 6 and j["successful"] == 6 and j["cached"] == 0'
req GET /api/podcast/jobs/user/u2 "${ADM[@]}"
expect 200
check "the forced run added its jobs" 'len(j["jobs"]) == 4'
stop_server "$SERVER_PID"

# ---- the configuration's pipeline: a script provider that takes its time ----
# (the local double of the OpenAI API, answering after 4 s): the job is seen
# processing, a cancelled one (its request held until the cancel) is
# "failed" with error "cancelled", a failed one says why and is not cached.
mkfifo "$WORK/prov.in"
python3 "$SRC/tests/servers/providers.py" <"$WORK/prov.in" >"$WORK/prov.out" 2>"$WORK/prov.err" &
SERVER_PIDS+=("$!")
exec 7>"$WORK/prov.in" # the double exits when this closes
for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/prov.out" && break; sleep 0.05; done
PROV=http://127.0.0.1:$(sed -n 's/^PORT //p' "$WORK/prov.out")
curl -sf -X POST "$PROV/_faults" -d '{"route": "openai", "default_delay_ms": 4000}' >/dev/null ||
  fail "the provider double did not start"
mkdir -p "$WORK/audio3"
python3 - "$WORK/conf.json" "$PROV" "$WORK/audio3" >"$WORK/conf3.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["pipeline"] = {"script": {"provider": "openai", "base_url": sys.argv[2], "api_key": "test-openai-key"},
                 "tts": {"provider": "espeak", "format": "wav"},
                 "upload": {"provider": "local", "dir": sys.argv[3]}}
print(json.dumps(c))
PY
start_server d --storage "sqlite:$WORK/d.db" --config "$WORK/conf3.json" --audio-dir "$WORK/audio3"
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1)"
expect 202
ID=$(jget 'j["jobId"]')
# the running podcast's Server-Sent Events, read by curl while it runs
( curl -sN -H 'x-api-key: alice-key' "$BASE/v1/jobs/$ID/events" >"$WORK/podcast.sse"
  echo $? >"$WORK/podcast.sse.rc" ) &
poll_done "$BASE" alice-key "$ID"
ordered
case $STATUSES in *" processing:"[12]?*) pass ;; *) fail "never seen processing the script: $STATUSES" ;; esac
for _ in $(seq 1 100); do [ -e "$WORK/podcast.sse.rc" ] && break; sleep 0.1; done
[ -e "$WORK/podcast.sse.rc" ] || fail "the podcast's event stream did not end after the job"
python3 - "$WORK/podcast.sse" <<'PY' || fail "the podcast's event stream: $(cat "$WORK/podcast.sse")"
import json, sys
evs, cur = [], {}
for line in open(sys.argv[1]).read().split("\n"):
    if line == "":
        if "data" in cur: evs.append((cur.get("event"), json.loads(cur["data"])))
        cur = {}
    elif not line.startswith(":"):
        k, _, v = line.partition(":")
        cur[k] = v[1:] if v.startswith(" ") else v
names = [e for e, _ in evs]
assert names[0] == "snapshot" and names[-1] == "succeeded", names
prog = [d["progress"] for e, d in evs if e == "progress"]
assert len(prog) >= 3 and prog == sorted(prog) and prog[-1] == 100, prog
steps = [d.get("step") for e, d in evs if e == "progress"]
assert "Generating script..." in steps or any("script" in (s or "").lower() for s in steps), steps
res = evs[-1][1]["result"]
assert res["audioDuration"] > 0 and res["audioUrl"] and res["dialogue"][0]["speaker"] == "Alex", res
PY
pass
check "completed through the configured pipeline" 'j["job"]["status"] == "completed" and j["job"]["audioUrl"] == "'"$BASE/audio/$ID.wav"'" and j["job"]["transcript"][0]["speaker"] == "Alex"'
curl -sf -X POST "$PROV/_faults" -d '{"route": "openai", "faults": [{"hang_ms": 120000}]}' >/dev/null
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n2)"
expect 202
ID=$(jget 'j["jobId"]')
for _ in $(seq 1 600); do
  req GET "/api/podcast/jobs/$ID" "${A[@]}"
  # (first "Starting..." at 5 %, while the checkpoint is read)
  [ "$(jget 'j["job"]["status"] + "/" + j["job"].get("currentStep", "")')" = "processing/Generating script..." ] && break
  sleep 0.1
done
check "processing, with its step" 'j["job"]["status"] == "processing" and j["job"]["currentStep"] == "Generating script..." and 5 <= j["job"]["progress"] < 100 and "completedAt" not in j["job"]'
req DELETE "/v1/jobs/$ID" "${A[@]}"
expect 200
poll_done "$BASE" alice-key "$ID"
check "a cancelled podcast is failed, error cancelled" 'j["job"]["status"] == "failed" and j["job"]["error"] == "cancelled" and "completedAt" in j["job"] and "audioUrl" not in j["job"]'
curl -sf -X POST "$PROV/_faults" -d '{"route": "openai", "faults": [{"status": 401}]}' >/dev/null
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n3)"
expect 202
ID=$(jget 'j["jobId"]')
poll_done "$BASE" alice-key "$ID"
check "a failed podcast says why" 'j["job"]["status"] == "failed" and "openai" in j["job"]["error"] and "401" in j["job"]["error"] and "transcript" not in j["job"]'
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n3)"
expect 202
check "a failed podcast is not cached" 'j["jobId"] != "'"$ID"'"'
stop_server "$SERVER_PID"
exec 7>&-

# ---- two submit-only servers and a worker process on one SQLite file ----
mkdir -p "$WORK/audio2"
start_server b --storage "sqlite:$WORK/shared.db" --config "$WORK/conf.json" --submit-only \
  --audio-dir "$WORK/audio2"
PID_B=$SERVER_PID
BASE_B=$BASE
start_server c --storage "sqlite:$WORK/shared.db" --config "$WORK/conf.json" --submit-only \
  --audio-dir "$WORK/audio2"
PID_C=$SERVER_PID
BASE_C=$BASE
BASE=$BASE_B
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n1)"
expect 202
XB=$(jget 'j["jobId"]')
BASE=$BASE_C
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n9)"
expect 202
XC=$(jget 'j["jobId"]')
req GET "/api/podcast/jobs/$XB" "${A[@]}"
expect 200
check "server c sees b's job, queued: nothing runs it yet" 'j["job"]["status"] == "queued" and j["job"]["progress"] == 0 and "audioUrl" not in j["job"]'
BASE=$BASE_B
req POST $GEN "${A[@]}" "${J[@]}" -d "$(body n9)"
expect 200
check "b answers c's job from the cache" 'j["cached"] is True and j["jobId"] == "'"$XC"'" and j["status"] == "queued"'
"$PODCAST" --work --storage "sqlite:$WORK/shared.db" --out "$WORK/audio2" --for 30000 \
  >"$WORK/worker.log" 2>&1 &
WORKER=$!
poll_done "$BASE_C" alice-key "$XB"
ordered
check "the worker completed b's job; c reports it" 'j["job"]["status"] == "completed" and j["job"]["audioUrl"] == "'"$BASE_C/audio/$XB.wav"'"'
URLX=$(jget 'j["job"]["audioUrl"]')
[ "$(curl -s -r 0-3 "$URLX")" = RIFF ] || fail "the worker's audio through server c"
pass
poll_done "$BASE_B" alice-key "$XC"
check "and c's job through b" 'j["job"]["status"] == "completed" and j["job"]["audioUrl"] == "'"$BASE_B/audio/$XC.wav"'"'
# the nightly batch through a submit-only server: it answers once the
# worker's process finished the batch (its events reach this one)
BASE=$BASE_C
req POST /api/cron/pregenerate -H 'Authorization: Bearer cron-secret'
expect 200
check "the worker's batch, summed up by c" 'j["total"] == 6 and j["successful"] == 6 and j["failed"] == 0 and j["cached"] == 0'
req GET /api/podcast/jobs/user/u3 "${ADM[@]}"
expect 200
check "u3's podcasts, done by the worker" 'len(j["jobs"]) == 2 and all(x["status"] == "completed" for x in j["jobs"])'
kill -TERM "$WORKER" 2>/dev/null || true
wait "$WORKER" 2>/dev/null || true
stop_server "$PID_B"
stop_server "$PID_C"
grep -q '"path":"/api/cron/pregenerate","status":200' "$WORK/server-c.log" || fail "no request log line"
grep -q 'cron-secret\|alice-key\|admin-key' "$WORK"/server-*.log && fail "a secret in the log"
pass
finish
