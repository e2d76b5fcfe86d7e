"""One attempt of one job, as a handler sees it (Context) and as a pull
caller holds it (ClaimedJob, and Batch for jobq_claim_many).

A jobq_ctx_t is valid until its job is finished (and, for handlers, until the
handler returned). These objects forget the pointer when they finish, so a
late call raises jobq.WrongState instead of touching freed memory. Claimed
jobs outlive no queue: each call on them enters the queue's in-flight count
(after close it raises jobq.Closed)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

from ._lib import F
from .errors import by_code, raise_last

if TYPE_CHECKING:
    from .queue import Queue

_WrongState = by_code[-8]  # JOBQ_ESTATE


def _dumps(result: Any) -> Optional[bytes]:
    return None if result is None else json.dumps(result).encode()


def _enc(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode()


class Context:
    """The attempt a handler runs: payload, progress, cancellation."""

    __slots__ = ("_ptr", "_payload", "_what")

    def __init__(self, ptr: int) -> None:
        self._ptr: Optional[int] = ptr
        self._payload: Any = _UNSET
        self._what = "handler"

    # Handler contexts are valid while the handler runs; claimed ones enter
    # the queue around every call (ClaimedJob overrides these two).
    def _in(self, fn: str) -> int:
        p = self._ptr
        if p is None:
            raise _WrongState(f"{fn}: the job's attempt has already finished")
        return p

    def _out(self) -> None:
        pass

    def _str(self, f: Any, fn: str) -> str:
        p = self._in(fn)
        try:
            return f(p).decode()
        finally:
            self._out()

    @property
    def id(self) -> str:
        return self._str(F.ctx_id, "id")

    @property
    def kind(self) -> str:
        return self._str(F.ctx_kind, "kind")

    @property
    def payload_json(self) -> str:
        """The payload as the JSON text it was submitted as."""
        return self._str(F.ctx_payload, "payload")

    @property
    def payload(self) -> Any:
        """The payload, parsed (once) from its JSON."""
        if self._payload is _UNSET:
            p = self._in("payload")
            try:
                self._payload = json.loads(F.ctx_payload(p))
            finally:
                self._out()
        return self._payload

    @property
    def attempt(self) -> int:
        """1 for the first attempt."""
        p = self._in("attempt")
        try:
            return F.ctx_attempt(p)
        finally:
            self._out()

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or the attempt timed out: stop early."""
        p = self._in("cancelled")
        try:
            return bool(F.ctx_cancelled(p))
        finally:
            self._out()

    def progress(self, percent: int, step: Optional[str] = None) -> None:
        """Reports progress 0..100 and, unless None, a step text."""
        p = self._in("progress")
        try:
            rc = F.ctx_progress(p, percent, _enc(step))
            if rc < 0:
                raise_last(rc)
        finally:
            self._out()


class _Unset:
    pass


_UNSET = _Unset()


