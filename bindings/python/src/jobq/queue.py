"""jobq.Queue: one libjobq queue (jobq_t) and every call on it.

Safety after close. libjobq frees a queue in jobq_close; a call that reaches
C after that is a use-after-free. So every call enters the queue first
(_enter: a lock, the closed flag, an in-flight count) and leaves after
(_exit). close() sets the flag, then:
  - with jobq_shutdown/jobq_destroy (the two-step close): shuts the queue
    down (blocked calls return JOBQ_ECLOSED) and frees it once nothing is
    in flight, in close() or in the last call to leave;
  - with an older libjobq: waits until nothing is in flight (the binding's
    blocking calls wait in slices of at most a second, so each returns
    soon), then calls jobq_close.
Handlers run on libjobq's worker threads; they are counted apart and never
free the queue themselves (jobq_destroy joins those very threads).
"""
from __future__ import annotations

import atexit
import ctypes
import datetime as _dt
import json
import threading
import time
import weakref
from ctypes import byref, c_size_t, c_void_p
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from . import _lib
from ._ctx import Batch, ClaimedJob, Context, _dumps, _enc, _fail_text
from ._lib import F, ID_SIZE
from ._types import Event, Fail, Job, JobId, Page, Retry, State
from .errors import by_code, raise_last

Closed = by_code[-10]
Timeout = by_code[-9]
_ETIMEDOUT = -9
_ECLOSED = -10

# The longest a blocking call stays in C at once: between slices it sees a
# close (so close() with an older libjobq never waits longer) and Python
# sees signals (Ctrl-C).
_SLICE_MS = 1000

Number = Union[int, float]
When = Union[_dt.datetime, int, float]

_open_queues: "set[Queue]" = set()
_in_handler = threading.local()  # .queue: the queue whose handler runs on this thread
_open_lock = threading.Lock()


def _ms(seconds: Number) -> int:
    return int(round(seconds * 1000))


def _epoch_ms(when: When) -> int:
    """A datetime (naive: local time) or seconds since the epoch, as ms."""
    if isinstance(when, _dt.datetime):
        return int(round(when.timestamp() * 1000))
    return int(round(when * 1000))


def _check(rc: int) -> int:
    if rc < 0:
        raise_last(rc)
    return rc


