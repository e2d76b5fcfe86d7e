#!/usr/bin/env bash
# Every public function has a reference page whose synopsis shows its exact
# prototype (after curl's tests 1119/1139: symbols checked against docs).
#   docs_check.sh INCLUDE_DIR DOCS_DIR
set -euo pipefail
inc=$1
docs=$2
norm() { tr '\n' ' ' | sed -e 's/[[:space:]]\+/ /g' -e 's/ *\([(),;*]\) */\1/g'; }
fail=0
n=0
# Each JOBQ_API declaration, joined onto one line up to its semicolon.
while IFS= read -r decl; do
  name=$(printf '%s' "$decl" | sed -n 's/.*[ *]\(jobq_[a-z0-9_]*\)(.*/\1/p')
  [ -n "$name" ] || continue
  n=$((n + 1))
  page=$docs/$name.md
  if [ ! -f "$page" ]; then
    echo "missing page: $page"
    fail=1
    continue
  fi
  want=$(printf '%s' "$decl" | sed -e 's/^JOBQ_API //' -e 's/;.*/;/' | norm)
  have=$(norm < "$page")
  case "$have" in
    *"$want"*) ;;
    *) echo "$page: synopsis does not show: $want"; fail=1 ;;
  esac
done < <(cat "$inc"/jobq.h "$inc"/jobq/*.h | awk '
  /^JOBQ_API/ { buf = $0; if (buf ~ /;/) { print buf; buf = "" } else { acc = 1 }; next }
  acc { buf = buf " " $0; if ($0 ~ /;/) { print buf; buf = ""; acc = 0 } }')
if [ "$n" -lt 10 ]; then
  echo "found only $n declarations: the check itself is broken"
  exit 1
fi
[ "$fail" -eq 0 ] && echo "$n public functions, each with a page and its exact prototype"
exit "$fail"