class ClaimedJob(Context):
    """A job claimed by q.claim or q.claim_many: the caller runs it and
    finishes it with succeed, fail or retry_after (or leaves a
    `with q.claim(...)` block: normally succeeds with .result, an exception
    fails it)."""

    __slots__ = ("_q", "_owner", "_idx", "result")

    def __init__(self, q: "Queue", ptr: int, owner: Optional[List[Optional[int]]] = None,
                 idx: int = 0) -> None:
        super().__init__(ptr)
        self._q = q
        self._owner = owner
        self._idx = idx
        self.result: Any = None

    def _in(self, fn: str) -> int:
        self._q._enter(fn)
        p = self._ptr
        if p is None:
            self._q._exit()
            raise _WrongState(f"{fn}: the job's attempt has already finished")
        return p

    def _out(self) -> None:
        self._q._exit()

    @property
    def finished(self) -> bool:
        return self._ptr is None

    def _done(self) -> None:
        self._ptr = None
        if self._owner is not None:
            self._owner[self._idx] = None

    def succeed(self, result: Any = None) -> None:
        """Finishes the job as succeeded with result (JSON-serialisable)."""
        data = _dumps(result)
        p = self._in("succeed")
        try:
            rc = F.ctx_succeed(p, data)
            # EJSON/ETOOBIG are refused before the attempt is touched: keep
            # the pointer so that the caller can still fail it. Any other
            # refusal (an attempt that timed out) released the ctx.
            if rc not in (-4, -5):
                self._done()
            if rc < 0:
                raise_last(rc)
        finally:
            self._out()

    def fail(self, message: str, retryable: bool = True) -> None:
        """Fails the attempt; retryable jobs run again while attempts remain."""
        p = self._in("fail")
        try:
            rc = F.ctx_fail(p, message.encode("utf-8", "replace"), 1 if retryable else 0)
            if rc != -1:  # EINVAL is refused before the attempt is touched
                self._done()
            if rc < 0:
                raise_last(rc)
        finally:
            self._out()

    def retry_after(self, seconds: float, count_attempt: bool = True) -> None:
        """Ends the attempt and queues the job again in `seconds`."""
        p = self._in("retry_after")
        try:
            rc = F.ctx_retry_after(p, int(seconds * 1000), 1 if count_attempt else 0)
            if rc not in (-1, -20):  # EINVAL, ENOTSUP: refused, the attempt is still open
                self._done()
            if rc < 0:
                raise_last(rc)
        finally:
            self._out()

    def __enter__(self) -> "ClaimedJob":
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if self._ptr is None:
            return
        if ev is None:
            try:
                self.succeed(self.result)
            except Exception as e:  # a result that is not JSON: fail, then say why
                self.fail(f"{type(e).__name__}: {e}")
                raise
        else:
            self.fail(_fail_text(ev), retryable=True)


def _fail_text(e: BaseException) -> str:
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class Batch:
    """The jobs of one q.claim_many, in claim order: index or iterate them
    for ClaimedJob objects (made on first use), or finish every job not yet
    finished at once with succeed_all, the fast path."""

    __slots__ = ("_q", "_ptrs", "_jobs")

    def __init__(self, q: "Queue", ptrs: List[Optional[int]]) -> None:
        self._q = q
        self._ptrs = ptrs
        self._jobs: List[Optional[ClaimedJob]] = [None] * len(ptrs)

    def __len__(self) -> int:
        return len(self._ptrs)

    def __getitem__(self, i: int) -> ClaimedJob:
        j = self._jobs[i]
        if j is None:
            p = self._ptrs[i]
            j = ClaimedJob(self._q, p if p is not None else 0, self._ptrs, i)
            if p is None:
                j._ptr = None
            self._jobs[i] = j
        return j

    def __iter__(self) -> Iterator[ClaimedJob]:
        for i in range(len(self._ptrs)):
            yield self[i]

    def payloads_json(self) -> List[Optional[bytes]]:
        """Every unfinished job's payload as JSON bytes (None for finished
        ones), in one pass."""
        self._q._enter("payloads_json")
        try:
            f = F.ctx_payload
            return [None if p is None else f(p) for p in self._ptrs]
        finally:
            self._q._exit()

    def succeed_all(self, result: Any = None) -> int:
        """Finishes every job not yet finished as succeeded with the same
        result; returns how many it finished. One entry into the queue for
        the whole batch, one C call per job."""
        data = _dumps(result)
        ptrs = self._ptrs
        self._q._enter("succeed_all")
        n = 0
        try:
            f = F.ctx_succeed
            for i, p in enumerate(ptrs):
                if p is None:
                    continue
                rc = f(p, data)
                if rc < 0:
                    raise_last(rc)
                ptrs[i] = None
                n += 1
        finally:
            self._q._exit()
            for j in self._jobs:
                if j is not None and ptrs[j._idx] is None:
                    j._ptr = None
        return n

    def fail_all(self, message: str, retryable: bool = True) -> int:
        """Fails every job not yet finished; returns how many."""
        n = 0
        for j in self:
            if not j.finished:
                j.fail(message, retryable)
                n += 1
        return n
