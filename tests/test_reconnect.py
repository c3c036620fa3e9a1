"""Dropped connections: reopened with backoff, the session configured again, the conversation re-seeded.

Every test runs a real session against the embedded emulator, whose scenario injects the fault.
"""

import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import pytest
from emulator_helpers import served_emulator
from faulty_session import Driver, log_records, write_profile
from hostile_server import within_deadline

from voicepipe.audio.base import AudioInput
from voicepipe.errors import SessionError
from voicepipe.reconnect import AudioGap, ReconnectPolicy, seed_events


def test_a_dropped_connection_is_reopened_and_the_conversation_goes_on(voicepipe_run, tmp_path):
    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01}",
        "- {after: {event: response.done}, action: close, code: 1011, connection: 1}\n",
    )
    driver = Driver(answers=2)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)

    assert result.exit_code == 0 and result.reason == "user"
    assert driver.disconnects == [(1011, True)]
    assert len(driver.reconnects) == 1 and driver.reconnects[0]["attempts"] == 1
    assert driver.ends == ["user"]
    assert result.server_types().count("session.created") == 2

    # the second connection is configured exactly like the first, then re-seeded with the transcript
    updates = [i for i, e in enumerate(result.client_events) if e["type"] == "session.update"]
    assert len(updates) == 2
    assert result.client_events[updates[1]]["session"] == result.client_events[updates[0]]["session"]
    seeds = [e["item"] for e in result.client_events[updates[1] + 1:updates[1] + 3]]
    assert [(s["id"], s["role"], s["content"][0]) for s in seeds] == [
        ("vpseed_1_1", "user", {"type": "input_text", "text": "question 1"}),
        ("vpseed_1_2", "assistant", {"type": "text", "text": "The answer to question 1."}),
    ]
    assert driver.reconnects[0]["seeded"] == ["vpseed_1_1", "vpseed_1_2"]
    created = [e["item"]["id"] for e in result.server_events if e["type"] == "conversation.item.created"]
    assert "vpseed_1_1" in created and "vpseed_1_2" in created  # the service took them

    transcript = result.read("transcript.txt")
    assert "-- connection lost (code 1011), reconnecting --" in transcript
    assert "-- reconnected after" in transcript and "2 earlier turns re-sent --" in transcript
    # the re-sent turns are history, not new turns: each line appears once
    assert transcript.count("User: question 1") == 1
    assert transcript.count("The answer to question 1.") == 1
    assert "User: question 2" in transcript and "The answer to question 2." in transcript
    turns = [json.loads(line) for line in result.read("transcript.jsonl").splitlines()]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "question 1"),
        ("assistant", "The answer to question 1."),
        ("user", "question 2"),
        ("assistant", "The answer to question 2."),
    ]
    (reconnected,) = log_records(result, "reconnected")
    assert reconnected["seeded_items"] == 2


def test_giving_up_ends_the_session_with_exit_1_and_complete_files(voicepipe_run, tmp_path):
    profile = write_profile(
        tmp_path,
        "{attempts: 2, initial_delay_s: 0.01}",
        """\
        - {after: {event: response.done}, action: close, code: 1006, connection: 1}
        - {action: http_status, status: 503, connection: 2}
        - {action: http_status, status: 503, connection: 3}
        """,
    )
    driver = Driver(answers=5)
    run_dir = tmp_path / "run"
    with pytest.raises(SessionError) as failure:
        voicepipe_run(profile, plugins=[driver], emulator=False, run_dir=run_dir)
    message = str(failure.value)
    assert message.startswith("the connection was lost and 2 reconnect attempt(s) within 300 s did not keep it; last: ")
    assert "503" in message and "connection.reconnect.attempts" in message
    assert driver.ends == ["connection_lost"]
    assert driver.disconnects == [(1006, True)]
    assert driver.reconnects == []
    transcript = (run_dir / "transcript.txt").read_text()
    assert "User: question 1" in transcript and "The answer to question 1." in transcript
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["direction"] == "server" and e["event"]["type"] == "response.done" for e in events)
    failed = [json.loads(line) for line in (run_dir / "voicepipe.log.jsonl").read_text().splitlines()]
    assert [r["attempt"] for r in failed if r.get("event") == "reconnect_failed"] == [1, 2]


def test_a_connection_that_drops_before_the_session_is_configured_is_a_failed_attempt(voicepipe_run, tmp_path):
    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01}",
        """\
        - {after: {event: response.done}, action: close, code: 1011, connection: 1}
        - {action: close, code: 1013, connection: 2}
        """,
    )
    driver = Driver(answers=2)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)
    assert result.exit_code == 0
    assert driver.disconnects == [(1011, True), (1013, True)]
    assert [r["attempts"] for r in driver.reconnects] == [1, 2]
    (failed,) = log_records(result, "reconnect_failed")
    assert failed["attempt"] == 1 and "before the session was configured" in failed["error"]
    assert "The answer to question 2." in result.read("transcript.txt")


