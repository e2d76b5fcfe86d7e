#!/usr/bin/env python3
"""HTTP server for tests/unit/test_net_http.c (Python 3 standard library only).

Listens on 127.0.0.1, port chosen by the system, and prints "PORT <n>" as its
first line. Exits when its stdin closes, so a test that dies never leaves it
running. With "--tls CERT KEY" it serves HTTPS (tests/unit/test_net_tls.c).

Routes (query parameters after ?):
  /echo                 200, JSON: method, path, headers, body_len, body_crc32,
                        peer_port (the client's port: the same on a reused connection)
                        (zlib.crc32), body (latin-1 text, when under 4 KiB)
  /status/<code>        that status, JSON {"error":{"message": msg}}; retry_after=V
                        sends "Retry-After: V", retry_date=N sends an HTTP date N
                        seconds ahead
  /flaky                the first `fail` calls of `token` answer `code` (503) with
                        retry_after / retry_date as above, later ones act as /echo
  /hang?ms=N            answers after N ms, unless the client drops the
                        connection first (counted as a drop of `token`)
  /slow?ms=N            answers "ok" after N ms
  /big?bytes=N          N bytes of 'x'; chunked=1 sends them without Content-Length
  /auth                 401 whose error message quotes the Authorization header
                        (and, for Basic, its decoded credentials)
  /redirect?to=U        302 with "Location: U"
  /count?of=T           JSON {"calls": calls of token T, "drops": drops of T}
Every request that carries token=T counts as a call of T.
"""
import base64
import email.utils
import json
import os
import select
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
calls = {}
drops = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and Expect: 100-continue, as real APIs

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="application/json", headers=(), chunked=False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def retry_headers(self, q):
        h = []
        if "retry_after" in q:
            h.append(("Retry-After", q["retry_after"]))
        if "retry_date" in q:
            h.append(("Retry-After",
                      email.utils.formatdate(time.time() + int(q["retry_date"]), usegmt=True)))
        return h

    def echo(self, u, body):
        out = {
            "method": self.command,
            "path": u.path,
            "query": u.query,
            "headers": {k: v for k, v in self.headers.items()},
            "body_len": len(body),
            "body_crc32": zlib.crc32(body),
            "peer_port": self.client_address[1],  # one per connection: shows reuse
        }
        if len(body) < 4096:
            out["body"] = body.decode("latin-1")
        self.reply(200, json.dumps(out).encode())

    def error_body(self, msg):
        return json.dumps({"error": {"message": msg, "type": "test"}}).encode()

    def hang(self, q):
        end = time.monotonic() + int(q.get("ms", "10000")) / 1000.0
        conn = self.connection
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([conn], [], [], left)
            if r:
                try:
                    data = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    token = q.get("token")
                    if token:
                        with lock:
                            drops[token] = drops.get(token, 0) + 1
                    self.close_connection = True
                    return
                time.sleep(min(left, 0.01))
        self.reply(200, b"late", "text/plain")

    def handle_any(self):
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        n = 0
        token = q.get("token")
        if token:
            with lock:
                calls[token] = calls.get(token, 0) + 1
                n = calls[token]
        body = self.read_body()
        p = u.path
        if p == "/echo":
            self.echo(u, body)
        elif p.startswith("/status/"):
            code = int(p[len("/status/"):])
            self.reply(code, self.error_body(q.get("msg", "status %d" % code)),
                       headers=self.retry_headers(q))
        elif p == "/flaky":
            if n <= int(q.get("fail", "1")):
                code = int(q.get("code", "503"))
                self.reply(code, self.error_body("try %d fails" % n), headers=self.retry_headers(q))
            else:
                self.echo(u, body)
        elif p == "/hang":
            self.hang(q)
        elif p == "/slow":
            time.sleep(int(q.get("ms", "200")) / 1000.0)
            self.reply(200, b"ok", "text/plain")
        elif p == "/big":
            self.reply(200, b"x" * int(q.get("bytes", "0")), "text/plain",
                       chunked=q.get("chunked") == "1")
        elif p == "/auth":
            auth = self.headers.get("Authorization", "")
            msg = "invalid credentials: " + auth
            if auth.startswith("Basic "):
                msg += " (" + base64.b64decode(auth[6:]).decode("latin-1") + ")"
            self.reply(401, self.error_body(msg))
        elif p == "/redirect":
            self.reply(302, b"moved", "text/plain", headers=[("Location", q.get("to", "/echo"))])
        elif p == "/count":
            of = q.get("of", "")
            with lock:
                out = {"calls": calls.get(of, 0), "drops": drops.get(of, 0)}
            self.reply(200, json.dumps(out).encode())
        else:
            self.reply(404, self.error_body("no route " + p))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 would drop connects of a burst

    def handle_error(self, request, client_address):
        pass  # clients drop connections on purpose (aborts, size limits)


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    # --tls CERT KEY: serve HTTPS with that certificate (TLS verification tests)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
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
