#!/usr/bin/env bash
# The jobq package installs offline into a fresh virtual environment
# (Debian's python3-setuptools, no index), and the installed copy finds
# libjobq through JOBQ_LIBRARY and runs a job.
#   python_install.sh LIBJOBQ
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${JOBQ_PYTHON:-/usr/bin/python3}"
if ! [ -x "$py" ]; then
  echo "no Python interpreter at $py; skipped"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The source tree stays clean: pip builds from a copy.
cp -r "$root/bindings/python" "$work/src"
"$py" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-index --no-build-isolation "$work/src"
cd "$work"
JOBQ_LIBRARY="$1" "$work/venv/bin/python" - <<'PY'
import os, jobq
assert jobq.__file__.startswith(os.path.join(os.getcwd(), "venv")), jobq.__file__
assert os.path.exists(os.path.join(os.path.dirname(jobq.__file__), "py.typed"))
with jobq.Queue("memory:") as q:
    q.handler("echo")(lambda job: job.payload)
    assert q.wait(q.submit("echo", {"x": 1}), 60).result == {"x": 1}
print("installed jobq", jobq.__version__, "runs with", jobq.library_version())
PY