def test_without_reconnect_an_abnormal_close_ends_the_session_with_an_error(voicepipe_run, tmp_path):
    profile = write_profile(
        tmp_path, "{attempts: 0}", "- {after: {event: response.done}, action: close, code: 1011}\n"
    )
    driver = Driver(answers=5)
    with pytest.raises(SessionError, match=r"the server closed the connection \(code 1011\)"):
        voicepipe_run(profile, plugins=[driver], emulator=False)
    assert driver.disconnects == [(1011, False)]
    assert driver.ends == ["server_closed"]


def test_a_normal_close_by_the_server_is_not_a_drop(voicepipe_run, tmp_path):
    profile = write_profile(tmp_path, "{attempts: 3}", "- {after: {event: response.done}, action: close, code: 1000}\n")
    driver = Driver(answers=5)
    result = voicepipe_run(profile, plugins=[driver], emulator=False)
    assert result.exit_code == 0 and result.reason == "server_closed"
    assert driver.disconnects == []


class GapMicrophone:
    """A plugin with a microphone (backend ``gap-mic``) that, once the connection is lost, captures
    eight numbered 20 ms chunks (every sample of chunk ``n`` is ``n + 1``: too quiet for the VAD)
    and then nothing until the connection is back; otherwise silence, paced like a device."""

    __name__ = "gap-mic"
    CAPTURED = 8

    def __init__(self):
        self.lost = self.back = None

    def voicepipe_audio_backend(self, name, direction, options):
        if name == "gap-mic" and direction == "input":
            return _GapInput(self)
        return None

    def voicepipe_disconnected(self, code, reconnecting):
        self.back.clear()
        self.lost.set()

    def voicepipe_reconnected(self, attempts):
        self.back.set()


class _GapInput(AudioInput):
    def __init__(self, mic: GapMicrophone):
        self.mic = mic

    async def open(self, sample_rate, frames_per_chunk):
        self.frames = frames_per_chunk
        self.closed = asyncio.Event()
        self.mic.lost, self.mic.back = asyncio.Event(), asyncio.Event()

    async def __aiter__(self):
        while not self.closed.is_set():
            if self.mic.lost.is_set():
                self.mic.lost.clear()
                for n in range(GapMicrophone.CAPTURED):
                    yield np.full(self.frames, n + 1, dtype="<i2").tobytes()
                await _first(self.mic.back, self.closed)
                continue
            yield bytes(2 * self.frames)
            await _first(self.mic.lost, self.closed, timeout=0.02)

    async def close(self):
        self.closed.set()


