"""The recorder plugin, and "nothing lost": every file is complete up to the last event, even after a kill."""

import base64
import hashlib
import json
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import voicepipe
from voicepipe.builtin import recorder
from session_script import SESSION, FakeProfile, ScriptedSession, audio_b64, audio_profile, conversation, make_pm

ROOT = Path(__file__).resolve().parent.parent


def lines(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_event_is_a_line_with_direction_and_session_time(tmp_path):
    s = ScriptedSession(tmp_path, profile=audio_profile())
    conversation(s)
    s.end("user")
    recorded = lines(tmp_path)
    assert recorded[0]["direction"] == "meta" and recorded[0]["event"]["type"] == "recording.started"
    assert recorded[0]["event"]["playback_expected"] is True
    assert recorded[-1]["event"] == {"type": "recording.finished", "reason": "user", "lines": len(recorded) - 1}
    assert recorded[1] == {"t": 0.05, "direction": "server", "event": {"type": "session.created", "session": {**SESSION, "id": "sess_TEST1"}}}
    assert recorded[2]["direction"] == "client" and recorded[2]["event"]["type"] == "session.update"
    local = [r for r in recorded if r["direction"] == "local"]
    assert [r["event"]["type"] for r in local] == ["playback.started", "playback.finished", "playback.started", "playback.interrupted"]
    assert local[0]["t"] == 2.81 and local[0]["event"]["played_ms"] == 0
    times = [r["t"] for r in recorded]
    assert times == sorted(times)


def test_audio_is_elided_to_length_and_hash_by_default(tmp_path):
    s = ScriptedSession(tmp_path)
    conversation(s)
    s.end()
    text = (tmp_path / "events.jsonl").read_text()
    appended = audio_b64(960, seed=7)
    assert appended not in text and audio_b64(4800, seed=1) not in text
    recorded = lines(tmp_path)
    assert recorded[0]["event"]["format"] == recorder.FORMAT_VERSION == 2
    append = next(r for r in recorded if r["event"]["type"] == "input_audio_buffer.append")
    assert len(base64.b64decode(appended)) == 960
    # the hash is that of the base64 text as sent: no decoding needed to compute or check it
    assert append["event"]["audio"] == {"bytes": 960, "sha256": hashlib.sha256(appended.encode("ascii")).hexdigest()[:16]}
    delta = next(r for r in recorded if r["event"]["type"] == "response.audio.delta")
    answer = audio_b64(4800, seed=1)
    assert delta["event"]["delta"] == {"bytes": 4800, "sha256": hashlib.sha256(answer.encode("ascii")).hexdigest()[:16]}
    assert delta["event"]["item_id"] == "item_a1"


def test_audio_length_comes_from_the_base64_text_and_its_padding():
    for size in range(0, 40):
        raw = bytes(range(size))
        text = base64.b64encode(raw).decode("ascii")
        assert recorder.base64_length(text) == size
        assert recorder.describe_audio(text) == {"bytes": size, "sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}
    for bad in ("abc", "ab=c", "a=bc", "=abc", "AAAA\u00e9AA=", "AA==AAAA"):
        assert recorder.base64_length(bad) is None, bad
        assert recorder.describe_audio(bad) == {"bytes": None, "sha256": None, "invalid_base64": len(bad)}


def test_full_audio_on_request(tmp_path):
    s = ScriptedSession(tmp_path, profile=FakeProfile(sections={"recorder": {"audio": True}}))
    conversation(s)
    s.end()
    recorded = lines(tmp_path)
    assert recorded[0]["event"]["audio"] == "full"
    append = next(r for r in recorded if r["event"]["type"] == "input_audio_buffer.append")
    assert append["event"]["audio"] == audio_b64(960, seed=7)
    delta = next(r for r in recorded if r["event"]["type"] == "response.audio.delta")
    assert delta["event"]["delta"] == audio_b64(4800, seed=1)


def test_events_that_plugins_read_as_typed_models_are_still_recorded_whole(tmp_path):
    class TypedReader:
        @voicepipe.hookimpl
        def voicepipe_event(self, event):
            if event.get("type") == "response.done":
                assert event.response.output[0].id == "item_1"  # replaces the raw dicts with SDK models

    pm = make_pm("transcript")
    pm.register(TypedReader(), name="typed")  # registered before the recorder: it runs first
    pm.register(recorder, name="recorder")
    s = ScriptedSession(tmp_path, pm=pm)
    s.start()
    output = [{"id": "item_1", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "text", "text": "Hi"}]}]
    s.server(1.0, "response.done", response={"id": "resp_1", "status": "completed", "output": output})
    s.end()
    done = next(r for r in lines(tmp_path) if r["event"]["type"] == "response.done")
    assert done["event"]["response"]["output"][0]["content"] == [{"type": "text", "text": "Hi"}]


