"""The command line: help, version, validate, show, plugins, and the errors a user can cause."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from shipped_files import shipped_profiles

from voicepipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"


@pytest.fixture(autouse=True)
def no_azure_environment(monkeypatch):
    for name in ("AZURE_VOICELIVE_ENDPOINT", "AZURE_VOICELIVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "voicepipe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "show", "plugins", "emulator", "devices", "replay"):
        assert command in result.stdout


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys, voicepipe.cli; "
        "print(sorted(m for m in ('azure', 'aiohttp', 'numpy', 'structlog', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("voicepipe ")


def test_validate_every_shipped_profile(capsys):
    profiles = [str(path) for path in shipped_profiles()]
    assert len(profiles) >= 4
    assert main(["validate", *profiles]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == len(profiles)


def test_validate_reports_every_problem_with_its_location_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("session:\n  voice:\n    name: x\n    type: azure-standard\n    temprature: 0.5\n  modalities: [txt]\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"{bad}:5:5: session.voice.temprature:") and "temperature" in err[0]
    assert err[1].startswith(f"{bad}:6:") and "session.modalities" in err[1]


def test_show_prints_the_quickstart_session_exactly(capsys):
    assert main(["show", str(PROFILES / "ava.yaml")]) == 0
    out = capsys.readouterr().out
    header, _, body = out.partition("\n")
    assert header.startswith("# connection: ")
    payload = json.loads(body)
    assert payload == {
        "type": "session.update",
        "session": {
            "instructions": "You are a helpful AI assistant responding in natural, engaging language.",
            "modalities": ["text", "audio"],
            "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.8},
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": {
                "type": "azure_semantic_vad",
                "threshold": 0.3,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 200,
                "remove_filler_words": False,
                "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2},
            },
            "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
            "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        },
    }


def test_show_applies_set_overrides(capsys):
    assert main(["show", str(PROFILES / "ava.yaml"), "--set", "session.voice.name=en-US-Emma:DragonHDLatestNeural"]) == 0
    payload = json.loads(capsys.readouterr().out.partition("\n")[2])
    assert payload["session"]["voice"]["name"] == "en-US-Emma:DragonHDLatestNeural"


def test_set_on_a_key_that_does_not_exist(capsys):
    assert main(["show", str(PROFILES / "ava.yaml"), "--set", "session.voice.nmae=x"]) == 2
    err = capsys.readouterr().err
    assert "session.voice.nmae" in err and "name" in err


def test_plugins_lists_builtins_and_local_plugins(capsys):
    assert main(["plugins", str(PROFILES / "demo.yaml")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"audio", "transcript", "recorder", "metrics", "console", "tools", "keyword_alert"} <= set(lines)
    assert "built-in" in lines["transcript"]
    assert "keyword_alert.py" in lines["keyword_alert"] and "event" in lines["keyword_alert"]


def test_run_missing_profile_is_one_line_exit_2():
    result = run_cli("run", "profiles/nope.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "profiles/nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_run_without_endpoint_says_what_to_set():
    result = run_cli("run", "profiles/ava.yaml")
    assert result.returncode == 2
    assert "AZURE_VOICELIVE_ENDPOINT" in result.stderr and "Traceback" not in result.stderr


def test_run_with_api_key_auth_but_no_key_exits_2():
    result = run_cli(
        "run", "profiles/ava.yaml", "--set", "connection.auth=api-key",
        env={"AZURE_VOICELIVE_ENDPOINT": "https://example.invalid/"},
    )
    assert result.returncode == 2
    assert "AZURE_VOICELIVE_API_KEY" in result.stderr and "Traceback" not in result.stderr


class SilentServer:
    """Accepts TCP connections and never answers: a handshake that cannot complete."""

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start():
            self.server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()))
        self.thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_unreachable_endpoint_ends_in_bounded_time_with_exit_1(tmp_path):
    with SilentServer() as server:
        result = run_cli(
            "run", "profiles/ava.yaml", "--log-dir", str(tmp_path),
            "--set", "connection.connect_timeout_s=1",
            "--set", "audio.input.backend=null", "--set", "audio.output.backend=null",
            env={"AZURE_VOICELIVE_ENDPOINT": f"http://127.0.0.1:{server.port}", "AZURE_VOICELIVE_API_KEY": "k-123456789"},
            timeout=60,  # the bound that matters is in the message; this only stops a hang
        )
    assert result.returncode == 1
    assert "could not connect" in result.stderr and "within 1 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_refused_connection_exit_1(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli(
        "run", "profiles/ava.yaml", "--log-dir", str(tmp_path),
        "--set", "audio.input.backend=null", "--set", "audio.output.backend=null",
        env={"AZURE_VOICELIVE_ENDPOINT": f"http://127.0.0.1:{port}", "AZURE_VOICELIVE_API_KEY": "k-123456789"},
    )
    assert result.returncode == 1
    assert "could not connect" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_audio_device_is_a_usage_error_with_one_line_before_connecting(tmp_path):
    result = run_cli(
        "run", "profiles/demo.yaml", "--log-dir", str(tmp_path), "--set", "connection.emulator.speed=0",
        "--set", 'audio.output={backend: pyaudio, device: "No Such Speaker"}',
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("voicepipe: audio.output: pyaudio: device 'No Such Speaker': ")
    assert "Traceback" not in result.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name for p in run_dir.iterdir()] == ["voicepipe.log.jsonl"]  # the log of the failed start
    events = [json.loads(line)["event"] for line in (run_dir / "voicepipe.log.jsonl").read_text().splitlines()]
    assert "audio_error" in events and "connecting" not in events  # checked before any connection
