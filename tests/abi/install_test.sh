#!/usr/bin/env bash
# Installs a build of libjobq into a temporary prefix and builds the consumer
# in tests/abi/consumer against it the ways users do, then runs each program:
#   pkg-config, shared:   cc main.c $(pkg-config --cflags --libs libjobq)
#   pkg-config, static:   libjobq.a + pkg-config --static --libs
#   CMake, shared/static: find_package(jobq) with CMAKE_PREFIX_PATH=prefix
#
#   tests/abi/install_test.sh [BUILD_DIR]     (default: build; KEEP=1 keeps the prefix)
#
# CC, and JOBQ_SANITIZER_FLAGS (set by CTest in sanitizer builds, since an
# instrumented libjobq needs an instrumented program), are honoured.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
cc=${CC:-cc}
san=${JOBQ_SANITIZER_FLAGS:-}
want=${JOBQ_EXPECT_VERSION:-$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")}

for tool in cmake pkg-config readelf; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/jobq-install.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
  echo "keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix

step() { printf '\n== %s\n' "$*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name libjobq.pc -path '*/pkgconfig/*' | head -n1)")
libdir=${libdir%/pkgconfig}
for f in include/jobq.h include/jobq/storage.h; do
  [ -f "$prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
for f in libjobq.so libjobq.so.0 libjobq.a pkgconfig/libjobq.pc \
         cmake/jobq/jobqConfig.cmake cmake/jobq/jobqConfigVersion.cmake \
         cmake/jobq/jobqTargets.cmake cmake/jobq/jobqStaticTargets.cmake; do
  [ -e "$libdir/$f" ] || { echo "FAIL: $libdir/$f not installed"; exit 1; }
done
echo "installed into $prefix (libdir ${libdir#"$prefix"/})"

export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

check_run() { # name binary linkage
  local out
  if ! out=$("$2" 2>&1); then
    echo "FAIL: $1 exited non-zero:"; echo "$out"; exit 1
  fi
  if [ "$out" != "libjobq $want ok" ]; then
    echo "FAIL: $1 printed '$out', expected 'libjobq $want ok'"; exit 1
  fi
  local needs
  needs=$(readelf -d "$2" | grep -c 'NEEDED.*libjobq\.so\.0' || true)
  if [ "$3" = shared ] && [ "$needs" -eq 0 ]; then
    echo "FAIL: $1 does not load libjobq.so.0"; exit 1
  fi
  if [ "$3" = static ] && [ "$needs" -ne 0 ]; then
    echo "FAIL: $1 should not need libjobq.so.0"; exit 1
  fi
  echo "ok: $1 ($3): $out"
}

step "pkg-config --cflags --libs libjobq"
pc_cflags=$(pkg-config --cflags libjobq)
pc_libs=$(pkg-config --libs libjobq)
echo "cflags: $pc_cflags"
echo "libs:   $pc_libs"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror $san $pc_cflags "$here/consumer/main.c" \
  -o "$work/pc_shared" $pc_libs
check_run pkg-config "$work/pc_shared" shared

step "pkg-config --static --libs libjobq"
pc_static=$(pkg-config --static --libs libjobq | sed 's/\(^\| \)-ljobq\( \|$\)/ /')
echo "libs:   $(pkg-config --variable=libdir libjobq)/libjobq.a $pc_static"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror $san $pc_cflags "$here/consumer/main.c" \
  -o "$work/pc_static" "$(pkg-config --variable=libdir libjobq)/libjobq.a" $pc_static
check_run pkg-config-static "$work/pc_static" static

step "find_package(jobq) with CMAKE_PREFIX_PATH=$prefix"
cmake -S "$here/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >"$work/build.log" 2>&1 ||
  { cat "$work/cmake.log" "$work/build.log"; exit 1; }
check_run cmake "$work/cmake-build/consumer" shared
check_run cmake-static "$work/cmake-build/consumer_static" static

printf '\nOK: installed libjobq %s works through pkg-config and find_package\n' "$want"
