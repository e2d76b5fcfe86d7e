#!/usr/bin/env python3
"""The podcast service's three endpoints in Python, standard library only
(http.server), over one jobq queue:

  POST /api/podcast/generate/async     a podcast of a note: a ticket (202), or the cached job (200)
  GET  /api/podcast/jobs/:jobId        the job as the service showed it
  GET  /api/podcast/jobs/user/:userId  a user's podcasts, newest first (?limit=1..100&cursor=)

The JSON shapes are jobq-server's (docs/server.md, "The podcast service").
The podcasts are made offline (template script, espeak-ng, local files);
--submit-only leaves that to other processes on the same SQLite file.

    python3 examples/python/server.py --db /tmp/podcast.db --port 8080
"""
import argparse
import datetime as dt
import hashlib
import json
import math
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jobq

KIND = "podcast"
CACHE_TTL = 24 * 3600.0  # a succeeded podcast answers the same request for a day
STATUS = {jobq.State.QUEUED: "queued", jobq.State.RUNNING: "processing",
          jobq.State.SUCCEEDED: "completed"}  # failed and cancelled: "failed"
queue: jobq.Queue


def iso(t):
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cache_key(user, note, duration, content):
    """One key per (user, note, duration, content), as jobq-server makes it."""
    h = hashlib.sha256()
    for part in (user, note, duration, content):
        b = part.encode()
        h.update(b"%d:" % len(b) + b)
    return "podcast:note:" + h.hexdigest()[:48]


def podcast_json(job):
    o = {"jobId": job.id, "status": STATUS.get(job.state, "failed"), "progress": job.progress,
         "createdAt": iso(job.created_at)}
    if job.step:
        o["currentStep"] = job.step
    if job.done and job.finished_at:
        o["completedAt"] = iso(job.finished_at)
    if job.state is jobq.State.SUCCEEDED:
        r = job.result or {}
        o["audioUrl"] = r.get("audioUrl")
        if "audioDuration" in r:
            o["audioDuration"] = r["audioDuration"]
        o["transcript"] = r.get("dialogue") or []
    elif job.state is jobq.State.CANCELLED:
        o["error"] = "cancelled"
    elif job.state is jobq.State.FAILED:
        o["error"] = job.error or "failed"
    return o


class Handler(BaseHTTPRequestHandler):
    server_version = "jobq-python-example"

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"success": False, "error": {"code": code, "message": message}})

    def log_message(self, fmt, *args):
        if os.environ.get("JOBQ_EXAMPLE_LOG"):
            super().log_message(fmt, *args)

    def do_POST(self):
        if urlsplit(self.path).path != "/api/podcast/generate/async":
            return self.error(404, "not_found", "no such endpoint")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return self.error(400, "invalid_json", "the body must be a JSON object")
        fields = {}
        for name in ("noteContent", "noteId", "userId", "duration"):
            v = body.get(name)
            if v is not None and (not isinstance(v, str) or not v):
                return self.error(400, "invalid_field", f"'{name}' must be a non-empty string")
            fields[name] = v
        if not fields["noteContent"]:
            return self.error(400, "missing_field", "'noteContent' is required")
        if not fields["userId"]:
            return self.error(400, "invalid_field", "'userId' is required: the podcast's owner")
        duration = fields["duration"] or "short"
        if duration not in ("short", "medium", "long"):
            return self.error(400, "invalid_field", "'duration' is short, medium or long")
        force = body.get("forceRegenerate") is True
        key = cache_key(fields["userId"], fields["noteId"] or "", duration, fields["noteContent"])
        try:
            if not force:
                try:
                    return self.cached(queue.get_by_key(key))
                except jobq.NotFound:
                    pass
            payload = {"noteId": fields["noteId"] or "", "noteContent": fields["noteContent"],
                       "userId": fields["userId"], "duration": duration}
            id = queue.submit(KIND, payload, owner=fields["userId"], dedupe=key,
                              dedupe_ttl=CACHE_TTL, force=force)
            job = queue.get(id)
            if id.existing:
                return self.cached(job)
        except jobq.InvalidArgument as e:
            return self.error(400, "invalid_field", str(e))
        except jobq.Error as e:
            return self.error(503 if isinstance(e, jobq.Closed) else 500, e.name, str(e))
        self.reply(202, {"success": True, "jobId": id, "status": "queued",
                         "message": "Podcast generation started",
                         "position": max(job.position, 0),
                         "estimatedWaitSeconds": math.ceil(max(job.eta_ms, 0) / 1000 + 45)})

    def cached(self, job):
        body = {"success": True, "cached": True, "jobId": job.id,
                "status": STATUS.get(job.state, "failed"),
                "message": "This podcast was generated already"
                if job.state is jobq.State.SUCCEEDED else "This podcast is being generated already",
                "job": podcast_json(job)}
        self.reply(200, body)

    def do_GET(self):
        url = urlsplit(self.path)
        m = re.fullmatch(r"/api/podcast/jobs/user/([^/]+)", url.path)
        if m:
            return self.list_user(m.group(1), parse_qs(url.query))
        m = re.fullmatch(r"/api/podcast/jobs/([^/]+)", url.path)
        if not m:
            return self.error(404, "not_found", "no such endpoint")
        try:
            job = queue.get(m.group(1))
        except (jobq.NotFound, jobq.InvalidArgument):
            job = None
        if job is None or job.kind != KIND:  # another kind's ids cannot be probed
            return self.error(404, "JOBQ_ENOTFOUND", "no podcast job with that id")
        self.reply(200, {"success": True, "job": podcast_json(job)})

    def list_user(self, user, query):
        limit = query.get("limit", ["20"])[0]
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return self.error(400, "bad_query", "'limit' is a number of jobs, 1..100")
        try:
            page = queue.list_page(owner=user, kind=KIND, limit=int(limit),
                                   cursor=query.get("cursor", [None])[0])
        except jobq.InvalidArgument as e:
            return self.error(400, "bad_query", str(e))
        self.reply(200, {"success": True, "jobs": [podcast_json(j) for j in page],
                         "nextCursor": page.next_cursor})


def main():
    global queue
    ap = argparse.ArgumentParser(description="the podcast service's endpoints over jobq")
    ap.add_argument("--db", default="podcast.db")
    ap.add_argument("--port", type=int, default=8080, help="0: any free port (printed)")
    ap.add_argument("--audio", default=None, help="where the audio goes (default <db>-audio)")
    ap.add_argument("--submit-only", action="store_true", help="run no podcasts here")
    a = ap.parse_args()
    with jobq.Queue("sqlite:" + a.db, workers=2) as queue:
        if not a.submit_only:
            queue.register_pipeline(KIND, jobq.Pipeline({
                "script": {"provider": "template"},
                "tts": {"provider": "espeak", "format": "mp3"},
                "upload": {"provider": "local",
                           "dir": os.path.abspath(a.audio or a.db + "-audio")}}))
            queue.start()
        httpd = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
        httpd.daemon_threads = True
        print(f"listening on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
