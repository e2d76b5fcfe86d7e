#!/usr/bin/env bash
# Configure, build and run every test:   ./tests/run.sh [ctest arguments]
# e.g. ./tests/run.sh -R abi_        (BUILD_DIR=dir to use another build tree)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

./tests/deps.sh
# The S3 server the upload tests talk to and the Standard Webhooks reference
# library that test_webhook_interop checks signatures with (npm); the other
# test servers are Python's standard library.
bash tests/servers/install.sh

cmake -S . -B "$build" -DJOBQ_WERROR=ON
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 "$@"
