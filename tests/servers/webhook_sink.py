#!/usr/bin/env python3
"""A webhook receiver for the command-line tests: it records every request
and answers with a status chosen by its path.

  python3 webhook_sink.py LOG [SECRET]

Listens on 127.0.0.1, port chosen by the system, prints "PORT <n>", and
serves until its standard input closes. Each request is appended to LOG as
one JSON line: {"method", "path", "headers" (names in lower case), "body"
(the raw body as text), "verified"}. With SECRET ("whsec_..."), "verified"
says whether webhook-signature holds a v1 signature of webhook-id,
webhook-timestamp and the raw body under that secret (Python's standard
library, as docs/webhooks.md shows a receiver doing it); without, null.

Paths: /status/<code> answers <code>; /fail/<n>/<code> answers <code> to
the first n requests on that path, then 200; anything else answers 200.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
SECRET = sys.argv[2] if len(sys.argv) > 2 else None
lock = threading.Lock()
seen = {}


def verify(headers, body):
    if SECRET is None:
        return None
    key = base64.b64decode(SECRET.removeprefix("whsec_"), validate=True)
    signed = (headers.get("webhook-id", "") + "." + headers.get("webhook-timestamp", "") + ".").encode()
    want = base64.b64encode(hmac.new(key, signed + body, hashlib.sha256).digest()).decode()
    for entry in headers.get("webhook-signature", "").split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, want):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        headers = {k.lower(): v for k, v in self.headers.items()}
        parts = self.path.strip("/").split("/")
        code = 200
        with lock:
            if len(parts) == 2 and parts[0] == "status":
                code = int(parts[1])
            elif len(parts) == 3 and parts[0] == "fail":
                seen[self.path] = seen.get(self.path, 0) + 1
                if seen[self.path] <= int(parts[1]):
                    code = int(parts[2])
            rec = {"method": self.command, "path": self.path, "headers": headers,
                   "body": body.decode("utf-8", "replace"), "verified": verify(headers, body),
                   "answered": code}
            with open(LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("PORT %d" % srv.server_address[1], flush=True)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
