"""A session against the embedded emulator whose scenario injects faults, driven by typed questions.

Shared by the reconnect and fault tests.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def write_profile(tmp_path: Path, reconnect: str, faults: str, extra: str = "") -> Path:
    """A profile with null audio, fast reconnects as given, and a scenario with ``faults`` (YAML list items)."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        textwrap.dedent(
            """\
            response_delay_ms: 0
            default_answer: "The answer to {user}."
            faults:
            """
        )
        + textwrap.indent(textwrap.dedent(faults), "  ")
    )
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        textwrap.dedent(
            f"""\
            connection:
              endpoint: emulator
              model: gpt-realtime
              emulator: {{scenario: {scenario}, speed: 0}}
              reconnect: {reconnect}
            session:
              modalities: [text, audio]
              voice: {{name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}}
            audio:
              input: {{backend: null}}
              output: {{backend: null, realtime: false}}
            console: {{quiet: true}}
            metrics: {{table: false}}
            """
        )
        + textwrap.dedent(extra)
    )
    return profile


class Driver:
    """Types one question per new session and stops after ``answers`` answers."""

    __name__ = "driver"

    def __init__(self, answers: int = 2):
        self.wanted = answers
        self.answers = 0
        self.asked = 0
        self.disconnects: list[tuple] = []
        self.reconnects: list[dict] = []
        self.ends: list[str] = []

    def voicepipe_event(self, event, ctx):
        kind = event.get("type")
        if kind == "session.updated":
            self.asked += 1
            ctx.send(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "user",
                             "content": [{"type": "input_text", "text": f"question {self.asked}"}]},
                }
            )
            ctx.send({"type": "response.create"})
        elif kind == "response.done":
            self.answers += 1
            if self.answers >= self.wanted:
                ctx.stop("user")

    def voicepipe_disconnected(self, code, reconnecting):
        self.disconnects.append((code, reconnecting))

    def voicepipe_reconnected(self, attempts, gap_s, seeded_item_ids, buffered_audio_s):
        self.reconnects.append({"attempts": attempts, "gap_s": gap_s, "seeded": list(seeded_item_ids),
                                "buffered_s": buffered_audio_s})

    def voicepipe_session_end(self, reason):
        self.ends.append(reason)


def log_records(result, name: str) -> list[dict]:
    lines = [json.loads(line) for line in result.read("voicepipe.log.jsonl").splitlines()]
    return [line for line in lines if line.get("event") == name]
