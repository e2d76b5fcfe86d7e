#!/usr/bin/env bash
# examples/podcast --webhook URL: when the podcast job ends, URL gets one
# POST, signed by the Standard Webhooks headers, whose body names the job,
# the state "succeeded" and the audio URL of the result (the one the example
# prints). The receiver (tests/servers/webhook_sink.py, on 127.0.0.1) checks
# the signature with $JOBQ_WEBHOOK_SECRET_PODCAST; without that variable the
# example makes a secret and prints it, and that secret verifies the
# request. A URL on another internal address is refused, nothing is sent.
#
#   tests/cli/podcast_webhook.sh [PATH/TO/podcast]
# CTest passes NOT_BUILT when the example is not built (no libjobq-stages or
# no espeak-ng): then exit 77, skipped.
set -uo pipefail

prog=${1:-build/examples/podcast}
if [ "$prog" = NOT_BUILT ]; then
  echo "SKIP: the podcast example is not built"
  exit 77
fi
prog=$(cd "$(dirname "$prog")" && pwd)/$(basename "$prog")
here=$(cd "$(dirname "$0")" && pwd)
input=$here/../../examples/podcast-inputs/bridge-inspection.txt

tmp=$(mktemp -d)
sink=
cleanup() {
  if [ -n "$sink" ]; then exec 3>&-; wait "$sink" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1
unset JOBQ_STORAGE JOBQ_WEBHOOK_SECRET_PODCAST

failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
mkfifo sink.in
python3 "$here/../servers/webhook_sink.py" "$tmp/sink.jsonl" "$secret" < sink.in > sink.port &
sink=$!
exec 3> sink.in
for _ in $(seq 100); do [ -s sink.port ] && break; sleep 0.1; done
port=$(awk '/^PORT/ {print $2}' sink.port)
[ -n "$port" ] || { bad "the receiver did not start"; exit 1; }

# check_request N SECRET: request N (0-based) of the receiver is the podcast
# job's success, signed with SECRET, and names the audio URL in out.txt.
check_request() {
  python3 - "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, re, sys, time
n, secret = int(sys.argv[1]), sys.argv[2]
reqs = [json.loads(l) for l in open("sink.jsonl")]
assert len(reqs) == n + 1, f"{len(reqs)} requests, not {n + 1}"
r = reqs[n]
h = r["headers"]
assert r["method"] == "POST" and r["path"] == "/hooks/podcast", r
assert h["content-type"] == "application/json", h
assert re.fullmatch(r"[0-9a-f-]{36}:0:succeeded", h["webhook-id"]), h
assert abs(int(h["webhook-timestamp"]) - time.time()) < 600, h
key = base64.b64decode(secret.removeprefix("whsec_"))
signed = f'{h["webhook-id"]}.{h["webhook-timestamp"]}.'.encode() + r["body"].encode()
want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
assert want in h["webhook-signature"].split(" "), "the signature does not verify"
body = json.loads(r["body"])
job_id = h["webhook-id"].split(":")[0]
d = body["data"]
assert body["type"] == "job.succeeded", body["type"]
assert d["jobId"] == job_id and d["kind"] == "podcast" and d["state"] == "succeeded", d
assert "payload" not in d, "the payload was sent"
printed = json.loads(open("out.txt").read()[open("out.txt").read().index("{"):])
assert d["result"]["audioUrl"] == printed["audioUrl"], (d["result"].get("audioUrl"), printed)
assert job_id in printed["audioUrl"], printed["audioUrl"]
PY
}

# 1. The secret from the environment; the receiver verifies it too.
checks=$((checks + 1))
if JOBQ_WEBHOOK_SECRET_PODCAST=$secret "$prog" --storage "sqlite:$tmp/a.db" --out "$tmp/pods" \
  --webhook "http://127.0.0.1:$port/hooks/podcast" "$input" > out.txt 2> err.txt; then
  check_request 0 "$secret" || bad "the first delivery (secret from the environment)"
  python3 -c 'import json, sys; sys.exit(0 if json.loads(open(sys.argv[1]).readline())["verified"] else 1)' \
    sink.jsonl || bad "the receiver did not verify the signature"
  grep -qE '^podcast: webhook [0-9a-f-]{36}:0:succeeded to http://127.0.0.1:[0-9]+/hooks/podcast: delivered \(HTTP 200\)$' err.txt ||
    bad "podcast did not report the delivery: $(cat err.txt)"
  grep -qF "${secret#whsec_}" out.txt err.txt && bad "podcast printed the secret it was given"
else
  bad "podcast --webhook failed: $(cat err.txt)"
fi

# 2. No secret in the environment: the example makes one and prints it; a
#    "localhost" URL is allowed as well.
checks=$((checks + 1))
if "$prog" --storage "sqlite:$tmp/b.db" --out "$tmp/pods" \
  --webhook "http://localhost:$port/hooks/podcast" "$input" > out.txt 2> err.txt; then
  made=$(sed -n 's/^podcast: webhook secret (set JOBQ_WEBHOOK_SECRET_PODCAST to choose it): //p' err.txt)
  [[ "$made" =~ ^whsec_[A-Za-z0-9+/]{43}=$ ]] || bad "no secret printed: $(cat err.txt)"
  check_request 1 "$made" || bad "the second delivery (a secret the example made)"
else
  bad "podcast --webhook with a made secret failed: $(cat err.txt)"
fi

# 3. Another internal address is not allowed: refused at submit, nothing sent.
checks=$((checks + 1))
rc=0
JOBQ_WEBHOOK_SECRET_PODCAST=$secret "$prog" --storage "sqlite:$tmp/c.db" --out "$tmp/pods" \
  --webhook "http://10.0.0.1:$port/hooks/podcast" "$input" > out.txt 2> err.txt || rc=$?
[ "$rc" -eq 1 ] && grep -qF "is not a public address" err.txt ||
  bad "a private address was not refused (exit $rc): $(cat err.txt)"
# 4. --submit without the secret in the environment: the worker could not sign.
checks=$((checks + 1))
rc=0
"$prog" --storage "sqlite:$tmp/d.db" --submit "$input" --webhook "http://127.0.0.1:$port/x" \
  > out.txt 2> err.txt || rc=$?
[ "$rc" -eq 2 ] && grep -qF "needs JOBQ_WEBHOOK_SECRET_PODCAST" err.txt ||
  bad "--submit --webhook without a secret: exit $rc: $(cat err.txt)"
[ "$(wc -l < sink.jsonl)" -eq 2 ] || bad "the receiver got $(wc -l < sink.jsonl) requests, not 2"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
