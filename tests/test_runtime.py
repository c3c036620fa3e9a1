"""A profile end to end against the emulator, through the official SDK over loopback WebSockets."""

import json
import textwrap
from pathlib import Path

import pytest

from voicepipe.errors import SessionError

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "profiles" / "audio" / "question.wav"


def write_profile(tmp_path: Path, endpoint: str, extra: str = "", audio_in: str = "") -> Path:
    audio_in = audio_in or f"{{backend: wav, file: {QUESTION}, realtime: false, trailing_silence_ms: 1500}}"
    text = textwrap.dedent(
        f"""\
        connection:
          endpoint: {endpoint}
          model: gpt-realtime
          connect_timeout_s: 5
        session:
          instructions: Answer briefly.
          modalities: [text, audio]
          voice: {{name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}}
          input_audio_transcription: {{model: whisper-1}}
        audio:
          input: {audio_in}
          output: {{backend: null}}
        console: {{quiet: true}}
        metrics: {{table: false}}
        """
    ) + textwrap.dedent(extra)
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "test-key-0123456789")


def test_plugins_see_every_server_event_in_order(voicelive_emulator, voicepipe_run, tmp_path, api_key):
    profile = write_profile(tmp_path, voicelive_emulator.url)
    result = voicepipe_run(profile, emulator=False)
    assert result.exit_code == 0
    assert result.reason == "input_finished"
    connection = voicelive_emulator.connections[0]
    sent_by_server = [e["type"] for e in connection.server_events]
    assert result.server_types() == sent_by_server
    for expected in ("session.created", "session.updated", "input_audio_buffer.speech_started",
                     "input_audio_buffer.speech_stopped", "response.audio.delta", "response.done"):
        assert expected in sent_by_server
    assert result.client_types() == [e["type"] for e in connection.client_events]
    update = result.client_events[0]
    assert update["type"] == "session.update"
    assert update["session"]["voice"] == {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard"}
    assert "turn_detection" not in update["session"]  # not set, so not sent


def test_a_failing_plugin_is_reported_and_the_session_goes_on(voicelive_emulator, voicepipe_run, tmp_path, api_key):
    class Fragile:
        __name__ = "fragile"

        @staticmethod
        def voicepipe_event(event):
            if event.get("type") == "response.created":
                raise KeyError("missing")

    profile = write_profile(tmp_path, voicelive_emulator.url)
    result = voicepipe_run(profile, emulator=False, plugins=[Fragile()])
    assert result.exit_code == 0
    assert "response.done" in result.server_types()
    log_lines = [json.loads(line) for line in result.read("voicepipe.log.jsonl").splitlines()]
    errors = [line for line in log_lines if line.get("event") == "plugin_error"]
    assert errors and errors[0]["plugin"] == "fragile" and errors[0]["event_type"] == "response.created"


def test_duration_stops_the_session_and_end_hooks_run_once(voicepipe_run, tmp_path):
    ends = []

    class Ender:
        __name__ = "ender"

        @staticmethod
        def voicepipe_session_end(reason):
            ends.append(reason)

    profile = write_profile(tmp_path, "emulator", audio_in="{backend: null}")
    result = voicepipe_run(profile, duration=1.0, plugins=[Ender()])
    assert result.exit_code == 0
    assert ends == ["duration"]


def test_end_hooks_run_when_the_connection_cannot_be_made(voicepipe_run, tmp_path, api_key):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ends = []

    class Ender:
        __name__ = "ender"

        @staticmethod
        def voicepipe_session_end(reason):
            ends.append(reason)

    profile = write_profile(tmp_path, f"http://127.0.0.1:{port}")
    with pytest.raises(SessionError, match="could not connect"):
        voicepipe_run(profile, emulator=False, plugins=[Ender()])
    assert ends == ["error"]


def test_unknown_event_types_reach_plugins(voicelive_emulator, voicepipe_run, tmp_path, api_key):
    profile = write_profile(tmp_path, voicelive_emulator.url)
    result = voicepipe_run(profile, emulator=False)
    from azure.ai.voicelive.models import ServerEventType

    known = {t.value for t in ServerEventType}
    unknown = [t for t in result.server_types() if t not in known]
    assert unknown == [e["type"] for e in voicelive_emulator.connections[0].server_events if e["type"] not in known]


def test_the_start_up_heap_is_frozen_once_per_process():
    import subprocess
    import sys

    code = ("import gc; from voicepipe.heap import freeze_startup_heap as freeze; freeze(); n = gc.get_freeze_count(); "
            "[object() for _ in range(10)]; x = [[] for _ in range(1000)]; freeze(); print(n > 1000, gc.get_freeze_count() == n)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr
