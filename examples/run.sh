#!/usr/bin/env bash
# Installs what is missing, builds libjobq and runs the main job: the podcast
# pipeline on the embedded defaults (SQLite in ./podcast.db), offline.
#   ./examples/run.sh [--mp3] [INPUT.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target example_podcast >/dev/null
args=()
input=examples/podcast-inputs/bridge-inspection.txt
for a in "$@"; do
  case "$a" in
    --*) args+=("$a") ;;
    *) input="$a" ;;
  esac
done
./build/examples/podcast "${args[@]}" "$input"
