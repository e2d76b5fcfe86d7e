"""Handlers: results, exceptions, retries, progress, cancellation, and
callbacks that survive the garbage collector."""
import gc
import threading

import pytest

import jobq


def test_return_value_is_the_result(q):
    @q.handler("echo")
    def echo(job):
        assert job.kind == "echo" and job.attempt == 1 and len(job.id) == 36
        job.progress(40, "Halfway...")
        return {"echo": job.payload, "raw": job.payload_json}

    job = q.wait(q.submit("echo", {"t": "hi"}), 30)
    assert job.state is jobq.State.SUCCEEDED
    assert job.result == {"echo": {"t": "hi"}, "raw": '{"t": "hi"}'}
    assert job.step == "Halfway..."


def test_raising_handler_fails_with_type_and_message(q):
    @q.handler("boom", max_attempts=2, backoff=(0.001, 0.001, 0))
    def boom(job):
        raise KeyError("missing thing")

    job = q.wait(q.submit("boom", 1), 30)
    assert job.state is jobq.State.FAILED and job.attempts == 2
    assert job.error == "KeyError: 'missing thing'"
    assert [a.error for a in job.attempt_history] == ["KeyError: 'missing thing'"] * 2


def test_unserialisable_result_fails_the_attempt(q):
    @q.handler("bad", max_attempts=1)
    def bad(job):
        return {1, 2}

    job = q.wait(q.submit("bad", 1), 30)
    assert job.state is jobq.State.FAILED and job.error.startswith("TypeError: ")


def test_fail_is_permanent_and_retry_asks_again(q):
    seen = []

    @q.handler("f", max_attempts=5)
    def f(job):
        raise jobq.Fail("no such user")

    @q.handler("r", max_attempts=3)
    def r(job):
        seen.append(job.attempt)
        if job.attempt < 2:
            raise jobq.Retry(after=0.01)
        return "second time"

    a, b = q.submit("f", 1), q.submit("r", 1)
    fa, rb = q.wait(a, 30), q.wait(b, 30)
    assert fa.state is jobq.State.FAILED and fa.attempts == 1 and fa.error == "no such user"
    assert rb.state is jobq.State.SUCCEEDED and rb.result == "second time" and seen == [1, 2]
    assert "deferred by the handler" in rb.attempt_history[0].error


def test_retry_without_counting_on_sqlite(db):
    runs = []
    with jobq.Queue(db) as q:
        @q.handler("r", max_attempts=1)
        def r(job):
            runs.append(job.attempt)
            if len(runs) == 1:
                raise jobq.Retry(after=0.01, count_attempt=False)
            return len(runs)

        job = q.wait(q.submit("r", {}), 30)
        # One attempt allowed, two runs: the deferral did not count.
        assert job.state is jobq.State.SUCCEEDED and job.result == 2 and runs == [1, 1]


def test_cancelled_is_seen_by_the_handler(q):
    started, stop = threading.Event(), threading.Event()

    @q.handler("long")
    def long(job):
        started.set()
        while not job.cancelled:
            stop.wait(0.01)
        return "stopped"

    id = q.submit("long", 1)
    assert started.wait(30)
    q.cancel(id)
    assert q.wait(id, 30).state is jobq.State.CANCELLED


def test_handler_callbacks_survive_gc_while_running(q):
    # The decorated functions and their ctypes trampolines go out of scope
    # at once; the queue keeps them, and collecting while handlers run
    # must not make libjobq call anything else.
    def register(kind, value):
        @q.handler(kind, concurrency=2)
        def h(job):
            gc.collect()
            return {kind: value}

    for i in range(5):
        register(f"k{i}", i)
    gc.collect()
    ids = [(i, q.submit(f"k{i}", None)) for i in range(5) for _ in range(4)]
    gc.collect()
    for i, id in ids:
        job = q.wait(id, 60)
        assert job.state is jobq.State.SUCCEEDED and job.result == {f"k{i}": i}


def test_register_after_start_is_refused(q):
    q.handler("a")(lambda job: 1)
    q.submit("a", 1)  # starts the workers
    with pytest.raises(jobq.WrongState) as e:
        q.handler("b")(lambda job: 2)
    assert "before jobq_start" in str(e.value)


def test_bad_kind_options_raise_and_register_nothing(q):
    with pytest.raises(jobq.InvalidArgument):
        q.handler("x", max_attempts=0)(lambda job: 1)
    q.handler("x")(lambda job: "ok")  # the kind is still free
    assert q.wait(q.submit("x", 1), 30).result == "ok"
