#!/usr/bin/env bash
# Installs what is missing, builds libjobq and runs the main example.
#   ./examples/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target example_hello >/dev/null
./build/examples/hello
