"""What a run folder says happened, laid out for the report: lanes of spans and marks on the
session's clock, the per-turn latency records, the transcript and (for a conversation test) the
results.

Everything is read from the files a run leaves (``events.jsonl``, ``metrics.jsonl``,
``metrics.json``, ``transcript.jsonl``, ``conversation.json``); a missing file leaves its part of
the report empty and a line that cannot be read is counted, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from voicepipe.errors import UsageError

LANES = ("user", "thinking", "generated", "played", "tools", "connection")
LANE_TITLES = {
    "user": "User speech",
    "thinking": "Thinking",
    "generated": "Audio generated",
    "played": "Audio played",
    "tools": "Tool calls",
    "connection": "Connection",
}
_APPEND = '"input_audio_buffer.append"'
_DELTAS = ("response.audio.delta", "response.output_audio.delta")


@dataclass
class Span:
    lane: str
    start: float
    end: float
    label: str
    kind: str = ""
    title: str = ""


@dataclass
class Mark:
    lane: str
    at: float
    label: str
    kind: str
    title: str = ""


@dataclass
class RunData:
    name: str
    folder: Path
    duration_s: float = 0.0
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)  # metrics.jsonl records
    summary: dict = field(default_factory=dict)  # metrics.json
    transcript: list[dict] = field(default_factory=list)
    conversation: Optional[dict] = None
    notes: list[str] = field(default_factory=list)


def _lines(path: Path, notes: list[str], skip: Optional[str] = None) -> Iterator[dict]:
    if not path.is_file():
        notes.append(f"{path.name} is missing")
        return
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if skip is not None and skip in line:
                continue
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(value, dict):
                yield value
            else:
                bad += 1
    if bad:
        notes.append(f"{path.name}: {bad} line(s) could not be read")


def _json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        notes.append(f"{path.name} could not be read")
        return None


def load_run(folder: str | Path) -> RunData:
    """Read the run folder ``folder``; :class:`UsageError` when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such run folder")
    if not (folder / "events.jsonl").is_file() and not (folder / "metrics.jsonl").is_file():
        raise UsageError(f"{folder}: not a run folder (no events.jsonl or metrics.jsonl in it)")
    data = RunData(name=folder.name, folder=folder)
    _timeline(data, _lines(folder / "events.jsonl", data.notes, skip=_APPEND))
    data.turns = list(_lines(folder / "metrics.jsonl", data.notes))
    data.summary = _json(folder / "metrics.json", data.notes) or {}
    data.transcript = list(_lines(folder / "transcript.jsonl", data.notes))
    conversation = _json(folder / "conversation.json", data.notes)
    data.conversation = conversation if isinstance(conversation, dict) else None
    return data


