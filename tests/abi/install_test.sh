#!/usr/bin/env bash
# Installs a build of libjobq into a temporary prefix, checks with readelf -d
# that the installed libjobq.so.0 needs no stage provider library (espeak-ng,
# LAME) and that libjobq-stages.so.0 needs libjobq.so.0 (and not libcurl),
# then builds the consumers in tests/abi/consumer against it the ways users
# do and runs each program:
#   pkg-config, shared:   cc main.c $(pkg-config --cflags --libs libjobq)
#   pkg-config, static:   libjobq.a + pkg-config --static --libs
#   CMake, shared/static: find_package(jobq) with CMAKE_PREFIX_PATH=prefix
# and the same for stages.c with libjobq-stages / COMPONENTS stages, when the
# build has libjobq-stages.
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
stages=0
if [ -e "$libdir/pkgconfig/libjobq-stages.pc" ]; then
  stages=1
  for f in libjobq-stages.so libjobq-stages.so.0 libjobq-stages.a \
           cmake/jobq/jobqStagesTargets.cmake cmake/jobq/jobqStagesStaticTargets.cmake; do
    [ -e "$libdir/$f" ] || { echo "FAIL: $libdir/$f not installed"; exit 1; }
  done
  [ -f "$prefix/include/jobq/stages.h" ] || { echo "FAIL: include/jobq/stages.h not installed"; exit 1; }
fi

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }
step "readelf -d $libdir/libjobq.so.0"
core_needs=$(needed "$libdir/libjobq.so.0")
echo "NEEDED:" $core_needs
if grep -Eq 'espeak|mp3lame' <<<"$core_needs"; then
  echo "FAIL: libjobq.so.0 needs a stage provider library (espeak-ng or LAME belong to libjobq-stages)"
  exit 1
fi
if [ "$stages" = 1 ]; then
  step "readelf -d $libdir/libjobq-stages.so.0"
  stage_needs=$(needed "$libdir/libjobq-stages.so.0")
  echo "NEEDED:" $stage_needs
  grep -qx 'libjobq\.so\.0' <<<"$stage_needs" ||
    { echo "FAIL: libjobq-stages.so.0 does not need libjobq.so.0"; exit 1; }
  if grep -q 'libcurl' <<<"$stage_needs"; then
    echo "FAIL: libjobq-stages.so.0 needs libcurl directly (HTTP is libjobq's)"; exit 1
  fi
fi

export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

check_run() { # name binary linkage [expected output] [library it must load or not]
  local expect=${4:-libjobq $want ok} solib=${5:-libjobq}
  local out
  if ! out=$("$2" 2>&1); then
    echo "FAIL: $1 exited non-zero:"; echo "$out"; exit 1
  fi
  if [ "$out" != "$expect" ]; then
    echo "FAIL: $1 printed '$out', expected '$expect'"; exit 1
  fi
  local needs
  needs=$(readelf -d "$2" | grep -c "NEEDED.*\[$solib\.so\.0\]" || true)
  if [ "$3" = shared ] && [ "$needs" -eq 0 ]; then
    echo "FAIL: $1 does not load $solib.so.0"; exit 1
  fi
  if [ "$3" = static ] && [ "$needs" -ne 0 ]; then
    echo "FAIL: $1 should not need $solib.so.0"; exit 1
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

if [ "$stages" = 1 ]; then
  swant="libjobq-stages $want ok"
  step "pkg-config --cflags --libs libjobq-stages"
  pc_libs=$(pkg-config --libs libjobq-stages)
  echo "libs:   $pc_libs"
  # shellcheck disable=SC2086
  "$cc" -std=c11 -Wall -Wextra -Werror $san $(pkg-config --cflags libjobq-stages) \
    "$here/consumer/stages.c" -o "$work/pc_stages" $pc_libs
  check_run pkg-config-stages "$work/pc_stages" shared "$swant" libjobq-stages
  check_run "pkg-config-stages (libjobq.so.0)" "$work/pc_stages" shared "$swant" libjobq

  step "pkg-config --static --libs libjobq-stages"
  pc_static=$(pkg-config --static --libs libjobq-stages | sed 's/\(^\| \)-ljobq\(-stages\)\?\( \|$\)/ /g; s/\(^\| \)-ljobq\( \|$\)/ /g')
  echo "libs:   libjobq-stages.a libjobq.a $pc_static"
  # shellcheck disable=SC2086
  "$cc" -std=c11 -Wall -Wextra -Werror $san $(pkg-config --cflags libjobq-stages) \
    "$here/consumer/stages.c" -o "$work/pc_stages_static" \
    "$libdir/libjobq-stages.a" "$libdir/libjobq.a" $pc_static
  check_run pkg-config-stages-static "$work/pc_stages_static" static "$swant" libjobq-stages
  check_run "pkg-config-stages-static (libjobq.a)" "$work/pc_stages_static" static "$swant" libjobq
fi

step "find_package(jobq) with CMAKE_PREFIX_PATH=$prefix"
cmake -S "$here/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCONSUMER_STAGES=$([ "$stages" = 1 ] && echo ON || echo OFF) \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >"$work/build.log" 2>&1 ||
  { cat "$work/cmake.log" "$work/build.log"; exit 1; }
check_run cmake "$work/cmake-build/consumer" shared
check_run cmake-static "$work/cmake-build/consumer_static" static
if [ "$stages" = 1 ]; then
  check_run cmake-stages "$work/cmake-build/stages" shared "$swant" libjobq-stages
  check_run cmake-stages-static "$work/cmake-build/stages_static" static "$swant" libjobq-stages
fi

printf '\nOK: installed libjobq %s%s works through pkg-config and find_package\n' "$want" \
  "$([ "$stages" = 1 ] && echo ' and libjobq-stages')"
