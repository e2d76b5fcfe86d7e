#!/usr/bin/env bash
# jobq-server's general API (/v1) with the real curl: submit, get, list,
# cancel, the job run by a separate `jobq work` process on the same SQLite
# file, keys bound to owners and administrator keys, and every error the
# API defines: 401, 403, 404, 405, 409, 413, 415, 400, 429, each a JSON
# {success: false, error: {code, message}} that stores nothing.
#
#   api.sh SERVER JOBQ      (the built jobq-server and jobq programs)
. "$(dirname "$0")/lib.sh" "$1"
JOBQ=${2:-NOT_BUILT}
[ -x "$JOBQ" ] || { echo "the jobq program is not built; skipped"; exit 77; }
JOBQ=$(cd "$(dirname "$JOBQ")" && pwd)/$(basename "$JOBQ")

cat >"$WORK/conf.json" <<'JSON'
{"keys": [{"key": "alice-key", "owner": "alice"}, {"key": "bob-key", "owner": "bob"},
          {"key": "admin-key", "owner": "*"}],
 "ownerQuotas": {"slow": 2}}
JSON
start_server a --storage "sqlite:$WORK/q.db" --config "$WORK/conf.json" --submit-only \
  --max-body 4096 --cors https://app.example.test
A=(-H 'x-api-key: alice-key')
B=(-H 'x-api-key: bob-key')
ADM=(-H 'Authorization: Bearer admin-key')
J=(-H 'content-type: application/json')

# ---- authentication: 401 stores nothing ----
req POST /v1/jobs "${J[@]}" -d '{"kind":"echo"}'
expect 401
check "401 is a JSON error" 'j["success"] is False and j["error"]["code"] == "unauthorized"'
echo "$HEADERS" | grep -qi '^www-authenticate: Bearer' || fail "401 without WWW-Authenticate"
req POST /v1/jobs "${J[@]}" -H 'x-api-key: alice-keyX' -d '{"kind":"echo"}'
expect 401
req POST /v1/jobs "${J[@]}" -H 'x-api-key: alice-ke' -d '{"kind":"echo"}'
expect 401
req GET /v1/jobs "${ADM[@]}"
expect 200
check "nothing stored by refused requests" 'j["jobs"] == [] and j["nextCursor"] is None'

# ---- submit and read ----
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":0,"n":1},"priority":5}'
expect 202
check "submit answers the ticket" 'j["success"] and len(j["id"]) == 36 and j["job"]["state"] == "queued" and j["job"]["owner"] == "alice" and j["job"]["priority"] == 5'
ID1=$(jget 'j["id"]')
req GET "/v1/jobs/$ID1" "${A[@]}"
expect 200
check "owner reads her job" 'j["job"]["id"] == "'"$ID1"'" and j["job"]["payload"] == {"ms": 0, "n": 1}'
req GET "/v1/jobs/$ID1" "${B[@]}"
expect 404
check "another owner's job is unknown to bob" 'j["error"]["code"] == "JOBQ_ENOTFOUND"'
req GET "/v1/jobs/$ID1" "${ADM[@]}"
expect 200
req GET "/v1/jobs/01a24a5f-0000-7000-8000-000000000000" "${A[@]}"
expect 404
req GET "/v1/jobs/not-an-id" "${A[@]}"
expect 404

# an owner key cannot submit for another owner; an administrator can
req POST /v1/jobs "${B[@]}" "${J[@]}" -d '{"kind":"echo","owner":"alice"}'
expect 403
req POST /v1/jobs "${ADM[@]}" "${J[@]}" -d '{"kind":"echo","owner":"carol","payload":{"ms":0}}'
expect 202
ID_CAROL=$(jget 'j["id"]')

# dedupe: the same key answers the same job (200, deduplicated)
req POST /v1/jobs "${B[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":0},"dedupeKey":"k-1","dedupeTtlMs":60000}'
expect 202
ID_B=$(jget 'j["id"]')
req POST /v1/jobs "${B[@]}" "${J[@]}" -d '{"kind":"echo","payload":{"ms":0},"dedupeKey":"k-1","dedupeTtlMs":60000}'
expect 200
check "dedupe answers the live job" 'j["deduplicated"] is True and j["id"] == "'"$ID_B"'"'

