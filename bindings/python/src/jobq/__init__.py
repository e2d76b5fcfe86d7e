"""jobq: background jobs for Python over libjobq (ctypes; nothing compiled).

    import jobq
    with jobq.Queue("sqlite:./jobq.db", workers=4) as q:
        @q.handler("echo")
        def echo(job):
            return {"echo": job.payload}
        print(q.wait(q.submit("echo", {"text": "hi"})).result)

libjobq is found through $JOBQ_LIBRARY (a path), pkg-config's libdir for
libjobq, or the system loader (libjobq.so.0); jobq.LibraryNotFound if none.
See docs/python.md.
"""
from __future__ import annotations

from ._lib import LIBRARY_PATH, LibraryNotFound, F as _F
from .errors import Error, by_code as _by_code, classes as _classes, error_for
from ._types import Attempt, Event, EventType, Fail, Job, JobId, Page, Retry, State
from ._ctx import Batch, ClaimedJob, Context
from .queue import Queue

__version__ = "0.1.0"

# One class per error code of the loaded library: jobq.NotFound,
# jobq.Closed, jobq.Timeout, ... (jobq.errors names them all).
globals().update(_classes)
ERRORS = dict(_by_code)


def library_version() -> str:
    """The version of the libjobq actually loaded, e.g. "0.1.0"."""
    return _F.version_string().decode()


def __getattr__(name: str):  # Pipeline loads libjobq-stages on first use only
    if name in ("Pipeline", "Stage"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'jobq' has no attribute {name!r}")


__all__ = ["Queue", "Job", "Attempt", "Event", "EventType", "State", "JobId", "Page", "Context",
           "ClaimedJob", "Batch", "Retry", "Fail", "Error", "LibraryNotFound", "error_for",
           "library_version", "LIBRARY_PATH", "Pipeline", "Stage", "ERRORS",
           *sorted(_classes)]