def test_secrets_in_events_are_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "fake-key-recorder-0042")
    from voicepipe.redact import REDACTOR

    REDACTOR.refresh_env()
    s = ScriptedSession(tmp_path)
    s.start()
    s.client(0.1, {"type": "session.update", "session": {"instructions": "the key is fake-key-recorder-0042"}})
    s.server(0.2, "session.updated", session={**SESSION, "instructions": "the key is fake-key-recorder-0042"})
    s.end()
    text = (tmp_path / "events.jsonl").read_text()
    assert "fake-key-recorder-0042" not in text
    assert text.count("the key is ***") == 2


def test_each_line_is_on_disk_when_the_hook_returns(tmp_path):
    s = ScriptedSession(tmp_path, pm=make_pm("recorder"))
    s.start()
    path = tmp_path / "events.jsonl"
    for index in range(5):
        s.server(0.1 * index, "input_audio_buffer.speech_started", audio_start_ms=index, item_id=f"item_{index}")
        with open(path, encoding="utf-8") as fresh:  # another reader, no help from our buffers
            assert len(fresh.read().splitlines()) == 2 + index
    # no session_end: a crash at this point keeps everything


KILLED_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from session_script import ScriptedSession, audio_profile, conversation
    from voicepipe.logsetup import configure_logging

    run_dir = Path({run_dir!r})
    log = configure_logging(run_dir, console_level="WARNING")
    session = ScriptedSession(run_dir, profile=audio_profile())
    conversation(session)
    log.info("last_words_before_the_kill", turns=4)
    print("READY", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def test_a_killed_session_leaves_complete_files(tmp_path):
    run_dir = tmp_path / "run"
    code = KILLED_CHILD.format(tests=str(ROOT / "tests"), run_dir=str(run_dir))
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        output = []
        while not output or output[-1] != "READY":  # the console plugin prints to stdout too
            ready, _, _ = select.select([child.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the child did not get ready within 60 s; it printed {output}"
            line = child.stdout.readline()
            assert line, f"the child ended early; it printed {output}"
            output.append(line.strip())
    finally:
        child.kill()  # SIGKILL: no handler, no session_end, no atexit
        child.wait(timeout=30)
    assert child.returncode == -9

    recorded = lines(run_dir)
    assert recorded[-1]["event"]["type"] == "response.done"  # the last event dispatched
    assert recorded[-1]["event"]["response"]["id"] == "resp_4"
    transcript = (run_dir / "transcript.txt").read_text(encoding="utf-8")
    assert "Assistant (interrupted at 1.0 s): Tomorrow will be sunny in …" in transcript
    assert transcript.rstrip().endswith("Assistant: Foggy and 12.")
    assert len((run_dir / "transcript.jsonl").read_text().splitlines()) == 9
    log_lines = [json.loads(line) for line in (run_dir / "voicepipe.log.jsonl").read_text().splitlines()]
    assert log_lines[-1]["event"] == "last_words_before_the_kill"