# ---- list ----
req GET "/v1/jobs" "${A[@]}"
expect 200
check "alice lists only hers" 'len(j["jobs"]) == 1 and j["jobs"][0]["id"] == "'"$ID1"'"'
req GET "/v1/jobs?owner=alice" "${B[@]}"
expect 403
req GET "/v1/jobs?limit=2" "${ADM[@]}"
expect 200
check "administrator pages through all" 'len(j["jobs"]) == 2 and j["nextCursor"]'
CUR=$(jget 'j["nextCursor"]')
req GET "/v1/jobs?limit=2&cursor=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$CUR")" "${ADM[@]}"
expect 200
check "second page" 'len(j["jobs"]) == 1 and j["nextCursor"] is None'
req GET "/v1/jobs?state=bogus" "${ADM[@]}"
expect 400
req GET "/v1/jobs?limit=5000000" "${ADM[@]}"
expect 400
check "a limit out of range says the range" '"1..1000" in j["error"]["message"] and "5000000" in j["error"]["message"]'
req GET "/v1/jobs?limit=many" "${ADM[@]}"
expect 400
req GET "/v1/jobs/$ID1/deliveries?limit=5" "${A[@]}"
expect 200
check "a job without webhooks has no deliveries" 'j["success"] and j["deliveries"] == [] and j["nextCursor"] is None'
req GET "/v1/jobs/$ID1/deliveries?limit=0" "${A[@]}"
expect 400
req GET "/v1/jobs/$ID1/deliveries" "${B[@]}"
expect 404
req GET "/v1/jobs?kind=echo&state=queued&owner=carol" "${ADM[@]}"
expect 200
check "filters combine" '[x["id"] for x in j["jobs"]] == ["'"$ID_CAROL"'"]'

# ---- bad input ----
req POST /v1/jobs "${A[@]}" -H 'content-type: text/plain' -d '{"kind":"echo"}'
expect 415
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo",'
expect 400
check "malformed JSON says where" 'j["error"]["code"] == "malformed_json" and "byte" in j["error"]["message"]'
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '[1,2]'
expect 400
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"payload":{}}'
expect 400
check "kind is required" '"kind" in j["error"]["message"]'
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","priority":"high"}'
expect 400
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"bad kind!"}'
expect 400
check "a malformed kind is libjobq's JOBQ_EKIND sentence" 'j["error"]["message"]'
req POST /v1/jobs "${A[@]}" "${J[@]}" -d "{\"kind\":\"echo\",\"payload\":\"$(head -c 5000 /dev/zero | tr '\0' x)\"}"
expect 413
check "413 is JSON" 'j["error"]["code"] == "too_large"'
req GET /v1/nothing "${A[@]}"
expect 404
check "unknown route" 'j["error"]["code"] == "not_found"'
req PUT /v1/jobs "${A[@]}"
expect 405
echo "$HEADERS" | grep -qi '^allow: POST, GET' || fail "405 without Allow: $HEADERS"
req PATCH "/v1/jobs/$ID1" "${A[@]}"
expect 405
req GET /v1/jobs "${A[@]}"
check "bad requests stored nothing" 'len(j["jobs"]) == 1'

# webhooks: the field's shape, and a server without endpoints cannot sign
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","webhook":{"endpoint":"x"}}'
expect 400
check "a webhook needs a url" '"webhook" in j["error"]["message"]'
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","webhook":{"url":"https://example.com/h","events":["done"]}}'
expect 400
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","webhook":{"url":"https://example.com/h"}}'
expect 400
check "no endpoint to sign with" '"JOBQ_WEBHOOK_SECRET_" in j["error"]["message"]'

# ---- quota: 429 with Retry-After ----
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"slow"}'
expect 202
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"slow"}'
expect 202
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"slow"}'
expect 429
check "quota error" 'j["error"]["code"] == "JOBQ_EQUOTA"'
echo "$HEADERS" | grep -qi '^retry-after: [0-9]' || fail "429 without Retry-After"

