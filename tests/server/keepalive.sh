#!/usr/bin/env bash
# jobq-server keeps HTTP/1.1 connections open across answers of every kind:
# one curl, one connection, for a 202 submit, a 200, 400, 401, 404, 405
# and 415 in a row (each answer with its Content-Length), then a HEAD.
#
#   keepalive.sh SERVER
. "$(dirname "$0")/lib.sh" "$1"
export JOBQ_API_KEYS=k:*
KEY=(-H 'x-api-key: k')
start_server a --storage "sqlite:$WORK/q.db" --submit-only

# Each transfer writes "status connects content-length".
W='%{http_code} %{num_connects} %header{content-length}\n'
out=$(curl -s -o /dev/null -w "$W" \
  -X POST "${KEY[@]}" -H 'content-type: application/json' -d '{"kind":"echo"}' "$BASE/v1/jobs" \
  --next -o /dev/null -w "$W" "${KEY[@]}" "$BASE/v1/jobs?limit=1" \
  --next -o /dev/null -w "$W" -X POST "${KEY[@]}" -H 'content-type: application/json' -d '{"kind":' "$BASE/v1/jobs" \
  --next -o /dev/null -w "$W" "$BASE/v1/jobs" \
  --next -o /dev/null -w "$W" "${KEY[@]}" "$BASE/v1/jobs/nope" \
  --next -o /dev/null -w "$W" -X PUT "${KEY[@]}" "$BASE/v1/jobs" \
  --next -o /dev/null -w "$W" -X POST "${KEY[@]}" -H 'content-type: text/plain' -d 'x' "$BASE/v1/jobs" \
  --next -o /dev/null -w "$W" -I "$BASE/healthz")
echo "$out"
want_status=(202 200 400 401 404 405 415 200)
i=0
while read -r status connects length; do
  [ "$status" = "${want_status[$i]}" ] || fail "answer $i: status $status, expected ${want_status[$i]}"
  if [ "$i" -eq 0 ]; then
    [ "$connects" = 1 ] || fail "answer 0: $connects connections"
  else
    [ "$connects" = 0 ] || fail "answer $i ($status) came on a new connection: the previous one was closed"
  fi
  [ -n "$length" ] && [ "$length" -gt 0 ] || fail "answer $i ($status) without a Content-Length"
  pass
  i=$((i + 1))
done <<<"$out"
[ "$i" -eq 8 ] || fail "$i answers, expected 8"
stop_server "$SERVER_PID"
finish
