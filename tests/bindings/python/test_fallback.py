"""With a libjobq older than jobq_shutdown/jobq_destroy and jobq_poll_fd,
the package still cannot crash after close (its own closed flag, blocking
calls in slices) and asyncio still works (one thread per queue). Run in a
child interpreter with those functions hidden."""
from conftest import run_py

CHILD = """
import asyncio, threading
import jobq, jobq._lib as L
for name in ("shutdown", "destroy", "poll_fd", "poll_ack"):
    delattr(L.F, name)
assert not L.has("shutdown") and not L.has("poll_fd")

q = jobq.Queue("memory:", workers=2)
q.handler("k")(lambda job: job.payload)
closed = []
def blocked(n):
    try:
        q.wait(q.submit("never", n), 60)
    except jobq.Closed:
        closed.append(n)
ts = [threading.Thread(target=blocked, args=(n,)) for n in range(4)]
for t in ts: t.start()

async def main():
    before = threading.active_count()
    jobs = await asyncio.gather(*[q.wait_async(q.submit("k", i)) for i in range(10)])
    assert [j.result for j in jobs] == list(range(10))
    assert threading.active_count() - before == 1  # the queue's event thread
asyncio.run(main())
q.close(drain=1)
for t in ts: t.join(30)
assert sorted(closed) == [0, 1, 2, 3], closed
try:
    q.get("x")
except jobq.Closed:
    print("fallback ok")
"""


def test_older_library_fallbacks():
    r = run_py(CHILD)
    assert r.returncode == 0 and "fallback ok" in r.stdout, r.stderr
