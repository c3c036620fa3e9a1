"""`voicepipe report`: one self-contained HTML file drawn from a run folder."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from voicepipe.cli import main
from voicepipe.report import load_run, render, write_report

ROOT = Path(__file__).resolve().parent.parent


def _events(folder: Path) -> None:
    """A recorded session: spoken question, a tool call, an answer cut off by a barge-in, a dropped
    and re-opened connection, and a second answer that played to the end."""
    lines = [
        (0.0, "meta", {"type": "recording.started"}),
        (0.5, "server", {"type": "input_audio_buffer.speech_started"}),
        (1.5, "server", {"type": "input_audio_buffer.speech_stopped"}),
        (1.6, "server", {"type": "response.created", "response": {"id": "r1"}}),
        (1.7, "server", {"type": "response.function_call_arguments.done", "call_id": "c1", "name": "get_opening_hours"}),
        (1.7, "server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}}),
        (1.9, "client", {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c1"}}),
        (1.9, "client", {"type": "response.create"}),
        (2.0, "server", {"type": "response.created", "response": {"id": "r2"}}),
        (2.2, "server", {"type": "response.audio.delta", "response_id": "r2", "item_id": "i2"}),
        (2.2, "local", {"type": "playback.started", "item_id": "i2", "response_id": "r2"}),
        (2.6, "server", {"type": "response.audio.delta", "response_id": "r2", "item_id": "i2"}),
        (3.0, "server", {"type": "input_audio_buffer.speech_started"}),
        (3.0, "local", {"type": "playback.interrupted", "item_id": "i2", "played_ms": 800, "generated_ms": 2000}),
        (3.0, "client", {"type": "conversation.item.truncate", "item_id": "i2", "audio_end_ms": 800}),
        (3.1, "server", {"type": "response.done", "response": {"id": "r2", "status": "cancelled"}}),
        (3.8, "server", {"type": "input_audio_buffer.speech_stopped"}),
        (4.0, "meta", {"type": "connection.lost", "code": 1011, "reconnecting": True}),
        (4.6, "meta", {"type": "connection.reconnected", "attempts": 1}),
        (4.7, "server", {"type": "response.created", "response": {"id": "r3"}}),
        (5.0, "server", {"type": "response.audio.delta", "response_id": "r3", "item_id": "i3"}),
        (5.0, "local", {"type": "playback.started", "item_id": "i3", "response_id": "r3"}),
        (5.5, "server", {"type": "response.done", "response": {"id": "r3", "status": "completed"}}),
        (6.5, "local", {"type": "playback.finished", "item_id": "i3", "played_ms": 1500, "generated_ms": 1500}),
    ]
    text = "\n".join(json.dumps({"t": t, "direction": d, "event": e}) for t, d, e in lines)
    (folder / "events.jsonl").write_text(text + "\n{not json\n", encoding="utf-8")
    turns = [
        {"response_id": "r1", "trigger": "speech", "status": "completed", "tool_ms": 200.0, "vad_tail_ms": 210.0,
         "server_first_audio_ms": None, "tool_calls": [{"name": "get_opening_hours"}]},
        {"response_id": "r2", "trigger": "client", "status": "cancelled", "interrupted": True,
         "first_audio_from_create_ms": 300.0, "playout_delay_ms": 2.0},
        {"response_id": "r3", "trigger": "speech", "status": "completed", "voice_to_voice_ms": 1200.0,
         "vad_tail_ms": 200.0, "server_first_audio_ms": 998.0, "playout_delay_ms": 2.0},
    ]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(t) for t in turns) + "\n", encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({"reason": "user", "interrupted": 1, "metrics": {
        "voice_to_voice_ms": {"p50": 1200.0, "p90": 1200.0, "p99": 1200.0}}}), encoding="utf-8")
    transcript = [{"role": "user", "text": "When does the <Louvre> open?", "start": 0.5},
                  {"role": "assistant", "text": "It opens at nine", "start": 2.2, "interrupted": True, "played_ms": 800}]
    (folder / "transcript.jsonl").write_text("\n".join(json.dumps(t) for t in transcript) + "\n", encoding="utf-8")


def test_the_timeline_has_every_kind_of_moment(tmp_path):
    _events(tmp_path)
    data = load_run(tmp_path)
    by_lane = {}
    for span in data.spans:
        by_lane.setdefault(span.lane, []).append((span.start, span.end, span.kind))
    assert by_lane["user"] == [(0.5, 1.5, "user"), (3.0, 3.8, "user")]
    assert by_lane["tools"] == [(1.7, 1.9, "tool")]
    assert (1.9, 2.2, "thinking") in by_lane["thinking"]  # response.create sent -> first audio
    assert (2.2, 2.6, "generated-cancelled") in by_lane["generated"]
    assert by_lane["played"] == [(2.2, 3.0, "played-cut"), (5.0, 6.5, "played")]
    assert by_lane["connection"] == [(4.0, 4.6, "reconnect")]
    kinds = sorted((m.lane, m.kind) for m in data.marks)
    assert ("played", "barge") in kinds and kinds.count(("played", "truncate")) == 2 and ("connection", "lost") in kinds
    assert data.notes == ["events.jsonl: 1 line(s) could not be read"]


def test_the_html_is_self_contained_and_escaped(tmp_path):
    _events(tmp_path)
    text = render(load_run(tmp_path))
    assert "When does the &lt;Louvre&gt; open?" in text and "<Louvre>" not in text
    assert not re.search(r"(src|href)\s*=|https?://|<script|@import|url\(", text, re.I)
    for element in ('id="timeline"', 'id="breakdown"', 'id="distribution"', 'id="transcript"', 'id="turns"'):
        assert element in text


def test_report_command_writes_report_html(tmp_path, capsys):
    _events(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob("*.partial"))


def test_report_of_a_folder_that_is_no_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"voicepipe: {tmp_path}: not a run folder (no events.jsonl or metrics.jsonl in it)"
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "no such run folder" in capsys.readouterr().err


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="needs Chromium (apt-get install chromium)")
def test_headless_chromium_renders_the_elements_offline(tmp_path):
    assert CHROMIUM is not None, "CI must run the report's browser test: ./dev installs chromium"
    _events(tmp_path)
    report = write_report(tmp_path)
    profile_dir = tmp_path / "chromium-profile"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile_dir}",
         "--proxy-server=127.0.0.1:9", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert dom.count('class="span played-cut"') == 1 and dom.count('class="span played"') == 1
    assert dom.count('data-lane="tools"') == 1 and dom.count('data-lane="user"') == 2
    assert 'data-kind="barge"' in dom and 'data-kind="truncate"' in dom and 'class="span reconnect"' in dom
    assert dom.count('class="part ') == 7  # latency parts of the three turns
    assert '<tr class="role-assistant">' in dom and "cut off at 800 ms" in dom
