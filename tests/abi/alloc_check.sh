#!/usr/bin/env bash
# Checks that every allocation of libjobq goes through malloc, calloc or
# realloc called from its own objects: the allocation-failure torture
# (tests/unit/test_torture.c) wraps exactly those at link time, so a libc
# function that allocates on its own (strdup, asprintf, ...) would be an
# allocation the torture can never fail.
#
#   tests/abi/alloc_check.sh build/libjobq.a [more static libraries]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: alloc_check.sh STATIC_LIBRARY..."; exit 2; }
command -v nm >/dev/null || { echo "SKIP: nm not found (binutils)"; exit 77; }

forbidden='^(strdup|strndup|__strdup|asprintf|vasprintf|__asprintf_chk|__vasprintf_chk|open_memstream|getline|getdelim|wcsdup|scandir|get_current_dir_name)$'
status=0
for lib in "$@"; do
  # "object.o:" headers, then "U name" lines for what each object needs.
  bad=$(nm -u -A "$lib" | awk -v re="$forbidden" '{ n = $NF; sub(/@.*/, "", n); if (n ~ re) print "  " $0 }')
  if [ -n "$bad" ]; then
    echo "FAIL: $lib calls libc functions that allocate behind the torture's back (use util/mem.h):"
    printf '%s\n' "$bad"
    status=1
  else
    echo "OK: $lib allocates only through malloc/calloc/realloc"
  fi
done
exit "$status"
