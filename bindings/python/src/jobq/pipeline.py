"""Pipelines (jobq/stages.h, in libjobq-stages): a job kind made of ordered
stages, built-in ones configured from dicts and stages written in Python.

A Python stage is a blocking stage (JOBQ_STAGE_BLOCKING): libjobq runs it on
a thread of libuv's pool, where ctypes takes the GIL to run it. It gets a
Stage, returns the output (JSON-serialisable; the next stage's input, the
last one's is the job's result) or raises: jobq.Fail(message, retryable)
as given, any other exception as a retryable "TypeName: message". A stage
may run again for the same job (a retry resumes at the stage that failed):
write it so that running it twice does no harm."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import _lib
from ._ctx import _dumps, _enc, _fail_text
from ._types import Fail
from .errors import by_code, raise_last

if TYPE_CHECKING:
    from .queue import Queue

_WrongState = by_code[-8]


def _check(rc: int) -> int:
    if rc < 0:
        raise_last(rc)
    return rc


class Stage:
    """One run of one stage for one job."""

    __slots__ = ("_st", "_sf", "_input")

    def __init__(self, st: int, sf: Any) -> None:
        self._st: Optional[int] = st
        self._sf = sf
        self._input: Any = None

    def _p(self) -> int:
        if self._st is None:
            raise _WrongState("stage: the run has already finished")
        return self._st

    @property
    def input_json(self) -> str:
        """The previous stage's output, or the job's payload, as JSON text."""
        return self._sf.stage_input(self._p()).decode()

    @property
    def input(self) -> Any:
        if self._input is None:
            self._input = json.loads(self.input_json)
        return self._input

    @property
    def payload(self) -> Any:
        return json.loads(self._sf.stage_payload(self._p()))

    @property
    def name(self) -> str:
        return self._sf.stage_name(self._p()).decode()

    @property
    def job_id(self) -> str:
        return self._sf.stage_job_id(self._p()).decode()

    @property
    def attempt(self) -> int:
        return self._sf.stage_attempt(self._p())

    @property
    def index(self) -> int:
        return self._sf.stage_index(self._p())

    @property
    def workdir(self) -> str:
        """The job's work directory (files there are removed with the job)."""
        w = self._sf.stage_workdir(self._p())
        if w is None:
            raise_last(-16)
        return w.decode()

    @property
    def cancelled(self) -> bool:
        return bool(self._sf.stage_cancelled(self._p()))

    def progress(self, percent: int, step: Optional[str] = None) -> None:
        """Progress 0..100 within the stage, mapped into its share."""
        _check(self._sf.stage_progress(self._p(), percent, _enc(step)))


class Pipeline:
    """Stages to register as one kind: q.register_pipeline(kind, p)."""

    def __init__(self, config: Optional[Dict[str, Any]] = None) -> None:
        self._sf = _lib.stages()
        self._p = self._sf.pipeline_new()
        if not self._p:
            raise by_code[-2]("Pipeline: out of memory")
        self._keep: List[Any] = []
        self._queues: List["Queue"] = []
        if config is not None:
            self.add_config(config)

    def __del__(self) -> None:
        p, self._p = getattr(self, "_p", None), None
        if p:
            self._sf.pipeline_free(p)

    def add_config(self, config: Dict[str, Any]) -> "Pipeline":
        """The built-in stages a dict names, in order: {"script": {...},
        "tts": {...}, "upload": {...}} (docs/stages.md)."""
        _check(self._sf.pipeline_add_config(self._p, json.dumps(config).encode()))
        return self

    def add_builtin(self, module: str, config: Dict[str, Any]) -> "Pipeline":
        """One built-in stage: "script", "tts" or "upload"."""
        _check(self._sf.pipeline_add_builtin(self._p, module.encode(),
                                             json.dumps(config).encode()))
        return self

    def set_progress(self, stage: str, start: int, end: int, step: Optional[str] = None) -> None:
        """The stage's share of the progress bar and its step text."""
        _check(self._sf.pipeline_set_progress(self._p, stage.encode(), start, end, _enc(step)))

    def add_stage(self, name: str, fn: Callable[[Stage], Any]) -> "Pipeline":
        """Appends fn(stage) -> output as a stage named name."""
        sf = self._sf
        queues = self._queues

        def run(st: int, ud: Any) -> None:
            # Counted like a handler, so that the queue is not freed under it.
            for q in queues:
                q._handler_begin()
            s = Stage(st, sf)
            try:
                try:
                    data = _dumps(fn(s))
                except Fail as f:
                    sf.stage_fail(st, f.message.encode("utf-8", "replace"),
                                  1 if f.retryable else 0)
                except BaseException as e:
                    sf.stage_fail(st, _fail_text(e).encode("utf-8", "replace"), 1)
                else:
                    if sf.stage_succeed(st, data) < 0:
                        sf.stage_fail(st, _lib.F.last_error(), 1)
            except BaseException:
                pass
            finally:
                s._st = None
                for q in queues:
                    q._handler_end()

        cb = _lib.STAGE_FN(run)
        _check(sf.pipeline_add_stage(self._p, name.encode(), cb, None, 0))
        self._keep.append((cb, fn))  # alive as long as the pipeline and its queues
        return self

    def stage(self, name: str) -> Callable[[Callable[[Stage], Any]], Callable[[Stage], Any]]:
        """Decorator form of add_stage."""

        def deco(fn: Callable[[Stage], Any]) -> Callable[[Stage], Any]:
            self.add_stage(name, fn)
            return fn

        return deco

    def _bind(self, q: "Queue") -> None:
        self._queues.append(q)
