#!/usr/bin/env python3
"""The podcast job from Python: the built-in pipeline (a script from a
template, espeak-ng voices, a local directory for the audio), all offline,
with its progress printed as it runs.

    JOBQ_LIBRARY=build/libjobq.so.0 PYTHONPATH=bindings/python/src \\
        python3 examples/python/podcast.py --db /tmp/podcast.db "Small bridges" "Counties must..."
"""
import argparse
import os
import sys

import jobq


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("title")
    ap.add_argument("text")
    ap.add_argument("--db", default="podcast.db", help="the SQLite file (default podcast.db)")
    ap.add_argument("--audio", default=None, help="where the audio goes (default <db>-audio)")
    ap.add_argument("--format", default="mp3", choices=["mp3", "wav"])
    a = ap.parse_args()
    audio = os.path.abspath(a.audio or a.db + "-audio")

    pipeline = jobq.Pipeline({
        "script": {"provider": "template"},
        "tts": {"provider": "espeak", "format": a.format},
        "upload": {"provider": "local", "dir": audio},
    })
    with jobq.Queue("sqlite:" + a.db, workers=1) as q:
        q.register_pipeline("podcast", pipeline)
        id = q.submit("podcast", {"title": a.title, "text": a.text})
        print(f"job {id}")
        for job in q.watch(id):
            print(f"{job.progress:3d}%  {str(job.state):9}  {job.step or ''}", flush=True)
        if job.state is not jobq.State.SUCCEEDED:
            print(f"{job.state}: {job.error}", file=sys.stderr)
            return 1
        r = job.result
        print(f"audio: {r['audioUrl']} ({r.get('audioDuration', 0):.1f} s)")
        for turn in r.get("dialogue", [])[:4]:
            print(f"  {turn['speaker']}: {turn['text']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except jobq.Error as e:
        print(f"podcast: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
