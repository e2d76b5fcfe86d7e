#!/usr/bin/env bash
# Compares the ABI of the built libjobq.so (and libjobq-stages.so, when built)
# with the baseline committed in tests/abi/baseline/, using libabigail's
# abidiff (Debian: abigail-tools). See docs/abi.md, "The ABI baseline".
#
#   tests/abi/abi_check.sh BUILD_DIR            check (CTest: abi_baseline)
#   tests/abi/abi_check.sh BUILD_DIR --update   rewrite the baseline
#
# abidiff's exit code is a bit field: 1 error, 2 usage error, 4 the ABI
# changed, 8 the change is incompatible. libabigail sets 8 only for what it
# is sure breaks (a function or variable removed) and leaves a changed
# parameter, return type, struct or enum at 4 for a person to review, so this
# check reads the report's summaries as well: it fails on 1, 2 and 8, and on
# 4 when anything was Removed or Changed. A change that only adds functions
# passes with the report printed; the baseline is refreshed at the release
# that ships the additions. The private jobq__* interface between the two
# libraries (version node JOBQ_PRIVATE_<version>) is suppressed
# (tests/abi/abi.suppr): it is not API.
#
# The baseline comes from the default build (RelWithDebInfo, gcc, -g): the
# debug information is where abidw reads the types.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: abi_check.sh BUILD_DIR [--update]}" && pwd)
mode=${2:-check}

for tool in abidw abidiff; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (Debian package abigail-tools)"; exit 77; }
done

libs=(libjobq)
[ -e "$build/libjobq-stages.so" ] && libs+=(libjobq-stages)

status=0
for lib in "${libs[@]}"; do
  so="$build/$lib.so"
  base="$here/baseline/$lib.so.0.abi"
  if [ "$mode" = --update ]; then
    mkdir -p "$here/baseline"
    # Paths of this checkout are replaced, so the file is the same wherever
    # it is made.
    abidw --headers-dir "$src/include" --drop-private-types --no-corpus-path --no-show-locs "$so" |
      sed -e "s|$src/|./|g" -e "s|='$build'|='./build'|g" >"$base"
    echo "wrote ${base#"$src"/}"
    continue
  fi
  [ -f "$base" ] || { echo "FAIL: no baseline $base (run: $0 BUILD_DIR --update)"; status=1; continue; }
  set +e
  report=$(abidiff --suppressions "$here/abi.suppr" --hd2 "$src/include" --drop-private-types \
                   "$base" "$so" 2>&1)
  rc=$?
  set -e
  if [ $((rc & 3)) -ne 0 ]; then
    echo "FAIL: abidiff could not compare $lib (exit $rc):"; echo "$report"; status=1
  elif [ $((rc & 8)) -ne 0 ]; then
    echo "FAIL: $lib changed its ABI incompatibly against ${base#"$src"/} (exit $rc):"
    echo "$report"
    echo "A removed or changed function or type breaks every program built against"
    echo "$lib.so.0. Undo the change, or make it a new function; see docs/abi.md."
    status=1
  elif [ $((rc & 4)) -ne 0 ] && grep -Eq '(^|[^0-9])[1-9][0-9]* (Removed|Changed)' <<<"$(grep 'changes summary' <<<"$report")"; then
    echo "FAIL: $lib changed or removed functions, variables or types against ${base#"$src"/} (exit $rc):"
    echo "$report"
    echo "A changed function or type breaks programs built against $lib.so.0. Undo the"
    echo "change, or make it a new function; see docs/abi.md."
    status=1
  elif [ $((rc & 4)) -ne 0 ]; then
    echo "ok: $lib: compatible ABI additions (exit $rc); refresh the baseline at the release:"
    echo "$report"
  else
    echo "ok: $lib: the ABI is the baseline's"
  fi
done
exit "$status"
