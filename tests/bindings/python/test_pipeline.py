"""Pipelines: the built-in podcast pipeline from a dict, run offline, and
stages written in Python."""
import os

import pytest

import jobq

PODCAST = {"script": {"provider": "template"},
           "tts": {"provider": "espeak", "format": "wav"},
           "upload": {"provider": "local", "dir": None}}


def test_python_stages_chain_and_report(q):
    p = jobq.Pipeline()

    @p.stage("upper")
    def upper(st):
        assert st.index == 0 and st.name == "upper" and st.attempt == 1
        st.progress(50, "Shouting...")
        return {**st.input, "text": st.input["text"].upper()}

    @p.stage("count")
    def count(st):
        assert st.payload == {"text": "hi there"} and st.job_id
        with open(os.path.join(st.workdir, "note.txt"), "w") as f:
            f.write(st.input["text"])
        return {**st.input, "words": len(st.input["text"].split())}

    p.set_progress("count", 60, 90, "Counting...")
    q.register_pipeline("shout", p, max_attempts=1)
    del p  # the queue keeps it and its callbacks
    job = q.wait(q.submit("shout", {"text": "hi there"}), 60)
    assert job.state is jobq.State.SUCCEEDED, job.error
    assert job.result == {"text": "HI THERE", "words": 2}
    assert job.progress == 100 and job.step == "Done"


def test_failing_stage_names_itself(q):
    p = jobq.Pipeline()
    p.add_stage("ok", lambda st: st.input)
    p.add_stage("bad", lambda st: 1 / 0)
    q.register_pipeline("p", p, max_attempts=1)
    job = q.wait(q.submit("p", {}), 60)
    assert job.state is jobq.State.FAILED
    assert job.error == "stage bad: ZeroDivisionError: division by zero"


def test_bad_config_is_a_config_error():
    with pytest.raises(jobq.ConfigError) as e:
        jobq.Pipeline({"script": {"provider": "nosuch"}})
    assert "nosuch" in str(e.value)


def test_podcast_pipeline_offline(tmp_path):
    cfg = {**PODCAST, "upload": {"provider": "local", "dir": str(tmp_path / "audio")}}
    try:
        p = jobq.Pipeline(cfg)
    except jobq.NotSupported as e:
        pytest.skip(f"this libjobq-stages has no offline voices: {e}")
    with jobq.Queue("sqlite:" + str(tmp_path / "p.db")) as q:
        q.register_pipeline("podcast", p)
        id = q.submit("podcast", {"title": "Small bridges",
                                  "text": "Counties must inspect small bridges every four "
                                          "years. A weak bridge gets a weight limit."})
        progress = [j.progress for j in q.watch(id, 300)]
        job = q.get(id)
    if job.state is jobq.State.FAILED and "espeak" in (job.error or ""):
        pytest.skip(f"espeak-ng cannot speak here: {job.error}")
    assert job.state is jobq.State.SUCCEEDED, job.error
    assert progress == sorted(progress) and progress[-1] == 100
    assert job.result["audioUrl"].startswith("file://")
    assert os.path.getsize(job.result["audioUrl"][len("file://"):]) > 1000
