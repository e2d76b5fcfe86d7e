#!/usr/bin/env bash
# jobq-server's dashboard (GET /) in a real browser. The server runs
# submit-only on SQLite; a `jobq work echo` process runs the echo jobs (one
# of them fails, one calls a webhook, one runs a minute) while jobs of a second
# kind stay queued. Then headless Chromium, driven over the DevTools
# protocol (dashboard_check.py), loads the page with the key in the URL
# fragment and the checks read the rendered DOM: depth per kind and state,
# the job rows and their states, the chart, a job's detail with live
# progress, attempts and deliveries, markup from a payload kept as text,
# filters, an owner's key, and a cancel from the page. The page's headers
# and files are checked with curl. A screenshot is kept in
# ${JOBQ_ARTIFACTS:-$PWD/artifacts}/dashboard.png.
#
#   dashboard.sh SERVER JOBQ      (the built jobq-server and jobq programs)
. "$(dirname "$0")/lib.sh" "$1"
JOBQ=${2:-NOT_BUILT}
[ -x "$JOBQ" ] || { echo "the jobq program is not built; skipped"; exit 77; }
JOBQ=$(cd "$(dirname "$JOBQ")" && pwd)/$(basename "$JOBQ")
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "chromium is not installed (Debian package chromium); skipped"; exit 77; }
ARTIFACTS=${JOBQ_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS/dashboard.png" "$ARTIFACTS/dashboard-failed.png"

ADMIN=dash-admin-key
export JOBQ_API_KEYS="$ADMIN:*,alice-key:alice"
start_server a --storage "sqlite:$WORK/q.db" --submit-only
ADM=(-H "x-api-key: $ADMIN")
J=(-H 'content-type: application/json')
# The CLI's webhook endpoint "cli", allowed to call this machine: the job's
# delivery goes to the server itself, whose 404 the deliveries list shows.
export JOBQ_WEBHOOK_SECRET_CLI=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
export JOBQ_WEBHOOK_ALLOW=127.0.0.1

# ---- the page and its files: no key needed, the security headers ----
hdr() { curl -s --path-as-is -o "$WORK/page" -D "$WORK/hdr" -w '%{http_code}' "$BASE$1"; }
[ "$(hdr /)" = 200 ] || fail "GET / answered $(cat "$WORK/hdr")"
grep -qi "^content-type: text/html" "$WORK/hdr" || fail "GET / is not HTML"
grep -qi "^content-security-policy: default-src 'self'" "$WORK/hdr" || fail "GET / without CSP"
grep -qi "^x-content-type-options: nosniff" "$WORK/hdr" || fail "GET / without nosniff"
grep -qi "^referrer-policy: no-referrer" "$WORK/hdr" || fail "GET / without Referrer-Policy"
pass
# no inline script, nothing from another origin
python3 - "$WORK/page" <<'PY' || fail "the page loads something inline or from elsewhere"
import re, sys
html = open(sys.argv[1]).read()
scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
assert scripts and all("src=" in a and not body.strip() for a, body in scripts), scripts
assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # no inline handlers
PY
pass
for f in app.js:text/javascript app.css:text/css favicon.svg:image/svg+xml; do
  [ "$(hdr "/dashboard/${f%%:*}")" = 200 ] || fail "GET /dashboard/${f%%:*}: $(cat "$WORK/hdr")"
  grep -qi "^content-type: ${f#*:}" "$WORK/hdr" || fail "/dashboard/${f%%:*} is not ${f#*:}"
  grep -qi "^x-content-type-options: nosniff" "$WORK/hdr" || fail "/dashboard/${f%%:*} without nosniff"
  if [ "${f%%:*}" = app.css ] && grep -Eq '@import|url\(' "$WORK/page"; then
    fail "the style sheet fetches something"
  fi
  pass
done
[ "$(hdr /dashboard/openapi.json)" = 404 ] || fail "/dashboard/ serves files that are not the page's"
[ "$(hdr /dashboard/nothing.js)" = 404 ] || fail "an unknown file is not 404"
[ "$(hdr /dashboard/../v1/stats)" != 200 ] || fail "/dashboard/../ reached the API without a key"
pass

# ---- jobs: two kinds; echo ones run, render ones stay queued ----
submit() { # submit JSON -> ID
  req POST /v1/jobs "${ADM[@]}" "${J[@]}" -d "$1"
  expect 202
  jget 'j["id"]' >"$WORK/id"
}
submit '{"kind":"echo","owner":"alice","payload":{"ms":0,"n":1}}'; OK1=$(cat "$WORK/id")
submit '{"kind":"echo","owner":"alice","payload":{"ms":0,"n":2}}'; OK2=$(cat "$WORK/id")
submit '{"kind":"echo","owner":"bob","payload":{"fail":"boom"},"maxAttempts":1}'; FAILED=$(cat "$WORK/id")
submit '{"kind":"render","owner":"alice","payload":{"scene":"<img src=x onerror=\"window.__pwned=1\">"}}'
XSS=$(cat "$WORK/id")
submit '{"kind":"render","owner":"carol","payload":{"scene":"intro"}}'; QUEUED=$(cat "$WORK/id")
submit '{"kind":"echo","payload":{"later":true},"delayMs":3600000}'; LATER=$(cat "$WORK/id")
HOOK=$("$JOBQ" --storage "sqlite:$WORK/q.db" submit echo '{"ms":0,"hook":true}' --owner alice \
  --webhook "$BASE/hook") || fail "jobq submit --webhook"

"$JOBQ" --storage "sqlite:$WORK/q.db" work echo --for 600000 >"$WORK/worker.log" 2>&1 &
WORKER=$!
SERVER_PIDS+=("$WORKER")

# wait_state ID STATE: until the job is in STATE (60 s at most)
wait_state() {
  for _ in $(seq 1 300); do
    req GET "/v1/jobs/$1" "${ADM[@]}"
    [ "$(jget 'j["job"]["state"]')" = "$2" ] && { pass; return; }
    sleep 0.2
  done
  fail "job $1 did not become $2: $BODY"
}
wait_state "$OK1" succeeded
wait_state "$OK2" succeeded
wait_state "$HOOK" succeeded
wait_state "$FAILED" failed
# the long one starts once the others are done, and runs while the page looks
submit '{"kind":"echo","owner":"alice","payload":{"ms":60000,"title":"a long one"}}'; RUNNING=$(cat "$WORK/id")
wait_state "$RUNNING" running

IDS=$(python3 -c 'import json,sys; a=sys.argv[1:]; print(json.dumps({"admin": a[0], "owner": ["alice-key", "alice"], "running": a[1], "failed": a[2], "hook": a[3], "xss": a[4], "queued": a[5], "later": a[6], "ok": a[7:]}))' \
  "$ADMIN" "$RUNNING" "$FAILED" "$HOOK" "$XSS" "$QUEUED" "$LATER" "$OK1" "$OK2")
timeout 300 python3 "$SRC/tests/server/dashboard_check.py" "$CHROMIUM" "$BASE" "$IDS" "$WORK/chromium" \
  "$ARTIFACTS" || fail "the dashboard in Chromium (screenshot and DOM in $ARTIFACTS)"
pass

# ---- what the page did is what the store holds ----
req GET "/v1/jobs/$RUNNING" "${ADM[@]}"
expect 200
check "the page's cancel reached the store" 'j["job"]["state"] == "cancelled"'
python3 - "$ARTIFACTS/dashboard.png" <<'PY' || fail "dashboard.png is not a screenshot"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (1280, 900), (w, h)
assert len(b) > 30000, f"only {len(b)} bytes"
PY
pass
echo "screenshot: $ARTIFACTS/dashboard.png"

kill -TERM "$WORKER" 2>/dev/null || true
wait "$WORKER" 2>/dev/null || true
stop_server "$SERVER_PID"
grep -q "$ADMIN\|alice-key" "$WORK"/server-*.log && fail "a key in the request log"
pass
finish
