"""The values a queue hands back: states, events, job snapshots."""
from __future__ import annotations

import datetime as _dt
import enum
import json
from dataclasses import dataclass, field
from typing import Any, List, Optional

from ._lib import F


class State(enum.IntEnum):
    """A job's state (jobq_job_state); str() is the library's name."""

    QUEUED = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    CANCELLED = 4

    @property
    def terminal(self) -> bool:
        return self >= State.SUCCEEDED

    def __str__(self) -> str:
        return self.name.lower()


class EventType(enum.IntEnum):
    """An event's type (jobq_event_type); str() is the library's name."""

    SUBMITTED = 1
    STARTED = 2
    PROGRESS = 3
    RETRYING = 4
    SUCCEEDED = 5
    FAILED = 6
    CANCELLED = 7
    STORAGE_ERROR = 8
    STORAGE_OK = 9
    BATCH_DONE = 10
    WEBHOOK_FAILED = 11

    def __str__(self) -> str:
        return self.name.lower()


# The enums above mirror the loaded library; a mismatch means this package
# and the library disagree on the ABI, which must not go unnoticed.
for _s in State:
    assert F.state_name(_s) == str(_s).encode(), f"jobq: state {_s.value} is not {_s}"
for _t in EventType:
    assert F.event_type_name(_t) == str(_t).encode(), f"jobq: event type {_t.value} is not {_t}"


def _s(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode("utf-8", "replace")


def _json(b: Optional[bytes]) -> Any:
    return None if b is None else json.loads(b)


def _time(ms: int) -> Optional[_dt.datetime]:
    """ms since the epoch as an aware UTC datetime; 0 (never) as None."""
    if ms <= 0:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job: its error (None if it did not fail) and times."""

    error: Optional[str]
    started_at: Optional[_dt.datetime]
    finished_at: Optional[_dt.datetime]


@dataclass(frozen=True)
class Job:
    """A snapshot of one job (jobq_get, jobq_wait, a jobq_list page)."""

    id: str
    kind: str
    state: State
    payload: Any
    owner: Optional[str]
    priority: int
    progress: int
    step: Optional[str]
    result: Any
    error: Optional[str]
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: Optional[_dt.datetime]
    run_at: Optional[_dt.datetime]
    started_at: Optional[_dt.datetime]
    finished_at: Optional[_dt.datetime]
    position: int  # jobs ahead of it; -1 when not waiting in line
    eta_ms: int  # estimated ms until it starts; -1 when not waiting in line
    attempt_history: List[Attempt] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state >= State.SUCCEEDED

    @classmethod
    def _from(cls, p: int) -> "Job":
        n = F.job_attempts(p)
        hist = [Attempt(_s(F.job_attempt_error(p, i)), _time(F.job_attempt_started_at(p, i)),
                        _time(F.job_attempt_finished_at(p, i))) for i in range(n)]
        return cls(
            id=F.job_id(p).decode(), kind=F.job_kind(p).decode(), state=State(F.job_state(p)),
            payload=_json(F.job_payload(p)), owner=_s(F.job_owner(p)),
            priority=F.job_priority(p), progress=F.job_progress(p), step=_s(F.job_step(p)),
            result=_json(F.job_result(p)), error=_s(F.job_error(p)), attempts=n,
            max_attempts=F.job_max_attempts(p), cancel_requested=bool(F.job_cancel_requested(p)),
            created_at=_time(F.job_created_at(p)), run_at=_time(F.job_run_at(p)),
            started_at=_time(F.job_started_at(p)), finished_at=_time(F.job_finished_at(p)),
            position=F.job_position(p), eta_ms=F.job_eta_ms(p), attempt_history=hist)


@dataclass(frozen=True)
class Event:
    """One event (jobq_next_event). job_id is "" for events about the queue;
    type is an int for a type this package does not know."""

    type: Any
    job_id: str
    kind: Optional[str]
    state: Optional[State]
    progress: int
    step: Optional[str]
    attempt: int
    error: Optional[str]
    code: int
    result: Any
    batch_id: Optional[str]
    delivery_id: Optional[str]
    time: Optional[_dt.datetime]
    dropped: int

    @classmethod
    def _from(cls, p: int) -> "Event":
        t = F.event_type(p)
        st = F.event_state(p)
        res = F.event_result(p)
        try:
            result = _json(res)
        except ValueError:
            result = _s(res)
        return cls(
            type=EventType(t) if t in EventType._value2member_map_ else t,
            job_id=_s(F.event_job_id(p)) or "", kind=_s(F.event_kind(p)),
            state=State(st) if st in State._value2member_map_ else None,
            progress=F.event_progress(p), step=_s(F.event_step(p)), attempt=F.event_attempt(p),
            error=_s(F.event_error(p)), code=F.event_code(p), result=result,
            batch_id=_s(F.event_batch_id(p)), delivery_id=_s(F.event_delivery_id(p)),
            time=_time(F.event_time(p)), dropped=F.event_dropped(p))


class JobId(str):
    """A job id as returned by submit: .existing is True when a live dedupe
    key returned an existing job instead of a new one."""

    existing: bool = False

    def __new__(cls, value: str, existing: bool = False) -> "JobId":
        s = super().__new__(cls, value)
        s.existing = existing
        return s


class Page(list):
    """One page of q.list: a list of Job, and the cursor of the next page
    (None on the last)."""

    next_cursor: Optional[str] = None


class Retry(Exception):
    """Raise it in a handler to end the attempt and run the job again after
    `after` seconds (jobq_ctx_retry_after). count_attempt=True (the
    default) counts it as a retryable failure; False does not count it
    against max attempts (a backend without deferral, "memory:", refuses
    that: the job then fails the attempt with the library's sentence)."""

    def __init__(self, after: float = 0.0, count_attempt: bool = True) -> None:
        super().__init__(f"retry after {after} s")
        self.after = after
        self.count_attempt = count_attempt


class Fail(Exception):
    """Raise it in a handler to fail the attempt with exactly this message;
    retryable=False fails the job for good (other exceptions are retried)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
