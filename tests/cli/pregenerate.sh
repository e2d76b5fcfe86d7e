#!/usr/bin/env bash
# examples/pregenerate, the nightly pre-generation run, driven with its
# injectable clock (--start: the queue's clock reads that time at launch):
# the cron entry stored in the queue fires at 03:00 in New York, one batch
# of 3 users x 2 types runs at most 5 at a time and succeeds, its files are
# made, and the morning's requests are answered from the cache; the next
# day's key is a miss; --force makes the day's jobs again and takes the keys
# over; a second night fires once more, and the cron list shows one entry.
#
#   tests/cli/pregenerate.sh [PATH/TO/pregenerate [PATH/TO/jobq]]
# CTest passes NOT_BUILT when the example is not built (no espeak-ng, or no
# examples): then exit 77, skipped.
set -uo pipefail

prog=${1:-build/examples/pregenerate}
jobq=${2:-build/examples/jobq}
if [ "$prog" = NOT_BUILT ] || [ ! -e /usr/share/zoneinfo/America/New_York ]; then
  echo "SKIP: pregenerate is not built, or there is no tz database"
  exit 77
fi
prog=$(cd "$(dirname "$prog")" && pwd)/$(basename "$prog")
[ "$jobq" = NOT_BUILT ] || jobq=$(cd "$(dirname "$jobq")" && pwd)/$(basename "$jobq")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
common=(--storage "sqlite:$tmp/p.db" --tz America/New_York --out "$tmp/podcasts")

failures=0
checks=0
check() { # check WHAT COMMAND...: the command must succeed
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    echo "FAIL: $what"
    failures=$((failures + 1))
  fi
}
has() { grep -qF -- "$2" <<<"$1"; }

# The night of 6 to 7 December 2026: 03:00 EST is 08:00Z; start 3 s before.
out=$(timeout 120 "$prog" "${common[@]}" --users 3 --types daily,weekly --start 2026-12-07T07:59:57Z)
rc=$?
echo "$out"
check "the nightly run exits 0 (got $rc)" test "$rc" -eq 0
check "the schedule is announced" has "$out" 'nightly run "0 3 * * *" in America/New_York: next at 1796630400000'
check "one batch of 6" has "$out" ': 6 podcasts submitted, 0 already cached'
check "the batch succeeded whole" has "$out" '"total":6,"queued":0,"running":0,"succeeded":6,"failed":0,"cancelled":0,"done":true,"maxRunning":5'
check "six audio files" test "$(ls "$tmp/podcasts" | grep -c '\.wav$')" -eq 6
check "user0 daily from the cache" has "$out" 'podcast:user0:daily:2026-12-07: cached (succeeded'
check "user0 weekly from the cache" has "$out" 'podcast:user0:weekly:2026-12-07: cached (succeeded'
check "with its audio" has "$out" "audio file://$tmp/podcasts/"
job0=$(grep -o 'podcast:user0:daily:2026-12-07: cached (succeeded, lookup [0-9]* us), job [0-9a-f-]*' <<<"$out" | awk '{print $NF}')

# Later that morning, an API process asks: answered from the cache.
out=$("$prog" "${common[@]}" --request user2 weekly --start 2026-12-07T15:00:00Z)
rc=$?
check "a request that day is cached (exit $rc)" test "$rc" -eq 0
check "... and says so" has "$out" 'podcast:user2:weekly:2026-12-07: cached (succeeded'
# The next day the key is another one: a miss, submitted (exit 1).
out=$("$prog" "${common[@]}" --request user2 weekly --start 2026-12-08T15:00:00Z)
rc=$?
check "a request the next day is a miss (exit $rc)" test "$rc" -eq 1
check "... and is submitted" has "$out" 'podcast:user2:weekly:2026-12-08: submitted job'

# --force: the day's podcasts again; the keys go to the new jobs.
out=$(timeout 120 "$prog" "${common[@]}" --force --users 1 --types daily --start 2026-12-07T16:00:00Z)
rc=$?
check "--force exits 0 (got $rc)" test "$rc" -eq 0
check "--force submits the job again" has "$out" ': 1 podcasts submitted, 0 already cached'
out=$("$prog" "${common[@]}" --request user0 daily --start 2026-12-07T17:00:00Z)
new0=$(grep -o 'job [0-9a-f-]*' <<<"$out" | awk '{print $2}')
check "the key now names the new job ($job0 -> $new0)" test -n "$new0" -a "$new0" != "$job0"

# The next night fires once more: the schedule was kept, not repeated.
out=$(timeout 120 "$prog" "${common[@]}" --users 3 --types daily,weekly --start 2026-12-08T07:59:58Z)
rc=$?
check "the second night exits 0 (got $rc)" test "$rc" -eq 0
check "the second night makes the 5 podcasts not yet made" has "$out" ': 5 podcasts submitted, 1 already cached'
if [ "$jobq" != NOT_BUILT ]; then
  list=$(JOBQ_STORAGE=sqlite:$tmp/p.db "$jobq" cron list)
  check "one schedule in the store" test "$(grep -c . <<<"$list")" -eq 1
  check "... the nightly one" has "$list" '"nightly-podcasts"'
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
