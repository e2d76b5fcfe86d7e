"""The jobq package's tests. ctest runs them (tests/bindings/python.cmake)
with JOBQ_LIBRARY naming the built libjobq; run by hand from the repository,
they fall back to build/ and to bindings/python/src."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SRC = os.path.join(ROOT, "bindings", "python", "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
os.environ.setdefault("JOBQ_LIBRARY", os.path.join(ROOT, "build", "libjobq.so.0"))
os.environ["PYTHONPATH"] = SRC + os.pathsep + os.environ.get("PYTHONPATH", "")

import jobq  # noqa: E402


@pytest.fixture
def q(tmp_path):
    # Pipelines' work directories go under tmp_path, not the working directory.
    with jobq.Queue("memory:", workers=2, workdir=str(tmp_path / "work")) as queue:
        yield queue


@pytest.fixture
def db(tmp_path):
    return "sqlite:" + str(tmp_path / "jobq.db")


def run_py(code, *args, timeout=120, **kw):
    """Runs Python code in a child interpreter with this package's env."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), **kw)
