"""Daily use at a terminal: typed messages, a start that fails, what replay and run say at the end."""

import json
import os
import subprocess
import sys
from pathlib import Path

from shutdown_helpers import VoicepipeProcess, write_profile

ROOT = Path(__file__).resolve().parent.parent


def _voicepipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_VOICELIVE", "VOICEPIPE"))}
    return subprocess.run([sys.executable, "-m", "voicepipe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_typed_line_is_sent_as_a_user_message_and_answered(voicelive_emulator, tmp_path):
    profile = write_profile(tmp_path, voicelive_emulator.url)
    with VoicepipeProcess(profile, tmp_path / "logs") as run:
        run.wait_for_line(r"^Ready\.")
        run.type("What is the tallest mountain?\n")
        run.wait_for_line(r"^Assistant: ")
        run.type("\n" + "x" * 5000 + "\nq\n")  # an empty line and an overlong one are not messages
        assert run.wait() == 0, run.describe()
    assert "You: What is the tallest mountain?" in run.stdout
    events = [json.loads(line)["event"] for line in (run.run_dir / "events.jsonl").read_text().splitlines()]
    typed = [e for e in events if e.get("type") == "conversation.item.create"]
    assert [e["item"]["content"][0]["text"] for e in typed] == ["What is the tallest mountain?"]
    assert [e["type"] for e in events].count("response.create") == 1


def test_a_start_that_fails_says_why_in_one_line_and_where_its_log_is_once(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "extends: builtin:ava.yaml\nconnection: {endpoint: 'http://127.0.0.1:9'}\n"
        "audio: {input: {backend: null}, output: {backend: null}}\n"
    )
    result = _voicepipe("run", "p.yaml", "--log-dir", "logs", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("voicepipe:")]) == 1
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert result.stderr.count("run folder:") == 1
    assert f"run folder: {run_dir} (the log of the failed start)" in result.stderr
    assert [p.name for p in run_dir.iterdir()] == ["voicepipe.log.jsonl"]


def test_a_run_says_where_once_connected_and_writes_its_report(tmp_path):
    fast = ["--set", "connection.emulator.speed=0", "--set", "audio.input.realtime=false",
            "--set", "audio.output.realtime=false"]
    result = _voicepipe("run", "builtin:demo.yaml", "--log-dir", "logs", *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert result.stderr.count(f"run folder: {run_dir}") == 2  # when connected, and at the end
    assert "[info" not in result.stderr  # the technical log stays in the run folder without -v
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")

    quiet = _voicepipe("run", "builtin:demo.yaml", "--log-dir", "quiet", "--quiet", *fast, cwd=tmp_path)
    assert quiet.returncode == 0
    assert quiet.stdout.splitlines() == [
        "You: What is the largest lake in the world?",
        "Assistant: The Caspian Sea is the largest lake in the world, with an area of about three hundred "
        "and seventy thousand square kilometres.",
    ]
    assert quiet.stderr == ""

    replayed = _voicepipe("replay", str(run_dir), "--log-dir", "replays", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    (replay_dir,) = (tmp_path / "replays").iterdir()
    assert f"replayed {run_dir} into {replay_dir}" in replayed.stderr


def test_a_missing_microphone_ends_the_run_before_any_connection(voicelive_emulator, tmp_path):
    profile = write_profile(
        tmp_path, voicelive_emulator.url, audio_input="{backend: pyaudio, device: no such microphone 9f3}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPIPE")}
    result = subprocess.run(
        [sys.executable, "-m", "voicepipe", "run", str(profile), "--log-dir", str(tmp_path / "logs")],
        env={**env, "AZURE_VOICELIVE_API_KEY": "test-key-0123456789"}, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("voicepipe:")]
    assert "audio.input" in line and "no such microphone 9f3" in line
    assert "Traceback" not in result.stderr
    assert voicelive_emulator.connections == []  # nothing was billed
