#!/usr/bin/env python3
"""jobq-server's streams under load (a benchmark, never run by ctest).

Measures, against a jobq-server run submit-only on a fresh SQLite file:
  1. the server's RSS holding N open SSE connections (GET /v1/events), and
     how long one event takes to reach all of them;
  2. the server's RSS holding N long polls (GET /v1/jobs/:id?wait=60) on one
     job, and how long all take to answer once it changes (a cancel);
  3. the time from a job's completion in a worker process (the wall clock
     just before jobq_ctx_succeed, which server_stream_worker puts in the
     result) to its `succeeded` event reaching an SSE client, over JOBS jobs
     run one at a time: p50, p99, max.

  python3 tests/bench/server_streams.py --server build/examples/jobq-server \\
      --worker build/bench/server_stream_worker [-n 10000] [--jobs 300]

The fd limit is raised to what the hard limit allows (the server inherits
it); the client holds its N sockets in this one process."""
import argparse
import json
import os
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

KEY = "bench-key"


def rss_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


class Server:
    def __init__(self, path, db, log):
        env = dict(os.environ, JOBQ_API_KEYS=f"{KEY}:*")
        self.log = open(log, "w+")
        self.p = subprocess.Popen(
            [path, "--listen", "127.0.0.1:0", "--storage", f"sqlite:{db}", "--submit-only", "--quiet"],
            stderr=self.log, env=env)
        for _ in range(200):
            self.log.seek(0)
            m = re.search(r"listening on http://[^ ]*:(\d+)/", self.log.read())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise SystemExit("the server did not start")

    def http(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                   headers={"x-api-key": KEY, "content-type": "application/json"})
        with urllib.request.urlopen(r) as resp:
            return json.loads(resp.read() or b"{}")

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(30)
        self.log.close()
        return rc


def connect_many(port, path, n, until):
    """n sockets, each sent GET path, each read until `until` arrived."""
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {KEY}\r\n\r\n").encode()
    socks, bufs = [], {}
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
        if until is not None and (i % 500 == 499 or i == n - 1):
            for t in socks[len(socks) - (i % 500) - 1:]:
                read_until(t, until, bufs)
    return socks


def read_until(s, token, bufs, timeout=30):
    s.settimeout(timeout)
    buf = bufs.get(s, b"")
    while token not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("a connection closed early")
        buf += chunk
    bufs[s] = buf[buf.index(token) + len(token):]


def wait_all(socks, token, timeout=60):
    """Seconds until every socket received token."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left, t0 = len(socks), time.perf_counter()
    while left and time.perf_counter() - t0 < timeout:
        for key, _ in sel.select(1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            bufs[s] = bufs.get(s, b"") + chunk
            if token in bufs[s] or not chunk:
                sel.unregister(s)
                left -= 1
    sel.close()
    if left:
        raise SystemExit(f"{left} connections did not receive {token!r}")
    return time.perf_counter() - t0


def close_all(socks):
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--jobs", type=int, default=300)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.n + 100:
        raise SystemExit(f"the fd limit ({hard}) is below {a.n + 100}: raise it (ulimit -Hn)")
    work = tempfile.mkdtemp(prefix="jobq-stream-bench.")
    db = os.path.join(work, "q.db")
    srv = Server(a.server, db, os.path.join(work, "server.log"))
    base = rss_kb(srv.p.pid)
    print(f"server idle: RSS {base['VmRSS'] / 1024:.1f} MB")

    # ---- 1: N SSE connections on /v1/events ----
    t0 = time.perf_counter()
    socks = connect_many(srv.port, "/v1/events", a.n, b": ok\n\n")
    t_open = time.perf_counter() - t0
    time.sleep(1)
    r = rss_kb(srv.p.pid)
    print(f"{a.n} SSE streams open (in {t_open:.1f} s): RSS {r['VmRSS'] / 1024:.1f} MB "
          f"({(r['VmRSS'] - base['VmRSS']) * 1024 / a.n:.0f} bytes a stream beyond idle)")
    job = srv.http("POST", "/v1/jobs", {"kind": "idle"})["id"]
    dt = wait_all(socks, job.encode())
    r = rss_kb(srv.p.pid)
    print(f"one event to all {a.n} streams: {dt * 1000:.0f} ms; RSS after {r['VmRSS'] / 1024:.1f} MB")
    close_all(socks)
    time.sleep(1)
    r = rss_kb(srv.p.pid)
    print(f"streams closed by their clients: RSS {r['VmRSS'] / 1024:.1f} MB (malloc keeps the pages)")
    peak = r["VmHWM"]
    if srv.stop() != 0:
        raise SystemExit("the server failed at SIGTERM")

    # ---- 2: N long polls on one job (a fresh server: its own RSS) ----
    srv = Server(a.server, db, os.path.join(work, "server2.log"))
    base = rss_kb(srv.p.pid)
    socks = connect_many(srv.port, f"/v1/jobs/{job}?wait=60", a.n, None)
    time.sleep(2)  # the server reads every request
    r = rss_kb(srv.p.pid)
    print(f"{a.n} long polls waiting: RSS {r['VmRSS'] / 1024:.1f} MB "
          f"({(r['VmRSS'] - base['VmRSS']) * 1024 / a.n:.0f} bytes a poll beyond idle)")
    srv.http("DELETE", f"/v1/jobs/{job}")
    dt = wait_all(socks, b'"cancelled"')
    print(f"all {a.n} long polls answered {dt * 1000:.0f} ms after the cancel")
    close_all(socks)

    # ---- 3: completion in a worker process -> SSE event at the client ----
    worker = subprocess.Popen([a.worker, f"sqlite:{db}", "3600"])
    time.sleep(2.5)  # a writer looks for listeners once a second
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n\r\n".encode())
    f = s.makefile("rb")
    lat = []
    for i in range(a.jobs + 20):
        jid = srv.http("POST", "/v1/jobs", {"kind": "lat"})["id"]
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("the event stream closed")
            if line.startswith(b"data: ") and b'"succeeded"' in line:
                now = time.time_ns() // 1000
                ev = json.loads(line[6:])
                if ev["jobId"] == jid:
                    if i >= 20:  # the first ones warm up
                        lat.append((now - ev["result"]["t"]) / 1000)
                    break
    s.close()
    worker.terminate()
    worker.wait(30)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"completion -> SSE event, {len(lat)} jobs: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
          f"max {lat[-1]:.2f} ms, mean {statistics.mean(lat):.2f} ms")
    peak = max(peak, rss_kb(srv.p.pid)["VmHWM"])
    rc = srv.stop()
    print(f"server peak RSS {peak / 1024:.1f} MB; exit code {rc} after SIGTERM")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