def _num(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Timeline:
    """Turns the recorded events, in order, into spans and marks."""

    def __init__(self, data: RunData):
        self.data = data
        self.speech_from: Optional[float] = None
        self.turn_start: Optional[float] = None  # speech stopped, or response.create sent
        self.responses: dict[str, dict] = {}
        self.playing: dict[str, float] = {}
        self.calls: dict[str, tuple[float, str]] = {}
        self.lost_at: Optional[float] = None
        self.last = 0.0

    def span(self, lane: str, start: float, end: float, label: str, kind: str = "", title: str = "") -> None:
        self.data.spans.append(Span(lane, start, max(end, start), label, kind or lane, title or label))

    def mark(self, lane: str, at: float, label: str, kind: str, title: str = "") -> None:
        self.data.marks.append(Mark(lane, at, label, kind, title or label))

    def feed(self, t: float, direction: str, event: dict) -> None:
        kind = event.get("type")
        self.last = max(self.last, t)
        if direction == "server":
            self.server(t, kind, event)
        elif direction == "client":
            self.client(t, kind, event)
        elif direction == "local":
            self.local(t, kind, event)
        elif direction == "meta":
            self.meta(t, kind, event)

    def server(self, t: float, kind: Any, event: dict) -> None:
        if kind == "input_audio_buffer.speech_started":
            self.speech_from = t
            if self.playing:
                self.mark("played", t, "barge-in", "barge", "the user started speaking over the answer")
        elif kind == "input_audio_buffer.speech_stopped":
            if self.speech_from is not None:
                self.span("user", self.speech_from, t, "speech")
            self.speech_from = None
            self.turn_start = t
        elif kind == "response.created":
            response_id = (event.get("response") or {}).get("id") or "?"
            self.responses[response_id] = {"created": t, "from": self.turn_start if self.turn_start is not None else t}
            self.turn_start = None
        elif kind in _DELTAS:
            response = self.responses.get(event.get("response_id") or "")
            if response is not None:
                response.setdefault("first_audio", t)
                response["last_audio"] = t
        elif kind == "response.function_call_arguments.done":
            self.calls[str(event.get("call_id"))] = (t, str(event.get("name") or "tool"))
        elif kind == "response.done":
            body = event.get("response") or {}
            response = self.responses.pop(body.get("id") or "?", None)
            if response is None:
                return
            first = response.get("first_audio", t)
            self.span("thinking", response["from"], first, "thinking",
                      title=f"{(first - response['from']) * 1000:.0f} ms to the first audio")
            if "first_audio" in response:
                status = body.get("status") or ""
                self.span("generated", response["first_audio"], response["last_audio"], "generated",
                          "generated-cancelled" if status == "cancelled" else "generated",
                          title=f"audio received ({status or 'done'})")
        elif kind == "error":
            error = event.get("error") or {}
            self.mark("connection", t, "error", "error", str(error.get("message") or error.get("code") or "error"))

    def client(self, t: float, kind: Any, event: dict) -> None:
        if kind == "response.create":
            self.turn_start = t
        elif kind == "conversation.item.truncate":
            ms = _num(event.get("audio_end_ms"))
            self.mark("played", t, "cut", "truncate",
                      f"answer truncated at {ms:.0f} ms of audio" if ms is not None else "answer truncated")
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            if item.get("type") == "function_call_output":
                started = self.calls.pop(str(item.get("call_id")), None)
                if started is not None:
                    self.span("tools", started[0], t, started[1], "tool",
                              f"{started[1]}: {(t - started[0]) * 1000:.0f} ms")
            elif item.get("role") == "user":
                self.mark("user", t, "typed", "typed", "a typed message")

    def local(self, t: float, kind: Any, event: dict) -> None:
        item_id = str(event.get("item_id"))
        if kind == "playback.started":
            self.playing[item_id] = t
        elif kind in ("playback.finished", "playback.interrupted"):
            start = self.playing.pop(item_id, None)
            if start is None:
                return
            played = _num(event.get("played_ms"))
            generated = _num(event.get("generated_ms"))
            detail = f"played {played:.0f} of {generated:.0f} ms" if played is not None and generated is not None else ""
            if kind == "playback.interrupted":
                self.span("played", start, t, "played", "played-cut", f"interrupted: {detail}")
                self.mark("played", t, "stop", "truncate", f"playback cut off: {detail}")
            else:
                self.span("played", start, t, "played", "played", detail or "played")

    def meta(self, t: float, kind: Any, event: dict) -> None:
        if kind == "connection.lost":
            self.lost_at = t
            self.mark("connection", t, "lost", "lost", f"connection lost (code {event.get('code')})")
        elif kind == "connection.reconnected":
            start = self.lost_at if self.lost_at is not None else t
            self.span("connection", start, t, "reconnect", "reconnect",
                      f"reconnected after {event.get('attempts')} attempt(s)")
            self.lost_at = None

    def finish(self) -> None:
        end = self.last
        if self.speech_from is not None:
            self.span("user", self.speech_from, end, "speech")
        for item_id, start in self.playing.items():
            self.span("played", start, end, "played", "played", "still playing when the recording ended")
        if self.lost_at is not None:
            self.span("connection", self.lost_at, end, "down", "lost", "not reconnected")
        self.data.duration_s = end


def _timeline(data: RunData, lines: Iterator[dict]) -> None:
    timeline = _Timeline(data)
    for line in lines:
        t = _num(line.get("t"))
        event = line.get("event")
        if t is None or not isinstance(event, dict):
            continue
        timeline.feed(t, str(line.get("direction")), event)
    timeline.finish()
