#!/usr/bin/env bash
# jobq webhooks (examples/jobq.c) on a SQLite file, against a receiver on
# 127.0.0.1 (tests/servers/webhook_sink.py) that records each request and
# checks its signature: `submit --webhook URL` subscribes a job, `work` sends
# the delivery (signed with $JOBQ_WEBHOOK_SECRET_CLI), `webhooks list` shows
# it (table, --json, --state, --job, --limit/--cursor); a URL that answered
# 410 is disabled until `webhooks enable`, and `webhooks redeliver` sends a
# failed delivery again under the same webhook-id. Bad arguments are usage
# errors (exit 2) that store nothing; the secret appears in no output.
#
#   tests/cli/webhooks.sh [PATH/TO/jobq]
# CTest passes NOT_BUILT when the examples are not built: then exit 77.
set -uo pipefail

jobq=${1:-${JOBQ_BINARY_DIR:-build}/examples/jobq}
if [ "$jobq" = NOT_BUILT ]; then
  echo "SKIP: the jobq program is not built (JOBQ_BUILD_EXAMPLES=OFF)"
  exit 77
fi
jobq=$(cd "$(dirname "$jobq")" && pwd)/$(basename "$jobq")
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
worker=
sink=
cleanup() {
  if [ -n "$worker" ]; then kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null; fi
  if [ -n "$sink" ]; then exec 3>&-; wait "$sink" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1
db=$tmp/q.db
export JOBQ_STORAGE=sqlite:$db
# The example secret of the Standard Webhooks libraries.
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
export JOBQ_WEBHOOK_SECRET_CLI=$secret
unset JOBQ_WEBHOOK_ALLOW

failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# usage EXPECTED_STDERR_TEXT ARGS...: exit 2, the text on stderr, nothing on stdout.
usage() {
  local want=$1
  shift
  local rc=0
  "$jobq" "$@" < /dev/null > out.txt 2> err.txt || rc=$?
  checks=$((checks + 1))
  if [ "$rc" -ne 2 ]; then
    bad "jobq $*: exit $rc, not 2 (stderr: $(head -c 300 err.txt))"
  elif ! grep -qF -- "$want" err.txt; then
    bad "jobq $*: stderr does not say \"$want\": $(head -c 300 err.txt)"
  elif [ -s out.txt ]; then
    bad "jobq $*: printed on stdout: $(head -c 300 out.txt)"
  fi
  cat err.txt >> all_output.txt
}

# ---- usage errors: no database is created -------------------------------------

J36=01a2b3c4-0000-7000-8000-000000000000
usage "webhooks: needs list, redeliver or enable" webhooks
usage "unknown subcommand 'bogus'; use list, redeliver or enable" webhooks bogus
usage "--state takes pending, sending, delivered or failed, not 'done'" webhooks list --state done
usage "--limit takes an integer in 1..1000, not '0'" webhooks list --limit 0
usage "--job takes a job id (36 characters), not 'abc'" webhooks list --job abc
usage "--cursor needs a value" webhooks list --cursor
usage "list: unexpected argument 'x'" webhooks list x
usage "unknown option '--csv'" webhooks list --csv
usage "redeliver needs a DELIVERY_ID" webhooks redeliver
usage "redeliver takes one DELIVERY_ID, not also 'b'" webhooks redeliver a b
usage "enable needs a URL" webhooks enable
usage "enable takes one URL, not also 'b'" webhooks enable a b
usage "--endpoint needs --webhook" submit demo --endpoint cli
usage "--webhook needs a value" submit demo --webhook
usage "endpoint 'app' has no secret: set JOBQ_WEBHOOK_SECRET_APP=whsec_" \
  submit demo --webhook https://example.com/h --endpoint app
usage "--webhook: jobq_submit_opts_add_webhook: " submit demo --webhook ftp://example.com/h
usage "--webhook: jobq_submit_opts_add_webhook: " submit demo --webhook 'https://u:p@example.com/h'
nine=()
for i in 1 2 3 4 5 6 7 8 9; do nine+=(--webhook "https://example.com/$i"); done
usage "a job takes at most 8 --webhook URLs" submit demo "${nine[@]}"
[ -e "$db" ] && bad "usage errors created the database"
# An ill-formed secret: an error naming the endpoint, not the secret.
JOBQ_WEBHOOK_SECRET_CLI=whsec_not-base64! usage "jobq: JOBQ_WEBHOOK_SECRET_CLI: jobq_options_add_webhook: " submit demo --webhook https://example.com/h
grep -qF "not-base64" err.txt && bad "the error sentence quotes the secret: $(cat err.txt)"
rm -f "$db"

# ---- a receiver -----------------------------------------------------------------

mkfifo sink.in
python3 "$here/../servers/webhook_sink.py" "$tmp/sink.jsonl" "$secret" < sink.in > sink.port &
sink=$!
exec 3> sink.in
for _ in $(seq 100); do [ -s sink.port ] && break; sleep 0.1; done
port=$(awk '/^PORT/ {print $2}' sink.port)
[ -n "$port" ] || { bad "the receiver did not start"; exit 1; }
base=http://127.0.0.1:$port

# 127.0.0.1 is refused at submit unless the allow-list names it; nothing stored.
usage "jobq_submit" submit demo --webhook "$base/ok"
[ -z "$("$jobq" list < /dev/null)" ] || bad "a refused submit stored a job"
export JOBQ_WEBHOOK_ALLOW=127.0.0.1

id_ok=$("$jobq" submit demo '{"ms": 10}' --owner alice --webhook "$base/ok" < /dev/null) ||
  bad "submit --webhook failed"
id_gone=$("$jobq" submit demo '{"fail": "no luck"}' --webhook "$base/status/410" < /dev/null) ||
  bad "submit --webhook (410) failed"
id_two=$("$jobq" submit demo --webhook "$base/two/a" --webhook "$base/two/b" < /dev/null) ||
  bad "submit with two --webhook failed"

# Nothing is sent before a worker runs: the outbox is empty.
checks=$((checks + 1))
"$jobq" webhooks list < /dev/null > list0.txt || bad "webhooks list failed"
[ "$(wc -l < list0.txt)" -eq 1 ] || bad "webhooks list before any worker: $(cat list0.txt)"
head -n 1 list0.txt | grep -qE '^ID +JOB +ENDPOINT +EVENT +STATE +TRIES +STATUS +NEXT TRY +LAST ERROR$' ||
  bad "webhooks list header: $(head -n 1 list0.txt)"

"$jobq" work demo < /dev/null 2> work.err &
worker=$!

# wait_state DELIVERY_ID STATE: polls the outbox until the delivery is in STATE.
wait_state() {
  for _ in $(seq 600); do
    "$jobq" webhooks list --json --limit 1000 < /dev/null > state.json 2> /dev/null
    if python3 -c '
import json, sys
d = {x["id"]: x for x in json.load(open("state.json"))["deliveries"]}
sys.exit(0 if sys.argv[1] in d and d[sys.argv[1]]["state"] == sys.argv[2] else 1)' "$1" "$2"; then
      return 0
    fi
    sleep 0.1
  done
  bad "delivery $1 never became $2: $(cat state.json)"
  return 1
}

wait_state "$id_ok:0:succeeded" delivered
wait_state "$id_gone:0:failed" failed
wait_state "$id_two:0:succeeded" delivered
wait_state "$id_two:1:succeeded" delivered

# The table: one line per delivery, the columns filled.
checks=$((checks + 1))
"$jobq" webhooks list < /dev/null > list.txt 2>> all_output.txt || bad "webhooks list failed"
[ "$(wc -l < list.txt)" -eq 5 ] || bad "webhooks list shows $(($(wc -l < list.txt) - 1)) deliveries, not 4"
grep -qE "^$id_ok:0:succeeded +$id_ok +cli +succeeded +delivered +1 +200 +- +-$" list.txt ||
  bad "webhooks list: no delivered row for $id_ok: $(cat list.txt)"
grep -qE "^$id_gone:0:failed +$id_gone +cli +failed +failed +1 +410 +- +.*410 Gone" list.txt ||
  bad "webhooks list: no failed row for $id_gone: $(cat list.txt)"

# --json, --state, --job, --limit and --cursor.
checks=$((checks + 1))
"$jobq" webhooks list --json --state failed < /dev/null > failed.json || bad "list --json --state failed"
"$jobq" webhooks list --json --job "$id_two" < /dev/null > two.json || bad "list --json --job"
"$jobq" webhooks list --limit 1 < /dev/null > page1.txt 2> page1.err || bad "list --limit 1"
cursor=$(sed -n 's/^(more: --cursor \(.*\))$/\1/p' page1.err)
[ -n "$cursor" ] || bad "list --limit 1 gave no cursor: $(cat page1.err)"
"$jobq" webhooks list --limit 1000 --cursor "$cursor" < /dev/null > rest.txt 2> rest.err ||
  bad "list --cursor failed: $(cat rest.err)"
[ "$(tail -n +2 page1.txt | wc -l)" -eq 1 ] && [ "$(tail -n +2 rest.txt | wc -l)" -eq 3 ] ||
  bad "--limit 1 then --cursor: $(cat page1.txt rest.txt)"
[ -s rest.err ] && bad "the last page printed a cursor: $(cat rest.err)"
python3 - "$id_ok" "$id_gone" "$id_two" "$base" <<'PY' || bad "webhooks list --json or the requests received"
import json, sys
id_ok, id_gone, id_two, base = sys.argv[1:]
failed = json.load(open("failed.json"))["deliveries"]
two = json.load(open("two.json"))["deliveries"]
assert [d["id"] for d in failed] == [id_gone + ":0:failed"], failed
f = failed[0]
assert f["type"] == "job.failed" and f["lastStatus"] == 410 and f["attempts"] == 1, f
assert f["url"] == base + "/status/410" and f["nextAt"] is None, f
assert sorted(d["url"] for d in two) == [base + "/two/a", base + "/two/b"], two
assert all(d["state"] == "delivered" and d["endpoint"] == "cli" for d in two), two
reqs = [json.loads(l) for l in open("sink.jsonl")]
by_id = {}
for r in reqs:
    by_id.setdefault(r["headers"]["webhook-id"], []).append(r)
ok = by_id[id_ok + ":0:succeeded"]
assert len(ok) == 1 and ok[0]["path"] == "/ok" and ok[0]["method"] == "POST", ok
assert all(r["verified"] is True for r in reqs), reqs
assert all(r["headers"]["content-type"] == "application/json" for r in reqs), reqs
body = json.loads(ok[0]["body"])
assert body["type"] == "job.succeeded", body
assert body["data"]["jobId"] == id_ok and body["data"]["state"] == "succeeded", body
assert body["data"]["owner"] == "alice" and body["data"]["result"] == {"ms": 10}, body
assert "payload" not in body["data"], body
gone = json.loads(by_id[id_gone + ":0:failed"][0]["body"])
assert gone["data"]["state"] == "failed" and gone["data"]["error"] == "no luck", gone
PY

# A disabled URL: the next job's delivery fails at once, without a request.
n_before=$(wc -l < sink.jsonl)
id_gone2=$("$jobq" submit demo --webhook "$base/status/410" < /dev/null) || bad "submit (disabled URL) failed"
wait_state "$id_gone2:0:succeeded" failed
checks=$((checks + 1))
"$jobq" webhooks list --job "$id_gone2" < /dev/null > gone2.txt
grep -qE "answered 410 Gone on 20[0-9-]+T[0-9:]+Z and is disabled" gone2.txt ||
  bad "the disabled URL's delivery says: $(cat gone2.txt)"
[ "$(wc -l < sink.jsonl)" -eq "$n_before" ] || bad "a request was sent to a disabled URL"

# enable, then redeliver: the same webhook-id arrives again.
checks=$((checks + 1))
usage "jobq_webhook_redeliver" webhooks redeliver "$id_ok:0:succeeded"
usage "jobq_webhook_redeliver" webhooks redeliver "$J36:0:succeeded"
"$jobq" webhooks enable "$base/status/410" < /dev/null 2>> all_output.txt || bad "webhooks enable failed"
usage "jobq_webhook_enable" webhooks enable "$base/status/410"
"$jobq" webhooks redeliver "$id_gone:0:failed" < /dev/null 2>> all_output.txt || bad "webhooks redeliver failed"
for _ in $(seq 600); do
  [ "$(grep -cF "\"webhook-id\": \"$id_gone:0:failed\"" sink.jsonl)" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -cF "\"webhook-id\": \"$id_gone:0:failed\"" sink.jsonl)" -eq 2 ] ||
  bad "the redelivered $id_gone:0:failed did not arrive a second time"
wait_state "$id_gone:0:failed" failed

kill -TERM "$worker"
rc=0
wait "$worker" || rc=$?
worker=
[ "$rc" -eq 0 ] || bad "the worker exited $rc after SIGTERM: $(cat work.err)"

# The secret is in no output, no stored row, no log line.
checks=$((checks + 1))
cat work.err list*.txt page1.* rest.* failed.json two.json gone2.txt >> all_output.txt
grep -qF "${secret#whsec_}" all_output.txt && bad "the secret appears in the output"
python3 - "$db" "${secret#whsec_}" <<'PY' || bad "the secret is in the database"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
    for row in c.execute(f'SELECT * FROM "{t}"'):
        assert sys.argv[2] not in repr(row), t
PY

# --help shows the commands.
"$jobq" --help > help.txt || bad "jobq --help failed"
grep -qF "webhooks list [--job ID] [--state S]" help.txt || bad "--help has no webhooks list"
grep -qF "JOBQ_WEBHOOK_SECRET_<NAME>" help.txt || bad "--help does not say where secrets come from"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
