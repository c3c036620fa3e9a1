"""A scripted Voice Live session driven through the real Pipeline, for the logging plugins' tests.

No network and no runtime: events are dispatched by hand on a clock the test sets, exactly as the
runtime would dispatch them (``ctx.session_id``/``ctx.session`` set before dispatch).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pluggy
from azure.ai.voicelive.models import ServerEvent

import voicepipe.hookspecs
from voicepipe.builtin import console, recorder, transcript
from voicepipe.pipeline import Pipeline

BUILTINS = {"recorder": recorder, "transcript": transcript, "console": console}
ROOT = Path(__file__).resolve().parent
SHARED_VECTORS = Path("/work/shared/vectors/voicelive-recorded")


def cassette_dir() -> Path:
    """The recorded real sessions: the repository's copy, else the shared one."""
    for candidate in (ROOT / "vectors" / "voicelive-recorded", ROOT / "vectors"):
        if list(candidate.glob("test_*.yaml")):
            return candidate
    return SHARED_VECTORS


@dataclass
class FakeProfile:
    """What the logging plugins read of a profile."""

    name: str = "test"
    sections: dict = field(default_factory=dict)
    logging: dict = field(default_factory=dict)
    connection: dict = field(default_factory=lambda: {"model": "gpt-realtime"})
    session: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)
    disable: tuple = ()
    data: dict = field(default_factory=dict)
    path: Optional[Path] = None
    base_dir: Path = ROOT

    def section(self, name: str) -> dict:
        return self.sections.get(name) or {}


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t


class NullLog:
    def __init__(self):
        self.records = []

    def __getattr__(self, level):
        return lambda event, **fields: self.records.append((level, event, fields))


def make_pm(*names: str, extra: tuple = ()) -> pluggy.PluginManager:
    """A plugin manager holding the named built-ins (default: all three) and ``extra`` (name, plugin)."""
    pm = pluggy.PluginManager("voicepipe")
    pm.add_hookspecs(voicepipe.hookspecs)
    for name in names or tuple(BUILTINS):
        pm.register(BUILTINS[name], name=name)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    return pm


def audio_b64(n_bytes: int, seed: int = 1) -> str:
    return base64.b64encode(bytes((i * seed) % 251 for i in range(n_bytes))).decode()


class ScriptedSession:
    """One session: ``start()``, then ``server``/``client``/``playback`` at clock times, ``end()``."""

    def __init__(self, run_dir: Path, *, profile: Optional[FakeProfile] = None, pm=None, origin: float = 1000.0):
        self.profile = profile or FakeProfile()
        self.clock = FakeClock(origin)
        self.origin = origin
        self.log = NullLog()
        self.pm = pm or make_pm()
        self.sent: list = []
        self.pipeline = Pipeline(
            self.profile, self.pm, Path(run_dir), self.log, send=self.sent.append, stop=lambda r: None, clock=self.clock
        )
        self.ctx = self.pipeline.ctx

    def at(self, t: float) -> "ScriptedSession":
        self.clock.t = self.origin + t
        return self

    def start(self) -> None:
        asyncio.run(self.pipeline.start())

    def server(self, t: float, type_: str, **fields: Any) -> Any:
        self.at(t)
        event = ServerEvent._deserialize({"type": type_, **fields}, [])
        if type_ == "session.created":
            self.ctx.session_id = fields["session"]["id"]
        elif type_ == "session.updated":
            self.ctx.session = dict(fields["session"])
        self.pipeline.dispatch(event)
        return event

    def client(self, t: float, event: dict) -> None:
        self.at(t)
        self.pipeline.client_event(event)

    def playback(self, t: float, type_: str, item_id: str, played_ms: float, generated_ms: float, response_id: str = "resp_1") -> None:
        self.at(t)
        self.pipeline.notify_playback(
            {
                "type": type_,
                "item_id": item_id,
                "response_id": response_id,
                "played_ms": played_ms,
                "generated_ms": generated_ms,
                "at": self.clock.t,
            }
        )

    def end(self, reason: str = "user") -> None:
        asyncio.run(self.pipeline.end(reason))