# ---- cancel ----
req POST /v1/jobs "${A[@]}" "${J[@]}" -d '{"kind":"echo","delayMs":600000}'
expect 202
ID_LATER=$(jget 'j["id"]')
req DELETE "/v1/jobs/$ID_LATER" "${B[@]}"
expect 404
req DELETE "/v1/jobs/$ID_LATER" "${A[@]}"
expect 200
check "cancelled" 'j["job"]["state"] == "cancelled"'
req DELETE "/v1/jobs/$ID_LATER" "${A[@]}"
expect 409
check "cancel of a finished job" 'j["error"]["code"] == "JOBQ_ESTATE"'

# ---- a separate worker process runs the jobs; the server reports them ----
"$JOBQ" --storage "sqlite:$WORK/q.db" work echo --for 3000 >"$WORK/worker.log" 2>&1
req GET "/v1/jobs/$ID1" "${A[@]}"
expect 200
check "the worker's result is served" 'j["job"]["state"] == "succeeded" and j["job"]["result"] == {"ms": 0, "n": 1} and j["job"]["finishedAt"] >= j["job"]["createdAt"]'

# ---- stats, metrics, health: administrators only (health: anyone) ----
req GET /v1/stats "${A[@]}"
expect 403
req GET /v1/stats "${ADM[@]}"
expect 200
check "stats per kind" 'j["stats"]["kinds"]["echo"]["queued"] == 0 and "slow" in j["stats"]["kinds"]'
req GET /metrics "${ADM[@]}"
expect 200
echo "$BODY" | grep -q '^jobq_jobs{kind="slow",state="queued"} 2' ||
  echo "$BODY" | grep -q 'kind="slow"' || fail "metrics without the kind: $BODY"
pass
req GET /healthz
expect 200
check "healthy" 'j["status"] == "ok"'

# ---- CORS ----
req OPTIONS /v1/jobs -H 'Origin: https://app.example.test' -H 'Access-Control-Request-Method: POST'
expect 204
echo "$HEADERS" | grep -qi '^access-control-allow-origin: https://app.example.test' || fail "no CORS: $HEADERS"
echo "$HEADERS" | grep -qi '^access-control-allow-headers:.*x-api-key' || fail "preflight headers: $HEADERS"
req GET /v1/jobs "${A[@]}" -H 'Origin: https://evil.example.test'
expect 200
echo "$HEADERS" | grep -qi '^access-control-allow-origin' && fail "CORS for an origin not allowed"
pass

# ---- a bad configuration: exit 2 with a sentence naming the member, nothing created ----
echo '{"ownerQuotas": {"slow": -5}}' >"$WORK/bad.json"
rc=0
"$SERVER" --no-auth --listen 127.0.0.1:0 --config "$WORK/bad.json" --storage "sqlite:$WORK/bad.db" \
  2>"$WORK/bad.err" || rc=$?
[ $rc = 2 ] || fail "a bad ownerQuotas: exit $rc, expected 2"
grep -q 'ownerQuotas.slow' "$WORK/bad.err" || fail "the sentence does not name the member: $(cat "$WORK/bad.err")"
[ ! -e "$WORK/bad.db" ] || fail "a refused configuration created the database"
pass

# ---- slow clients are dropped ----
stop_server "$SERVER_PID"
start_server b --storage "sqlite:$WORK/q.db" --config "$WORK/conf.json" --submit-only \
  --request-timeout 300
python3 - "$PORT" <<'PY' || fail "a client that sends half a request was not dropped"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # never the blank line
s.settimeout(5)
t = time.time()
data = s.recv(100)   # b"" when the server closes
sys.exit(0 if time.time() - t < 4 else 1)
PY
pass
req GET /healthz
expect 200
stop_server "$SERVER_PID"
grep -q '"path":"/v1/jobs","status":401' "$WORK/server-a.log" || fail "no request log line"
grep -q 'alice-key\|admin-key\|bob-key' "$WORK"/server-*.log && fail "a key in the log"
pass
finish
