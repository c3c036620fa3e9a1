"""The recorder plugin, and "nothing lost": every file is complete up to the last event, even after a kill."""

import asyncio
import base64
import json
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import voicepipe
from voicepipe.builtin import recorder
from session_script import (
    SESSION, FakeProfile, NullLog, ScriptedSession, audio_b64, audio_profile, conversation, finish_answer, make_pm
)
from voicepipe.replay import replay

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


def test_audio_is_elided_to_its_length_by_default(tmp_path):
    s = ScriptedSession(tmp_path)
    conversation(s)
    s.end()
    text = (tmp_path / "events.jsonl").read_text()
    appended = audio_b64(960, seed=7)
    assert appended not in text and audio_b64(4800, seed=1) not in text
    recorded = lines(tmp_path)
    assert recorded[0]["event"]["format"] == recorder.FORMAT_VERSION == 3
    append = next(r for r in recorded if r["event"]["type"] == "input_audio_buffer.append")
    assert len(base64.b64decode(appended)) == 960
    assert append["event"]["audio"] == {"bytes": 960}
    delta = next(r for r in recorded if r["event"]["type"] == "response.audio.delta")
    assert delta["event"]["delta"] == {"bytes": 4800}
    assert delta["event"]["item_id"] == "item_a1"


def test_audio_length_comes_from_the_base64_text_and_its_padding():
    for size in range(0, 40):
        raw = bytes(range(size))
        text = base64.b64encode(raw).decode("ascii")
        assert recorder.describe_audio(text) == {"bytes": size}
    for bad in ("abc", "ab=c", "a=bc", "=abc", "AAAA\u00e9AA=", "AA==AAAA", "AA=="[:1] + "===", "A==="):
        assert recorder.describe_audio(bad) == {"bytes": None, "invalid_base64": len(bad)}


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


# -- secrets streamed in pieces ------------------------------------------------------------------------

STREAMED = "fake-stream-secret-7c41d09e"


@pytest.fixture
def streamed_secret(monkeypatch):
    """``STREAMED`` a secret (from the environment) for one test, and forgotten after it."""
    from voicepipe.redact import REDACTOR

    monkeypatch.setenv("MY_STREAM_API_KEY", STREAMED)
    REDACTOR.refresh_env()
    yield STREAMED
    monkeypatch.delenv("MY_STREAM_API_KEY")
    REDACTOR.refresh_env()


def recorder_session(tmp_path):
    s = ScriptedSession(tmp_path, pm=make_pm("recorder"))
    s.start()
    return s


def transcript_delta(s, t, delta, item="item_a", response="resp_a"):
    s.server(t, "response.audio_transcript.delta", response_id=response, item_id=item, output_index=0, content_index=0, delta=delta)


def audio_delta(s, t, item="item_a", response="resp_a"):
    s.server(t, "response.audio.delta", response_id=response, item_id=item, output_index=0, content_index=0, delta=audio_b64(960))


def server_lines(run_dir):
    return [(r["event"]["type"], r["event"].get("delta")) for r in lines(run_dir) if r["direction"] == "server"]


