#!/usr/bin/env bash
# The jobq command line (examples/jobq.c), run as a program on a SQLite file:
# every bad argument is a usage error (exit 2, a sentence naming the option
# and what it takes) that stores nothing and creates no database; payloads
# from @FILE and standard input larger than one command-line argument may be
# are stored byte for byte, up to the 1 MiB limit and not beyond.
#
#   tests/cli/jobq_cli.sh [PATH/TO/jobq]
# (default $JOBQ_BINARY_DIR/examples/jobq, else build/examples/jobq). CTest
# passes NOT_BUILT when the examples are not built: then exit 77, skipped.
set -uo pipefail

jobq=${1:-${JOBQ_BINARY_DIR:-build}/examples/jobq}
if [ "$jobq" = NOT_BUILT ]; then
  echo "SKIP: the jobq program is not built (JOBQ_BUILD_EXAMPLES=OFF)"
  exit 77
fi
if [ ! -x "$jobq" ]; then
  echo "no program $jobq"
  exit 1
fi
jobq=$(cd "$(dirname "$jobq")" && pwd)/$(basename "$jobq")
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
worker=
cleanup() {
  if [ -n "$worker" ]; then kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1
db=$tmp/q.db
export JOBQ_STORAGE=sqlite:$db

failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# ---- payload files ----------------------------------------------------------

# 200 KB of JSON: more than one argument may hold (MAX_ARG_STRLEN, 128 KiB),
# with UTF-8, escapes and a trailing newline that must all be kept as given.
{
  printf '{\n  "blob": "'
  head -c 200000 /dev/zero | tr '\0' 'a'
  printf '",\n  "text": "caf\xc3\xa9 \\u0000 \\"q\\" \\\\ \xe2\x98\x83",  "n": [1, 2.50e3, -0]\n}\n'
} > big.json
# exactly the limit (1048576 bytes) and one byte over
{ printf '"'; head -c 1048574 /dev/zero | tr '\0' 'b'; printf '"'; } > max.json
{ printf '"'; head -c 1048575 /dev/zero | tr '\0' 'b'; printf '"'; } > over.json
printf '"a\0b"' > nul.json
printf '[1, "at"]' > @at.json
mkdir adir

# ---- usage errors -----------------------------------------------------------

# usage STDIN EXPECTED_STDERR_TEXT ARGS...: exit 2, the text on stderr,
# nothing on stdout.
usage() {
  local in=$1 want=$2
  shift 2
  local rc=0
  "$jobq" "$@" < "$in" > out.txt 2> err.txt || rc=$?
  checks=$((checks + 1))
  if [ "$rc" -ne 2 ]; then
    bad "jobq $* (stdin $in): exit $rc, not 2 (stderr: $(head -c 300 err.txt))"
  elif ! grep -qF -- "$want" err.txt; then
    bad "jobq $*: stderr does not say \"$want\": $(head -c 300 err.txt)"
  elif [ -s out.txt ]; then
    bad "jobq $*: printed on stdout: $(head -c 300 out.txt)"
  fi
}

usage_cases() {
  local N=/dev/null
  usage $N "--priority takes an integer in -1000..1000, not 'abc'" submit demo --priority abc
  usage $N "--priority takes an integer in -1000..1000, not ''" submit demo --priority ''
  usage $N "--priority takes an integer in -1000..1000, not '12x'" submit demo --priority 12x
  usage $N "--priority takes an integer in -1000..1000, not ' 5'" submit demo --priority ' 5'
  usage $N "--priority takes an integer in -1000..1000, not '0x10'" submit demo --priority 0x10
  usage $N "--priority takes an integer in -1000..1000, not '1001'" submit demo --priority 1001
  usage $N "--priority takes an integer in -1000..1000, not '-1001'" submit demo --priority -1001
  usage $N "not '99999999999999999999'" submit demo --priority 99999999999999999999
  usage $N "--delay takes milliseconds, 0..315360000000 (ten years), not 'abc'" submit demo --delay abc
  usage $N "--delay takes milliseconds, 0..315360000000 (ten years), not '-5'" submit demo --delay -5
  usage $N "--delay takes milliseconds, 0..315360000000 (ten years), not '315360000001'" \
    submit demo --delay 315360000001
  usage $N "--ttl needs --key" submit demo --ttl 1000
  usage $N "--ttl needs --key" submit demo '{"a": 1}' --ttl 0 --owner x
  usage $N "--ttl takes milliseconds, 0..315360000000 (ten years), not '1.5'" submit demo --key k --ttl 1.5
  usage $N "--owner needs a value" submit demo --owner
  usage $N "--priority needs a value" submit demo --priority
  usage $N "--key needs a value" submit demo --key --ttl 5
  usage $N "unknown option '--frobnicate'" submit demo --frobnicate
  usage $N "unknown option '--priority=5'" submit demo --priority=5
  usage $N "unexpected argument 'extra'" submit demo '{}' extra
  usage $N "needs a KIND" submit
  usage $N "needs a KIND" submit --owner x
  usage $N "'@' needs a file name" submit demo @
  usage $N "cannot read the payload file 'missing.json'" submit demo @missing.json
  usage $N "cannot read the payload from 'adir'" submit demo @adir
  usage $N "the payload from 'over.json' is larger than 1048576 bytes" submit demo @over.json
  usage over.json "the payload from standard input is larger than 1048576 bytes" submit demo -
  usage $N "has a NUL byte at offset 2" submit demo @nul.json
  usage nul.json "has a NUL byte at offset 2" submit demo -
  usage $N "--workers takes an integer in 1..1024, not 'abc'" work demo --workers abc --for 100
  usage $N "--workers takes an integer in 1..1024, not '0'" work demo --workers 0 --for 100
  usage $N "--workers takes an integer in 1..1024, not '1025'" work demo --workers 1025 --for 100
  usage $N "--for takes milliseconds, 0..315360000000 (ten years), not '1s'" work demo --for 1s
  usage $N "needs at least one KIND" work --for 100
  usage $N "--timeout takes milliseconds, 0..315360000000 (ten years), not 'abc'" \
    wait 01a2b3c4-0000-7000-8000-000000000000 --timeout abc
  usage $N "wait: needs a job id" wait --timeout 10
  usage $N "get: takes one job id, not also 'b'" get a b
  usage $N "cancel: needs a job id" cancel
  usage $N "--limit takes an integer in 1..1000, not '0'" list --limit 0
  usage $N "--limit takes an integer in 1..1000, not 'ten'" list --limit ten
  usage $N "--state takes one of queued, running, succeeded, failed, cancelled, not 'done'" \
    list --state done
  usage $N "--for takes milliseconds, 0..315360000000 (ten years), not 'x'" events --for x
  usage $N "unknown option '--bogus'" events --for 100 --bogus
  usage $N "cron: needs list, add, remove or next" cron
  usage $N "unknown subcommand 'bogus'" cron bogus
  usage $N "add needs NAME EXPR KIND" cron add n '* * * * *'
  usage $N "NAME 'a b' has ' ' at offset 1" cron add 'a b' '* * * * *' k
  usage $N "NAME takes 1..128 characters" cron add "$(printf 'n%.0s' $(seq 129))" '* * * * *' k
  usage $N "field 1 (minute) '61' is out of range 0-59" cron add n '61 * * * *' k
  usage $N "unknown time zone 'Mars/X'" cron add n '* * * * *' k --tz Mars/X
  usage $N "--tz needs a value" cron add n '* * * * *' k --tz
  usage $N "--priority takes an integer in -1000..1000, not '2000'" cron add n '* * * * *' k --priority 2000
  usage $N "--missed takes latest, skip or all, not 'never'" cron add n '* * * * *' k --missed never
  usage $N "unexpected argument 'extra'" cron add n '* * * * *' k '{}' extra
  usage $N "unknown option '--delay'" cron add n '* * * * *' k --delay 5
  usage $N "cannot read the payload file 'missing.json'" cron add n '* * * * *' k @missing.json
  usage $N "remove needs a NAME" cron remove
  usage $N "remove takes one NAME, not also 'b'" cron remove a b
  usage $N "NAME 'a/b' has '/' at offset 1" cron remove a/b
  usage $N "next needs an EXPR" cron next
  usage $N "next takes one EXPR, not also '*'" cron next '*' '*'
  usage $N "--count takes an integer in 1..1000, not '0'" cron next '* * * * *' --count 0
  usage $N "expression is empty" cron next ''
  usage $N "list: unexpected argument 'extra'" cron list extra
  usage $N "stats: takes one of --json and --prometheus" stats --json --prometheus
  usage $N "stats: unknown option '--csv'" stats --csv
  usage $N "stats: unexpected argument 'demo'" stats demo
  usage $N "unknown command 'bogus'" bogus
  usage $N "needs a COMMAND" --storage "sqlite:$db"
  usage $N "--storage needs a value" --storage
}

# Without a database: none is created.
JOBQ_STORAGE=sqlite:$tmp/fresh.db usage_cases
if [ -e "$tmp/fresh.db" ]; then bad "usage errors created the database fresh.db"; fi

# With one: nothing is stored.
first=$("$jobq" submit demo '{"first": true}' --owner cli < /dev/null) || bad "submit of the first job failed"
usage_cases
count=$("$jobq" list --limit 1000 < /dev/null | wc -l)
[ "$count" -eq 1 ] || bad "after the usage errors the queue holds $count jobs, not 1"

[ -z "$("$jobq" cron list < /dev/null)" ] || bad "after the usage errors a cron schedule is stored"

# ---- cron -------------------------------------------------------------------

checks=$((checks + 1))
out=$("$jobq" cron add nightly '0 3 * * *' report '{"a": 1}' --tz Europe/Berlin --owner ops \
  --priority 3 --missed all < /dev/null) || bad "cron add failed"
[[ "$out" =~ ^nightly\ next\ 20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T0[12]:00:00Z$ ]] ||
  bad "cron add printed '$out'"
checks=$((checks + 1))
"$jobq" cron add hourly @hourly tick < /dev/null > /dev/null || bad "cron add hourly failed"
"$jobq" cron list < /dev/null > cron.txt || bad "cron list failed"
[ "$(wc -l < cron.txt)" -eq 2 ] || bad "cron list shows $(wc -l < cron.txt) schedules, not 2"
head -n 1 cron.txt | grep -qF '{"name":"hourly","expr":"@hourly","tz":"UTC","kind":"tick","payload":{},' ||
  bad "cron list: $(head -n 1 cron.txt)"
tail -n 1 cron.txt | grep -qF '"tz":"Europe/Berlin","kind":"report","payload":{"a":1},' ||
  bad "cron list: $(tail -n 1 cron.txt)"
tail -n 1 cron.txt | grep -qF '"last_run":null,"missed":"all"}' || bad "cron list: $(tail -n 1 cron.txt)"
# A year of runs at 02:30 New York time: one of them falls in the spring
# DST gap and runs at its end, 03:00 EDT.
checks=$((checks + 1))
"$jobq" cron next '30 2 * * *' --tz America/New_York --count 400 < /dev/null > next.txt ||
  bad "cron next failed"
[ "$(wc -l < next.txt)" -eq 400 ] || bad "cron next --count 400 printed $(wc -l < next.txt) lines"
[ "$(grep -c 'T07:00:00Z  20[0-9-]*T03:00:00-04:00$' next.txt)" -eq 1 ] ||
  bad "cron next shows no run at the end of the DST gap: $(grep -v '02:30:00' next.txt | head -3)"
grep -q '^20[0-9-]*T07:30:00Z  20[0-9-]*T02:30:00-05:00$' next.txt || bad "cron next: no EST run"
grep -q '^20[0-9-]*T06:30:00Z  20[0-9-]*T02:30:00-04:00$' next.txt || bad "cron next: no EDT run"
checks=$((checks + 1))
"$jobq" cron remove hourly < /dev/null || bad "cron remove failed"
usage /dev/null "jobq_cron_remove: no schedule 'hourly'" cron remove hourly
[ "$("$jobq" cron list < /dev/null | wc -l)" -eq 1 ] || bad "cron remove left the schedule"
"$jobq" cron remove nightly < /dev/null || bad "cron remove nightly failed"
# Adding a name again replaces its schedule: one entry, the new one.
checks=$((checks + 1))
"$jobq" cron add again '0 3 * * *' report < /dev/null > /dev/null || bad "cron add again failed"
"$jobq" cron add again '15 4 * * 1' digest '{"b": 2}' --tz +05:30 < /dev/null > /dev/null ||
  bad "cron add again (replacing) failed"
"$jobq" cron list < /dev/null > cron.txt || bad "cron list failed"
[ "$(wc -l < cron.txt)" -eq 1 ] &&
  grep -qF '{"name":"again","expr":"15 4 * * 1","tz":"+05:30","kind":"digest","payload":{"b":2},' cron.txt ||
  bad "cron add of an existing name did not replace it: $(cat cron.txt)"
"$jobq" cron remove again < /dev/null || bad "cron remove again failed"

# ---- payloads ---------------------------------------------------------------

# 200 KB really is more than one argument may be.
if "$jobq" submit demo "$(cat big.json)" < /dev/null > /dev/null 2>&1; then
  bad "a 200 KB argument was accepted: this system's argument limit is larger than the test assumes"
fi

# expect_payload ID FILE: jobq get ID shows FILE's bytes as the payload.
expect_payload() {
  local id=$1 file=$2
  checks=$((checks + 1))
  "$jobq" get "$id" < /dev/null > got.json || { bad "jobq get $id failed"; return; }
  { printf '{"id":"%s","kind":"demo","state":"queued","payload":' "$id"; cat "$file"; printf ','; } > want.json
  if ! cmp -s -n "$(stat -c %s want.json)" want.json got.json; then
    bad "the payload of $id is not the bytes of $file"
  fi
}

id_file=$("$jobq" submit demo @big.json --priority 7 < /dev/null) || bad "submit @big.json failed"
expect_payload "$id_file" big.json
id_stdin=$("$jobq" submit demo - < big.json) || bad "submit - < big.json failed"
expect_payload "$id_stdin" big.json
id_pipe=$(cat big.json | "$jobq" submit --owner cli demo - --key big --ttl 60000) || bad "submit from a pipe failed"
expect_payload "$id_pipe" big.json
id_max=$("$jobq" submit demo @max.json < /dev/null) || bad "a payload of exactly 1048576 bytes was refused"
expect_payload "$id_max" max.json
id_at=$("$jobq" submit demo @@at.json < /dev/null) || bad "submit @@at.json (the file @at.json) failed"
expect_payload "$id_at" @at.json
id_arg=$("$jobq" submit demo '[1, "arg"]' < /dev/null) || bad "submit with the payload as an argument failed"
printf '[1, "arg"]' > arg.json
expect_payload "$id_arg" arg.json

# The numbers that are in range are taken as written.
id_num=$("$jobq" submit demo --priority -1000 --delay 315360000000 --key n --ttl 0 < /dev/null) ||
  bad "submit with in-range numbers failed"
"$jobq" get "$id_num" < /dev/null | grep -qF '"priority":-1000,' || bad "--priority -1000 was not stored"
id_again=$("$jobq" submit demo --key n < /dev/null)
[ "$id_again" = "$id_num (existing job: dedupe key is live)" ] || bad "--key n did not find $id_num: $id_again"

# A worker runs the 200 KB job; its result (the demo handler echoes the
# payload) comes back byte for byte through wait.
"$jobq" work demo --workers 2 < /dev/null 2> work.err &
worker=$!
checks=$((checks + 1))
if "$jobq" wait "$id_stdin" --timeout 15000 < /dev/null > waited.json 2> /dev/null; then
  { printf '"result":'; cat big.json; printf ','; } > want_result.json
  off=$(grep -obF '"result":' waited.json | head -n 1 | cut -d: -f1)
  if [ -z "$off" ] ||
    ! cmp -s want_result.json <(tail -c +$((off + 1)) waited.json | head -c "$(stat -c %s want_result.json)"); then
    bad "the result of $id_stdin is not the bytes of big.json"
  fi
else
  bad "wait for $id_stdin failed"
fi
kill -TERM "$worker"
rc=0
wait "$worker" || rc=$?
worker=
[ "$rc" -eq 0 ] || bad "the worker exited $rc after SIGTERM: $(cat work.err)"

# The database itself holds the bytes (python3 is one of tests/deps.sh).
if command -v python3 > /dev/null; then
  checks=$((checks + 1))
  python3 - "$db" "$id_file" "$id_stdin" "$id_pipe" "$id_max" <<'EOF' || bad "the stored payloads are not the files' bytes"
import sqlite3, sys
db, id_file, id_stdin, id_pipe, id_max = sys.argv[1:]
big = open("big.json", "rb").read()
mx = open("max.json", "rb").read()
c = sqlite3.connect(db)
def payload(i):
    return c.execute("SELECT payload FROM jobq_jobs WHERE id = ?", (i,)).fetchone()[0].encode()
sys.exit(0 if all(payload(i) == big for i in (id_file, id_stdin, id_pipe)) and payload(id_max) == mx else 1)
EOF
fi

# ---- stats ------------------------------------------------------------------

# An empty store: the table's header and no kind; JSON with no kinds.
checks=$((checks + 1))
"$jobq" --storage "sqlite:$tmp/empty.db" stats < /dev/null > empty.txt 2>&1 || bad "stats on an empty store failed"
[ "$(head -n 1 empty.txt | tr -s ' ')" = "KIND QUEUED SCHED RUNNING DONE FAILED ERR% P50 ms P95 ms" ] &&
  [ "$(tail -n +2 empty.txt)" = "cache: 0 hits, 0 misses" ] || bad "stats on an empty store: $(cat empty.txt)"
"$jobq" --storage "sqlite:$tmp/empty.db" stats --json < /dev/null | grep -qF '"kinds":{},' ||
  bad "stats --json on an empty store shows kinds"

# What the worker did is in the store for any process: this one ran nothing.
# Its attempts: at least the 200 KB job (the others may still have run).
checks=$((checks + 1))
if "$jobq" stats --json < /dev/null > stats.json 2> stats.err; then
  python3 - <<'PY' || bad "jobq stats --json: $(head -c 600 stats.json)"
import json, sys
s = json.load(open("stats.json"))
d = s["kinds"]["demo"]
ok = (d["counts"]["succeeded"] >= 1 and d["counts"]["started"] >= d["counts"]["succeeded"]
      and d["counts"]["cacheHits"] == 1 and d["counts"]["cacheMisses"] == 2
      and d["queued"] + d["scheduled"] >= 1 and s["totals"]["cacheHits"] == 1)
sys.exit(0 if ok else 1)
PY
else
  bad "jobq stats --json failed: $(cat stats.err)"
fi
checks=$((checks + 1))
"$jobq" stats < /dev/null > stats.txt 2>&1 || bad "jobq stats failed: $(cat stats.txt)"
grep -q '^demo ' stats.txt || bad "jobq stats shows no row for demo: $(cat stats.txt)"
# The Prometheus text parses with the reference parser (python3-prometheus-client,
# one of tests/deps.sh; Debian's lives under /usr/bin/python3).
checks=$((checks + 1))
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" > /dev/null && "$p" -c 'import prometheus_client' 2> /dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  bad "no python3 with prometheus_client (python3-prometheus-client, see tests/deps.sh)"
elif ! "$jobq" stats --prometheus < /dev/null > metrics.txt 2> stats.err; then
  bad "jobq stats --prometheus failed: $(cat stats.err)"
elif ! "$py" "$here/prom_check.py" metrics.txt demo > prom.out 2>&1; then
  bad "the Prometheus text does not parse: $(cat prom.out)"
fi

# A password in the storage URL never reaches the terminal: not in the
# open failure (nothing listens on port 1), whether or not libjobq-pg is
# built.
checks=$((checks + 1))
"$jobq" --storage "postgres://u:s3cr3tpw@127.0.0.1:1/db?password=s3cr3tpw" work demo --for 100 \
  < /dev/null > pw.out 2>&1 && bad "jobq work on an unreachable server exited 0"
grep -q s3cr3tpw pw.out && bad "the password is in jobq's output: $(cat pw.out)"

# --help: the usage on stdout, exit 0.
"$jobq" --help > help.txt 2>&1 || bad "jobq --help exited $?"
grep -qF "@FILE" help.txt || bad "jobq --help does not mention @FILE"
grep -qF "1048576 bytes" help.txt || bad "jobq --help does not state the payload limit"
grep -qF "cron add NAME EXPR KIND" help.txt || bad "jobq --help does not show cron add"
grep -qF "worker --config FILE [--workers N] [--for MS]" help.txt || bad "jobq --help does not show worker"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