class Queue:
    """A job queue. Storage "memory:" (this process only) or
    "sqlite:PATH" (a file that several processes share).

    Durations are in seconds (floats), times are datetimes or seconds since
    the epoch. Use it as a context manager, or call close(); queues still
    open at interpreter exit are closed then (drain 5 s). Handlers start
    running at the first call after one was registered (autostart=False:
    only at q.start())."""

    def __init__(self, storage: str = "memory:", *, workers: Optional[int] = None,
                 lease: Optional[Number] = None, event_buffer: Optional[int] = None,
                 shared_events: Optional[bool] = None, max_payload: Optional[int] = None,
                 workdir: Optional[str] = None, default_duration: Optional[Number] = None,
                 owner_quota: Optional[Dict[Optional[str], int]] = None,
                 clock_ms: Optional[Callable[[], int]] = None,
                 log: Optional[Callable[[int, str], None]] = None, log_level: int = 2,
                 close_drain: Number = 30.0, autostart: bool = True) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._inflight = 0
        self._handlers_running = 0
        self._destroy_pending = False
        self._pending_start = False
        self._started = False
        self._keep: List[Any] = []  # C callbacks: alive as long as the queue
        self._kinds_cache: Dict[Tuple[str, ...], Any] = {}
        self._hubs: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
        self.close_drain = close_drain
        self.storage = storage
        self.autostart = autostart

        o = F.options_new()
        if not o:
            raise by_code[-2]("jobq.Queue: out of memory")
        try:
            _check(F.options_set_storage(o, storage.encode()))
            if workers is not None:
                _check(F.options_set_workers(o, workers))
            if lease is not None:
                _check(F.options_set_lease(o, _ms(lease)))
            if event_buffer is not None:
                _check(F.options_set_event_buffer(o, event_buffer))
            if shared_events is not None:
                _check(F.options_set_shared_events(o, 1 if shared_events else 0))
            if max_payload is not None:
                _check(F.options_set_max_payload(o, max_payload))
            if workdir is not None:
                _check(F.options_set_workdir(o, workdir.encode()))
            if default_duration is not None:
                _check(F.options_set_default_duration(o, _ms(default_duration)))
            for kind, mx in (owner_quota or {}).items():
                _check(F.options_set_owner_quota(o, _enc(kind), mx))
            if clock_ms is not None:
                last = [0]

                def on_clock(ud: Any) -> int:
                    # Called from libjobq's threads: an exception must not
                    # unwind into C; the last good reading stands in.
                    try:
                        last[0] = int(clock_ms())
                    except Exception:
                        pass
                    return last[0]

                cb = _lib.CLOCK_FN(on_clock)
                self._keep.append(cb)
                _check(F.options_set_clock(o, cb, None))
            if log is not None:
                def on_log(level: int, msg: bytes, ud: Any) -> None:
                    try:
                        log(level, msg.decode("utf-8", "replace"))
                    except Exception:
                        pass  # must not unwind into the loop thread
                lcb = _lib.LOG_FN(on_log)
                self._keep.append(lcb)
                _check(F.options_set_log(o, lcb, None, log_level))
            q = c_void_p()
            _check(F.open(byref(q), o))
        finally:
            F.options_free(o)
        self._q: Optional[int] = q.value
        with _open_lock:
            _open_queues.add(self)

    # ---- entering and leaving --------------------------------------------

    def _enter(self, what: str, start_workers: bool = True) -> int:
        with self._lock:
            if self._closed:
                raise Closed(f"{what}: the queue is closed")
            self._inflight += 1
            start = self._pending_start and start_workers
            if start:
                self._pending_start = False
        if start:
            rc = F.start(self._q)
            if rc < 0:
                try:
                    raise_last(rc)
                finally:
                    self._exit()
            self._started = True
        return self._q  # type: ignore[return-value]

    def _exit(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._inflight:
                return
            self._idle.notify_all()
            if not self._destroy_pending or self._handlers_running:
                return
            self._destroy_pending = False
            q, self._q = self._q, None
        F.destroy(q)

    def _call(self, what: str, f: Callable[..., int], *args: Any) -> int:
        q = self._enter(what)
        try:
            rc = f(q, *args)
            if rc < 0:
                raise_last(rc)
            return rc
        finally:
            self._exit()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Starts the worker threads that run handlers (also done by the first
        call after a handler was registered)."""
        with self._lock:
            self._pending_start = False
        self._call("start", F.start)
        self._started = True

    def close(self, drain: Optional[Number] = None) -> None:
        """Stops taking work, lets running jobs finish for up to `drain`
        seconds (default: close_drain), releases the rest to the queue, and
        frees the queue. Idempotent; any later call raises jobq.Closed."""
        ms = _ms(self.close_drain if drain is None else drain)
        if getattr(_in_handler, "queue", None) is self:
            raise by_code[-14]("close: called from a handler of this queue, which closing "
                               "would wait for; close it from another thread")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending_start = False
        for hub in list(self._hubs.values()):
            hub.stop()
        if _lib.has("shutdown") and _lib.has("destroy"):
            F.shutdown(self._q, ms)
            with self._lock:
                # Calls still in flight return JOBQ_ECLOSED now; the last to
                # leave frees the queue. Handlers that outlast the drain keep
                # it until they return (then a thread of ours frees it:
                # jobq_destroy joins the workers they run on).
                if self._inflight or self._handlers_running:
                    self._destroy_pending = True
                    q = None
                else:
                    q, self._q = self._q, None
            if q is not None:
                F.destroy(q)
        else:
            with self._lock:
                while self._inflight:
                    self._idle.wait()
                q, self._q = self._q, None
            F.close(q, ms)
        with _open_lock:
            _open_queues.discard(self)

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def now(self) -> int:
        """The queue clock's time, ms since the epoch."""
        q = self._enter("now")
        try:
            return F.now(q)
        finally:
            self._exit()

    def health(self) -> None:
        """Returns when the queue is open and storage answers, else raises
        the failure's exception (e.g. jobq.Corrupt, jobq.StorageFull)."""
        self._call("health", F.health)

    # ---- handlers ------------------------------------------------------------

    def _kind_opts(self, concurrency: Optional[int], max_attempts: Optional[int],
                   timeout: Optional[Number], backoff: Optional[Tuple[Number, Number, float]],
                   rate_limit: Optional[Tuple[int, Number]], expected_duration: Optional[Number],
                   retention: Optional[Number], keep_per_owner: Optional[int]) -> int:
        ko = F.kind_opts_new()
        if not ko:
            raise by_code[-2]("handler: out of memory")
        try:
            if concurrency is not None:
                _check(F.kind_opts_set_concurrency(ko, concurrency))
            if max_attempts is not None:
                _check(F.kind_opts_set_max_attempts(ko, max_attempts))
            if timeout is not None:
                _check(F.kind_opts_set_timeout(ko, _ms(timeout)))
            if backoff is not None:
                _check(F.kind_opts_set_backoff(ko, _ms(backoff[0]), _ms(backoff[1]),
                                               float(backoff[2])))
            if rate_limit is not None:
                _check(F.kind_opts_set_rate_limit(ko, rate_limit[0], _ms(rate_limit[1])))
            if expected_duration is not None:
                _check(F.kind_opts_set_expected_duration(ko, _ms(expected_duration)))
            if retention is not None:
                _check(F.kind_opts_set_retention(ko, _ms(retention)))
            if keep_per_owner is not None:
                _check(F.kind_opts_set_keep_per_owner(ko, keep_per_owner))
        except BaseException:
            F.kind_opts_free(ko)
            raise
        return ko

    def _handler_begin(self) -> None:
        with self._lock:
            self._handlers_running += 1
        _in_handler.queue = self

    def _handler_end(self) -> None:
        _in_handler.queue = None
        with self._lock:
            self._handlers_running -= 1
            if self._handlers_running:
                return
            self._idle.notify_all()
            if not self._destroy_pending or self._inflight:
                return
            self._destroy_pending = False
            q, self._q = self._q, None
        # Not on this thread: it is one of the workers jobq_destroy joins.
        threading.Thread(target=F.destroy, args=(q,), name="jobq-destroy", daemon=True).start()

    def _trampoline(self, fn: Callable[[Context], Any]) -> Any:
        begin, end = self._handler_begin, self._handler_end

        def run(ctx: int, ud: Any) -> None:
            # Nothing may unwind into C: every path ends the attempt.
            begin()
            job = Context(ctx)
            try:
                try:
                    res = fn(job)
                    data = _dumps(res)
                except Retry as r:
                    rc = F.ctx_retry_after(ctx, _ms(r.after), 1 if r.count_attempt else 0)
                    if rc < 0:
                        msg = F.last_error() or b"retry refused"
                        F.ctx_fail(ctx, b"Retry: " + msg, 1)
                except Fail as f:
                    F.ctx_fail(ctx, f.message.encode("utf-8", "replace"), 1 if f.retryable else 0)
                except BaseException as e:
                    F.ctx_fail(ctx, _fail_text(e).encode("utf-8", "replace"), 1)
                else:
                    rc = F.ctx_succeed(ctx, data)
                    if rc in (-4, -5):  # not JSON, too big: the attempt is still open
                        F.ctx_fail(ctx, F.last_error(), 1)
            except BaseException:
                pass
            finally:
                job._ptr = None
                end()

        return _lib.HANDLER_FN(run)

    def register(self, kind: str, fn: Callable[[Context], Any], *,
                 concurrency: Optional[int] = None, max_attempts: Optional[int] = None,
                 timeout: Optional[Number] = None,
                 backoff: Optional[Tuple[Number, Number, float]] = None,
                 rate_limit: Optional[Tuple[int, Number]] = None,
                 expected_duration: Optional[Number] = None, retention: Optional[Number] = None,
                 keep_per_owner: Optional[int] = None) -> None:
        """Registers fn(job) as the handler of kind (see handler())."""
        ko = self._kind_opts(concurrency, max_attempts, timeout, backoff, rate_limit,
                             expected_duration, retention, keep_per_owner)
        cb = self._trampoline(fn)
        try:
            q = self._enter("register", start_workers=False)
            try:
                _check(F.register(q, kind.encode(), cb, None, ko))
            finally:
                self._exit()
        finally:
            F.kind_opts_free(ko)
        # Kept for the queue's life: libjobq calls it until the queue is
        # closed, and a collected ctypes callback calls something else.
        self._keep.append((cb, fn))
        with self._lock:
            if not self._started and self.autostart:
                self._pending_start = True

    def handler(self, kind: str, **opts: Any) -> Callable[[Callable[[Context], Any]],
                                                           Callable[[Context], Any]]:
        """Decorator: @q.handler("echo", concurrency=2, max_attempts=3,
        timeout=30) registers the function as kind's handler. It runs on a
        worker thread with the job (jobq.Context); its return value (JSON-
        serialisable) is the result; an exception fails the attempt with
        "TypeName: message" (retried while attempts remain), jobq.Retry
        asks for a retry after a delay, jobq.Fail fails with its message.
        The workers start at the queue's next call (or q.start())."""

        def deco(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
            self.register(kind, fn, **opts)
            return fn

        return deco

    def _retain(self, obj: Any) -> None:
        self._keep.append(obj)

    # ---- submitting --------------------------------------------------------

    def _submit_opts(self, owner: Optional[str], priority: Optional[int],
                     delay: Optional[Number], run_at: Optional[When],
                     max_attempts: Optional[int], dedupe: Optional[str],
                     dedupe_ttl: Optional[Number], dedupe_until: Optional[When],
                     force: bool) -> Optional[int]:
        if (owner is None and priority is None and delay is None and run_at is None and
                max_attempts is None and dedupe is None and not force):
            return None
        so = F.submit_opts_new()
        if not so:
            raise by_code[-2]("submit: out of memory")
        try:
            if owner is not None:
                _check(F.submit_opts_set_owner(so, owner.encode()))
            if priority is not None:
                _check(F.submit_opts_set_priority(so, priority))
            if delay is not None:
                _check(F.submit_opts_set_delay(so, _ms(delay)))
            if run_at is not None:
                _check(F.submit_opts_set_run_at(so, _epoch_ms(run_at)))
            if max_attempts is not None:
                _check(F.submit_opts_set_max_attempts(so, max_attempts))
            if dedupe is not None:
                if dedupe_until is not None:
                    _check(F.submit_opts_set_dedupe_until(so, dedupe.encode(),
                                                          _epoch_ms(dedupe_until)))
                else:
                    _check(F.submit_opts_set_dedupe(so, dedupe.encode(),
                                                    _ms(dedupe_ttl or 0)))
            if force:
                _check(F.submit_opts_set_force(so, 1))
        except BaseException:
            F.submit_opts_free(so)
            raise
        return so

    def submit(self, kind: str, payload: Any = None, *, owner: Optional[str] = None,
               priority: Optional[int] = None, delay: Optional[Number] = None,
               run_at: Optional[When] = None, max_attempts: Optional[int] = None,
               dedupe: Optional[str] = None, dedupe_ttl: Optional[Number] = None,
               dedupe_until: Optional[When] = None, force: bool = False,
               payload_json: Optional[str] = None) -> JobId:
        """Submits one job and returns its id once it is stored. payload is
        serialised with json.dumps (or pass payload_json, the text as is).
        With dedupe, a live job with the same key is returned instead
        (id.existing is True)."""
        data = payload_json.encode() if payload_json is not None else _dumps(payload)
        so = self._submit_opts(owner, priority, delay, run_at, max_attempts, dedupe, dedupe_ttl,
                               dedupe_until, force)
        buf = ctypes.create_string_buffer(ID_SIZE)
        try:
            rc = self._call("submit", F.submit_ex, kind.encode(), data, so, buf, ID_SIZE)
        finally:
            if so:
                F.submit_opts_free(so)
        return JobId(buf.value.decode(), rc == 1)

    def submit_many(self, jobs: Iterable[Union[Tuple[str, Any], Dict[str, Any]]],
                    **opts: Any) -> List[JobId]:
        """Submits many jobs at once, all or none: each a (kind, payload)
        pair or a dict with "kind", "payload" and submit()'s keywords.
        Keywords given here apply to every job without its own."""
        kinds: List[bytes] = []
        payloads: List[Optional[bytes]] = []
        own_opts: List[Optional[Dict[str, Any]]] = []
        for j in jobs:
            if isinstance(j, dict):
                d = dict(j)
                kinds.append(d.pop("kind").encode())
                pj = d.pop("payload_json", None)
                payloads.append(pj.encode() if pj is not None else _dumps(d.pop("payload", None)))
                own_opts.append(d or None)
            else:
                kinds.append(j[0].encode())
                payloads.append(_dumps(j[1]))
                own_opts.append(None)
        n = len(kinds)
        if n == 0:
            return []
        sos: List[Optional[int]] = []
        arr_opts = None
        try:
            common = self._submit_opts(**_opt_args(opts)) if opts else None
            if common is not None:
                sos.append(common)
            if any(own_opts) or common is not None:
                per = []
                for o in own_opts:
                    if o:
                        so = self._submit_opts(**_opt_args({**opts, **o}))
                        sos.append(so)
                        per.append(so)
                    else:
                        per.append(common)
                arr_opts = (c_void_p * n)(*per)
            k = (ctypes.c_char_p * n)(*kinds)
            p = (ctypes.c_char_p * n)(*payloads)
            out = ctypes.create_string_buffer(n * ID_SIZE)
            dup = (ctypes.c_int * n)()
            self._call("submit_many", F.submit_many_ex, n, k, p, arr_opts, out, n * ID_SIZE, dup)
        finally:
            for so in sos:
                F.submit_opts_free(so)
        raw = out.raw
        w = ID_SIZE - 1
        return [JobId(raw[i * ID_SIZE:i * ID_SIZE + w].decode(), bool(dup[i])) for i in range(n)]

    # ---- reading -------------------------------------------------------------

    def _snapshot(self, what: str, f: Callable[..., int], *args: Any) -> Job:
        q = self._enter(what)
        out = c_void_p()
        try:
            rc = f(q, *args, byref(out))
            if rc < 0:
                raise_last(rc)
            try:
                return Job._from(out.value)
            finally:
                F.job_free(out)
        finally:
            self._exit()

    def get(self, id: str) -> Job:
        """A snapshot of the job; jobq.NotFound if there is none."""
        return self._snapshot("get", F.get, id.encode())

    def get_by_key(self, key: str) -> Job:
        """The job holding dedupe key `key` live; jobq.NotFound if none."""
        return self._snapshot("get_by_key", F.get_by_key, key.encode())

    def list_page(self, *, owner: Optional[str] = None, kind: Optional[str] = None,
                  state: Union[State, str, None] = None, limit: int = 50,
                  newest_first: bool = True, cursor: Optional[str] = None) -> Page:
        """One page of jobs (at most limit, 1..1000), and its next_cursor."""
        f = F.filter_new()
        if not f:
            raise by_code[-2]("list: out of memory")
        try:
            if owner is not None:
                _check(F.filter_set_owner(f, owner.encode()))
            if kind is not None:
                _check(F.filter_set_kind(f, kind.encode()))
            if state is not None:
                st = State[state.upper()] if isinstance(state, str) else State(state)
                _check(F.filter_set_state(f, int(st)))
            _check(F.filter_set_limit(f, limit))
            _check(F.filter_set_newest_first(f, 1 if newest_first else 0))
            if cursor is not None:
                _check(F.filter_set_cursor(f, cursor.encode()))
            q = self._enter("list")
            out = c_void_p()
            try:
                _check(F.list(q, f, byref(out)))
                try:
                    page = Page(Job._from(F.page_job(out, i)) for i in range(F.page_count(out)))
                    nc = F.page_next_cursor(out)
                    page.next_cursor = nc.decode() if nc else None
                    return page
                finally:
                    F.page_free(out)
            finally:
                self._exit()
        finally:
            F.filter_free(f)

    def list(self, *, owner: Optional[str] = None, kind: Optional[str] = None,
             state: Union[State, str, None] = None, limit: int = 50, newest_first: bool = True,
             cursor: Optional[str] = None) -> Iterator[Page]:
        """Pages of the jobs matching the filter, following the cursors:
        `for page in q.list(owner="alice"): for job in page: ...`."""
        while True:
            page = self.list_page(owner=owner, kind=kind, state=state, limit=limit,
                                  newest_first=newest_first, cursor=cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _wait_once(self, idb: bytes, ms: int) -> Tuple[int, Job]:
        q = self._enter("wait")
        out = c_void_p()
        try:
            rc = F.wait(q, idb, ms, byref(out))
            if rc < 0 and rc != _ETIMEDOUT:
                raise_last(rc)
            try:
                return rc, Job._from(out.value)
            finally:
                F.job_free(out)
        finally:
            self._exit()

    def watch(self, id: str, timeout: Optional[Number] = None) -> Iterator[Job]:
        """Snapshots of the job as it changes (state, progress, step,
        attempts), the first one now, until it is done; jobq.Timeout when
        `timeout` seconds pass first."""
        idb = id.encode()
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            left = _SLICE_MS if deadline is None else _ms(max(0.0, deadline - time.monotonic()))
            rc, job = self._wait_once(idb, min(_SLICE_MS, left) if last is not None else 0)
            key = (job.state, job.progress, job.step, job.attempts)
            if key != last:
                last = key
                yield job
            if job.done:
                return
            if deadline is not None and time.monotonic() >= deadline:
                e = Timeout(f"wait: job {id} is not done after {timeout} s")
                e.job = job  # type: ignore[attr-defined]
                raise e

    def wait(self, id: str, timeout: Optional[Number] = None) -> Job:
        """Blocks until the job is done (succeeded, failed or cancelled) and
        returns its snapshot; jobq.Timeout (its .job the last snapshot) when
        `timeout` seconds pass first. Other threads run meanwhile."""
        job = None
        for job in self.watch(id, timeout):
            pass
        return job  # type: ignore[return-value]

    def cancel(self, id: str) -> None:
        """Cancels a queued job, or flags a running one (its handler sees
        job.cancelled). jobq.WrongState if it already finished."""
        self._call("cancel", F.cancel, id.encode())

    def prune(self, older_than: Number) -> int:
        """Deletes jobs finished more than older_than seconds ago; how many."""
        n = c_size_t()
        self._call("prune", F.prune, _ms(older_than), byref(n))
        return n.value

    # ---- events --------------------------------------------------------------

    def next_event(self, timeout: Optional[Number] = None) -> Optional[Event]:
        """The next event (buffered from the first call on), or None when
        `timeout` seconds pass without one (0 polls)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = c_void_p()
        while True:
            left = _SLICE_MS if deadline is None else _ms(max(0.0, deadline - time.monotonic()))
            q = self._enter("next_event")
            try:
                rc = F.next_event(q, min(_SLICE_MS, left), byref(out))
                if rc == 0:
                    try:
                        return Event._from(out.value)
                    finally:
                        F.event_free(out)
                if rc != _ETIMEDOUT:
                    raise_last(rc)
            finally:
                self._exit()
            if deadline is not None and time.monotonic() >= deadline:
                return None

    # ---- pulling work --------------------------------------------------------

    def _kinds(self, kinds: Union[str, Sequence[str], None]) -> Any:
        if kinds is None:
            return None
        key = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        arr = self._kinds_cache.get(key)
        if arr is None:
            arr = (ctypes.c_char_p * (len(key) + 1))(*[k.encode() for k in key], None)
            self._kinds_cache[key] = arr
        return arr

    def claim(self, kinds: Union[str, Sequence[str], None] = None,
              timeout: Optional[Number] = None) -> ClaimedJob:
        """Claims the next due job of kinds (None: any), waiting up to
        timeout seconds (None: without limit; jobq.Timeout when none came).
        Use it as `with q.claim("echo") as job:` — leaving normally succeeds
        with job.result, an exception fails the attempt — or finish it with
        job.succeed/fail/retry_after."""
        arr = self._kinds(kinds)
        deadline = None if timeout is None else time.monotonic() + timeout
        out = c_void_p()
        while True:
            left = _SLICE_MS if deadline is None else _ms(max(0.0, deadline - time.monotonic()))
            q = self._enter("claim")
            try:
                rc = F.claim(q, arr, min(_SLICE_MS, left), byref(out))
                if rc == 0:
                    return ClaimedJob(self, out.value)
                if rc != _ETIMEDOUT:
                    raise_last(rc)
            finally:
                self._exit()
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"claim: no job of {kinds or 'any kind'} within {timeout} s")

    def claim_many(self, kinds: Union[str, Sequence[str], None] = None, max: int = 256,
                   timeout: Optional[Number] = None) -> Batch:
        """Claims up to max (1..1024) due jobs in one storage claim, waiting
        up to timeout seconds for at least one (None: without limit). An
        empty Batch when none came. Finish each job, or the lot with
        batch.succeed_all()."""
        arr = self._kinds(kinds)
        buf = (c_void_p * max)()
        n = c_size_t()
        deadline = None if timeout is None else time.monotonic() + timeout
        f = F.claim_many
        while True:
            left = _SLICE_MS if deadline is None else _ms(max_(0.0, deadline - time.monotonic()))
            q = self._enter("claim_many")
            try:
                rc = f(q, arr, max, min(_SLICE_MS, left), buf, byref(n))
                if rc == 0:
                    return Batch(self, buf[:n.value])
                if rc != _ETIMEDOUT:
                    raise_last(rc)
            finally:
                self._exit()
            if deadline is not None and time.monotonic() >= deadline:
                return Batch(self, [])

    # ---- asyncio ---------------------------------------------------------------

    def _hub(self) -> Any:
        from ._aio import hub_for
        return hub_for(self)

    async def wait_async(self, id: str, timeout: Optional[Number] = None) -> Job:
        """Like wait(), for asyncio: no thread per waiter (the queue's
        pollable fd on the event loop)."""
        import asyncio
        hub = self._hub()
        fut = hub.add_waiter(id)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"wait_async: job {id} is not done after {timeout} s") from None
        finally:
            hub.remove_waiter(id, fut)

    def events(self) -> Any:
        """An async iterator over the queue's events from now on:
        `async for ev in q.events():`. It ends when the queue closes."""
        from ._aio import EventStream
        return EventStream(self._hub())

    # ---- pipelines -------------------------------------------------------------

    def register_pipeline(self, kind: str, pipeline: Any, *, concurrency: Optional[int] = None,
                          max_attempts: Optional[int] = None, timeout: Optional[Number] = None,
                          backoff: Optional[Tuple[Number, Number, float]] = None,
                          retention: Optional[Number] = None) -> None:
        """Registers a jobq.Pipeline as the handler of kind."""
        sf = _lib.stages()
        ko = self._kind_opts(concurrency, max_attempts, timeout, backoff, None, None, retention,
                             None)
        try:
            q = self._enter("register_pipeline", start_workers=False)
            try:
                _check(sf.register_pipeline(q, kind.encode(), pipeline._p, ko))
            finally:
                self._exit()
        finally:
            F.kind_opts_free(ko)
        pipeline._bind(self)
        self._keep.append(pipeline)
        with self._lock:
            if not self._started and self.autostart:
                self._pending_start = True


max_ = max


def _opt_args(d: Dict[str, Any]) -> Dict[str, Any]:
    names = ("owner", "priority", "delay", "run_at", "max_attempts", "dedupe", "dedupe_ttl",
             "dedupe_until", "force")
    bad = set(d) - set(names)
    if bad:
        raise TypeError(f"submit_many: unknown option(s) {', '.join(sorted(bad))}")
    a: Dict[str, Any] = {n: d.get(n) for n in names}
    a["force"] = bool(a["force"])
    return a


@atexit.register
def _close_all() -> None:
    """Queues still open at interpreter exit: closed with a short drain, so
    that their running jobs go back to the queue instead of waiting out a
    lease, and no libjobq thread runs while Python tears down."""
    with _open_lock:
        qs = list(_open_queues)
    for q in qs:
        try:
            q.close(drain=min(5.0, q.close_drain))
        except Exception:
            pass
