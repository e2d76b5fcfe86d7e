"""The pull style: q.claim as a context manager and q.claim_many batches."""
import pytest

import jobq


def test_with_claim_succeeds_with_result(q):
    id = q.submit("echo", {"n": 1})
    with q.claim("echo", timeout=30) as job:
        assert job.id == id and job.payload == {"n": 1}
        job.progress(50, "pulling")
        job.result = {"got": job.payload["n"]}
    assert job.finished
    done = q.get(id)
    assert done.state is jobq.State.SUCCEEDED and done.result == {"got": 1}


def test_exception_in_with_claim_fails_the_job(q):
    id = q.submit("echo", 1, max_attempts=1)
    with pytest.raises(RuntimeError):
        with q.claim(["echo"], timeout=30):
            raise RuntimeError("disk on fire")
    job = q.get(id)
    assert job.state is jobq.State.FAILED and job.error == "RuntimeError: disk on fire"


def test_claim_timeout(q):
    with pytest.raises(jobq.Timeout):
        q.claim("nothing", timeout=0.05)
    assert len(q.claim_many("nothing", 8, timeout=0)) == 0


def test_finished_claim_refuses_more_calls(q):
    q.submit("k", 1)
    job = q.claim("k", timeout=30)
    job.succeed(7)
    with pytest.raises(jobq.WrongState):
        job.succeed(8)
    with pytest.raises(jobq.WrongState):
        job.payload_json
    assert q.get(job._q.list_page()[0].id).result == 7


def test_bad_result_keeps_the_attempt_open(q):
    id = q.submit("k", 1, max_attempts=1)
    job = q.claim("k", timeout=30)
    with pytest.raises(TypeError):
        job.succeed(object())
    assert not job.finished
    job.fail("could not serialise", retryable=False)
    assert q.get(id).error == "could not serialise"


def test_claim_many_batches(q):
    ids = q.submit_many([("b", {"i": i}) for i in range(10)])
    batch = q.claim_many("b", max=4, timeout=30)
    assert len(batch) == 4 and [j.id for j in batch] == ids[:4]
    batch[0].fail("first fails", retryable=False)
    batch[1].retry_after(0.001)
    assert batch.succeed_all({"ok": True}) == 2
    assert batch.succeed_all() == 0
    rest = q.claim_many(["b"], max=100, timeout=30)
    assert [p for p in rest.payloads_json()] == [b'{"i": %d}' % i for i in range(4, 10)] or \
        len(rest) >= 6
    rest.succeed_all()
    states = [q.get(i).state for i in ids]
    assert states[0] is jobq.State.FAILED
    assert states[2:4] == [jobq.State.SUCCEEDED] * 2 and q.get(ids[2]).result == {"ok": True}
    assert all(s is jobq.State.SUCCEEDED for s in states[4:])


def test_claim_many_bad_max_is_invalid(q):
    with pytest.raises(jobq.InvalidArgument) as e:
        q.claim_many("b", max=5000, timeout=0)
    assert "max" in str(e.value)
