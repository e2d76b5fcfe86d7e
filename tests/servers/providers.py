#!/usr/bin/env python3
"""Local doubles of the HTTP providers the pipeline stages call.

    python3 tests/servers/providers.py [--port N] [--openai-key K]
                                        [--anthropic-key K] [--elevenlabs-key K]

One HTTP/1.1 server on 127.0.0.1 (port 0 unless --port), printing "PORT <n>" as
its first line and exiting when its standard input reaches end of file, so that
a test that dies never leaves it behind. Python 3 standard library only.

Routes, checked as the real services check them (method, path, auth header,
required fields) and answered in their shapes, errors included:

  openai     POST /v1/chat/completions         Authorization: Bearer KEY
  anthropic  POST /v1/messages                 x-api-key, anthropic-version
  tts        POST /v1/text-to-speech/{voice_id}[/stream]?output_format=...
  dialogue   POST /v1/text-to-dialogue[/stream]?output_format=...   xi-api-key

The LLM routes answer with a deterministic two-host dialogue built from the
sentences of the last user message, as the JSON text
{"dialogue": [{"speaker": "Alex", "text": ...}, {"speaker": "Sam", ...}, ...]}.

The audio routes answer pcm_* formats with raw 16-bit little-endian mono PCM
(Content-Type audio/pcm): a tone whose pitch depends on the voice_id, shaped
per word, silent on whitespace, 60 ms per character of text (capped at 120 s
per request). mp3_* formats (the default is mp3_44100_128) give a valid MPEG
Layer III stream of the same duration, but it is digital SILENCE: there is no
encoder here, so its frames are hand-made (header, zero side information, zero
main data). Tests that check the sound itself use pcm_*.

Test control (not part of any provider):
  POST /_faults   {"route": R, "faults": [F, ...]} appends to R's queue; each
                  request on R takes the next one. F is an object of:
                    "status": 429|500|503|529|401|... (provider-shaped error;
                              "retry_after": s adds a retry-after header)
                    "hang_ms": n / "delay_ms": n (wait, then answer as usual)
                    "malformed": true (200 with a body that is not JSON; on
                              audio routes an HTML page as text/html)
                    "truncated": true (Content-Length larger than what is sent;
                              the connection is closed mid-body)
                    "empty_content": true (LLM routes: 200 with empty text)
                  {"route": R, "default_delay_ms": n} sets a standing delay.
  POST /_reset    clears faults, default delays, the log and the counts.
  GET  /_requests?route=R   JSON list of R's requests: method, path, query,
                  headers (lower-case names), body (text, or base64 with
                  "body_encoding": "base64"), fault, and status (null while
                  the request is still being answered).
  GET  /_stats    {"openai": n, "anthropic": n, "tts": n, "dialogue": n, "put": n}.
  PUT  /upload/K  stores the body under K if Authorization matches --upload-auth
                  (route "put": faults apply); GET /upload/K returns it.
"""

import argparse
import base64
import json
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
import zlib
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROUTES = ("openai", "anthropic", "tts", "dialogue", "put")
FAULT_KEYS = {"status", "retry_after", "hang_ms", "delay_ms", "malformed",
              "truncated", "empty_content"}
HOSTS = ("Alex", "Sam")
MS_PER_CHAR = 60
MAX_AUDIO_SECONDS = 120

CONFIG = {"openai": "test-openai-key", "anthropic": "test-anthropic-key",
          "elevenlabs": "test-elevenlabs-key", "upload": "Bearer test-upload-token"}

# Objects stored by the plain-PUT upload route (PUT /upload/<key>).
UPLOADS = {}
UPLOADS_LOCK = threading.Lock()


# ---- shared state -------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.faults = {r: [] for r in ROUTES}
            self.default_delay = {r: 0 for r in ROUTES}
            self.log = {r: [] for r in ROUTES}
            self.counts = {r: 0 for r in ROUTES}

    def take(self, route):
        """Counts a request on route; returns (fault or None, default delay)."""
        with self.lock:
            self.counts[route] += 1
            fault = self.faults[route].pop(0) if self.faults[route] else None
            return fault, self.default_delay[route]

    def record(self, route, entry):
        with self.lock:
            self.log[route].append(entry)


STATE = State()


def new_id(prefix, n=24):
    return prefix + uuid.uuid4().hex[:n]


def approx_tokens(text):
    return max(1, math.ceil(len(text) / 4)) if text else 0


# ---- the dialogue the LLM doubles write ---------------------------------------

def split_sentences(text):
    text = " ".join(text.split())
    parts = re.split(r"(?<=[.!?])\s+", text)
    return [p for p in (s.strip() for s in parts) if p]


