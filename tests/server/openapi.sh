#!/usr/bin/env bash
# jobq-server's OpenAPI document: GET /openapi.json serves exactly
# examples/server/assets/openapi.json (with an ETag and 304), and the
# answers to a request of every kind the server has here (/v1 jobs run by a
# `jobq work` process, succeeded and failed, deliveries, stats, metrics,
# health, HEAD, CORS preflight, /audio/ with ranges, a finished job's SSE
# stream and the dashboard page when the build has them, and the errors 400,
# 401, 403, 404, 405, 409, 413, 415) are valid against it: finish runs
# tests/server/openapi_check.py on every one. The other server tests do the
# same for the endpoints they exercise (podcast, streams, dashboard).
#
#   openapi.sh SERVER JOBQ      (the built jobq-server and jobq programs)
. "$(dirname "$0")/lib.sh" "$1"
JOBQ=${2:-NOT_BUILT}
[ -x "$JOBQ" ] || { echo "the jobq program is not built; skipped"; exit 77; }
JOBQ=$(cd "$(dirname "$JOBQ")" && pwd)/$(basename "$JOBQ")
python3 -c 'import jsonschema' 2>/dev/null || { echo "python3-jsonschema is missing; skipped"; exit 77; }
DOC=$SRC/examples/server/assets/openapi.json

cat >"$WORK/conf.json" <<'JSON'
{"keys": [{"key": "alice-key", "owner": "alice"}, {"key": "admin-key", "owner": "*"}]}
JSON
mkdir -p "$WORK/audio/sub"
python3 -c 'import sys; sys.stdout.buffer.write(b"RIFF" + bytes(range(1, 256)) * 4)' >"$WORK/audio/episode.wav"
start_server a --storage "sqlite:$WORK/q.db" --config "$WORK/conf.json" --submit-only \
  --max-body 4096 --cors https://app.example.test --audio-dir "$WORK/audio"
A=(-H 'x-api-key: alice-key')
ADM=(-H 'Authorization: Bearer admin-key')
J=(-H 'content-type: application/json')

# ---- the document, as served ----
req GET /openapi.json
expect 200
[ "$CTYPE" = application/json ] || fail "/openapi.json served as $CTYPE"
curl -s "$BASE/openapi.json" -o "$WORK/served.json"
cmp -s "$WORK/served.json" "$DOC" || fail "GET /openapi.json is not examples/server/assets/openapi.json"
pass
check "an OpenAPI 3.1 document" 'j["openapi"].startswith("3.1.") and "/v1/jobs" in j["paths"]'
python3 "$SRC/tests/server/openapi_check.py" "$WORK/served.json" || fail "the served document is not valid"
pass
ETAG=$(echo "$HEADERS" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p')
[ -n "$ETAG" ] || fail "/openapi.json without an ETag"
req GET /openapi.json -H "If-None-Match: $ETAG"
expect 304

# ---- /v1: jobs of every state, run by a worker process ----
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":0,"n":1},"priority":5}'
expect 202
ID_OK=$(jget 'j["id"]')
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"fail":"boom"},"maxAttempts":1}'
expect 202
ID_FAIL=$(jget 'j["id"]')
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{},"dedupeKey":"d-1","dedupeTtlMs":60000}'
expect 202
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{},"dedupeKey":"d-1","dedupeTtlMs":60000}'
expect 200
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"later","delayMs":600000}'
expect 202
ID_LATER=$(jget 'j["id"]')
"$JOBQ" --storage "sqlite:$WORK/q.db" work echo --for 3000 >"$WORK/worker.log" 2>&1
req GET "/v1/jobs/$ID_OK" "${A[@]}"
expect 200
check "succeeded with its result" 'j["job"]["state"] == "succeeded" and j["job"]["result"] == {"ms": 0, "n": 1} and len(j["job"]["attemptLog"]) == 1'
req GET "/v1/jobs/$ID_FAIL?wait=1" "${A[@]}"
expect 200
check "failed with its error" 'j["job"]["state"] == "failed" and "boom" in j["job"]["error"]'
req GET "/v1/jobs/$ID_LATER?wait=0" "${A[@]}"
expect 200
req GET "/v1/jobs/$ID_LATER?wait=99" "${A[@]}"
expect 400
req GET "/v1/jobs?order=oldest&limit=2" "${ADM[@]}"
expect 200
check "a page and a cursor" 'len(j["jobs"]) == 2 and j["nextCursor"]'
req GET "/v1/jobs?state=failed&kind=echo" "${A[@]}"
expect 200
req GET "/v1/jobs/$ID_OK/deliveries" "${A[@]}"
expect 200
check "no deliveries without webhooks" 'j["deliveries"] == [] and j["nextCursor"] is None'
req DELETE "/v1/jobs/$ID_LATER" "${A[@]}"
expect 200
req DELETE "/v1/jobs/$ID_OK" "${A[@]}"
expect 409
req GET "/v1/stats" "${ADM[@]}"
expect 200
check "stats of the kinds" '"echo" in j["stats"]["kinds"]'
req GET /metrics "${ADM[@]}"
expect 200
req GET /healthz
expect 200
req HEAD /healthz -I
expect 200