def test_a_secret_in_two_argument_deltas_is_masked_across_them(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    call = {"response_id": "resp_f", "item_id": "item_f", "output_index": 0, "call_id": "call_1"}
    s.server(0.1, "response.function_call_arguments.delta", **call, delta='{"secret": "fake-str')
    s.server(0.2, "response.function_call_arguments.delta", **call, delta='eam-secret-7c41d09e"}')
    s.server(0.3, "response.function_call_arguments.done", **call, name="lookup", arguments=f'{{"secret": "{STREAMED}"}}')
    s.end()
    text = (tmp_path / "events.jsonl").read_text()
    assert "7c41d09e" not in text and "fake-str" not in text
    assert server_lines(tmp_path) == [
        ("response.function_call_arguments.delta", '{"secret": "***'),
        ("response.function_call_arguments.delta", '"}'),
        ("response.function_call_arguments.done", None),
    ]
    assert lines(tmp_path)[-2]["event"]["arguments"] == '{"secret": "***"}'
    assert [r["t"] for r in lines(tmp_path)][1:4] == [0.1, 0.2, 0.3]  # each keeps its own time


def test_a_secret_in_three_transcript_deltas_keeps_every_line_in_order(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    path = tmp_path / "events.jsonl"
    transcript_delta(s, 0.1, "Your key is fake-")
    audio_delta(s, 0.11)
    assert len(path.read_text().splitlines()) == 1  # the delta waits, and the audio behind it
    transcript_delta(s, 0.2, "stream-secret")
    audio_delta(s, 0.21)
    transcript_delta(s, 0.3, "-7c41d09e.")
    audio_delta(s, 0.31)
    assert len(path.read_text().splitlines()) == 7  # all written once the secret was complete
    s.end()
    assert "7c41d09e" not in path.read_text()
    assert server_lines(tmp_path) == [
        ("response.audio_transcript.delta", "Your key is ***"),
        ("response.audio.delta", {"bytes": 960}),
        ("response.audio_transcript.delta", ""),
        ("response.audio.delta", {"bytes": 960}),
        ("response.audio_transcript.delta", "."),
        ("response.audio.delta", {"bytes": 960}),
    ]
    times = [r["t"] for r in lines(tmp_path)]
    assert times == sorted(times)


def test_text_that_only_looked_like_the_start_of_a_secret_is_written_unchanged(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    pieces = ["The fake", "-stream", " was", " news."]
    for index, piece in enumerate(pieces):
        s.server(0.1 * (index + 1), "response.text.delta", response_id="resp_t", item_id="item_t", output_index=0,
                 content_index=0, delta=piece)
    s.server(0.5, "input_audio_buffer.speech_started", audio_start_ms=500, item_id="item_u")
    s.end()
    assert server_lines(tmp_path) == [("response.text.delta", piece) for piece in pieces] + [
        ("input_audio_buffer.speech_started", None)
    ]


def test_held_deltas_are_written_before_their_stream_is_done(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    transcript_delta(s, 0.1, "Say fake-stream")
    s.server(0.2, "response.audio_transcript.done", response_id="resp_a", item_id="item_a", output_index=0,
             content_index=0, transcript="Say fake-stream")
    assert server_lines(tmp_path) == [("response.audio_transcript.delta", "Say fake-stream"),
                                      ("response.audio_transcript.done", None)]
    # a stream without its done event: the response's end releases it
    s.server(0.3, "response.output_text.delta", response_id="resp_b", item_id="item_b", output_index=0, content_index=0,
             delta="fake-stream-")
    s.server(0.4, "response.done", response={"id": "resp_b", "status": "cancelled", "output": []})
    s.end()
    assert server_lines(tmp_path)[2:] == [("response.output_text.delta", "fake-stream-"), ("response.done", None)]


def test_held_deltas_are_written_when_the_connection_or_the_session_ends(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    transcript_delta(s, 0.1, "lost at fake")
    recorder.voicepipe_disconnected(ctx=s.ctx, code=1006, reason="gone", reconnecting=True)
    s.server(0.3, "conversation.item.input_audio_transcription.delta", item_id="item_u", content_index=0,
             delta="my fake-stream-secret")
    s.end("user")
    recorded = lines(tmp_path)
    assert [(r["direction"], r["event"]["type"], r["event"].get("delta")) for r in recorded[1:]] == [
        ("server", "response.audio_transcript.delta", "lost at fake"),
        ("meta", "connection.lost", None),
        ("server", "conversation.item.input_audio_transcription.delta", "my fake-stream-secret"),
        ("meta", "recording.finished", None),
    ]
    assert recorded[-1]["event"]["lines"] == len(recorded) - 1


def test_too_many_lines_behind_a_held_delta_release_it(tmp_path, streamed_secret, monkeypatch):
    monkeypatch.setattr(recorder, "MAX_HELD_LINES", 3)
    s = recorder_session(tmp_path)
    transcript_delta(s, 0.1, "stuck on fake")
    audio_delta(s, 0.2)
    audio_delta(s, 0.3)
    assert len(lines(tmp_path)) == 1  # three lines wait
    audio_delta(s, 0.4)
    assert server_lines(tmp_path)[0] == ("response.audio_transcript.delta", "stuck on fake")
    assert [t for t, _ in server_lines(tmp_path)] == ["response.audio_transcript.delta"] + ["response.audio.delta"] * 3


def test_a_replay_cuts_an_answer_with_a_split_secret_as_the_live_session_did(tmp_path, streamed_secret):
    """Held transcript deltas keep their place among the audio deltas: replay's transcript, which
    cuts an interrupted answer at the deltas received before the played audio, matches the live one."""
    live = ScriptedSession(tmp_path / "live", profile=audio_profile())
    live.start()
    live.server(0.05, "session.created", session={**SESSION, "id": "sess_TEST1"})
    live.server(0.10, "response.created", response={"id": "resp_a", "status": "in_progress", "output": []})
    live.server(0.11, "response.output_item.added", response_id="resp_a", output_index=0,
                item={"id": "item_a", "type": "message", "role": "assistant", "status": "in_progress", "content": []})
    pieces = ["Your key is fake-", "stream-secret", "-7c41d09e.", " Keep", " it", " safe."]
    t = 0.2
    for piece in pieces:
        transcript_delta(live, t, piece)
        audio_delta(live, t + 0.01)
        audio_delta(live, t + 0.02)
        t += 0.1
    live.playback(0.25, "playback.started", "item_a", 0, 200, response_id="resp_a")
    text = "".join(pieces)
    finish_answer(live, 0.9, "item_a", "resp_a", text)
    live.playback(1.0, "playback.interrupted", "item_a", 70, 120, response_id="resp_a")
    live.end("user")

    pm = make_pm()
    assert asyncio.run(replay(FakeProfile(name="replay"), tmp_path / "live", tmp_path / "replayed", pm=pm, log=NullLog())) == 0
    transcript = (tmp_path / "live" / "transcript.txt").read_text()
    assert "(interrupted at 0.1 s): Your key is ***. Keep …" in transcript
    assert (tmp_path / "replayed" / "transcript.txt").read_text().splitlines() == transcript.splitlines()


# -- microphone appends -----------------------------------------------------------------------------


def recording(tmp_path, full_audio=False):
    return recorder.Recording(open(tmp_path / "events.jsonl", "ab", buffering=0), 0.0, full_audio=full_audio)


def generic_line(t, event):
    """The line the generic path writes for an append (what the shortcut must write too)."""
    fields = dict(event)
    fields["audio"] = recorder.describe_audio(fields["audio"])
    return recorder._masked_line({"t": t, "direction": "client", "event": fields})


APPEND_TIMES = (0.0, 0.02, 1.5, 12.345678, 0.000123, 3599.999999, 86400.0, 1e-05, 1e16)


def test_the_usual_append_line_is_the_line_the_generic_path_writes(tmp_path):
    rec = recording(tmp_path)
    events = [{"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(size)).decode("ascii")}
              for size in (0, 1, 2, 3, 960, 961, 962)]
    expected = []
    for t in APPEND_TIMES:
        for event in events:
            rec.write(t, "client", event)
            expected.append(generic_line(t, event))
    rec.close()
    assert (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines() == expected
    assert json.loads(expected[4]) == {"t": 0.0, "direction": "client",
                                       "event": {"type": "input_audio_buffer.append", "audio": {"bytes": 960}}}


def test_appends_of_another_shape_take_the_generic_path(tmp_path):
    rec = recording(tmp_path)
    odd = [
        (1.0, {"type": "input_audio_buffer.append", "audio": "AAA=", "event_id": "evt_1"}),  # another field
        (1.0, {"audio": "AAAA", "type": "input_audio_buffer.append"}),  # another key order
        (1.0, {"type": "input_audio_buffer.append", "audio": "AA=A"}),  # not base64
        (1.0, {"type": "input_audio_buffer.append", "audio": "A==="}),
        (1.0, {"type": "input_audio_buffer.append", "audio": "AAAA\u00e9AA="}),
        (1.0, {"type": "input_audio_buffer.append", "audio": 12}),
        (float("nan"), {"type": "input_audio_buffer.append", "audio": "AAAA"}),  # a time JSON cannot hold
        (2, {"type": "input_audio_buffer.append", "audio": "AAAA"}),  # an int
    ]
    for t, event in odd:
        rec.write(t, "client", event)
    rec.close()
    recorded = lines(tmp_path)
    assert [r["event"] for r in recorded] == [
        {"type": "input_audio_buffer.append", "audio": {"bytes": 2}, "event_id": "evt_1"},
        {"audio": {"bytes": 3}, "type": "input_audio_buffer.append"},
        {"type": "input_audio_buffer.append", "audio": {"bytes": None, "invalid_base64": 4}},
        {"type": "input_audio_buffer.append", "audio": {"bytes": None, "invalid_base64": 4}},
        {"type": "input_audio_buffer.append", "audio": {"bytes": None, "invalid_base64": 8}},
        {"type": "input_audio_buffer.append", "audio": 12},
        {"type": "input_audio_buffer.append", "audio": {"bytes": 3}},
        {"type": "input_audio_buffer.append", "audio": {"bytes": 3}},
    ]
    assert [r["t"] for r in recorded][-2:] == [None, 2]


def test_a_secret_in_an_append_line_is_masked_as_in_any_line(tmp_path, monkeypatch):
    from voicepipe.redact import REDACTOR

    monkeypatch.setenv("MY_RECORDER_TEST_SECRET", "buffer.append")
    REDACTOR.refresh_env()
    try:
        rec = recording(tmp_path)
        event = {"type": "input_audio_buffer.append", "audio": "AAAA"}
        rec.write(0.5, "client", event)
        rec.close()
        text = (tmp_path / "events.jsonl").read_text(encoding="utf-8")
        assert "buffer.append" not in text and '"type": "input_audio_***"' in text
        assert text.splitlines() == [generic_line(0.5, event)]
    finally:
        monkeypatch.delenv("MY_RECORDER_TEST_SECRET")
        REDACTOR.refresh_env()


def test_append_lines_wait_for_the_next_line_or_the_flush_timer_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder, "APPEND_FLUSH_S", 0.01)
    path = tmp_path / "events.jsonl"
    append = {"type": "input_audio_buffer.append", "audio": "AAAA"}

    def on_disk():
        with open(path, encoding="utf-8") as fresh:
            return [json.loads(line)["event"]["type"] for line in fresh.read().splitlines()]

    async def scenario():
        rec = recording(tmp_path)
        rec.write(0.1, "client", append)
        rec.write(0.2, "client", append)
        assert on_disk() == []  # waiting
        rec.write(0.3, "client", {"type": "response.create"})
        assert on_disk() == ["input_audio_buffer.append"] * 2 + ["response.create"]  # one write, in order
        rec.write(0.4, "client", append)
        await asyncio.sleep(0.05)  # the flush timer (0.01 s) fires first
        assert on_disk()[-1] == "input_audio_buffer.append" and len(on_disk()) == 4
        rec.write(0.5, "client", append)
        rec.close()  # the end of the session writes what waits
        return rec.lines

    assert asyncio.run(scenario()) == 5
    assert [r["t"] for r in lines(tmp_path)] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_a_session_that_ends_writes_its_waiting_appends_and_counts_them(tmp_path):
    s = ScriptedSession(tmp_path, pm=make_pm("recorder"))
    s.start()

    async def appends():
        for index in range(4):
            s.client(0.1 + index * 0.02, {"type": "input_audio_buffer.append", "audio": audio_b64(960)})
        await s.pipeline.end("user")

    asyncio.run(appends())
    recorded = lines(tmp_path)
    assert [r["event"]["type"] for r in recorded] == ["recording.started"] + ["input_audio_buffer.append"] * 4 + ["recording.finished"]
    assert recorded[-1]["event"]["lines"] == 5


def test_appends_behind_a_held_delta_keep_their_place(tmp_path, streamed_secret):
    s = recorder_session(tmp_path)
    transcript_delta(s, 0.1, "Your key is fake-")
    s.client(0.12, {"type": "input_audio_buffer.append", "audio": audio_b64(960)})
    transcript_delta(s, 0.2, "stream-secret-7c41d09e.")
    s.end()
    assert [(r["event"]["type"], r["event"].get("delta")) for r in lines(tmp_path)[1:-1]] == [
        ("response.audio_transcript.delta", "Your key is ***"),
        ("input_audio_buffer.append", None),
        ("response.audio_transcript.delta", "."),
    ]
