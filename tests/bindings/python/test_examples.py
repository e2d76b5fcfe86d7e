"""examples/python: the podcast job and the HTTP service, run as programs."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT

EX = os.path.join(ROOT, "examples", "python")
TEXT = "Counties must inspect small bridges every four years. A weak bridge gets a weight limit."


def test_podcast_example(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(EX, "podcast.py"), "--db",
                        str(tmp_path / "p.db"), "--format", "wav", "Small bridges", TEXT],
                       capture_output=True, text=True, timeout=300, env=os.environ.copy())
    if r.returncode != 0 and ("espeak" in r.stderr or "NotSupported" in r.stderr):
        pytest.skip(f"no offline voices here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert "100%  succeeded  Done" in r.stdout  # the steps between are sampled
    assert "audio: file://" in r.stdout


def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_example(tmp_path):
    p = subprocess.Popen([sys.executable, os.path.join(EX, "server.py"), "--db",
                          str(tmp_path / "s.db"), "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = p.stdout.readline()
        if not line:  # it exited before serving
            err = p.stderr.read()
            p.wait(60)
            if "without espeak-ng" in err:
                pytest.skip(f"no offline voices in this build: {err.strip().splitlines()[-1]}")
            pytest.fail(f"server.py did not start: {err}")
        assert line.startswith("listening on "), line
        base = line.split()[-1]
        note = {"noteContent": TEXT, "noteId": "n1", "userId": "alice"}
        st, b = call(base, "POST", "/api/podcast/generate/async", note)
        assert st == 202 and b["success"] and b["status"] == "queued", b
        id = b["jobId"]
        assert b["message"] == "Podcast generation started" and b["position"] >= 0
        while True:  # poll as the service's clients do
            st, b = call(base, "GET", f"/api/podcast/jobs/{id}")
            assert st == 200 and b["job"]["jobId"] == id
            if b["job"]["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        job = b["job"]
        if job["status"] == "failed" and "espeak" in job.get("error", ""):
            pytest.skip(f"no offline voices here: {job['error']}")
        assert job["status"] == "completed" and job["progress"] == 100, job
        assert job["audioUrl"].endswith(".mp3") and job["transcript"][0]["speaker"]
        st, b = call(base, "POST", "/api/podcast/generate/async", note)
        assert st == 200 and b["cached"] and b["jobId"] == id and b["job"]["status"] == "completed"
        st, b = call(base, "POST", "/api/podcast/generate/async",
                     {**note, "duration": "long"})
        assert st == 202 and b["jobId"] != id
        st, b = call(base, "GET", "/api/podcast/jobs/user/alice?limit=1")
        assert st == 200 and len(b["jobs"]) == 1 and b["nextCursor"]
        st, b2 = call(base, "GET", f"/api/podcast/jobs/user/alice?limit=1&cursor={b['nextCursor']}")
        assert st == 200 and b2["jobs"][0]["jobId"] == id and b2["nextCursor"] is None
        assert call(base, "GET", "/api/podcast/jobs/user/bob")[1]["jobs"] == []
        st, b = call(base, "GET", "/api/podcast/jobs/user/alice?limit=0")
        assert st == 400 and b["error"]["code"] == "bad_query"
        st, b = call(base, "GET", "/api/podcast/jobs/01a00000-0000-7000-8000-000000000000")
        assert st == 404 and not b["success"]
        st, b = call(base, "POST", "/api/podcast/generate/async", {"userId": "alice"})
        assert st == 400 and b["error"]["code"] == "missing_field"
    finally:
        if p.returncode is None:  # it served: it must stop cleanly on SIGINT
            p.send_signal(signal.SIGINT)
            assert p.wait(120) == 0
        p.stdout.close()
        p.stderr.close()
