#!/usr/bin/env bash
# Checks what a libjobq library exports: only jobq_* functions and data, each
# under a JOBQ_* version node, and its SONAME lib<name>.so.<major>. Internal
# jobq__* helpers must stay hidden, except in libjobq under the private node
# that libjobq-stages links against (PRIVATE_NODE, e.g. JOBQ_PRIVATE_0.1.0).
#
#   tests/abi/exports.sh build/libjobq.so libjobq.so.0 [PRIVATE_NODE]
#   tests/abi/exports.sh build/libjobq-stages.so libjobq-stages.so.0
set -euo pipefail

lib=${1:?usage: exports.sh LIBRARY [EXPECTED_SONAME]}
want_soname=${2:-libjobq.so.0}
private_node=${3:-}
status=0
n_private=0

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
    jobq__*) if [ -n "$private_node" ] && [ "$ver" = "$private_node" ]; then
               n_private=$((n_private + 1))
             else
               bad+="  $name ($type: internal helper, should be hidden${private_node:+ or under $private_node})"$'\n'
             fi ;;
    jobq_*) count=$((count + 1))
            if [[ $ver != JOBQ_* ]] || [[ $ver == JOBQ_PRIVATE* ]]; then
              unversioned+="  $name"$'\n'
            fi ;;
    *) bad+="  $name ($type)"$'\n' ;;
  esac
done <<<"$syms"

if [ -n "$bad" ]; then
  echo "FAIL: $lib exports symbols outside the jobq_ namespace:"
  printf '%s' "$bad"
  status=1
fi
if [ -n "$unversioned" ]; then
  echo "FAIL: public symbols without a JOBQ_* version or under the private node (version script not applied?):"
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
  echo "OK: $count jobq_ symbols exported, all versioned${private_node:+, and $n_private private ones under $private_node}; SONAME $soname"
fi
exit "$status"
