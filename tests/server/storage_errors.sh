#!/usr/bin/env bash
# jobq-server when its store fails: a write lock held by another process
# (SQLITE_BUSY past the URL's busy_timeout) and a full database
# (max_page_count) are answered 503 with Retry-After and a JSON error naming
# the libjobq code; nothing half-stored; reads go on meanwhile; the server
# keeps serving and submits succeed again once the store answers.
#
#   storage_errors.sh SERVER
. "$(dirname "$0")/lib.sh" "$1"
J=(-H 'content-type: application/json')

# ---- a lock held by another process ----
start_server busy --no-auth --submit-only --storage "sqlite:$WORK/busy.db?busy_timeout=200"
req POST /v1/jobs "${J[@]}" -d '{"kind":"echo","payload":{"n":1}}'
expect 202
ID=$(jget 'j["id"]')
python3 - "$WORK/busy.db" "$WORK/locked" "$WORK/release" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
for _ in range(600):                     # until the test says so (60 s at most)
    if os.path.exists(sys.argv[3]): break
    time.sleep(0.1)
db.execute("ROLLBACK")
PY
LOCKER=$!
for _ in $(seq 1 100); do [ -e "$WORK/locked" ] && break; sleep 0.05; done
[ -e "$WORK/locked" ] || fail "the locking process did not start"
req POST /v1/jobs "${J[@]}" -d '{"kind":"echo","payload":{"n":2}}'
expect 503
check "busy store: a JSON error with the code" 'j["success"] is False and j["error"]["code"] == "JOBQ_EBUSY" and j["error"]["message"]'
echo "$HEADERS" | grep -qi '^retry-after: [0-9]' || fail "503 without Retry-After: $HEADERS"
pass
req GET "/v1/jobs/$ID"
expect 200
req GET /healthz
expect 200
touch "$WORK/release"
wait "$LOCKER"
req POST /v1/jobs "${J[@]}" -d '{"kind":"echo","payload":{"n":3}}'
expect 202
req GET "/v1/jobs?order=oldest"
check "the refused submit stored nothing" '[x["payload"]["n"] for x in j["jobs"]] == [1, 3]'
stop_server "$SERVER_PID"

# ---- a full database ----
start_server full --no-auth --submit-only --storage "sqlite:$WORK/full.db?max_page_count=64"
BIG=$(head -c 60000 /dev/zero | tr '\0' x)
full=0
for i in $(seq 1 100); do
  req POST /v1/jobs "${J[@]}" -d "{\"kind\":\"echo\",\"payload\":{\"i\":$i,\"s\":\"$BIG\"}}"
  if [ "$STATUS" = 503 ]; then full=1; break; fi
  [ "$STATUS" = 202 ] || fail "submit $i: status $STATUS: $BODY"
done
[ $full = 1 ] || fail "the database never filled up"
check "full store: JOBQ_EFULL" 'j["error"]["code"] == "JOBQ_EFULL"'
STORED=$((i - 1))
req GET "/v1/jobs?limit=1000"
expect 200
check "every job answered 202 is there, the refused one is not" 'len(j["jobs"]) == '"$STORED"
req POST /v1/jobs "${J[@]}" -d '{"kind":"echo"}'
[ "$STATUS" = 202 ] || [ "$STATUS" = 503 ] || fail "a small submit on a full store: $STATUS $BODY"
pass
req GET /healthz
[ "$STATUS" = 200 ] || [ "$STATUS" = 503 ] || fail "healthz: $STATUS"
pass
stop_server "$SERVER_PID"
finish
