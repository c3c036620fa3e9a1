"""Built-in plugin "console": what a person at the terminal wants to see, on stdout.

* the session's status (started, ready, ended and why) and errors, one line each;
* the turn state: ``listening`` (the user may speak), ``you are speaking`` (the service heard
  speech start), ``thinking`` (the user stopped, no answer heard yet), ``speaking`` (the answer is
  playing), ``interrupted`` (the user spoke over the answer), with an input level meter when the
  input is a microphone;
* the words: ``You: …`` and ``Assistant: …`` once each turn's text is final, and the words as they
  arrive. Without input transcription the user's turns show as ``You: (spoke 1.2 s)``, and a line
  says once which key turns transcription on.

On a terminal the state and the words in progress share one status line at the bottom, rewritten in
place (cut to the terminal's width), and final lines scroll above it; log lines printed to the same
terminal go above it too (:mod:`voicepipe.terminal`). When stdout is not a terminal
(CI, a pipe, a file) only complete lines are printed, state changes as ``[listening]``-style lines,
and no control characters. ``console: {quiet: true}`` (``voicepipe run --quiet``) prints the final
words of each turn and nothing else. Everything printed is masked for secrets.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any, Mapping, Optional, TextIO

import voicepipe
from voicepipe import terminal
from voicepipe.eventshape import mapping_or_empty as _mapping
from voicepipe.eventshape import mapping_parts as _parts
from voicepipe.eventshape import text_or_empty as _text
from voicepipe.eventshape import text_or_none as _id
from voicepipe.lazyimport import lazy_module
from voicepipe.pipeline import event_fields
from voicepipe.redact import REDACTOR
from voicepipe.sessionclock import session_clock

shutil = lazy_module("shutil", globals())  # a terminal's width, in a session only

STASH_KEY = "console"
TOOL_OUTPUT_SHOWN = 200  # characters of a tool output shown on its line
MAX_PENDING_TOOL_CALLS = 100  # tool names remembered until their output (a bound, not a limit in practice)
LISTENING, USER_SPEAKING, THINKING, SPEAKING, INTERRUPTED = (
    "listening", "you are speaking", "thinking", "speaking", "interrupted"
)
#: how often the input level meter is redrawn
LEVEL_EVERY_S = 0.1
LEVEL_BARS = " ▁▂▃▄▅▆▇█"
MICROPHONES = {"pyaudio", "sounddevice"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_CLEAR_LINE = "\r\x1b[K"
_WORD_DELTAS = {
    "response.audio_transcript.delta",
    "response.text.delta",
    "response.output_audio_transcript.delta",
    "response.output_text.delta",
}


class Console:
    """The terminal output of one session."""

    def __init__(self, stream: TextIO, *, quiet: bool, tty: bool, playback_clock: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.tty = tty
        self.state: Optional[str] = None
        self.user_words = ""  # the user's words in progress
        self.assistant_words = ""  # the answer's words in progress
        self.status_shown = False
        self.ready = False
        self.printed_answers: set = set()
        self.unplayed: set = set()  # items with audio whose playback has not ended
        self.played: set = set()  # items whose playback ended
        self.playback_clock = playback_clock  # playback milestones tell when answers are heard
        self.seeded: set = set()  # items re-sent after a reconnect: already shown
        self.assistant_label = "Assistant"  # "Agent" when the session talks to a Foundry agent
        self.tool_names: dict = {}  # call id -> tool name, until its output is shown
        self.level: Optional[str] = None  # the input level meter, when the input is a microphone
        self._level_at = 0.0
        self.transcribed = True  # the session transcribes the user's speech
        self.input_kind = "null"  # the input backend's name
        self.ready_hint = ""  # what the "Ready." line adds
        self.speech_started_ms: Optional[float] = None

    # -- output ------------------------------------------------------------------------------------

    def line(self, text: str, *, final_words: bool = False) -> None:
        """Print one complete line (above the status line on a terminal)."""
        if self.quiet and not final_words:
            return
        text = REDACTOR.redact(_CONTROL.sub(" ", text)).rstrip()
        with terminal.lock:
            self.hide()
            self.stream.write(text + "\n")
            self.show()

    # -- the status line (voicepipe.terminal.StatusLine) -------------------------------------------

    def hide(self) -> None:
        if self.status_shown:
            self.stream.write(_CLEAR_LINE)
            self.stream.flush()
            self.status_shown = False

    def show(self) -> None:
        self._show_status()
        self.stream.flush()

    def on_input_level(self, chunk: bytes) -> None:
        """A microphone chunk (PCM16): redraw the level meter, at most every LEVEL_EVERY_S."""
        now = time.monotonic()
        if now - self._level_at < LEVEL_EVERY_S:
            return
        self._level_at = now
        self.level = level_meter(chunk)
        self.refresh()

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if self.quiet:
            return
        if self.tty:
            self._show_status()
            self.stream.flush()
        else:
            self.line(f"[{state}]")

    def refresh(self) -> None:
        """Redraw the status line (a terminal only)."""
        if self.tty and not self.quiet:
            self._show_status()
            self.stream.flush()

    def _show_status(self) -> None:
        if not self.tty or self.quiet or self.state is None:
            return
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        status = f"[{self.state}]" + (f" mic {self.level}" if self.level is not None else "")
        partial = self.assistant_words if self.state == SPEAKING else self.user_words
        words = REDACTOR.redact(_CONTROL.sub(" ", partial)).strip()
        if words:
            room = width - len(status) - 1
            if len(words) > room:
                words = "…" + words[-(room - 1):]
            status = f"{status} {words}"
        with terminal.lock:
            self.stream.write(_CLEAR_LINE + status[:width])
            self.status_shown = True

    def disconnected(self, code: Optional[int], reconnecting: bool) -> None:
        why = f"code {code}" if code is not None else "network"
        self.line(f"Connection lost ({why})" + ("; reconnecting..." if reconnecting else "."))

    def reconnected(self, gap_s: float, seeded: list) -> None:
        self.seeded.update(seeded)
        self.line(f"Reconnected after {gap_s:.1f} s; the conversation carries on.")

    def end(self, reason: str) -> None:
        """Take the status line away and say how the session ended."""
        terminal.release(self)
        self.hide()
        self.state = None
        self.line(f"Session ended ({reason}).")

    # -- events -----------------------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        event = event_fields(event)
        kind = event.get("type")
        # the deltas first: most events are deltas
        if kind in ("response.audio.delta", "response.output_audio.delta"):
            item_id = event.get("item_id")
            if self.playback_clock:
                if item_id not in self.played:
                    self.unplayed.add(item_id)
            else:
                self.set_state(SPEAKING)
        elif kind in _WORD_DELTAS:
            self.assistant_words += _text(event.get("delta"))
            if kind in ("response.text.delta", "response.output_text.delta") and not self.playback_clock:
                self.set_state(SPEAKING)
            if self.state == SPEAKING:
                self.refresh()
        elif kind == "session.created":
            session = event.get("session") or {}
            agent = session.get("agent")
            if isinstance(agent, Mapping) and agent.get("name"):
                self.assistant_label = "Agent"
                self.line(f"Session {session.get('id', '?')} started (agent {agent['name']})")
            else:
                model = session.get("model")
                self.line(f"Session {session.get('id', '?')} started" + (f" (model {model})" if model else ""))
        elif kind == "session.updated":
            if not self.ready:
                self.ready = True
                session = event.get("session") or {}
                self.transcribed = bool(isinstance(session, Mapping) and session.get("input_audio_transcription"))
                self.line(f"Ready. {self.ready_hint}".rstrip())
                if not self.transcribed and self.input_kind in MICROPHONES | {"wav"}:
                    self.line("(your words are not transcribed: set session.input_audio_transcription: "
                              "{model: whisper-1} in the profile to see them)")
                self.set_state(LISTENING)
        elif kind == "input_audio_buffer.speech_started":
            self.user_words = ""
            self.speech_started_ms = _number(event.get("audio_start_ms"))
            self.set_state(USER_SPEAKING)
        elif kind == "input_audio_buffer.speech_stopped":
            started, stopped = self.speech_started_ms, _number(event.get("audio_end_ms"))
            if not self.transcribed and started is not None and stopped is not None and stopped >= started:
                self.line(f"You: (spoke {(stopped - started) / 1000:.1f} s)", final_words=True)
            self.speech_started_ms = None
            self.set_state(THINKING)
        elif kind == "input_audio_buffer.committed":
            self.set_state(THINKING)
        elif kind == "conversation.item.input_audio_transcription.delta":
            self.user_words += event.get("delta") or ""
            self.refresh()
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.user_words = ""
            self.line(f"You: {(event.get('transcript') or '').strip()}", final_words=True)
        elif kind == "conversation.item.input_audio_transcription.failed":
            error = _mapping(event.get("error"))
            self.line(f"error: transcription failed: {error.get('message') or error.get('code') or 'no reason given'}")
        elif kind == "conversation.item.created":
            self._item_created(event.get("item") or {})
        elif kind == "response.created":
            self.assistant_words = ""
            if self.state != SPEAKING:
                self.set_state(THINKING)
        elif kind in ("response.audio_transcript.done", "response.output_audio_transcript.done"):
            self._answer(event.get("item_id"), event.get("transcript"))
        elif kind in ("response.text.done", "response.output_text.done"):
            self._answer(event.get("item_id"), event.get("text"))
        elif kind == "response.output_item.done":
            item = event.get("item") or {}
            if item.get("type") == "message" and item.get("role") == "assistant":
                self._answer(item.get("id"), _content_text(item.get("content")))
        elif kind == "response.function_call_arguments.done":
            if len(self.tool_names) < MAX_PENDING_TOOL_CALLS:
                self.tool_names[_id(event.get("call_id"))] = _text(event.get("name"))
            self.line(f"[tool] {event.get('name')} {_compact_json(event.get('arguments') or '')}")
        elif kind == "response.done":
            self._response_done(event.get("response") or {})
        elif kind == "error":
            error = event.get("error") or {}
            code = f" ({error.get('code')})" if error.get("code") else ""
            self.line(f"error: {error.get('message') or 'the service reported an error'}{code}")
        elif kind == "warning":
            warning = event.get("warning")
            message = warning.get("message") if isinstance(warning, Mapping) else None
            self.line(f"warning: {message or warning or 'the service sent a warning'}")

    def on_playback(self, event: Mapping[str, Any]) -> None:
        self.playback_clock = True
        kind, item_id = event.get("type"), event.get("item_id")
        if kind == "playback.started":
            self.unplayed.add(item_id)
            self.set_state(SPEAKING)
        elif kind == "playback.finished":
            self.unplayed.discard(item_id)
            self.played.add(item_id)
            if not self.unplayed and self.state == SPEAKING:
                self.set_state(LISTENING)
        elif kind == "playback.interrupted":
            self.unplayed.discard(item_id)
            self.played.add(item_id)
            played = event.get("played_ms")
            self.set_state(INTERRUPTED)
            self.line(f"[interrupted at {played / 1000:.1f} s]" if played is not None else "[interrupted]")
            self.set_state(USER_SPEAKING)

    def _item_created(self, item: Mapping[str, Any]) -> None:
        if item.get("type") == "function_call_output" and _id(item.get("id")) not in self.seeded:
            name = self.tool_names.pop(_id(item.get("call_id")), None) or "tool"
            self.line(f"[tool] {name} -> {_shortened(_compact_json(_text(item.get('output'))), TOOL_OUTPUT_SHOWN)}")
            return
        if item.get("type") != "message" or item.get("role") != "user" or _id(item.get("id")) in self.seeded:
            return
        typed = [_text(c.get("text")) for c in _parts(item.get("content")) if c.get("type") == "input_text"]
        typed = [words for words in typed if words]
        if typed:
            self.line(f"You: {' '.join(typed)}", final_words=True)

    def _answer(self, item_id: Any, text: Any) -> None:
        item_id = _id(item_id)
        if item_id in self.printed_answers or not text or not isinstance(text, str):
            return
        self.printed_answers.add(item_id)
        self.assistant_words = ""
        self.line(f"{self.assistant_label}: {text.strip()}", final_words=True)

    def _response_done(self, response: Mapping[str, Any]) -> None:
        status = response.get("status")
        if status == "failed":
            details = response.get("status_details") or {}
            error = details.get("error") if isinstance(details, Mapping) else None
            message = error.get("message") if isinstance(error, Mapping) else error
            self.line(f"error: the response failed: {message or 'no reason given'}")
        elif status == "incomplete":
            details = response.get("status_details") or {}
            reason = details.get("reason") if isinstance(details, Mapping) else None
            self.line(f"warning: the response is incomplete ({reason or 'no reason given'})")
        if not self.unplayed and self.state != LISTENING:
            self.set_state(LISTENING)


def level_meter(chunk: bytes) -> str:
    """Eight cells for the chunk's loudness, from -60 dBFS (empty) to 0 dBFS (full)."""
    import math

    import numpy as np

    samples = np.frombuffer(chunk[: len(chunk) - len(chunk) % 2], dtype="<i2").astype(np.float32)
    rms = float(np.sqrt(np.mean(samples * samples))) / 32768.0 if samples.size else 0.0
    db = 20 * math.log10(rms) if rms > 0 else -120.0
    eighths = round(max(0.0, min(1.0, (db + 60) / 60)) * 64)  # 8 cells of 8 steps each
    cells, rest = divmod(eighths, 8)
    return ("█" * cells + (LEVEL_BARS[rest] if rest else "")).ljust(8)


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _content_text(content: Any) -> str:
    """The words of an item's ``content`` parts (anything that is not a list of parts has none)."""
    words = [_text(part.get("transcript")) or _text(part.get("text")) for part in _parts(content)]
    return " ".join(text.strip() for text in words if text)


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # not JSON text, or nested deeper than the parser goes
        return " ".join(str(text).split())