def make_dialogue(user_text):
    """4 to 8 turns, alternating Alex and Sam, made of the text's sentences."""
    sentences = split_sentences(user_text)
    if not sentences:
        sentences = ["There is not much in this note."]
    n = min(8, max(4, len(sentences)))
    turns = []
    if len(sentences) >= n:
        # Group the sentences into n runs of nearly equal count, in order.
        per, extra = divmod(len(sentences), n)
        i = 0
        for t in range(n):
            k = per + (1 if t < extra else 0)
            turns.append(" ".join(sentences[i:i + k]))
            i += k
    else:
        first = sentences[0]
        topic = first if len(first) <= 80 else first[:77].rstrip() + "..."
        turns.append("Welcome to the show. Today's note starts like this: " + topic)
        turns.extend(sentences)
        fillers = ["That is the heart of it.", "Thanks for listening, see you next time."]
        while len(turns) < n:
            turns.append(fillers[min(len(fillers) - 1, len(turns) - len(sentences) - 1)])
    return {"dialogue": [{"speaker": HOSTS[i % 2], "text": t} for i, t in enumerate(turns)]}


def dialogue_text(user_text):
    return json.dumps(make_dialogue(user_text), ensure_ascii=False)


def text_of_content(content):
    """The text of a message's content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(p.get("text"), str))
    return ""


# ---- synthetic audio ----------------------------------------------------------

PCM_RATES = {"pcm_8000": 8000, "pcm_16000": 16000, "pcm_22050": 22050,
             "pcm_24000": 24000, "pcm_44100": 44100, "pcm_48000": 48000}
MP3_FORMATS = {"mp3_22050_32": (22050, 32), "mp3_24000_48": (24000, 48),
               "mp3_44100_32": (44100, 32), "mp3_44100_64": (44100, 64),
               "mp3_44100_96": (44100, 96), "mp3_44100_128": (44100, 128),
               "mp3_44100_192": (44100, 192)}
# Real formats this double does not produce.
OTHER_FORMATS = {"ulaw_8000", "alaw_8000", "opus_48000_32", "opus_48000_64",
                 "opus_48000_96", "opus_48000_128", "opus_48000_192"}
LEVELS = 8


def voice_cycles(voice_id):
    """Whole cycles per 60 ms character: 6..20, i.e. 100 to 333 Hz."""
    return 6 + zlib.crc32(voice_id.encode("utf-8")) % 15


def char_amplitudes(text):
    """Per character, an envelope level 0..LEVELS: a hump over each word."""
    amps = [0] * len(text)
    for m in re.finditer(r"\S+", text):
        n = m.end() - m.start()
        for i in range(n):
            level = math.sin(math.pi * (i + 0.5) / n)
            amps[m.start() + i] = max(1, round(level * LEVELS))
    return amps


def pcm_for(segments, rate):
    """16-bit LE mono PCM for [(text, voice_id), ...], 60 ms per character."""
    block = rate * MS_PER_CHAR // 1000
    max_blocks = MAX_AUDIO_SECONDS * 1000 // MS_PER_CHAR
    cache = {}
    out = []
    used = 0
    silence = bytes(2 * block)
    for text, voice in segments:
        k = voice_cycles(voice)
        for level in char_amplitudes(text):
            if used >= max_blocks:
                break
            used += 1
            if level == 0:
                out.append(silence)
                continue
            key = (k, level)
            b = cache.get(key)
            if b is None:
                amp = 12000.0 * level / LEVELS
                a = array("h", (int(amp * math.sin(2 * math.pi * k * n / block))
                                for n in range(block)))
                if sys.byteorder != "little":
                    a.byteswap()
                b = cache[key] = a.tobytes()
            out.append(b)
    return b"".join(out)


MP3_BITRATES = {1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
                2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]}
MP3_RATES = {1: [44100, 48000, 32000], 2: [22050, 24000, 16000]}


def mp3_silence(seconds, rate, kbps):
    """A mono MPEG Layer III stream of digital silence lasting about seconds.

    Each frame: a 4-byte header (no CRC), side information of zeros (17 bytes
    for MPEG-1, 9 for MPEG-2: main_data_begin 0, part2_3_length 0, so no
    Huffman data: every sample decodes to 0), and zero padding to the frame
    length. The padding bit keeps the average bitrate exact."""
    version = 1 if rate in MP3_RATES[1] else 2
    rate_index = MP3_RATES[version].index(rate)
    br_index = MP3_BITRATES[version].index(kbps)
    samples = 1152 if version == 1 else 576
    slot = 144 if version == 1 else 72
    side = 17 if version == 1 else 9
    b1 = 0xFB if version == 1 else 0xF3            # sync, version, layer III, no CRC
    nframes = max(1, math.ceil(seconds * rate / samples))
    exact = slot * kbps * 1000 / rate               # bytes per frame on average
    base = int(exact)
    out = []
    acc = 0.0
    for _ in range(nframes):
        acc += exact - base
        pad = 0
        if acc >= 1.0:
            pad = 1
            acc -= 1.0
        b2 = (br_index << 4) | (rate_index << 2) | (pad << 1)
        b3 = 0xC0                                   # mono, no emphasis
        size = base + pad
        out.append(bytes((0xFF, b1, b2, b3)) + bytes(size - 4))
        assert size - 4 >= side
    return b"".join(out)


def audio_body(segments, output_format):
    chars = sum(len(t) for t, _ in segments)
    seconds = min(MAX_AUDIO_SECONDS, chars * MS_PER_CHAR / 1000.0)
    if output_format in PCM_RATES:
        return pcm_for(segments, PCM_RATES[output_format]), "audio/pcm"
    rate, kbps = MP3_FORMATS[output_format]
    return mp3_silence(seconds, rate, kbps), "audio/mpeg"


# ---- provider error bodies ----------------------------------------------------

def openai_error(status, message, etype="invalid_request_error", code=None, param=None):
    return status, {"error": {"message": message, "type": etype, "param": param, "code": code}}


def anthropic_error(status, etype, message):
    return status, {"type": "error", "error": {"type": etype, "message": message},
                    "request_id": new_id("req_011", 21)}


def eleven_error(status, estatus, message):
    return status, {"detail": {"status": estatus, "message": message}}


def eleven_422(errors):
    return 422, {"detail": [{"loc": loc, "msg": msg, "type": typ} for loc, msg, typ in errors]}


def mask_key(key):
    if len(key) <= 8:
        return "*" * max(0, len(key) - 2) + key[-2:]
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


FAULT_ERRORS = {
    "openai": {
        401: lambda: openai_error(401, "Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
        429: lambda: openai_error(429, "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.", "requests", "rate_limit_exceeded"),
        500: lambda: openai_error(500, "The server had an error while processing your request. Sorry about that!", "server_error"),
        503: lambda: openai_error(503, "The engine is currently overloaded, please try again later.", "server_error"),
    },
    "anthropic": {
        401: lambda: anthropic_error(401, "authentication_error", "invalid x-api-key"),
        429: lambda: anthropic_error(429, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit. Please try again later."),
        500: lambda: anthropic_error(500, "api_error", "Internal server error"),
        529: lambda: anthropic_error(529, "overloaded_error", "Overloaded"),
    },
    "eleven": {
        401: lambda: eleven_error(401, "invalid_api_key", "Invalid API key"),
        429: lambda: eleven_error(429, "too_many_concurrent_requests", "Too many concurrent requests. Your subscription allows a limited number of concurrent requests; please try again later."),
        500: lambda: eleven_error(500, "internal_server_error", "An internal server error occurred."),
        503: lambda: eleven_error(503, "system_busy", "The system is experiencing heavy traffic, please try again later."),
    },
}


def fault_error(route, status):
    family = "eleven" if route in ("tts", "dialogue") else route
    make = FAULT_ERRORS[family].get(status)
    if make:
        return make()
    if family == "openai":
        etype = "server_error" if status >= 500 else "invalid_request_error"
        return openai_error(status, "Injected error %d." % status, etype)
    if family == "anthropic":
        etype = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
                 413: "request_too_large", 529: "overloaded_error"}.get(
            status, "api_error" if status >= 500 else "invalid_request_error")
        return anthropic_error(status, etype, "Injected error %d." % status)
    return eleven_error(status, "injected_error", "Injected error %d." % status)


# ---- request validation and answers per route ---------------------------------

def parse_json_body(body):
    try:
        return json.loads(body.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as e:
        return None, str(e)


def is_json_type(ctype):
    return (ctype or "").split(";")[0].strip().lower() == "application/json"


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def handle_openai(req, body):
    auth = req.headers.get("Authorization")
    if not auth:
        return openai_error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.")
    m = re.match(r"Bearer\s+(\S+)\s*$", auth)
    if not m or m.group(1) != CONFIG["openai"]:
        given = m.group(1) if m else auth
        return openai_error(401, "Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys." % mask_key(given), "invalid_request_error", "invalid_api_key")
    if not is_json_type(req.headers.get("Content-Type")):
        return openai_error(400, "Invalid Content-Type header (%s), expected application/json." % (req.headers.get("Content-Type") or "none"))
    data, err = parse_json_body(body)
    if err is not None or not isinstance(data, dict):
        return openai_error(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)")
    if "model" not in data:
        return openai_error(400, "you must provide a model parameter")
    if not isinstance(data["model"], str) or not data["model"]:
        return openai_error(400, "Invalid type for 'model': expected a string, but got %s instead." % type(data["model"]).__name__, code="invalid_type", param="model")
    if "messages" not in data:
        return openai_error(400, "Missing required parameter: 'messages'.", code="missing_required_parameter", param="messages")
    msgs = data["messages"]
    if not isinstance(msgs, list):
        return openai_error(400, "Invalid type for 'messages': expected an array of objects, but got %s instead." % type(msgs).__name__, code="invalid_type", param="messages")
    if not msgs:
        return openai_error(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", code="empty_array", param="messages")
    roles = ("system", "developer", "user", "assistant", "tool", "function")
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            return openai_error(400, "Invalid type for 'messages[%d]': expected an object, but got %s instead." % (i, type(msg).__name__), code="invalid_type", param="messages[%d]" % i)
        if "role" not in msg:
            return openai_error(400, "Missing required parameter: 'messages[%d].role'." % i, code="missing_required_parameter", param="messages[%d].role" % i)
        if msg["role"] not in roles:
            return openai_error(400, "Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'." % msg["role"], code="invalid_value", param="messages[%d].role" % i)
        if "content" not in msg and msg["role"] != "assistant":
            return openai_error(400, "Missing required parameter: 'messages[%d].content'." % i, code="missing_required_parameter", param="messages[%d].content" % i)
        c = msg.get("content")
        if c is not None and not isinstance(c, (str, list)):
            return openai_error(400, "Invalid type for 'messages[%d].content': expected one of a string or array of objects, but got %s instead." % (i, type(c).__name__), code="invalid_type", param="messages[%d].content" % i)
    if "max_tokens" in data and "max_completion_tokens" in data:
        return openai_error(400, "max_tokens and max_completion_tokens cannot both be set. Use max_completion_tokens.", code="invalid_value", param="max_tokens")
    limit = None
    for name in ("max_tokens", "max_completion_tokens"):
        if name in data and data[name] is not None:
            v = data[name]
            if not is_int(v):
                return openai_error(400, "Invalid type for '%s': expected an integer, but got %s instead." % (name, type(v).__name__), code="invalid_type", param=name)
            if v < 1:
                return openai_error(400, "Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead." % (name, v), code="integer_below_min_value", param=name)
            limit = v
    if "temperature" in data and data["temperature"] is not None:
        t = data["temperature"]
        if not is_number(t):
            return openai_error(400, "Invalid type for 'temperature': expected a decimal, but got %s instead." % type(t).__name__, code="invalid_type", param="temperature")
        if t < 0 or t > 2:
            return openai_error(400, "Invalid 'temperature': decimal %s value. Expected a value %s 2, but got %s instead." % ("above maximum" if t > 2 else "below minimum", "<=" if t > 2 else ">= 0 and <=", t), code="decimal_above_max_value" if t > 2 else "decimal_below_min_value", param="temperature")
    if data.get("stream"):
        return openai_error(400, "This test server does not stream: send \"stream\": false.", param="stream")

    users = [m for m in msgs if m.get("role") == "user"]
    user_text = text_of_content(users[-1].get("content")) if users else ""
    prompt_text = "".join(text_of_content(m.get("content")) for m in msgs)
    return 200, {"_llm": True, "model": data["model"], "user_text": user_text,
                 "prompt_tokens": approx_tokens(prompt_text) + 3 * len(msgs), "limit": limit}


def openai_success(info, fault):
    content = "" if fault.get("empty_content") else dialogue_text(info["user_text"])
    finish = "stop"
    ctoks = approx_tokens(content)
    if info["limit"] is not None and ctoks > info["limit"]:
        content = content[:info["limit"] * 4]
        ctoks = info["limit"]
        finish = "length"
    return {
        "id": new_id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": info["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": finish,
        }],
        "usage": {
            "prompt_tokens": info["prompt_tokens"],
            "completion_tokens": ctoks,
            "total_tokens": info["prompt_tokens"] + ctoks,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_test0000",
    }


ANTHROPIC_VERSIONS = ("2023-06-01", "2023-01-01")


def handle_anthropic(req, body):
    key = req.headers.get("x-api-key")
    if key is None:
        return anthropic_error(401, "authentication_error", "x-api-key header is required")
    if key != CONFIG["anthropic"]:
        return anthropic_error(401, "authentication_error", "invalid x-api-key")
    version = req.headers.get("anthropic-version")
    if version is None:
        return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
    if version not in ANTHROPIC_VERSIONS:
        return anthropic_error(400, "invalid_request_error", "anthropic-version: invalid version %r; supported versions: %s" % (version, ", ".join(ANTHROPIC_VERSIONS)))
    if not is_json_type(req.headers.get("content-type")):
        return anthropic_error(400, "invalid_request_error", "content-type: must be application/json")
    data, err = parse_json_body(body)
    if err is not None:
        return anthropic_error(400, "invalid_request_error", "There was an issue with your request body: invalid JSON (%s)" % err)
    if not isinstance(data, dict):
        return anthropic_error(400, "invalid_request_error", "Input should be an object")
    for field in ("model", "messages", "max_tokens"):
        if field not in data:
            return anthropic_error(400, "invalid_request_error", "%s: Field required" % field)
    if not isinstance(data["model"], str) or not data["model"]:
        return anthropic_error(400, "invalid_request_error", "model: Input should be a valid string")
    if not is_int(data["max_tokens"]):
        return anthropic_error(400, "invalid_request_error", "max_tokens: Input should be a valid integer")
    if data["max_tokens"] < 1:
        return anthropic_error(400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1")
    msgs = data["messages"]
    if not isinstance(msgs, list):
        return anthropic_error(400, "invalid_request_error", "messages: Input should be a valid list")
    if not msgs:
        return anthropic_error(400, "invalid_request_error", "messages: at least one message is required")
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            return anthropic_error(400, "invalid_request_error", "messages.%d: Input should be a valid dictionary" % i)
        for field in ("role", "content"):
            if field not in msg:
                return anthropic_error(400, "invalid_request_error", "messages.%d.%s: Field required" % (i, field))
        if msg["role"] == "system":
            return anthropic_error(400, "invalid_request_error", "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.")
        if msg["role"] not in ("user", "assistant"):
            return anthropic_error(400, "invalid_request_error", "messages.%d.role: Input should be 'user' or 'assistant'" % i)
        c = msg["content"]
        if isinstance(c, str):
            if not c and i != len(msgs) - 1:
                return anthropic_error(400, "invalid_request_error", "messages.%d: all messages must have non-empty content except for the optional final assistant message" % i)
        elif isinstance(c, list):
            for j, block in enumerate(c):
                if not isinstance(block, dict) or "type" not in block:
                    return anthropic_error(400, "invalid_request_error", "messages.%d.content.%d.type: Field required" % (i, j))
        else:
            return anthropic_error(400, "invalid_request_error", "messages.%d.content: Input should be a valid string or list" % i)
    if "system" in data and data["system"] is not None:
        s = data["system"]
        if not (isinstance(s, str) or (isinstance(s, list) and all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in s))):
            return anthropic_error(400, "invalid_request_error", "system: Input should be a valid string or a list of text blocks")
    if "temperature" in data and data["temperature"] is not None:
        t = data["temperature"]
        if not is_number(t) or t < 0 or t > 1:
            return anthropic_error(400, "invalid_request_error", "temperature: Input should be less than or equal to 1" if is_number(t) else "temperature: Input should be a valid number")
    if data.get("stream"):
        return anthropic_error(400, "invalid_request_error", "stream: this test server does not stream; send \"stream\": false")

    users = [m for m in msgs if m.get("role") == "user"]
    user_text = text_of_content(users[-1]["content"]) if users else ""
    system = data.get("system") or ""
    prompt_text = text_of_content(system) + "".join(text_of_content(m["content"]) for m in msgs)
    return 200, {"_llm": True, "model": data["model"], "user_text": user_text,
                 "prompt_tokens": approx_tokens(prompt_text) + 3 * len(msgs),
                 "limit": data["max_tokens"]}


def anthropic_success(info, fault):
    text = "" if fault.get("empty_content") else dialogue_text(info["user_text"])
    stop = "end_turn"
    otoks = approx_tokens(text)
    if otoks > info["limit"]:
        text = text[:info["limit"] * 4]
        otoks = info["limit"]
        stop = "max_tokens"
    return {
        "id": new_id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": info["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": info["prompt_tokens"], "output_tokens": otoks,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "service_tier": "standard"},
    }


def eleven_common(req, body, query):
    """Auth, output_format and JSON body shared by the ElevenLabs routes."""
    key = req.headers.get("xi-api-key")
    if key is None:
        return eleven_error(401, "needs_authorization", "Neither authorization header nor xi-api-key received, please provide one."), None, None
    if key != CONFIG["elevenlabs"]:
        return eleven_error(401, "invalid_api_key", "Invalid API key"), None, None
    fmt = query.get("output_format", ["mp3_44100_128"])[-1]
    if fmt in OTHER_FORMATS:
        return eleven_error(400, "unsupported_by_test_server", "output_format %s is valid for the real API but this test server only makes pcm_* and mp3_*." % fmt), None, None
    if fmt not in PCM_RATES and fmt not in MP3_FORMATS:
        allowed = ", ".join("'%s'" % f for f in list(MP3_FORMATS) + list(PCM_RATES) + sorted(OTHER_FORMATS))
        return eleven_422([(["query", "output_format"], "value is not a valid enumeration member; permitted: %s" % allowed, "type_error.enum")]), None, None
    if not is_json_type(req.headers.get("Content-Type")):
        return eleven_422([(["body"], "field required", "value_error.missing")]), None, None
    data, err = parse_json_body(body)
    if err is not None:
        return eleven_422([(["body", 0], "Expecting value: %s" % err, "value_error.jsondecode")]), None, None
    if not isinstance(data, dict):
        return eleven_422([(["body"], "value is not a valid dict", "type_error.dict")]), None, None
    errs = []
    if "model_id" in data and data["model_id"] is not None and not isinstance(data["model_id"], str):
        errs.append((["body", "model_id"], "str type expected", "type_error.str"))
    vs = data.get("voice_settings", data.get("settings"))
    if vs is not None:
        where = "voice_settings" if "voice_settings" in data else "settings"
        if not isinstance(vs, dict):
            errs.append((["body", where], "value is not a valid dict", "type_error.dict"))
        else:
            for name in ("stability", "similarity_boost", "style"):
                v = vs.get(name)
                if v is not None and (not is_number(v) or v < 0 or v > 1):
                    errs.append((["body", where, name], "ensure this value is between 0 and 1", "value_error.number.not_in_range"))
    return None, fmt, (data, errs)


def handle_tts(req, body, query, voice_id):
    err, fmt, parsed = eleven_common(req, body, query)
    if err:
        return err
    data, errs = parsed
    text = data.get("text")
    if text is None:
        errs.insert(0, (["body", "text"], "field required", "value_error.missing"))
    elif not isinstance(text, str):
        errs.insert(0, (["body", "text"], "str type expected", "type_error.str"))
    elif not text.strip():
        errs.insert(0, (["body", "text"], "ensure this value has at least 1 characters", "value_error.any_str.min_length"))
    if errs:
        return eleven_422(errs)
    return 200, {"_audio": True, "segments": [(text, voice_id)], "format": fmt}


def handle_dialogue(req, body, query):
    err, fmt, parsed = eleven_common(req, body, query)
    if err:
        return err
    data, errs = parsed
    inputs = data.get("inputs")
    if inputs is None:
        errs.insert(0, (["body", "inputs"], "field required", "value_error.missing"))
    elif not isinstance(inputs, list):
        errs.insert(0, (["body", "inputs"], "value is not a valid list", "type_error.list"))
    elif not inputs:
        errs.insert(0, (["body", "inputs"], "ensure this value has at least 1 items", "value_error.list.min_items"))
    else:
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                errs.append((["body", "inputs", i], "value is not a valid dict", "type_error.dict"))
                continue
            for field in ("text", "voice_id"):
                v = item.get(field)
                if v is None:
                    errs.append((["body", "inputs", i, field], "field required", "value_error.missing"))
                elif not isinstance(v, str):
                    errs.append((["body", "inputs", i, field], "str type expected", "type_error.str"))
                elif not v.strip():
                    errs.append((["body", "inputs", i, field], "ensure this value has at least 1 characters", "value_error.any_str.min_length"))
        if not errs:
            voices = {item["voice_id"] for item in inputs}
            if len(voices) > 10:
                errs.append((["body", "inputs"], "A dialogue can use at most 10 distinct voice_ids; got %d." % len(voices), "value_error"))
    if errs:
        return eleven_422(errs)
    return 200, {"_audio": True, "segments": [(i["text"], i["voice_id"]) for i in inputs], "format": fmt}


# ---- HTTP ---------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "providers-test/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("providers.py: " + (fmt % args) + "\n")

    # -- plumbing --

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, body, ctype, extra=None, truncate=False):
        # The request log has the status before the client can read the
        # answer: a test that asks the log right after its request finished
        # must not find it still unset.
        entry = getattr(self, "log_entry", None)
        if entry is not None:
            with STATE.lock:
                entry["status"] = status
            self.log_entry = None
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        if truncate:
            # Promise more than is sent, then drop the connection.
            self.send_header("Content-Length", str(len(body) + 1000))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[:max(1, len(body) // 2)])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, extra=None, truncate=False):
        self.send(status, json.dumps(obj).encode("utf-8"), "application/json", extra, truncate)

    # -- dispatch --

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        body = self.read_body()
        if path.startswith("/_"):
            return self.control(path, query, body)

        route, voice_id = None, None
        if path.startswith("/upload/"):
            return self.upload(path[len("/upload/"):], body)
        if path == "/v1/chat/completions":
            route = "openai"
        elif path == "/v1/messages":
            route = "anthropic"
        elif path in ("/v1/text-to-dialogue", "/v1/text-to-dialogue/stream"):
            route = "dialogue"
        else:
            m = re.fullmatch(r"/v1/text-to-speech/([^/]+)(/stream)?", path)
            if m:
                route, voice_id = "tts", m.group(1)
        if route is None:
            return self.not_found(path)

        fault, default_delay = STATE.take(route)
        fault = fault or {}
        entry = {"method": self.command, "path": path, "query": url.query,
                 "headers": {}, "fault": fault or None}
        for k, v in self.headers.items():
            k = k.lower()
            entry["headers"][k] = entry["headers"][k] + ", " + v if k in entry["headers"] else v
        try:
            entry["body"] = body.decode("utf-8")
            entry["body_encoding"] = "utf-8"
        except UnicodeDecodeError:
            entry["body"] = base64.b64encode(body).decode("ascii")
            entry["body_encoding"] = "base64"

        entry["status"] = None              # set by send(), before the answer goes out
        STATE.record(route, entry)
        self.log_entry = entry

        wait = fault.get("hang_ms", 0) + fault.get("delay_ms", 0) + default_delay
        if wait > 0:
            time.sleep(wait / 1000.0)

        status = self.answer(route, voice_id, query, body, fault)
        with STATE.lock:
            entry["status"] = status
        self.log_entry = None

    def upload(self, key, body):
        """A plain HTTP PUT target (the "http" upload provider): PUT stores
        the body under key when the Authorization header matches, GET returns
        it. Faults of route "put" apply to PUTs."""
        if self.command == "GET":
            with UPLOADS_LOCK:
                data = UPLOADS.get(key)
            if data is None:
                return self.send(404, b"not found\n", "text/plain")
            return self.send(200, data[0], data[1])
        if self.command != "PUT":
            return self.send(405, b"method not allowed\n", "text/plain", {"Allow": "GET, PUT"})
        fault, default_delay = STATE.take("put")
        fault = fault or {}
        entry = {"method": "PUT", "path": "/upload/" + key, "query": "", "fault": fault or None,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": "%d bytes" % len(body), "body_encoding": "summary"}
        STATE.record("put", entry)
        wait = fault.get("hang_ms", 0) + fault.get("delay_ms", 0) + default_delay
        if wait > 0:
            time.sleep(wait / 1000.0)
        if "status" in fault:
            entry["status"] = int(fault["status"])
            return self.send(int(fault["status"]), b"injected fault\n", "text/plain")
        if self.headers.get("Authorization") != CONFIG["upload"]:
            entry["status"] = 401
            return self.send(401, b"missing or wrong Authorization\n", "text/plain")
        with UPLOADS_LOCK:
            UPLOADS[key] = (body, self.headers.get("Content-Type", "application/octet-stream"))
        entry["status"] = 201
        return self.send(201, b"", "text/plain")

    def answer(self, route, voice_id, query, body, fault):
        audio = route in ("tts", "dialogue")
        if "status" in fault:
            status, obj = fault_error(route, int(fault["status"]))
            extra = {}
            if "retry_after" in fault:
                extra["retry-after"] = fault["retry_after"]
            elif status == 429:
                extra["retry-after"] = 1
            if route == "anthropic":
                extra["request-id"] = obj.get("request_id", "")
                if status == 529:
                    extra["x-should-retry"] = "true"
            self.send_json(status, obj, extra)
            return status
        if fault.get("malformed"):
            if audio:
                page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><p>upstream sent garbage</p></body></html>\n"
                self.send(200, page, "text/html; charset=utf-8")
            else:
                self.send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis', "application/json")
            return 200

        if self.command != "POST":
            if route == "openai":
                status, obj = openai_error(405, "Invalid method for URL (%s %s)" % (self.command, urlsplit(self.path).path))
            elif route == "anthropic":
                status, obj = anthropic_error(405, "invalid_request_error", "Method Not Allowed")
            else:
                status, obj = 405, {"detail": "Method Not Allowed"}
            self.send_json(status, obj, {"Allow": "POST"})
            return status

        if route == "openai":
            status, obj = handle_openai(self, body)
        elif route == "anthropic":
            status, obj = handle_anthropic(self, body)
        elif route == "tts":
            status, obj = handle_tts(self, body, query, voice_id)
        else:
            status, obj = handle_dialogue(self, body, query)
        truncate = bool(fault.get("truncated"))

        if status != 200:
            extra = {}
            if route == "anthropic":
                extra["request-id"] = obj.get("request_id", "")
            self.send_json(status, obj, extra, truncate)
            return status
        if route == "openai":
            self.send_json(200, openai_success(obj, fault),
                           {"x-request-id": new_id("req_", 32), "openai-processing-ms": 1},
                           truncate)
        elif route == "anthropic":
            rid = new_id("req_011", 21)
            self.send_json(200, anthropic_success(obj, fault), {"request-id": rid}, truncate)
        else:
            audio_bytes, ctype = audio_body(obj["segments"], obj["format"])
            chars = sum(len(t) for t, _ in obj["segments"])
            self.send(200, audio_bytes, ctype,
                      {"character-cost": chars, "request-id": uuid.uuid4().hex,
                       "history-item-id": uuid.uuid4().hex[:20]}, truncate)
        return 200

    def not_found(self, path):
        if path.startswith("/v1/chat") or path in ("/v1/completions", "/v1/models"):
            status, obj = openai_error(404, "Invalid URL (%s %s)" % (self.command, path))
        elif path.startswith("/v1/messages"):
            status, obj = anthropic_error(404, "not_found_error", "Not Found")
        else:
            status, obj = 404, {"detail": "Not Found"}
        self.send_json(status, obj)

    # -- test control --

    def control(self, path, query, body):
        if path == "/_stats" and self.command == "GET":
            with STATE.lock:
                counts = dict(STATE.counts)
            return self.send_json(200, counts)
        if path == "/_requests" and self.command == "GET":
            route = query.get("route", [""])[-1]
            if route not in ROUTES:
                return self.send_json(400, {"error": "route must be one of %s" % ", ".join(ROUTES)})
            with STATE.lock:
                text = json.dumps(STATE.log[route])
            return self.send(200, text.encode("utf-8"), "application/json")
        if path == "/_reset" and self.command == "POST":
            STATE.reset()
            return self.send_json(200, {"ok": True})
        if path == "/_faults" and self.command == "POST":
            data, err = parse_json_body(body)
            if err is not None or not isinstance(data, dict):
                return self.send_json(400, {"error": "body must be a JSON object"})
            route = data.get("route")
            if route not in ROUTES:
                return self.send_json(400, {"error": "route must be one of %s" % ", ".join(ROUTES)})
            faults = data.get("faults", [])
            if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
                return self.send_json(400, {"error": "faults must be a list of objects"})
            for f in faults:
                bad = set(f) - FAULT_KEYS
                if bad:
                    return self.send_json(400, {"error": "unknown fault keys: %s" % ", ".join(sorted(bad))})
                for k in ("status", "retry_after", "hang_ms", "delay_ms"):
                    if k in f and (not is_number(f[k]) or f[k] < 0):
                        return self.send_json(400, {"error": "%s must be a non-negative number" % k})
            ddelay = data.get("default_delay_ms")
            if ddelay is not None and (not is_number(ddelay) or ddelay < 0):
                return self.send_json(400, {"error": "default_delay_ms must be a non-negative number"})
            with STATE.lock:
                STATE.faults[route].extend(faults)
                if ddelay is not None:
                    STATE.default_delay[route] = ddelay
                queued = len(STATE.faults[route])
            return self.send_json(200, {"ok": True, "queued": queued})
        return self.send_json(404, {"error": "no such control endpoint: %s %s" % (self.command, path)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    verbose = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--openai-key", default=CONFIG["openai"])
    ap.add_argument("--anthropic-key", default=CONFIG["anthropic"])
    ap.add_argument("--elevenlabs-key", default=CONFIG["elevenlabs"])
    ap.add_argument("--upload-auth", default=CONFIG["upload"],
                    help="the Authorization header PUT /upload/<key> requires")
    ap.add_argument("--verbose", action="store_true", help="log each request on stderr")
    args = ap.parse_args()
    CONFIG.update(openai=args.openai_key, anthropic=args.anthropic_key,
                  elevenlabs=args.elevenlabs_key, upload=args.upload_auth)

    server = Server(("127.0.0.1", args.port), Handler)
    server.verbose = args.verbose
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