async def _first(*events, timeout=None):
    """Wait until one of ``events`` is set (or ``timeout`` seconds)."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


def test_audio_captured_during_the_gap_is_kept_within_the_bound(voicepipe_run, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "test-key")
    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01, buffer_audio_s: 0.1}",
        "- {after: {event: response.done}, action: close, code: 1011, connection: 1}\n",
    )
    driver, mic = Driver(answers=2), GapMicrophone()
    with served_emulator(tmp_path / "scenario.yaml") as emulator:
        result = voicepipe_run(profile, plugins=[driver, mic], emulator=False,
                               overrides=[f"connection.endpoint={emulator.url}", "audio.input={backend: gap-mic}"])
    assert result.exit_code == 0
    (gap,) = log_records(result, "audio_gap")
    # eight 20 ms chunks captured without a connection (and perhaps some silence before them):
    # the newest 0.1 s are kept
    assert gap["kept_s"] == pytest.approx(0.1, abs=1e-3)
    assert gap["dropped_s"] >= 0.06 - 1e-3
    assert driver.reconnects[0]["buffered_s"] == pytest.approx(0.1, abs=1e-3)

    # the new connection is configured, re-seeded, then sent the kept chunks, oldest first
    second = [i for i, e in enumerate(result.client_events) if e["type"] == "session.update"][1]
    after = result.client_events[second + 1:]
    assert [e["type"] for e in after[:7]] == ["conversation.item.create"] * 2 + ["input_audio_buffer.append"] * 5
    first_samples = [int.from_bytes(base64.b64decode(e["audio"])[:2], "little") for e in after[2:7]]
    assert first_samples == [4, 5, 6, 7, 8]
    # and the service received them there
    received = [e["type"] for e in emulator.connections[1].client_events]
    assert received[:8] == ["session.update"] + ["conversation.item.create"] * 2 + ["input_audio_buffer.append"] * 5


# -- the policy on its own ---------------------------------------------------------------------


def test_backoff_doubles_is_capped_and_jittered_within_the_upper_half():
    policy = ReconnectPolicy(initial_delay_s=0.5, max_delay_s=3.0)
    assert [policy.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.delay(n, rng=lambda: 0.0) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]


def test_seed_events_keep_the_newest_turns_within_both_bounds():
    history = [{"role": "user", "text": f"turn {n}"} for n in range(10)]
    history.insert(3, {"role": "tool_call", "text": "ignored"})
    events = seed_events(history, ReconnectPolicy(history_items=3), generation=2)
    assert [e["item"]["content"][0]["text"] for e in events] == ["turn 7", "turn 8", "turn 9"]
    assert [e["item"]["id"] for e in events] == ["vpseed_2_1", "vpseed_2_2", "vpseed_2_3"]
    by_chars = seed_events(history, ReconnectPolicy(history_chars=13), generation=1)
    assert [e["item"]["content"][0]["text"] for e in by_chars] == ["turn 8", "turn 9"]
    assert seed_events(history, ReconnectPolicy(history_items=0), generation=1) == []


def test_the_audio_gap_keeps_the_newest_audio_and_counts_the_rest():
    gap = AudioGap(limit_s=0.04, sample_rate=24000)  # two 20 ms chunks
    chunk = "A" * 1280  # 20 ms of 24 kHz PCM16, base64
    for n in range(5):
        gap.add({"type": "input_audio_buffer.append", "audio": chunk, "n": n})
    assert gap.kept_s == pytest.approx(0.04)
    assert gap.dropped_s == pytest.approx(0.06)
    assert [e["n"] for e in gap.take()] == [3, 4]
    assert gap.take() == []
    nothing = AudioGap(limit_s=0, sample_rate=24000)
    nothing.add({"type": "input_audio_buffer.append", "audio": chunk})
    assert nothing.take() == [] and nothing.dropped_s == pytest.approx(0.02)


def test_each_connection_asks_the_entra_credential_for_its_token(voicepipe_run, tmp_path, monkeypatch):
    """The credential renews a token near expiry; voicepipe asks it anew for every connection."""
    import time

    import azure.identity.aio
    from azure.core.credentials import AccessToken

    handed_out: list[str] = []

    class Credential:
        def __init__(self, *args, **kwargs):
            pass

        async def get_token(self, *scopes, **kwargs):
            handed_out.append(f"token-number-{len(handed_out) + 1}")
            return AccessToken(handed_out[-1], int(time.time()) + 60)

        async def close(self):
            pass

    monkeypatch.setattr(azure.identity.aio, "DefaultAzureCredential", Credential)
    monkeypatch.delenv("AZURE_VOICELIVE_API_KEY", raising=False)
    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01}",
        "- {after: {event: response.done}, action: close, code: 1011, connection: 1}\n",
    )
    driver = Driver(answers=2)
    with served_emulator(tmp_path / "scenario.yaml") as emulator:  # by URL: the embedded one needs no sign-in
        result = voicepipe_run(profile, plugins=[driver], emulator=False,
                               overrides=["connection.auth=entra", f"connection.endpoint={emulator.url}"])
    assert result.exit_code == 0
    assert handed_out == ["token-number-1", "token-number-2"]


def test_a_session_with_a_reconnect_replays_to_the_same_transcript(voicepipe_run, tmp_path):
    import asyncio

    from voicepipe.plugins import make_plugin_manager
    from voicepipe.profile.model import Profile
    from voicepipe.replay import replay

    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01}",
        "- {after: {event: response.done}, action: close, code: 1011, connection: 1}\n",
    )
    live = voicepipe_run(profile, plugins=[Driver(answers=2)], emulator=False)
    events = [json.loads(line)["event"] for line in live.read("events.jsonl").splitlines()]
    assert [e["type"] for e in events if e["type"].startswith("connection.")] == [
        "connection.lost", "connection.reconnected"
    ]
    replayed = tmp_path / "replayed"
    pm = make_plugin_manager(Profile.empty(), autoload=False, without=("audio", "tools", "console"))
    assert asyncio.run(replay(Profile.empty(), live.run_dir, replayed, pm=pm)) == 0
    for name in ("transcript.txt", "transcript.jsonl"):
        assert (replayed / name).read_text().splitlines() == live.read(name).splitlines(), name


QUESTION_WAV = Path(__file__).resolve().parent.parent / "profiles" / "audio" / "question.wav"


@pytest.mark.parametrize(
    "trigger",
    ["{event: response.created}", "{event: response.audio.delta, count: 1}",
     "{event: response.audio.delta, count: 4}", "{event: response.audio_transcript.delta, count: 2}"],
)
def test_a_reconnect_mid_answer_does_not_hold_up_the_end_of_finite_input(voicepipe_run, tmp_path, monkeypatch, trigger):
    import voicepipe.builtin.audio as audio_plugin

    monkeypatch.setattr(audio_plugin, "MAX_ANSWER_S", 3600.0)  # a wait for the lost answer: the deadline catches it
    profile = write_profile(
        tmp_path,
        "{attempts: 3, initial_delay_s: 0.01}",
        f"- {{after: {trigger}, action: close, code: 1011, connection: 1}}\n",
    )
    wav_input = ["audio.input.backend=wav", f"audio.input.file={QUESTION_WAV}", "audio.input.realtime=false",
                 "audio.input.trailing_silence_ms=1500"]
    result = within_deadline(lambda: voicepipe_run(profile, emulator=False, overrides=wav_input))
    assert result.exit_code == 0 and result.reason == "input_finished"
    assert result.server_types().count("session.created") == 2  # it did reconnect