# -- hooks --------------------------------------------------------------------------------------------


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    REDACTOR.refresh_env()  # secrets set since start-up count too
    settings = ctx.profile.section("console") or {}
    stream = sys.stdout
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    console = ctx.stash[STASH_KEY] = Console(
        stream,
        quiet=bool(settings.get("quiet", False)),
        tty=tty,
        playback_clock=session_clock(ctx).playback_expected,
    )
    if ctx.profile.connection.get("agent"):
        console.assistant_label = "Agent"
    console.input_kind, console.ready_hint = _input_description(ctx.profile, tty)
    if tty and not console.quiet:
        terminal.claim(console)


def _input_description(profile: Any, tty: bool) -> tuple[str, str]:
    """The input backend's name, and what the "Ready." line says about how to talk."""
    section = (profile.section("audio") or {}).get("input")
    backend = section.get("backend") if isinstance(section, Mapping) else section
    kind = str(backend or "null").lower()
    typing = "type a message and Enter to send it as text, " if tty else ""
    if kind in MICROPHONES:
        return kind, f"Speak when you like; {typing}q or Ctrl+C stops."
    if kind == "wav" and isinstance(section, Mapping):
        return kind, f"Sending {str(section.get('file'))} as the user's voice."
    if tty:
        return kind, f"No microphone in this profile: {typing}q or Ctrl+C stops."
    return kind, ""


@voicepipe.hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    console = ctx.stash.get(STASH_KEY)
    if console is not None:
        if not console.ready and console.tty and console.input_kind in MICROPHONES and event.get("type") == "session.updated":
            audio = ctx.stash.get("audio")
            if audio is not None:  # the level meter: the audio plugin hands over each microphone chunk
                audio.level_listener = console.on_input_level
        console.on_event(event)


@voicepipe.hookimpl
def voicepipe_playback(event: Mapping[str, Any], ctx: Any) -> None:
    console = ctx.stash.get(STASH_KEY)
    if console is not None:
        console.on_playback(event)


@voicepipe.hookimpl
def voicepipe_disconnected(ctx: Any, code: Optional[int], reconnecting: bool) -> None:
    console = ctx.stash.get(STASH_KEY)
    if console is not None:
        console.disconnected(code, reconnecting)


@voicepipe.hookimpl
def voicepipe_reconnected(ctx: Any, gap_s: float, seeded_item_ids: list) -> None:
    console = ctx.stash.get(STASH_KEY)
    if console is not None:
        console.reconnected(gap_s, seeded_item_ids)


@voicepipe.hookimpl
def voicepipe_session_end(ctx: Any, reason: str) -> None:
    console = ctx.stash.pop(STASH_KEY, None)
    if console is not None:
        console.end(reason)
