"""Submitting, reading, listing, cancelling, and the errors they raise."""
import datetime as dt

import pytest

import jobq


def test_submit_get_defaults(q):
    id = q.submit("echo", {"text": "hi"}, owner="alice", priority=5, max_attempts=2)
    assert isinstance(id, str) and len(id) == 36 and not id.existing
    job = q.get(id)
    assert job.id == id and job.kind == "echo" and job.state is jobq.State.QUEUED
    assert job.payload == {"text": "hi"} and job.owner == "alice" and job.priority == 5
    assert job.max_attempts == 2 and job.attempts == 0 and job.result is None
    assert job.position == 0 and not job.done and str(job.state) == "queued"


def test_delay_and_run_at(q):
    a = q.get(q.submit("later", None, delay=3600))
    assert a.run_at - a.created_at >= dt.timedelta(seconds=3599)
    when = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    assert q.get(q.submit("later", None, run_at=when)).run_at == when
    assert q.get(q.submit("later", None, run_at=when.timestamp())).run_at == when


def test_dedupe_returns_the_live_job(q):
    a = q.submit("k", {"n": 1}, dedupe="key-1")
    b = q.submit("k", {"n": 2}, dedupe="key-1")
    assert b == a and b.existing and not a.existing
    c = q.submit("k", {"n": 3}, dedupe="key-1", force=True)
    assert c != a and not c.existing
    assert q.get_by_key("key-1").id == c


def test_submit_many_in_order(q):
    ids = q.submit_many([("a", {"i": i}) for i in range(3)] +
                        [{"kind": "b", "payload": [1], "owner": "bob"}], priority=3)
    assert len(ids) == 4 and len(set(ids)) == 4
    jobs = [q.get(i) for i in ids]
    assert [j.kind for j in jobs] == ["a", "a", "a", "b"]
    assert [j.payload for j in jobs] == [{"i": 0}, {"i": 1}, {"i": 2}, [1]]
    assert jobs[3].owner == "bob" and all(j.priority == 3 for j in jobs)
    assert q.submit_many([]) == []


def test_submit_many_all_or_none(q):
    with pytest.raises(jobq.InvalidJSON):
        q.submit_many([{"kind": "a", "payload": 1}, {"kind": "a", "payload_json": "{bad"}])
    assert sum(len(p) for p in q.list()) == 0


def test_bad_input_raises_the_codes_class_and_stores_nothing(q):
    with pytest.raises(jobq.InvalidJSON) as e:
        q.submit("echo", payload_json="{nope")
    assert e.value.code == -4 and e.value.name == "JOBQ_EJSON"
    assert str(e.value).startswith("jobq_submit_ex: payload is not valid JSON")
    with pytest.raises(jobq.BadKind) as e:
        q.submit("no spaces allowed", 1)
    assert "kind" in str(e.value)
    with pytest.raises(jobq.InvalidArgument):
        q.submit("echo", 1, priority=5000)
    assert isinstance(e.value, jobq.Error)
    assert sum(len(p) for p in q.list()) == 0


def test_not_found_is_a_lookup_error(q):
    with pytest.raises(jobq.NotFound) as e:
        q.get("01a00000-0000-7000-8000-000000000000")
    assert isinstance(e.value, LookupError) and e.value.code == -3
    assert "no job" in str(e.value)


def test_every_code_has_a_class():
    names = {c: cls.name for c, cls in jobq.ERRORS.items()}
    assert names[-1] == "JOBQ_EINVAL" and names[-10] == "JOBQ_ECLOSED"
    assert len(names) == -min(names)  # every code from -1 down, no gap
    assert all(issubclass(cls, jobq.Error) for cls in jobq.ERRORS.values())
    assert jobq.Closed.code == -10 and jobq.Timeout.code == -9 and jobq.NotFound.code == -3
    assert isinstance(jobq.error_for(-999, "x"), jobq.Error)


def test_list_pages_follow_the_cursor(q):
    ids = [q.submit("p", {"i": i}, owner="carol") for i in range(7)]
    q.submit("p", 0, owner="dave")
    pages = list(q.list(owner="carol", limit=3, newest_first=False))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [j.id for p in pages for j in p] == ids
    assert pages[-1].next_cursor is None and pages[0].next_cursor
    assert q.list_page(owner="carol", kind="p", state="queued", limit=100)[0].owner == "carol"
    assert len(q.list_page(owner="carol", state=jobq.State.SUCCEEDED)) == 0


def test_cancel_queued_then_finished_is_wrong_state(q):
    id = q.submit("never", 1)
    q.cancel(id)
    job = q.wait(id, 30)
    assert job.state is jobq.State.CANCELLED and job.done
    with pytest.raises(jobq.WrongState):
        q.cancel(id)


def test_wait_timeout_carries_the_snapshot(q):
    id = q.submit("nobody-runs-this", 1)
    with pytest.raises(jobq.Timeout) as e:
        q.wait(id, 0.05)
    assert isinstance(e.value, TimeoutError) and e.value.job.state is jobq.State.QUEUED


def test_options_are_checked():
    with pytest.raises(jobq.InvalidArgument):
        jobq.Queue("memory:", workers=-1)
    with pytest.raises(jobq.BadURL):
        jobq.Queue("nosuch:x")
    with jobq.Queue("memory:", lease=1, event_buffer=10, max_payload=100) as q:
        with pytest.raises(jobq.TooBig):
            q.submit("k", "x" * 200)


def test_injected_clock_sets_times():
    now = [1_800_000_000_000]
    with jobq.Queue("memory:", clock_ms=lambda: now[0]) as q:
        assert q.now() == now[0]
        job = q.get(q.submit("k", 1, delay=10))
        assert job.created_at.timestamp() * 1000 == now[0]
        assert job.run_at.timestamp() * 1000 == now[0] + 10000


def test_sqlite_persists_across_queues(db):
    with jobq.Queue(db) as q:
        id = q.submit("k", {"x": 1})
    with jobq.Queue(db) as q:
        assert q.get(id).payload == {"x": 1}


def test_next_event_sees_submit(q):
    assert q.next_event(0) is None  # buffering starts with the first call
    id = q.submit("k", 1)
    ev = q.next_event(5)
    assert ev.type is jobq.EventType.SUBMITTED and ev.job_id == id and ev.kind == "k"


def test_shared_events_hear_another_queue_on_the_file(db):
    with jobq.Queue(db, shared_events=True) as listener, jobq.Queue(db) as other:
        id = other.submit("k", {"from": "other"})
        ev = listener.next_event(60)
        while ev is not None and ev.job_id != id:
            ev = listener.next_event(60)
        assert ev is not None and ev.type is jobq.EventType.SUBMITTED and ev.kind == "k"
    with pytest.raises(jobq.NotSupported):
        jobq.Queue("memory:", shared_events=True)
