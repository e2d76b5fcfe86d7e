"""A small Chrome DevTools Protocol client, standard library only: starts a
headless Chromium with a throw-away profile, connects to its page over the
DevTools WebSocket, and evaluates JavaScript in it, waits for conditions,
clicks, and takes screenshots. Used by tests/server/dashboard_check.py.

Why the protocol and not --dump-dom: the dashboard keeps a stream open
(the job's SSE events), and the page is checked as it changes (live
progress, a cancel); a test that waits for each condition in the page does
not depend on how long anything takes, where a virtual time budget would."""
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request


class CdpError(Exception):
    pass


class WebSocket:
    """RFC 6455, client side, text frames only: what DevTools speaks."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CdpError("the DevTools socket closed during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise CdpError(f"DevTools refused the WebSocket: {head[:200]!r}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise CdpError("the DevTools socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        head = bytearray([0x81])
        n = len(data)
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head.append(0x80 | 126)
            head += struct.pack(">H", n)
        else:
            head.append(0x80 | 127)
            head += struct.pack(">Q", n)
        mask = os.urandom(4)
        head += mask
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(head) + body)

    def recv(self):
        parts = []
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if op == 0x8:
                raise CdpError("DevTools closed the WebSocket")
            if op == 0x9:  # ping: answer, keep reading
                self.sock.sendall(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            if op in (0x1, 0x2, 0x0):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Chromium:
    def __init__(self, binary, workdir, width=1280, height=900):
        self.workdir = workdir
        profile = os.path.join(workdir, "profile")
        os.makedirs(profile, exist_ok=True)
        env = dict(os.environ, HOME=workdir, XDG_CONFIG_HOME=workdir, XDG_CACHE_HOME=workdir)
        port_file = os.path.join(profile, "DevToolsActivePort")
        if os.path.exists(port_file):  # a previous run's: not this browser's port
            os.unlink(port_file)
        self.log = open(os.path.join(workdir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update",
             "--hide-scrollbars", "--mute-audio", f"--window-size={width},{height}",
             "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.ws = None
        try:
            self._connect(profile, port_file, width, height)
        except BaseException:
            self.close()
            raise

    def _connect(self, profile, port_file, width, height):
        deadline = time.time() + 60
        port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited at start ({self.proc.returncode}); see {self.log.name}")
            try:
                with open(port_file) as f:
                    port = int(f.readline().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if port is None:
            raise CdpError("chromium did not open its DevTools port within 60 s")
        page = None
        while time.time() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                page = next((t for t in targets if t.get("type") == "page"), None)
            except OSError:
                pass
            if page is None:
                time.sleep(0.1)
        if page is None:
            raise CdpError("chromium shows no page target")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError(f"{expr[:120]}: {d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait(self, what, expr, timeout=30):
        """Evaluates expr until it is truthy; its value, or CdpError."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = self.evaluate(expr)
                if v:
                    return v
                last = v
            except CdpError as e:
                last = str(e)
            time.sleep(0.2)
        raise CdpError(f"{what}: not true within {timeout} s ({expr}); last value {last!r}")

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def problems(self):
        """Exceptions thrown in the page and errors it logged (CSP violations
        among them)."""
        out = []
        for m in self.events:
            if m["method"] == "Runtime.exceptionThrown":
                d = m["params"]["exceptionDetails"]
                out.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
            elif m["method"] == "Log.entryAdded":
                e = m["params"]["entry"]
                # A failed request is the page's business (it shows it); what
                # counts is script errors and refused content (CSP).
                if e.get("level") == "error" and e.get("source") != "network":
                    out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
            elif m["method"] == "Runtime.consoleAPICalled" and m["params"].get("type") == "error":
                out.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in m["params"].get("args", [])))
        return out

    def close(self):
        """Ends the browser: its process group (the crash handlers it
        started leave by themselves once it is gone)."""
        try:
            if self.ws:
                self.ws.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.log.close()
