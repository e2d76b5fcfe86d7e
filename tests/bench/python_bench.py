#!/usr/bin/env python3
"""python_bench: jobs/s through the Python package (bindings/python), next
to libjobq's own pull figures measured in the same run. A program, not a
test: it prints a table and never fails because the machine is slow.

    JOBQ_LIBRARY=build-rel/libjobq.so.0 PYTHONPATH=bindings/python/src \\
        /usr/bin/python3 tests/bench/python_bench.py build-rel/bench/jobq_bench \\
        [--jobs 100000] [--dir /tmp] [--profile pull_many_256]

For each storage (memory:, and sqlite: in a fresh file under --dir), with
--jobs no-op jobs submitted beforehand with q.submit_many (not timed):
  handler_Nw    the handler path: @q.handler, N worker threads, until the
                last success is stored
  pull_claim    `with q.claim(...)` one job at a time
  pull_many_64, pull_many_256
                q.claim_many batches finished with batch.succeed_all()
and the C figures of `jobq_bench --only pull_ --jobs N --storage URL`; the
ratio is Python / C for the same figure (handler rows: / C's pull_many_256).
--profile NAME runs that figure under cProfile and prints the top entries.
"""
import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import tempfile
import threading
import time

import jobq

KIND = "noop"


def submit_all(q, n):
    ids = []
    for i in range(0, n, 10000):
        ids += q.submit_many([(KIND, None)] * min(10000, n - i))
    return ids


def wait_stored(q, id):
    # SQLite stores finishes by group commit after succeed returns: the
    # figure ends when the last one is stored, as jobq_bench's does.
    q.wait(id)


def handler_path(url, n, workers):
    with jobq.Queue(url, workers=workers, autostart=False) as q:
        done = threading.Event()
        count = [0]
        last = [None]
        lock = threading.Lock()

        @q.handler(KIND)
        def noop(job):
            with lock:
                count[0] += 1
                if count[0] == n:
                    last[0] = job.id
                    done.set()

        submit_all(q, n)
        t0 = time.perf_counter()
        q.start()
        done.wait()
        wait_stored(q, last[0])
        return n / (time.perf_counter() - t0)


def pull_path(url, n, batch):
    with jobq.Queue(url, workers=0) as q:
        submit_all(q, n)
        t0 = time.perf_counter()
        claimed = 0
        last = None
        if batch == 0:
            while claimed < n:
                with q.claim(KIND, timeout=0) as job:
                    if claimed == n - 1:
                        last = job.id
                claimed += 1
        else:
            while claimed < n:
                b = q.claim_many(KIND, batch, timeout=0)
                m = len(b)
                if claimed + m >= n and m:
                    last = b[m - 1].id
                b.succeed_all()
                claimed += m
        wait_stored(q, last)
        return n / (time.perf_counter() - t0)


def c_figures(bench, url, n):
    out = subprocess.run([bench, "--only", "pull_", "--jobs", str(n), "--storage", url],
                         capture_output=True, text=True, check=True).stdout
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(pull_\w+): (\d+) jobs/s", out, re.M)}


def main():
    ap = argparse.ArgumentParser(description="jobs/s through the Python package")
    ap.add_argument("jobq_bench", help="the built jobq_bench (Release: build-rel/bench/jobq_bench)")
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the SQLite files go")
    ap.add_argument("--profile", default=None, help="a figure to run under cProfile")
    a = ap.parse_args()
    n = a.jobs
    print(f"libjobq {jobq.library_version()} ({jobq.LIBRARY_PATH}), Python "
          f"{sys.version.split()[0]}, {n} no-op jobs per figure")
    rows = []
    for store in ("memory:", "sqlite"):
        figures = [("handler_1w", lambda u: handler_path(u, n, 1)),
                   ("handler_4w", lambda u: handler_path(u, n, 4)),
                   ("pull_claim", lambda u: pull_path(u, min(n, 20000), 0)),
                   ("pull_many_64", lambda u: pull_path(u, n, 64)),
                   ("pull_many_256", lambda u: pull_path(u, n, 256))]
        files = []

        def url_for(name):
            if store == "memory:":
                return "memory:"
            path = os.path.join(a.dir, f"jobq-pybench-{os.getpid()}-{name}.db")
            files.append(path)
            return "sqlite:" + path

        py = {}
        for name, run in figures:
            u = url_for(name)
            if a.profile == name:
                prof = cProfile.Profile()
                py[name] = prof.runcall(run, u)
                print(f"--- cProfile of {name} on {store}")
                pstats.Stats(prof).sort_stats("tottime").print_stats(12)
            else:
                py[name] = run(u)
        c_url = "memory:" if store == "memory:" else "sqlite:" + os.path.join(
            a.dir, f"jobq-cbench-{os.getpid()}.db")
        c = c_figures(a.jobq_bench, c_url, n)
        for f in files:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(f + suffix)
                except FileNotFoundError:
                    pass
        for name, _ in figures:
            ref = name if name in c else "pull_many_256"
            rows.append((store.rstrip(":"), name, py[name], c.get(ref), ref))

    print(f"\n{'storage':8} {'figure':14} {'Python jobs/s':>14} {'C jobs/s':>10}  ratio  (C figure)")
    for store, name, p, cv, ref in rows:
        ratio = f"{p / cv:5.2f}x" if cv else "    -"
        print(f"{store:8} {name:14} {p:14.0f} {cv or 0:10.0f}  {ratio}  ({ref})")


if __name__ == "__main__":
    main()
