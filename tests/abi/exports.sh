#!/usr/bin/env bash
# Checks what libjobq.so exports: only jobq_* functions and data, each under
# a JOBQ_* version node, and the SONAME libjobq.so.<major>.
#
#   tests/abi/exports.sh build/libjobq.so [libjobq.so.0]
set -euo pipefail

lib=${1:?usage: exports.sh LIBRARY [EXPECTED_SONAME]}
want_soname=${2:-libjobq.so.0}
status=0

for tool in nm readelf; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (binutils)"; exit 77; }
done

# "name[@@VERSION] TYPE value size" for every defined dynamic symbol.
syms=$(nm -D --defined-only --format=posix "$lib")
bad=""
unversioned=""
count=0
while read -r name type _; do
  [ -n "$name" ] || continue
  base=${name%%@*}
  ver=""
  case $name in *@*) ver=${name##*@} ;; esac
  # The version node itself is an absolute symbol the linker defines.
  if [ "$type" = A ] && [[ $base == JOBQ_* ]]; then continue; fi
  case $base in
    jobq__*) bad+="  $name ($type: internal helper, should be hidden)"$'\n' ;;
    jobq_*) count=$((count + 1))
            [[ $ver == JOBQ_* ]] || unversioned+="  $name"$'\n' ;;
    *) bad+="  $name ($type)"$'\n' ;;
  esac
done <<<"$syms"

if [ -n "$bad" ]; then
  echo "FAIL: $lib exports symbols outside the jobq_ namespace:"
  printf '%s' "$bad"
  status=1
fi
if [ -n "$unversioned" ]; then
  echo "FAIL: exported symbols without a JOBQ_* version (lib/libjobq.map not applied?):"
  printf '%s' "$unversioned"
  status=1
fi
if [ "$count" -eq 0 ]; then
  echo "FAIL: $lib exports no jobq_ symbol at all"
  status=1
fi

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" != "$want_soname" ]; then
  echo "FAIL: SONAME is '${soname:-<none>}', expected '$want_soname'"
  status=1
fi

if [ "$status" -eq 0 ]; then
  echo "OK: $count jobq_ symbols exported, all versioned; SONAME $soname"
fi
exit "$status"
