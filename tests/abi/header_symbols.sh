#!/usr/bin/env bash
# Compares the functions the public headers declare (JOBQ_API ... jobq_x(...))
# with what libjobq.so exports: an exported function no header declares is an
# internal that leaked; a declared function the library lacks is an ABI hole
# that only shows up when a user links. (jansson's test suite does the same.)
#
# Each library is compared with its own headers:
#   tests/abi/header_symbols.sh build/libjobq.so include/jobq.h include/jobq/storage.h
#   tests/abi/header_symbols.sh build/libjobq-stages.so include/jobq/stages.h
# (the private jobq__* exports of libjobq are checked by exports.sh).
set -euo pipefail

lib=${1:?usage: header_symbols.sh LIBRARY HEADER...}
shift
[ $# -ge 1 ] || { echo "usage: header_symbols.sh LIBRARY HEADER..."; exit 2; }
inc="$*"
command -v nm >/dev/null || { echo "SKIP: nm not found (binutils)"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declarations keep the name on the JOBQ_API line, as in
#   JOBQ_API const char *jobq_strerror(int code);
# (comments stripped first, so prose that mentions JOBQ_API cannot match).
cat "$@" | perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' |
  tr '\n' ' ' | { grep -oE 'JOBQ_API[^;(]*\bjobq_[A-Za-z0-9_]+[[:space:]]*\(' || true; } |
  { grep -oE 'jobq_[A-Za-z0-9_]+[[:space:]]*\($' || true; } | tr -d ' (' | sort -u >"$tmp/declared"
nm -D --defined-only --format=posix "$lib" | awk '{print $1}' | sed 's/@.*//' |
  { grep '^jobq_' || true; } | { grep -v '^jobq__' || true; } | sort -u >"$tmp/exported"

status=0
leaked=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$leaked" ]; then
  echo "FAIL: exported but declared in no public header (mark internals static or keep them hidden):"
  sed 's/^/  /' <<<"$leaked"
  status=1
fi
if [ -n "$missing" ]; then
  echo "FAIL: declared JOBQ_API in include/ but not exported by $lib (not implemented, or hidden):"
  sed 's/^/  /' <<<"$missing"
  status=1
fi
[ "$status" -ne 0 ] ||
  echo "OK: the $(wc -l <"$tmp/declared") functions declared in $inc are exactly those exported"
exit "$status"
