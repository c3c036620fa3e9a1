"""Built-in plugin "transcript": what was said, for people (``transcript.txt``) and programs
(``transcript.jsonl``).

``transcript.txt`` starts with a ``#`` header (session id, start time, the configuration in short),
then one line per turn::

    [00:04.5] User: What's the weather in London?
    [00:06.1] Assistant: It's foggy and 12 degrees.
    [00:12.0] Assistant (interrupted at 1.8 s): Tomorrow looks …

In a session with a Foundry agent, answers are labelled ``Agent`` and the header shows the agent,
the agent and thread ids and the instructions the service reports, as the Voice Live agents
quickstart's conversation log does.

``transcript.jsonl`` holds one record per turn: ``role`` (``user``, ``assistant``, ``tool_call``,
``tool_result``), ``text``, ``item_id``, ``response_id``, ``start``, ``end`` (seconds since the
session started), ``interrupted``, ``played_ms``; cut answers add ``generated_text`` and
``generated_ms``, placeholders add ``note``.

The rules:

* **Times** are session time (seconds since the session started, shown as ``[MM:SS.s]``). A user
  turn starts when the service reports speech (``speech_started``), or when a typed item is
  created. An assistant turn starts when its playback started, else when its first audio or text
  arrived.
* **Order**: turns are written in the order they began (their first event), each once it is
  complete and every earlier turn has been written. A user's transcript often completes after the answer has started; it still
  comes first. A user turn waiting for a transcription that never comes is written as
  ``[no transcript]`` when a later user transcript arrives or the session ends.
* **When an answer is complete**: when the session plays answers (the profile has an
  ``audio.output``, or a replayed recording holds ``playback.*`` milestones), when its playback
  finished or was interrupted; otherwise when its response is done. If playback never started for
  an answer by the time the next response begins, it is written then. An answer still being
  generated when the session ends is written with the note ``[unfinished]``.
* **Interruptions** come from ``playback.interrupted`` (the played position is exact), or from a
  response ``cancelled`` (then ``conversation.item.truncated``'s ``audio_end_ms`` is the played
  position, when the service sends it). The text is cut where playback stopped: when the transcript
  deltas were streamed along with the audio, the deltas that arrived before the audio at the
  played position was received are kept; otherwise the text is cut in proportion
  (``played_ms / generated_ms``) at a word boundary, keeping the words whose start was heard. A cut
  text ends with ``…``.

Lines are written as turns complete, line-buffered, and masked for secrets; a killed process keeps
everything written so far.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, TextIO

import voicepipe
from voicepipe.diskwrite import LineFile
from voicepipe.eventshape import finite_or_none as _finite
from voicepipe.eventshape import mapping_or_empty as _mapping
from voicepipe.eventshape import mapping_parts as _parts
from voicepipe.eventshape import text_or_empty as _text
from voicepipe.eventshape import text_or_none as _id
from voicepipe.pipeline import event_fields
from voicepipe.redact import REDACTOR
from voicepipe.sessionclock import at_time, elapsed, event_time, session_clock

TEXT_FILE = "transcript.txt"
JSONL_FILE = "transcript.jsonl"
STASH_KEY = "transcript"
ELLIPSIS = "…"
LABELS = {"user": "User", "assistant": "Assistant", "tool_call": "Tool call", "tool_result": "Tool result"}
AGENT_LABEL = "Agent"  # the assistant's label when the session talks to a Foundry agent
INSTRUCTIONS_SHOWN = 200  # characters of an agent's instructions in the header
#: written turns still known by item id (older ones are forgotten)
MAX_WRITTEN_TURNS = 200
#: turns kept in memory to re-seed a new connection after a drop (the runtime sends fewer)
HISTORY_LIMIT = 1000


@dataclass
class Turn:
    """One turn on its way to the transcript."""

    role: str
    item_id: Optional[str]
    start: float
    response_id: Optional[str] = None
    end: Optional[float] = None
    text: Optional[str] = None
    note: Optional[str] = None
    complete: bool = False
    skip: bool = False  # complete but nothing to say (a false start, an empty item)
    # user turns
    committed: bool = False
    # assistant turns
    text_done: bool = False
    deltas: list = field(default_factory=list)  # (audio bytes received before the delta, delta)
    audio_bytes: int = 0
    first_output: Optional[float] = None
    response_done: bool = False
    response_status: Optional[str] = None
    response_reason: Optional[str] = None
    playback_started: Optional[float] = None
    playback_outcome: Optional[str] = None
    played_ms: Optional[float] = None
    generated_ms: Optional[float] = None
    truncated_ms: Optional[float] = None
    interrupted: bool = False
    generated_text: Optional[str] = None  # the whole answer, when the heard part was cut from it


class Transcript:
    """The transcript files of one session and the turns not yet written."""

    def __init__(self, ctx: Any, text_file: TextIO, jsonl_file: TextIO):
        self.ctx = ctx
        self.text_file = text_file
        self.jsonl_file = jsonl_file
        self.clock = session_clock(ctx)
        self.session_id: Optional[str] = None
        self.config: dict = {}
        self.header_written = False
        self.turns: dict[str, Turn] = {}
        self.pending: list[Turn] = []
        self.responses: dict[str, list[Turn]] = {}
        self.written: collections.deque[Turn] = collections.deque()
        #: what was said and heard, for :func:`voicepipe_history`
        self.history: collections.deque = collections.deque(maxlen=HISTORY_LIMIT)
        #: items the runtime re-created on a new connection: history, not new turns
        self.seeded: set[str] = set()

    # -- server events -----------------------------------------------------------------------------

    def on_event(self, event: Any, t: float) -> None:
        """Take in one server event that arrived at session time ``t`` (its fields: a mapping)."""
        handler = _HANDLERS.get(event.get("type"))
        if handler is not None:
            handler(self, event, t)
            self._advance()

    def session_created(self, event: Any, t: float) -> None:
        self.session_id = _id(_mapping(event.get("session")).get("id")) or self.session_id

    def session_updated(self, event: Any, t: float) -> None:
        self.config = dict(event.get("session") or {})
        self.session_id = _id(self.config.get("id")) or self.session_id
        self._write_header()

    def speech_started(self, event: Any, t: float) -> None:
        self._user(event.get("item_id"), t)

    def speech_stopped(self, event: Any, t: float) -> None:
        self._user(event.get("item_id"), t).end = t

    def committed(self, event: Any, t: float) -> None:
        self._user(event.get("item_id"), t).committed = True

    def buffer_cleared(self, event: Any, t: float) -> None:
        for turn in self.pending:
            if turn.role == "user" and not turn.committed and not turn.complete:
                turn.complete = turn.skip = True

    def item_created(self, event: Any, t: float) -> None:
        item = _mapping(event.get("item"))
        item_id, kind, role = _id(item.get("id")), item.get("type"), item.get("role")
        if item_id in self.seeded:
            return
        if kind == "message" and role == "user":
            turn = self._user(item_id, t)
            turn.committed = True
            if turn.complete:
                return
            content = _parts(item.get("content"))
            typed = [_text(c.get("text")) for c in content if c.get("type") in ("input_text", "text")]
            spoken = [_text(c.get("transcript")) for c in content if c.get("type") == "input_audio"]
            spoken = [words for words in spoken if words]
            if typed or spoken:
                self._finish_user(turn, " ".join(s.strip() for s in (typed or spoken)), t)
            elif any(c.get("type") == "input_audio" for c in content) and not self.config.get("input_audio_transcription"):
                turn.note = "not transcribed: input_audio_transcription is off"
                self._finish_user(turn, None, t)
        elif kind == "message" and role == "assistant" and item_id not in self.turns:
            # not announced by a response: a message the client put in the history
            text = _content_text(_parts(item.get("content")))
            if item.get("status") == "completed" and text:
                turn = self._new(Turn("assistant", item_id, t, end=t, text=text, text_done=True))
                turn.complete = True
        elif kind == "function_call" and item_id not in self.turns:
            turn = self._new(Turn("tool_call", item_id, t))
            if item.get("status") == "completed" and item.get("arguments"):
                self._finish_tool_call(turn, item.get("name"), item.get("arguments"), t)
        elif kind == "function_call_output":
            turn = self._new(Turn("tool_result", item_id, t, end=t))
            turn.text = _one_line(str(item.get("output", "")))
            turn.complete = True

    def transcription_completed(self, event: Any, t: float) -> None:
        turn = self._user(event.get("item_id"), t)
        if turn.complete:
            return
        self._finish_user(turn, (event.get("transcript") or "").strip(), t)
        # transcriptions arrive in order: earlier user turns still waiting will not get one
        for earlier in self.pending:
            if earlier is turn:
                break
            if earlier.role == "user" and not earlier.complete:
                if earlier.committed:
                    earlier.note = "no transcript"
                    self._finish_user(earlier, None, t)
                else:
                    earlier.complete = earlier.skip = True

    def transcription_failed(self, event: Any, t: float) -> None:
        turn = self._user(event.get("item_id"), t)
        if not turn.complete:
            error = _mapping(event.get("error"))
            turn.note = f"transcription failed: {error.get('message') or error.get('code') or 'no reason given'}"
            self._finish_user(turn, None, t)

    def response_created(self, event: Any, t: float) -> None:
        response_id = (event.get("response") or {}).get("id")
        # an earlier answer whose playback never started will not report any: write it now
        for turn in self.pending:
            if turn.role == "assistant" and not turn.complete and turn.response_done and turn.response_id != response_id:
                if turn.playback_started is None:
                    self._finish_assistant(turn, t)

    def output_item_added(self, event: Any, t: float) -> None:
        item = _mapping(event.get("item"))
        item_id, response_id = _id(item.get("id")), event.get("response_id")
        if item.get("type") == "message" and item.get("role", "assistant") == "assistant":
            turn = self.turns.get(item_id) or self._new(Turn("assistant", item_id, t))
        elif item.get("type") == "function_call":
            turn = self.turns.get(item_id) or self._new(Turn("tool_call", item_id, t))
        else:
            return
        turn.response_id = response_id
        self.responses.setdefault(response_id, []).append(turn)

    def audio_delta(self, event: Any, t: float) -> None:
        turn = self._assistant(event, t)
        if turn is not None:
            turn.audio_bytes += _b64_length(event.get("delta"))
            if turn.first_output is None:
                turn.first_output = t

    def text_delta(self, event: Any, t: float) -> None:
        turn = self._assistant(event, t)
        if turn is not None and not turn.text_done and not turn.complete:
            turn.deltas.append((turn.audio_bytes, _text(event.get("delta"))))
            if turn.first_output is None:
                turn.first_output = t

    def audio_transcript_done(self, event: Any, t: float) -> None:
        self._text_done(event, event.get("transcript"), t)

    def text_done(self, event: Any, t: float) -> None:
        self._text_done(event, event.get("text"), t)

    def output_item_done(self, event: Any, t: float) -> None:
        item = _mapping(event.get("item"))
        turn = self.turns.get(_id(item.get("id")))
        if turn is None or turn.complete:
            return
        if turn.role == "assistant":
            if not turn.text_done:
                turn.text = _content_text(_parts(item.get("content"))) or "".join(d for _, d in turn.deltas)
                turn.text_done = True
            self._settle(turn, t)
        elif turn.role == "tool_call":
            self._finish_tool_call(turn, item.get("name"), item.get("arguments"), t)

    def arguments_done(self, event: Any, t: float) -> None:
        turn = self.turns.get(event.get("item_id"))
        if turn is not None and turn.role == "tool_call" and not turn.complete:
            self._finish_tool_call(turn, event.get("name"), event.get("arguments"), t)

    def response_done(self, event: Any, t: float) -> None:
        response = event.get("response") or {}
        status = response.get("status")
        details = response.get("status_details") or {}
        for turn in self.responses.get(_id(response.get("id")), []):
            turn.response_done = True
            turn.response_status = status
            turn.response_reason = details.get("reason") if isinstance(details, Mapping) else None
            if turn.role == "assistant" and not turn.complete:
                if turn.end is None:
                    turn.end = t
                self._settle(turn, t)
            elif turn.role == "tool_call" and not turn.complete:
                self._finish_tool_call(turn, None, None, t)

    def item_truncated(self, event: Any, t: float) -> None:
        turn = self.turns.get(event.get("item_id"))
        if turn is not None and turn.role == "assistant":
            turn.truncated_ms = _finite(event.get("audio_end_ms"))
            if not turn.complete:
                self._settle(turn, t)

    # -- playback milestones -------------------------------------------------------------------------

    def on_playback(self, event: Mapping[str, Any]) -> None:
        turn = self.turns.get(event.get("item_id"))
        if turn is None or turn.role != "assistant" or turn.complete:
            return
        kind = event.get("type")
        at = at_time(self.ctx, event.get("at"))
        if kind == "playback.started":
            turn.playback_started = at
        elif kind in ("playback.finished", "playback.interrupted"):
            turn.playback_outcome = kind.split(".", 1)[1]
            turn.played_ms = event.get("played_ms")
            turn.generated_ms = event.get("generated_ms")
            turn.interrupted = kind == "playback.interrupted"
            if at is not None:
                turn.end = at
            self._settle(turn, at)
        self._advance()

    # -- completing turns ------------------------------------------------------------------------------

    def _settle(self, turn: Turn, t: Optional[float]) -> None:
        """Complete an assistant turn if what it said and what was heard are both known."""
        if turn.complete or not (turn.text_done or turn.response_done):
            return
        if turn.playback_outcome is not None:
            self._finish_assistant(turn, t)
        elif turn.response_done:
            if turn.audio_bytes == 0:
                self._finish_assistant(turn, t)
            elif turn.playback_started is None and not self.clock.playback_expected:
                waits_for_truncation = (
                    turn.response_status == "cancelled"
                    and turn.truncated_ms is None
                    and bool(_mapping(self.config.get("turn_detection")).get("auto_truncate"))
                )
                if not waits_for_truncation:
                    self._finish_assistant(turn, t)

    def _finish_assistant(self, turn: Turn, t: Optional[float]) -> None:
        if not turn.text_done:
            turn.text = "".join(d for _, d in turn.deltas)
        text = (turn.text or "").strip()
        if turn.response_status == "cancelled" or turn.playback_outcome == "interrupted":
            turn.interrupted = True
        if turn.interrupted and turn.played_ms is None and turn.truncated_ms is not None:
            turn.played_ms = turn.truncated_ms
        if turn.interrupted and turn.played_ms is not None and text:
            generated_ms = turn.generated_ms or self._audio_ms(turn.audio_bytes)
            heard = cut_text(text, turn.deltas, turn.audio_bytes, turn.played_ms, generated_ms)
            if heard != text:
                turn.generated_ms = generated_ms
                turn.generated_text = text
                text = heard
        turn.text = text
        if turn.response_status in ("failed", "incomplete"):
            turn.note = f"response {turn.response_status}" + (f": {turn.response_reason}" if turn.response_reason else "")
        if not text and turn.audio_bytes == 0 and not turn.note:
            turn.skip = True
        if turn.playback_started is not None:
            turn.start = turn.playback_started
        elif turn.first_output is not None:
            turn.start = turn.first_output
        if turn.end is None:
            turn.end = t
        turn.complete = True

    def _finish_user(self, turn: Turn, text: Optional[str], t: float) -> None:
        turn.text = text
        if turn.end is None:
            turn.end = t
        turn.complete = True

    def _finish_tool_call(self, turn: Turn, name: Optional[str], arguments: Optional[str], t: float) -> None:
        if name is not None or turn.text is None:
            turn.text = f"{name or '?'} {_compact_json(arguments)}".strip()
        turn.end = t
        turn.complete = True

    def _text_done(self, event: Any, text: Optional[str], t: float) -> None:
        turn = self._assistant(event, t)
        if turn is None or turn.complete or turn.text_done:
            return
        turn.text = text if isinstance(text, str) else "".join(d for _, d in turn.deltas)
        turn.text_done = True
        self._settle(turn, t)

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _new(self, turn: Turn) -> Turn:
        if turn.item_id is not None:
            self.turns[turn.item_id] = turn
        self.pending.append(turn)
        return turn

    def _user(self, item_id: Optional[str], t: float) -> Turn:
        turn = self.turns.get(item_id) if item_id is not None else None
        if turn is None:
            turn = self._new(Turn("user", item_id, t))
        return turn

    def _assistant(self, event: Any, t: float) -> Optional[Turn]:
        item_id = event.get("item_id")
        turn = self.turns.get(item_id)
        if turn is None:
            if item_id is None:
                return None
            # an answer whose output_item.added was not seen (a recording that starts mid-answer)
            turn = self._new(Turn("assistant", item_id, t, response_id=event.get("response_id")))
            self.responses.setdefault(event.get("response_id"), []).append(turn)
        return turn if turn.role == "assistant" else None

    def _audio_ms(self, audio_bytes: int) -> Optional[float]:
        if not audio_bytes:
            return None
        return audio_bytes / _bytes_per_ms(self.config)

    def _advance(self) -> None:
        """Write the completed turns at the head of the queue."""
        while self.pending and self.pending[0].complete:
            turn = self.pending.pop(0)
            if not turn.skip:
                self._write_turn(turn)
            self._retire(turn)

    def _retire(self, turn: Turn) -> None:
        """A written turn lets go of its deltas; only the latest :data:`MAX_WRITTEN_TURNS` stay
        known (so that late events for them are recognised), so a long session does not grow."""
        turn.deltas = []
        self.written.append(turn)
        while len(self.written) > MAX_WRITTEN_TURNS:
            old = self.written.popleft()
            if old.item_id is not None and self.turns.get(old.item_id) is old:
                del self.turns[old.item_id]
            siblings = self.responses.get(old.response_id)
            if siblings is not None and all(sibling.complete for sibling in siblings):
                del self.responses[old.response_id]

    def flush(self) -> None:
        """Complete and write every turn still waiting (the session is over)."""
        for turn in self.pending:
            if turn.complete:
                continue
            if turn.role == "assistant":
                self._finish_assistant(turn, turn.end)
                if not turn.response_done and turn.playback_outcome is None and not turn.skip:
                    turn.note = turn.note or "unfinished"
            elif turn.role == "user":
                if turn.committed or turn.text:
                    turn.note = turn.note or "no transcript"
                    self._finish_user(turn, turn.text, turn.end if turn.end is not None else turn.start)
                else:
                    turn.complete = turn.skip = True
            else:
                turn.complete = True
        self._advance()
        if not self.header_written:
            self._write_header()

    # -- writing ---------------------------------------------------------------------------------------------

    def _write_header(self) -> None:
        if self.header_written:
            return
        self.header_written = True
        lines = ["# voicepipe transcript"]
        lines += [f"# {key}: {value}" for key, value in describe_session(self.ctx, self.config, self.session_id)]
        self._write_text("\n".join(lines) + "\n\n")

    def _write_turn(self, turn: Turn) -> None:
        if not self.header_written:
            self._write_header()
        label = LABELS.get(turn.role, turn.role)
        if turn.role == "assistant" and is_agent_session(self.ctx, self.config):
            label = AGENT_LABEL
        if turn.role == "assistant" and turn.interrupted:
            label += f" (interrupted at {turn.played_ms / 1000:.1f} s)" if turn.played_ms is not None else " (interrupted)"
        text = turn.text or ""
        if turn.generated_text is not None:
            text = f"{text} {ELLIPSIS}" if text else ELLIPSIS
        if turn.note:
            text = f"{text} [{turn.note}]" if text else f"[{turn.note}]"
        text = text.replace("\r\n", "\n").replace("\n", "\n    ")
        self._write_text(f"[{format_time(turn.start)}] {label}: {text}".rstrip() + "\n")
        record: dict[str, Any] = {
            "role": turn.role,
            "text": turn.text or "",
            "item_id": turn.item_id,
            "response_id": turn.response_id,
            "start": _seconds(turn.start),
            "end": _seconds(turn.end),
            "interrupted": turn.interrupted,
            "played_ms": _ms(turn.played_ms),
        }
        if turn.generated_text is not None:
            record["generated_text"] = turn.generated_text
            record["generated_ms"] = _ms(turn.generated_ms)
        if turn.note:
            record["note"] = turn.note
        if turn.role in ("user", "assistant") and turn.text:
            self.history.append({"role": turn.role, "text": turn.text})
        self.jsonl_file.write(REDACTOR.redact(json.dumps(record, ensure_ascii=False)) + "\n")

    def _write_text(self, text: str) -> None:
        self.text_file.write(REDACTOR.redact(text))

    def connection_lost(self, code: Optional[int], reconnecting: bool, t: float) -> None:
        """Write out what was said before the drop (an answer in flight stays unfinished)."""
        self.flush()
        why = f"code {code}" if code is not None else "network"
        self._write_text(f"[{format_time(t)}] -- connection lost ({why}){', reconnecting' if reconnecting else ''} --\n")

    def reconnected(self, attempts: int, gap_s: float, seeded: list, t: float) -> None:
        self.seeded.update(seeded)
        self._write_text(
            f"[{format_time(t)}] -- reconnected after {gap_s:.1f} s ({attempts} attempt{'s' if attempts != 1 else ''}); "
            f"{len(seeded)} earlier turn{'s' if len(seeded) != 1 else ''} re-sent --\n"
        )

    def close(self) -> None:
        try:
            message = getattr(self.ctx, "end_message", None)
            if message and not self.text_file.closed:
                self._write_text(f"[{format_time(elapsed(self.ctx))}] -- session ended: {message} --\n")
        finally:
            for file in (self.text_file, self.jsonl_file):
                if not file.closed:
                    file.close()


_HANDLERS = {
    "session.created": Transcript.session_created,
    "session.updated": Transcript.session_updated,
    "input_audio_buffer.speech_started": Transcript.speech_started,
    "input_audio_buffer.speech_stopped": Transcript.speech_stopped,
    "input_audio_buffer.committed": Transcript.committed,
    "input_audio_buffer.cleared": Transcript.buffer_cleared,
    "conversation.item.created": Transcript.item_created,
    "conversation.item.input_audio_transcription.completed": Transcript.transcription_completed,
    "conversation.item.input_audio_transcription.failed": Transcript.transcription_failed,
    "conversation.item.truncated": Transcript.item_truncated,
    "response.created": Transcript.response_created,
    "response.output_item.added": Transcript.output_item_added,
    "response.audio.delta": Transcript.audio_delta,
    "response.audio_transcript.delta": Transcript.text_delta,
    "response.text.delta": Transcript.text_delta,
    "response.audio_transcript.done": Transcript.audio_transcript_done,
    "response.text.done": Transcript.text_done,
    # the same events under the names of newer API versions
    "response.output_audio.delta": Transcript.audio_delta,
    "response.output_audio_transcript.delta": Transcript.text_delta,
    "response.output_text.delta": Transcript.text_delta,
    "response.output_audio_transcript.done": Transcript.audio_transcript_done,
    "response.output_text.done": Transcript.text_done,
    "response.output_item.done": Transcript.output_item_done,
    "response.function_call_arguments.done": Transcript.arguments_done,
    "response.done": Transcript.response_done,
}


# -- pure helpers ------------------------------------------------------------------------------------------


def cut_text(text: str, deltas: list, audio_bytes: int, played_ms: float, generated_ms: Optional[float]) -> str:
    """The part of ``text`` heard when playback stopped at ``played_ms`` of ``generated_ms``.

    ``deltas`` are ``(audio bytes received before the delta, delta text)`` pairs. When they were
    streamed along with the audio (the last one arrived after at least half of the audio) and add up
    to ``text``, the deltas that arrived before the played position's audio are kept. Otherwise the
    words whose first character lies before ``played_ms / generated_ms`` of the text are kept.
    """
    if not generated_ms or generated_ms <= 0:
        return text
    fraction = max(0.0, min(1.0, float(played_ms) / float(generated_ms)))
    if fraction >= 1.0:
        return text
    streamed = "".join(d for _, d in deltas)
    if deltas and audio_bytes and streamed.strip() == text and deltas[-1][0] >= audio_bytes / 2:
        limit = fraction * audio_bytes
        return "".join(d for position, d in deltas if position < limit).strip()
    limit = fraction * len(text)
    kept_end = 0
    index = 0
    for word in text.split():
        start = text.index(word, index)
        if start >= limit:
            break
        kept_end = index = start + len(word)
    return text[:kept_end].strip()


def describe_session(ctx: Any, config: Mapping[str, Any], session_id: Optional[str]) -> list[tuple[str, str]]:
    """The configuration in short, as ``(key, value)`` pairs for the transcript header."""
    connection = _attr_dict(ctx.profile, "connection")
    clock = session_clock(ctx)
    rows = [("session", session_id or ctx.session_id or "(no session id)")]
    rows.append(("started", clock.started_at.isoformat(timespec="seconds")))
    agent = connection.get("agent")
    if isinstance(agent, Mapping) and agent.get("name"):
        details = [f"{key} {agent[key]}" for key in ("project", "version") if agent.get(key)]
        rows.append(("agent", f"{agent['name']}" + (f" ({', '.join(details)})" if details else "")))
    served = config.get("agent")
    if isinstance(served, Mapping):  # what the service says about the agent it connected
        if served.get("agent_id"):
            rows.append(("agent id", str(served["agent_id"])))
        if served.get("thread_id"):
            rows.append(("thread", str(served["thread_id"])))
    model = config.get("model") or connection.get("model")
    if model:
        rows.append(("model", str(model)))
    if is_agent_session(ctx, config) and isinstance(config.get("instructions"), str):
        rows.append(("instructions", _shortened(config["instructions"], INSTRUCTIONS_SHOWN)))
    voice = config.get("voice")
    if isinstance(voice, Mapping):
        rows.append(("voice", f"{voice.get('name')} ({voice.get('type')})" if voice.get("type") else str(voice.get("name"))))
    elif voice:
        rows.append(("voice", str(voice)))
    if config:
        turn_detection = config.get("turn_detection")
        rows.append(("turn detection", _type_of(turn_detection, "none (manual turns)")))
        rows.append(("noise reduction", _type_of(config.get("input_audio_noise_reduction"), "off")))
        rows.append(("echo cancellation", _type_of(config.get("input_audio_echo_cancellation"), "off")))
        transcription = config.get("input_audio_transcription")
        rows.append(("input transcription", str(transcription.get("model")) if isinstance(transcription, Mapping) else "off"))
        modalities = config.get("modalities")
        if modalities and isinstance(modalities, list):
            rows.append(("modalities", ", ".join(str(m) for m in modalities)))
    else:
        rows.append(("configuration", "unknown (no session.updated received)"))
    return rows


def is_agent_session(ctx: Any, config: Mapping[str, Any]) -> bool:
    """Whether the session talks to a Foundry agent rather than a model."""
    return bool(_attr_dict(ctx.profile, "connection").get("agent")) or isinstance(config.get("agent"), Mapping)


def _shortened(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def format_time(seconds: Optional[float]) -> str:
    """``MM:SS.s`` (``H:MM:SS.s`` past an hour) of a session time."""
    tenths = int(round(max(0.0, seconds or 0.0) * 10))
    minutes, tenths_in_minute = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    secs = f"{tenths_in_minute // 10:02d}.{tenths_in_minute % 10}"
    return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes:02d}:{secs}"


def _type_of(value: Any, default: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get("type") or default)
    return default if not value else str(value)


def _content_text(content: list) -> str:
    parts = []
    for part in content:
        if isinstance(part, Mapping):
            value = _text(part.get("transcript")) or _text(part.get("text"))
            if value:
                parts.append(value)
    return " ".join(p.strip() for p in parts)


def _b64_length(data: Any) -> int:
    """Decoded length of a base64 string without decoding it."""
    if isinstance(data, str):
        n = len(data)
        return n * 3 // 4 - (data.endswith("=") + data.endswith("=="))
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    return 0


def _bytes_per_ms(config: Mapping[str, Any]) -> float:
    fmt = str(config.get("output_audio_format") or "pcm16")
    if fmt.startswith("g711"):
        return 8.0
    rate = _finite(config.get("output_audio_sampling_rate"))
    return (rate if rate and rate > 0 else 24000) * 2 / 1000


def _compact_json(text: Optional[str]) -> str:
    if not text or not isinstance(text, str):
        return ""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _attr_dict(obj: Any, name: str) -> Mapping[str, Any]:
    value = getattr(obj, name, None)
    return value if isinstance(value, Mapping) else {}


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 1)


# -- hooks -----------------------------------------------------------------------------------------------------


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    REDACTOR.refresh_env()  # secrets set since start-up count too
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    text_file = LineFile(ctx.run_dir / TEXT_FILE)  # whole lines, even on a full disk
    jsonl_file = LineFile(ctx.run_dir / JSONL_FILE)
    ctx.stash[STASH_KEY] = Transcript(ctx, text_file, jsonl_file)


@voicepipe.hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    transcript = ctx.stash.get(STASH_KEY)
    if transcript is not None:
        fields = event_fields(event)
        if fields.get("type") in _HANDLERS:
            # event_time() of the event itself: the time is kept per event object, the same for every plugin
            transcript.on_event(fields, event_time(ctx, event))


@voicepipe.hookimpl
def voicepipe_playback(event: Mapping[str, Any], ctx: Any) -> None:
    transcript = ctx.stash.get(STASH_KEY)
    if transcript is not None:
        transcript.on_playback(event)


@voicepipe.hookimpl
def voicepipe_disconnected(ctx: Any, code: Optional[int], reconnecting: bool) -> None:
    transcript = ctx.stash.get(STASH_KEY)
    if transcript is not None:
        transcript.connection_lost(code, reconnecting, elapsed(ctx))


@voicepipe.hookimpl
def voicepipe_reconnected(ctx: Any, attempts: int, gap_s: float, seeded_item_ids: list) -> None:
    transcript = ctx.stash.get(STASH_KEY)
    if transcript is not None:
        transcript.reconnected(attempts, gap_s, seeded_item_ids, elapsed(ctx))


@voicepipe.hookimpl
def voicepipe_history(ctx: Any) -> Optional[list]:
    """The transcript so far: what the user said and what they heard of the answers."""
    transcript = ctx.stash.get(STASH_KEY)
    return list(transcript.history) if transcript is not None else None


@voicepipe.hookimpl
def voicepipe_session_end(ctx: Any, reason: str) -> None:
    transcript = ctx.stash.pop(STASH_KEY, None)
    if transcript is not None:
        try:
            transcript.flush()
        finally:
            transcript.close()
