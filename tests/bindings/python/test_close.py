"""Closing: no call can crash after close, from any thread; threads
submitting at once; interpreter exit closes open queues; a worker killed
with -9 mid-job has its job rescued by another process."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import jobq
from conftest import run_py


def test_every_call_after_close_raises_closed():
    q = jobq.Queue("memory:")
    id = q.submit("k", 1)
    q.close()
    q.close()  # idempotent
    calls = [lambda: q.submit("k", 1), lambda: q.get(id), lambda: q.wait(id, 1),
             lambda: q.cancel(id), lambda: q.claim("k", 0), lambda: q.claim_many("k", 4, 0),
             lambda: list(q.list()), lambda: q.next_event(0), lambda: q.now(),
             lambda: q.submit_many([("k", 1)]), lambda: q.health()]
    for call in calls:
        with pytest.raises(jobq.Closed) as e:
            call()
        assert e.value.code == -10 and "the queue is closed" in str(e.value)


def test_use_after_close_from_many_threads():
    # Threads hammer the queue (submit, get, blocking waits and claims)
    # while another thread closes it: every call either works or raises
    # jobq.Closed, so each thread ends with jobq.Closed; none crashes, none
    # hangs (the blocked ones return at shutdown).
    for round in range(3):
        q = jobq.Queue("memory:", workers=2)
        q.handler("k")(lambda job: job.payload)
        first = q.submit("k", 0)
        errors, closed = [], []
        busy = threading.Barrier(10)

        def worker(n):
            i = 0
            while True:
                try:
                    if i == 1:
                        busy.wait(60)  # everyone has made a call: close now
                    if n % 3 == 0:
                        q.get(q.submit("k", i))
                    elif n % 3 == 1:
                        q.wait(q.submit("never", i), 30 if i else 0.001)
                    else:
                        with q.claim("never", timeout=30 if i else 0.001):
                            pass
                except jobq.Timeout:
                    pass
                except jobq.Closed:
                    closed.append(n)
                    return
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(repr(e))
                    return
                i += 1

        ts = [threading.Thread(target=worker, args=(n,)) for n in range(9)]
        for t in ts:
            t.start()
        q.wait(first, 30)
        busy.wait(60)
        q.close(drain=1)
        for t in ts:
            t.join(60)
            assert not t.is_alive()
        assert errors == [] and sorted(closed) == list(range(9))


def test_threads_submit_concurrently(db):
    with jobq.Queue(db, workers=4) as q:
        q.handler("sum")(lambda job: job.payload["a"] + job.payload["b"])
        ids = [[] for _ in range(8)]

        def submit(n):
            for i in range(50):
                ids[n].append((n * 1000 + i, q.submit("sum", {"a": n * 1000, "b": i})))

        ts = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        all_ids = [x for part in ids for x in part]
        assert len({id for _, id in all_ids}) == 400
        for want, id in all_ids:
            job = q.wait(id, 60)
            assert job.state is jobq.State.SUCCEEDED and job.result == want


def test_exit_without_close_releases_running_jobs(db):
    # The child leaves with a job running and the queue open: the exit hook
    # closes it, so the job is queued again at once (not left running
    # until its lease runs out).
    with jobq.Queue(db) as q:
        id = q.submit("slow", 1)
    code = f"""
import jobq, threading, os
q = jobq.Queue({db!r}, lease=3600)
started = threading.Event()
@q.handler("slow")
def slow(job):
    started.set()
    while not job.cancelled:
        threading.Event().wait(0.01)
q.start()
started.wait(60)
print("running", flush=True)
"""
    r = run_py(code)
    assert r.returncode == 0 and "running" in r.stdout, r.stderr
    with jobq.Queue(db) as q:
        job = q.get(id)
        assert job.state is jobq.State.QUEUED and job.attempts == 0


WORKER = """
import jobq, sys, threading
q = jobq.Queue(sys.argv[1], lease=0.5)
@q.handler("slow")
def slow(job):
    print("started", job.id, flush=True)
    threading.Event().wait(3600)
q.start()
threading.Event().wait(3600)
"""


def test_worker_killed_mid_job_is_rescued(db):
    with jobq.Queue(db) as q:
        id = q.submit("slow", {"n": 1}, max_attempts=3)
    child = subprocess.Popen([sys.executable, "-c", WORKER, db], stdout=subprocess.PIPE,
                             text=True, env=os.environ.copy())
    try:
        line = child.stdout.readline()
        assert line.split() == ["started", id]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    with jobq.Queue(db, lease=0.5) as q:
        assert q.get(id).state is jobq.State.RUNNING  # nobody released it
        q.handler("slow")(lambda job: {"rescued": job.attempt})
        job = q.wait(id, 120)
        assert job.state is jobq.State.SUCCEEDED and job.result == {"rescued": 2}
        assert job.attempts == 2


def test_library_not_found_is_clear():
    r = subprocess.run([sys.executable, "-c", "import jobq"], capture_output=True, text=True,
                       env={**os.environ, "JOBQ_LIBRARY": "/nonexistent/libjobq.so.0"})
    assert r.returncode != 0
    assert "jobq.LibraryNotFound" in r.stderr or "LibraryNotFound" in r.stderr
    assert "JOBQ_LIBRARY=/nonexistent/libjobq.so.0 cannot be loaded" in r.stderr
    assert issubclass(jobq.LibraryNotFound, ImportError)


def test_handler_outlasting_the_drain_sees_cancelled_and_its_job_goes_back(db):
    q = jobq.Queue(db, workers=1)
    started, after = threading.Event(), []

    @q.handler("slow")
    def slow(job):
        started.set()
        while not job.cancelled:  # set when the drain is over
            time.sleep(0.005)
        after.append(job.payload)  # the context still answers
        return "late"

    id = q.submit("slow", {"n": 1})
    assert started.wait(60)
    q.close(drain=0.05)  # returns once the handler has returned
    assert q._q is None and after == [{"n": 1}]
    with jobq.Queue(db) as q2:  # released: queued again, the attempt not counted
        job = q2.get(id)
        assert job.state is jobq.State.QUEUED and job.attempts == 0


def test_close_from_its_own_handler_is_refused(q):
    seen = []

    @q.handler("closer", max_attempts=1)
    def closer(job):
        try:
            q.close()
        except jobq.Deadlock as e:
            seen.append(str(e))
        return "ok"

    assert q.wait(q.submit("closer", 1), 30).result == "ok"
    assert seen and "from a handler of this queue" in seen[0] and not q.closed
