"""asyncio for a queue: one hub per (queue, event loop) that reads the
queue's events and wakes the coroutines waiting on jobs or iterating events.

With jobq_poll_fd the hub is a reader on the loop (loop.add_reader): no
thread at all. The fd is edge-style: on readiness the hub acks first, then
drains every buffered event, so that anything arriving after the ack makes
the fd readable again. With an older libjobq (no jobq_poll_fd) the hub runs
one thread per queue that waits in jobq_next_event and hands events to the
loop: still no thread per waiter.

The hub takes the queue's events: a queue used from asyncio should not also
be read with q.next_event() (each event goes to one of them)."""
from __future__ import annotations

import asyncio
import threading
from ctypes import byref, c_int, c_void_p
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import _lib
from ._lib import F
from ._types import Event
from .errors import by_code, raise_last

if TYPE_CHECKING:
    from .queue import Queue

_ETIMEDOUT = -9
_ECLOSED = -10
Closed = by_code[_ECLOSED]
_END = object()


class Hub:
    def __init__(self, q: "Queue", loop: asyncio.AbstractEventLoop) -> None:
        self.q = q
        self.loop = loop
        self.waiters: Dict[str, List[asyncio.Future]] = {}
        self.streams: List[asyncio.Queue] = []
        self.stopped = False
        self.fd: Optional[int] = None
        self.thread: Optional[threading.Thread] = None
        # Turn the event buffer on now (the first jobq_next_event does), so
        # that nothing between now and the first readiness is missed.
        self._drain()
        if _lib.has("poll_fd") and _lib.has("poll_ack"):
            fd = c_int(-1)
            qq = q._enter("events")
            try:
                rc = F.poll_fd(qq, byref(fd))
                if rc < 0:
                    raise_last(rc)
            finally:
                q._exit()
            self.fd = fd.value
            loop.add_reader(self.fd, self._on_ready)
        else:
            self.thread = threading.Thread(target=self._pump, name="jobq-events", daemon=True)
            self.thread.start()

    # ---- reading events ----------------------------------------------------

    def _next(self, ms: int) -> Any:
        """One jobq_next_event: an Event, None (timed out) or _END (closed)."""
        out = c_void_p()
        try:
            qq = self.q._enter("events")
        except Closed:
            return _END
        try:
            rc = F.next_event(qq, ms, byref(out))
            if rc == 0:
                try:
                    return Event._from(out.value)
                finally:
                    F.event_free(out)
            if rc == _ETIMEDOUT:
                return None
            if rc == _ECLOSED:
                return _END
            raise_last(rc)
        finally:
            self.q._exit()
        return None

    def _drain(self) -> List[Any]:
        evs: List[Any] = []
        while True:
            ev = self._next(0)
            if ev is None:
                return evs
            evs.append(ev)
            if ev is _END:
                return evs

    def _on_ready(self) -> None:
        if self.stopped:
            return
        try:
            qq = self.q._enter("events")
        except Closed:
            self._dispatch([_END])
            return
        try:
            F.poll_ack(qq)
        finally:
            self.q._exit()
        self._dispatch(self._drain())

    def _pump(self) -> None:
        while not self.stopped:
            try:
                ev = self._next(500)
            except Exception:
                ev = _END
            if ev is None:
                continue
            try:
                self.loop.call_soon_threadsafe(self._dispatch, [ev])
            except RuntimeError:  # the loop is closed
                return
            if ev is _END:
                return

    # ---- waking coroutines -------------------------------------------------

    def _dispatch(self, evs: List[Any]) -> None:
        ids = set()
        recheck_all = False
        for ev in evs:
            for s in self.streams:
                s.put_nowait(ev)
            if ev is _END:
                self._end()
                return
            if ev.dropped:
                recheck_all = True
            if ev.job_id:
                ids.add(ev.job_id)
        for id in (list(self.waiters) if recheck_all else ids & self.waiters.keys()):
            self._check(id)

    def _check(self, id: str) -> None:
        futs = self.waiters.get(id)
        if not futs:
            return
        try:
            job = self.q.get(id)
        except Exception as e:
            for f in futs:
                if not f.done():
                    f.set_exception(e)
            return
        if job.done:
            for f in futs:
                if not f.done():
                    f.set_result(job)

    def add_waiter(self, id: str) -> asyncio.Future:
        fut = self.loop.create_future()
        self.waiters.setdefault(id, []).append(fut)
        # Checked after registering: a change that came before is in the
        # buffer or already in this snapshot.
        self._check(id)
        return fut

    def remove_waiter(self, id: str, fut: asyncio.Future) -> None:
        futs = self.waiters.get(id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self.waiters[id]

    def _end(self) -> None:
        for futs in self.waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(Closed("wait_async: the queue is closed"))
        self.waiters.clear()

    def stop(self) -> None:
        """From q.close(): stop reading before the fd goes away, and end the
        waiters and streams (on the loop's thread)."""
        if self.stopped:
            return
        self.stopped = True

        def finish() -> None:
            if self.fd is not None:
                self.loop.remove_reader(self.fd)
            for s in self.streams:
                s.put_nowait(_END)
            self._end()

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            finish()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(finish)


def hub_for(q: "Queue") -> Hub:
    loop = asyncio.get_running_loop()
    hub = q._hubs.get(loop)
    if hub is None:
        if q.closed:
            raise Closed("events: the queue is closed")
        hub = Hub(q, loop)
        q._hubs[loop] = hub
    return hub


class EventStream:
    """`async for ev in q.events()`: the events from its creation on."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue = asyncio.Queue()
        hub.streams.append(self.queue)
        self.ended = False

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        if self.ended:
            raise StopAsyncIteration
        ev = await self.queue.get()
        if ev is _END:
            self.close()
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        """Stops receiving events."""
        self.ended = True
        if self.queue in self.hub.streams:
            self.hub.streams.remove(self.queue)
