#!/usr/bin/env python3
"""A webhook receiver for tests/integration/test_webhooks.c and
test_webhook_crash.c (Python 3 standard library only).

Listens on 127.0.0.1, port chosen by the system, and prints "PORT <n>" as its
first line. Exits when its stdin closes, so a test that dies never leaves it
running.

  webhook_receiver.py [--secret whsec_...]... [--dir DIR]

Every POST is checked here, with hmac, hashlib and base64 (an implementation
of the Standard Webhooks signature that shares nothing with libjobq's),
against each --secret: it "verified" when some "v1," entry of its
webhook-signature header is the HMAC-SHA256 of "id.timestamp.body" under one
of them. Every POST is recorded (its path, the three headers, whether it
verified, which secret did, the body, what was answered). With --dir, each
body is also written to DIR/body<n> and a line "secret id timestamp
body_file signature" (the entries of the signature joined by '|', the secret
the one that verified, else the first) is appended to DIR/manifest: the
input of `node webhook_check.js verify DIR/manifest`, so that the reference
library checks every delivery too.

Routes of a POST, by the path's first segment (the rest of the path, e.g.
/ok/case3, is free for a test to tell its deliveries apart):
  /ok                  200
  /flaky?fail=N        the first N calls of each webhook-id answer 500, then 200
  /hang                never answers; ends when the client drops the connection
                       (recorded as a drop of the request)
  /gone                410
  /status/CODE         that status; retry_after=S adds "Retry-After: S"
  /slow?ms=N           200 after N ms
anything else: 404.

GET routes (never recorded):
  /log?prefix=P        JSON list of the recorded requests whose path starts with P
                       (all without prefix): {"n", "path", "id", "timestamp",
                       "signature", "verified", "secret_index", "status", "body",
                       "dropped"}
  /count?prefix=P      JSON {"requests": n, "verified": n, "ids": distinct ids,
                       "hanging": open /hang requests, "drops": n}
"""
import base64
import hashlib
import hmac
import json
import os
import select
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
records = []          # every POST, in arrival order
flaky_calls = {}      # webhook-id -> calls of /flaky
hanging = 0           # /hang requests still open
secrets = []          # "whsec_..." from the command line
keys = []             # their decoded keys
out_dir = None


def verify(msg_id, timestamp, body, header):
    """Index of the secret that signed it, or -1."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    for i, key in enumerate(keys):
        want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for entry in header.split(" "):
            version, _, sig = entry.partition(",")
            if version == "v1" and hmac.compare_digest(sig, want):
                return i
    return -1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        prefix = q.get("prefix", "")
        with lock:
            mine = [r for r in records if r["path"].startswith(prefix)]
            if u.path == "/log":
                out = json.dumps(mine).encode()
            elif u.path == "/count":
                out = json.dumps({
                    "requests": len(mine),
                    "verified": sum(1 for r in mine if r["verified"]),
                    "ids": len({r["id"] for r in mine}),
                    "hanging": sum(1 for r in mine if r["hanging"]),
                    "drops": sum(1 for r in mine if r["dropped"]),
                }).encode()
            else:
                out = None
        if out is None:
            self.reply(404, b"{}")
        else:
            self.reply(200, out)

    def do_POST(self):
        global hanging
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        route = u.path.split("/")
        first = route[1] if len(route) > 1 else ""
        msg_id = self.headers.get("webhook-id") or ""
        ts = self.headers.get("webhook-timestamp") or ""
        sig = self.headers.get("webhook-signature") or ""
        which = verify(msg_id, ts, body, sig) if msg_id and ts and sig else -1
        status, extra = 404, []
        if first == "ok":
            status = 200
        elif first == "flaky":
            with lock:
                calls = flaky_calls.get(msg_id, 0) + 1
                flaky_calls[msg_id] = calls
            status = 500 if calls <= int(q.get("fail", "0")) else 200
        elif first == "hang":
            status = 0
        elif first == "gone":
            status = 410
        elif first == "status" and len(route) > 2 and route[2].isdigit():
            status = int(route[2])
            if "retry_after" in q:
                extra.append(("Retry-After", q["retry_after"]))
        elif first == "slow":
            time.sleep(int(q.get("ms", "0")) / 1000.0)
            status = 200
        with lock:
            rec = {"n": len(records), "path": self.path, "id": msg_id, "timestamp": ts,
                   "signature": sig, "verified": which >= 0, "secret_index": which,
                   "status": status, "ctype": self.headers.get("Content-Type") or "", "body": body.decode("utf-8", "replace"),
                   "hanging": status == 0, "dropped": False, "at": time.time()}
            records.append(rec)
            if status == 0:
                hanging += 1
            if out_dir and msg_id and ts and sig:
                path = os.path.join(out_dir, "body%d" % rec["n"])
                with open(path, "wb") as f:
                    f.write(body)
                secret = secrets[which] if which >= 0 else (secrets[0] if secrets else "whsec_")
                with open(os.path.join(out_dir, "manifest"), "a", encoding="utf-8") as f:
                    f.write("%s %s %s %s %s\n" % (secret, msg_id, ts, path, sig.replace(" ", "|")))
        if status == 0:
            # Never answer: wait until the client gives up and closes.
            sock = self.connection
            while True:
                r, _, _ = select.select([sock], [], [], 1.0)
                if r:
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        break
            with lock:
                rec["hanging"] = False
                rec["dropped"] = True
                hanging -= 1
            self.close_connection = True
            return
        self.reply(status, b"{}", extra)


def main():
    global out_dir
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        if args[i] == "--secret" and i + 1 < len(args):
            secrets.append(args[i + 1])
            keys.append(base64.b64decode(args[i + 1].removeprefix("whsec_"), validate=True))
            i += 2
        elif args[i] == "--dir" and i + 1 < len(args):
            out_dir = args[i + 1]
            i += 2
        else:
            print("usage: webhook_receiver.py [--secret whsec_...]... [--dir DIR]", file=sys.stderr)
            sys.exit(2)
    ThreadingHTTPServer.daemon_threads = True
    # Clients that are killed mid-request (the crash test) are no news.
    ThreadingHTTPServer.handle_error = lambda self, request, client_address: None
    ThreadingHTTPServer.request_queue_size = 256
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    # Exit when the test closes our stdin (or dies).
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
