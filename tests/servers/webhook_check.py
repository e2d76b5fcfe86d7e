#!/usr/bin/env python3
"""Checks libjobq's webhook signatures with Python's standard library only
(hmac, hashlib, base64), the way docs/webhooks.md shows a receiver doing it.
Used by tests/unit/test_webhook_interop.c.
  python3 webhook_check.py MANIFEST
MANIFEST: one case a line, "secret id timestamp body_file signature" (several
"v1,..." entries joined by '|'). Exit 0 when every case verifies and a
changed body does not."""
import base64
import hashlib
import hmac
import sys


def verify(secret, msg_id, timestamp, body, header):
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in header.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, want):
            return True
    return False


bad = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for i, line in enumerate(l for l in f.read().split("\n") if l):
        secret, msg_id, ts, path, sig = line.split(" ")
        with open(path, "rb") as b:
            body = b.read()
        header = sig.replace("|", " ")
        if verify(secret, msg_id, ts, body, header):
            print(f"case {i}: verified ({len(body)} bytes)")
        else:
            print(f"case {i}: NOT verified")
            bad += 1
        if verify(secret, msg_id, ts, body + b" ", header):
            print(f"case {i}: verified with a changed body")
            bad += 1
sys.exit(0 if bad == 0 else 1)