# ---- streams and the dashboard, when this build has them (a placeholder
# answers "no such route"; their own tests exercise them fully) ----
routed() { ! curl -s -m 2 "$BASE$1" "${A[@]}" | grep -q '"message":"no such route'; }
if routed "/v1/jobs/$ID_OK/events"; then
  # a finished job's stream: the snapshot and the terminal event, then the end
  req GET "/v1/jobs/$ID_OK/events" "${A[@]}"
  expect 200
  grep -q '^event: succeeded' <<<"$BODY" || fail "no terminal event in: $BODY"
  pass
  LAST=$(sed -n 's/^id: *//p' <<<"$BODY" | tail -1)
  req GET "/v1/jobs/$ID_OK/events" "${A[@]}" -H "Last-Event-ID: $LAST"
  expect 204
  req GET /v1/events "${A[@]}" -m 1 # a stream that stays open: its start
  expect 200
fi
req GET /v1/jobs/01a24a5f-0000-7000-8000-000000000000/events "${A[@]}"
expect 404
if routed /; then
  req GET /
  expect 200
  [ "$CTYPE" = text/html ] || fail "the dashboard served as $CTYPE"
  pass
  PETAG=$(echo "$HEADERS" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p')
  req GET / -H "If-None-Match: $PETAG"
  expect 304
  req GET /dashboard/app.js
  expect 200
  req GET /dashboard/none.js
  expect 404
fi

# ---- errors ----
req GET /v1/jobs
expect 401
req GET /v1/stats
expect 401
req GET /v1/stats "${A[@]}"
expect 403
req GET /metrics "${A[@]}"
expect 403
req GET "/v1/jobs/$ID_OK/deliveries" -H 'x-api-key: nobody'
expect 401
req GET /v1/jobs/01a24a5f-0000-7000-8000-000000000000 "${A[@]}"
expect 404
req GET /v1/jobs/01a24a5f-0000-7000-8000-000000000000/deliveries "${A[@]}"
expect 404
req DELETE /v1/jobs/01a24a5f-0000-7000-8000-000000000000 "${A[@]}"
expect 404
req POST /v1/jobs "${A[@]}" -H 'content-type: text/plain' -d '{"kind":"echo"}'
expect 415
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":'
expect 400
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","owner":"bob"}'
expect 403
req POST /v1/jobs "${A[@]}" "${J[@]}" -d "{\"kind\":\"echo\",\"payload\":\"$(head -c 5000 /dev/zero | tr '\0' x)\"}"
expect 413
req GET /v1/nothing "${A[@]}"
expect 404
req DELETE /healthz
expect 405
req OPTIONS /v1/jobs -H 'Origin: https://app.example.test' -H 'Access-Control-Request-Method: POST'
expect 204
req OPTIONS /v1/jobs
expect 405

# ---- /audio/: the local upload provider's files, with ranges ----
req GET /audio/episode.wav
expect 200
check_audio() { [ "${BODY:0:4}" = RIFF ] || fail "audio bytes: ${BODY:0:16}"; pass; }
check_audio
req GET /audio/episode.wav -r 0-99
expect 206
check_audio
AETAG=$(echo "$HEADERS" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p')
req GET /audio/episode.wav -H "If-None-Match: $AETAG"
expect 304
req GET /audio/episode.wav -r 5000-6000
expect 416
req GET /audio/sub
expect 301
req GET /audio/none.wav
expect 404

stop_server "$SERVER_PID"
finish
