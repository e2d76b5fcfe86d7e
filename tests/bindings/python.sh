#!/usr/bin/env bash
# The jobq Python package's pytest suite (tests/bindings/python), against
# the libjobq of this build. Run by ctest (tests/bindings/python.cmake):
#   python.sh LIBJOBQ LIBJOBQ_STAGES [pytest arguments...]
# Debian's interpreter, which has python3-pytest (tests/deps.sh); skipped
# (77) only when there is no interpreter at all.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${JOBQ_PYTHON:-/usr/bin/python3}"
if ! [ -x "$py" ]; then
  echo "no Python interpreter at $py; skipped"
  exit 77
fi
export JOBQ_LIBRARY="$1" JOBQ_STAGES_LIBRARY="$2"
shift 2
if [ "$JOBQ_STAGES_LIBRARY" = NOT_BUILT ]; then
  # A build without libjobq-stages (JOBQ_WITH_STAGES=OFF): the pipeline
  # tests and the examples, which run the podcast pipeline, have nothing
  # to load.
  echo "libjobq-stages is not built: test_pipeline.py and test_examples.py are left out"
  unset JOBQ_STAGES_LIBRARY
  set -- --ignore=test_pipeline.py --ignore=test_examples.py "$@"
fi
export PYTHONPATH="$root/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$here/python"
# A sanitizer's runtime (JOBQ_PRELOAD, from python.cmake) goes into the
# interpreter only: bash itself does not run under ThreadSanitizer.
if [ -n "${JOBQ_PRELOAD:-}" ]; then
  export LD_PRELOAD="$JOBQ_PRELOAD"
fi
exec "$py" -m pytest -q -p no:cacheprovider "$@"
