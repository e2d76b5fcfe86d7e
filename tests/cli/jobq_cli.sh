#!/usr/bin/env bash
# The jobq command line (examples/jobq.c), run as a program on a SQLite file:
# every bad argument is a usage error (exit 2, a sentence naming the option
# and what it takes) that stores nothing and creates no database; numbers in
# range are taken as written.
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

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
db=$tmp/q.db
export JOBQ_STORAGE=sqlite:$db

failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

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

# The numbers that are in range are taken as written.
id_num=$("$jobq" submit demo --priority -1000 --delay 315360000000 --key n --ttl 0 < /dev/null) ||
  bad "submit with in-range numbers failed"
"$jobq" get "$id_num" < /dev/null | grep -qF '"priority":-1000,' || bad "--priority -1000 was not stored"
id_again=$("$jobq" submit demo --key n < /dev/null)
[ "$id_again" = "$id_num (existing job: dedupe key is live)" ] || bad "--key n did not find $id_num: $id_again"

# --help: the usage on stdout, exit 0.
"$jobq" --help > help.txt 2>&1 || bad "jobq --help exited $?"
grep -qF "submit KIND" help.txt || bad "jobq --help does not show the usage"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