SESSION = {
    "id": "sess_TEST1",
    "model": "gpt-realtime",
    "modalities": ["text", "audio"],
    "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard"},
    "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.3},
    "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
    "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
    "input_audio_transcription": {"model": "azure-speech"},
    "output_audio_format": "pcm16",
    "instructions": "Be brief.",
}
CHUNK = 4800  # 100 ms of 24 kHz PCM16


def answer(s: ScriptedSession, t: float, item: str, response: str, words: list[str], chunks_per_word: int = 2) -> float:
    """Stream an assistant answer: per word, its transcript delta then its audio. Returns the end time."""
    s.server(t, "response.created", response={"id": response, "status": "in_progress", "output": []})
    s.server(t, "response.output_item.added", response_id=response, output_index=0,
             item={"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []})
    s.server(t, "conversation.item.created", item={"id": item, "type": "message", "role": "assistant", "status": "in_progress", "content": []})
    for index, word in enumerate(words):
        t += 0.01
        s.server(t, "response.audio_transcript.delta", response_id=response, item_id=item, output_index=0, content_index=0,
                 delta=word if index == 0 else " " + word)
        for _ in range(chunks_per_word):
            t += 0.01
            s.server(t, "response.audio.delta", response_id=response, item_id=item, output_index=0, content_index=0,
                     delta=audio_b64(CHUNK, seed=index + 1))
    return t


def finish_answer(s: ScriptedSession, t: float, item: str, response: str, text: str, status: str = "completed", reason: Optional[str] = None) -> None:
    s.server(t, "response.audio.done", response_id=response, item_id=item, output_index=0, content_index=0)
    s.server(t, "response.audio_transcript.done", response_id=response, item_id=item, output_index=0, content_index=0, transcript=text)
    item_status = "completed" if status == "completed" else "incomplete"
    s.server(t, "response.output_item.done", response_id=response, output_index=0,
             item={"id": item, "type": "message", "role": "assistant", "status": item_status,
                   "content": [{"type": "audio", "transcript": text}]})
    details = {"type": status, "reason": reason} if reason else None
    s.server(t, "response.done", response={"id": response, "status": status, "status_details": details,
                                          "output": [], "usage": {"total_tokens": 10}})


def conversation(s: ScriptedSession) -> None:
    """A session with two spoken turns (the second answer interrupted by a barge-in), played on an
    output that reports playback, a typed question and a tool call round. Does not end the session."""
    s.start()
    s.server(0.05, "session.created", session={**SESSION, "id": "sess_TEST1"})
    s.client(0.06, {"type": "session.update", "session": {"instructions": "Be brief."}})
    s.server(0.20, "session.updated", session=SESSION)
    for i in range(3):
        s.client(0.3 + i * 0.02, {"type": "input_audio_buffer.append", "audio": audio_b64(960, seed=7)})
    # turn 1: the user's transcript completes while the answer streams
    s.server(1.00, "input_audio_buffer.speech_started", audio_start_ms=900, item_id="item_u1")
    s.server(2.50, "input_audio_buffer.speech_stopped", audio_end_ms=2400, item_id="item_u1")
    s.server(2.51, "input_audio_buffer.committed", item_id="item_u1", previous_item_id=None)
    s.server(2.52, "conversation.item.created", item={"id": "item_u1", "type": "message", "role": "user", "status": "completed",
                                                     "content": [{"type": "input_audio", "transcript": None}]})
    answer(s, 2.60, "item_a1", "resp_1", ["Hello", "there,", "how", "can", "I", "help?"])  # until 2.78
    s.server(2.80, "conversation.item.input_audio_transcription.completed", item_id="item_u1", content_index=0,
             transcript="Hi, who are you?")
    s.playback(2.81, "playback.started", "item_a1", 0, 200, response_id="resp_1")
    finish_answer(s, 2.82, "item_a1", "resp_1", "Hello there, how can I help?")
    s.playback(4.00, "playback.finished", "item_a1", 1200, 1200, response_id="resp_1")
    # turn 2: a barge-in cuts the answer after half of it was heard
    s.server(5.00, "input_audio_buffer.speech_started", audio_start_ms=4900, item_id="item_u2")
    s.server(5.80, "input_audio_buffer.speech_stopped", audio_end_ms=5700, item_id="item_u2")
    s.server(5.81, "input_audio_buffer.committed", item_id="item_u2", previous_item_id="item_a1")
    s.server(5.82, "conversation.item.input_audio_transcription.completed", item_id="item_u2", content_index=0,
             transcript="Tell me about the weather tomorrow.")
    words = ["Tomorrow", "will", "be", "sunny", "in", "the", "morning", "and", "rainy", "later."]
    answer(s, 5.90, "item_a2", "resp_2", words)  # until 6.20
    s.playback(6.21, "playback.started", "item_a2", 0, 200, response_id="resp_2")
    finish_answer(s, 6.22, "item_a2", "resp_2", " ".join(words))
    s.server(7.00, "input_audio_buffer.speech_started", audio_start_ms=6900, item_id="item_u3")
    s.playback(7.01, "playback.interrupted", "item_a2", 1000, 2000, response_id="resp_2")
    s.client(7.02, {"type": "conversation.item.truncate", "item_id": "item_a2", "content_index": 0, "audio_end_ms": 1000})
    s.server(7.05, "conversation.item.truncated", item_id="item_a2", content_index=0, audio_end_ms=1000)
    s.server(7.60, "input_audio_buffer.speech_stopped", audio_end_ms=7500, item_id="item_u3")
    s.server(7.61, "input_audio_buffer.committed", item_id="item_u3", previous_item_id="item_a2")
    s.server(7.62, "conversation.item.input_audio_transcription.completed", item_id="item_u3", content_index=0,
             transcript="Stop, thanks.")
    # a typed question answered with a tool call, then a text answer
    s.client(8.00, {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                                 "content": [{"type": "input_text", "text": "Weather in London?"}]}})
    s.server(8.05, "conversation.item.created", item={"id": "item_u4", "type": "message", "role": "user", "status": "completed",
                                                     "content": [{"type": "input_text", "text": "Weather in London?"}]})
    s.server(8.10, "response.created", response={"id": "resp_3", "status": "in_progress", "output": []})
    s.server(8.11, "response.output_item.added", response_id="resp_3", output_index=0,
             item={"id": "item_f1", "type": "function_call", "name": "get_weather", "call_id": "call_1", "arguments": ""})
    s.server(8.20, "response.function_call_arguments.done", response_id="resp_3", item_id="item_f1", output_index=0,
             call_id="call_1", name="get_weather", arguments='{\n "city": "London"\n}')
    s.server(8.21, "response.done", response={"id": "resp_3", "status": "completed", "output": []})
    s.server(8.30, "conversation.item.created", item={"id": "item_o1", "type": "function_call_output", "call_id": "call_1",
                                                     "output": "Foggy, 12 degrees."})
    s.server(8.40, "response.created", response={"id": "resp_4", "status": "in_progress", "output": []})
    s.server(8.41, "response.output_item.added", response_id="resp_4", output_index=0,
             item={"id": "item_a4", "type": "message", "role": "assistant", "status": "in_progress", "content": []})
    s.server(8.50, "response.text.delta", response_id="resp_4", item_id="item_a4", output_index=0, content_index=0, delta="Foggy")
    s.server(8.51, "response.text.delta", response_id="resp_4", item_id="item_a4", output_index=0, content_index=0, delta=" and 12.")
    s.server(8.52, "response.text.done", response_id="resp_4", item_id="item_a4", output_index=0, content_index=0, text="Foggy and 12.")
    s.server(8.53, "response.done", response={"id": "resp_4", "status": "completed", "output": []})


def audio_profile(**sections: Any) -> FakeProfile:
    """A profile whose audio output reports playback milestones."""
    return FakeProfile(sections={"audio": {"output": {"backend": "wav", "path": "out.wav"}}, **sections})
