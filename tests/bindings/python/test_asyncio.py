"""asyncio: await q.wait_async and async for ev in q.events(), on the
queue's pollable fd (or, with an older libjobq, one thread per queue)."""
import asyncio
import threading

import pytest

import jobq


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_many_waits_without_a_thread_each(q):
    gate = threading.Event()

    @q.handler("gated")
    def gated(job):
        gate.wait(60)
        return job.payload * 2

    async def main():
        ids = [q.submit("gated", i) for i in range(50)]
        before = threading.active_count()
        waits = [asyncio.ensure_future(q.wait_async(id)) for id in ids]
        await asyncio.sleep(0)
        threads = threading.active_count() - before
        gate.set()
        jobs = await asyncio.gather(*waits)
        return threads, jobs

    threads, jobs = run(main())
    # With jobq_poll_fd, none at all; an older libjobq: the hub's one.
    assert threads == (0 if jobq._lib.has("poll_fd") else 1)
    assert [j.result for j in jobs] == [i * 2 for i in range(50)]
    assert all(j.state is jobq.State.SUCCEEDED for j in jobs)


def test_wait_async_on_a_finished_job_and_timeout(q):
    q.handler("fast")(lambda job: "done")

    async def main():
        id = q.submit("fast", 1)
        first = await q.wait_async(id, timeout=60)
        again = await q.wait_async(id)  # already done: at once
        with pytest.raises(jobq.Timeout):
            await q.wait_async(q.submit("nobody", 1), timeout=0.05)
        with pytest.raises(jobq.NotFound):
            await q.wait_async("01a00000-0000-7000-8000-000000000000")
        return first, again

    first, again = run(main())
    assert first.result == "done" and again.id == first.id


def test_events_in_order(q):
    @q.handler("steps")
    def steps(job):
        job.progress(50, "half")
        return "ok"

    async def main():
        evs = q.events()
        id = q.submit("steps", 1)
        seen = []
        async for ev in evs:
            if ev.job_id == id:
                seen.append((str(ev.type), ev.progress))
            if ev.type is jobq.EventType.SUCCEEDED:
                evs.close()
                break
        return seen

    seen = run(main())
    assert [t for t, _ in seen][0] == "submitted" and seen[-1][0] == "succeeded"
    assert ("progress", 50) in seen and "started" in [t for t, _ in seen]


def test_close_ends_streams_and_waiters():
    q = jobq.Queue("memory:")

    async def main():
        evs = q.events()
        w = asyncio.ensure_future(q.wait_async(q.submit("nobody", 1)))
        await asyncio.sleep(0.01)
        q.close(drain=0)
        got = [ev async for ev in evs]
        with pytest.raises(jobq.Closed):
            await w
        return got

    got = run(main())
    assert all(ev.type is jobq.EventType.SUBMITTED for ev in got)
