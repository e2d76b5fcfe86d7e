#!/usr/bin/env bash
# Each public header must compile on its own, twice in a row (include guard),
# as strict C11 and as C++11, with every warning an error (libgit2's
# tests/headertest does the same).
#
#   tests/abi/headertest.sh include        (uses $CC / $CXX if set)
set -euo pipefail

inc=$(cd "${1:?usage: headertest.sh INCLUDE_DIR}" && pwd)
cc=${CC:-cc}
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null; then cxx=$c; break; fi
  done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
n=0
while IFS= read -r h; do
  rel=${h#"$inc"/}
  printf '#include <%s>\n#include <%s>\nint jobq_headertest_%d;\n' "$rel" "$rel" "$n" >"$tmp/t$n.c"
  cp "$tmp/t$n.c" "$tmp/t$n.cpp"
  if "$cc" -std=c11 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/t$n.c" -o "$tmp/t$n.o"; then
    echo "ok   C11   $rel"
  else
    echo "FAIL C11   $rel"; status=1
  fi
  if [ -n "$cxx" ]; then
    if "$cxx" -std=c++11 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/t$n.cpp" -o "$tmp/t$n.xo"; then
      echo "ok   C++11 $rel"
    else
      echo "FAIL C++11 $rel"; status=1
    fi
  fi
  n=$((n + 1))
done < <(find "$inc" -name '*.h' | sort)

if [ "$n" -eq 0 ]; then echo "FAIL: no headers under $inc"; exit 1; fi
if [ -z "$cxx" ]; then
  echo "SKIP: no C++ compiler found; C++ half not run"
  [ "$status" -ne 0 ] || exit 77
fi
exit "$status"
