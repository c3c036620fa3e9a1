"""Built-in plugin "recorder": every event of the session to ``events.jsonl``, as it happens.

One JSON object per line::

    {"t": 1.234567, "direction": "server", "event": {...}}

``t`` is seconds since the session started on the monotonic clock (see :mod:`voicepipe.sessionclock`).
``direction`` is ``server`` (server events), ``client`` (client events, as sent), ``local``
(playback milestones) or ``meta`` (``recording.started`` / ``recording.finished``, which say how to
read the rest). Audio payloads (``delta`` of ``response.audio.delta``, ``audio`` of
``input_audio_buffer.append``) are replaced by ``{"bytes": n}`` unless the profile says
``recorder: {audio: true}``: ``n`` is the length of the decoded audio, computed from the text's
length and padding, so recording never decodes audio. (Format 3; formats 1 and 2 also held a
``sha256`` of the audio, of the decoded bytes in 1 and of the base64 text in 2: nothing read it,
and at 50 microphone chunks a second per session it cost more than the rest of their lines.)
NaN and the infinities (which a JSON parser may accept in a server frame, but JSON cannot hold)
are written as ``null``.

Lines are masked for secrets and written as they happen, each with a system call, so a killed
process leaves every event it saw on disk; with one exception: the lines of the microphone's
``input_audio_buffer.append`` events (50 a second with 20 ms chunks, and nothing in them but a
time and a length) wait, while an event loop runs, up to :data:`APPEND_FLUSH_S` and go to disk in
the same system call as the next other line, or alone when that time is up. The file is always
the recording up to some point, and a kill loses at most the appends of that last fraction of a
second; the end of the session (a stop, Ctrl+C, the server closing) writes them as it writes
everything.

A secret the model streams in pieces (a tool call's arguments, a transcript, text) would be in no
single line, so masking lines would miss it. A text delta whose stream so far ends with the
beginning of a known secret value (:meth:`~voicepipe.redact.Redactor.secret_prefix_length`) is held
back, and every line after it waits behind it, until the stream's next deltas tell: a completed
secret is masked across the held deltas (the mask in the delta where it starts, its other pieces
cut from the others), anything else is written unchanged. The stream's ``.done`` event, the end of
its response, a ``meta`` line (connection lost, recording finished) and :data:`MAX_HELD_LINES`
lines waiting release them too. Lines keep their order, times and number, so replay sees the deltas
as they came (its transcript stamps each transcript delta with the audio received before it); only
the lines held back at a kill are lost.

``voicepipe replay`` reads this file back (:mod:`voicepipe.replay`).
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from datetime import datetime
from typing import Any, BinaryIO, Mapping, Optional

import voicepipe
from voicepipe.audio.pcm import base64_length
from voicepipe.diskwrite import append_whole
from voicepipe.lazyimport import lazy_module
from voicepipe.pipeline import event_fields
from voicepipe.redact import REDACTOR
from voicepipe.sessionclock import elapsed, event_time, session_clock

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

FILE_NAME = "events.jsonl"
#: 3: elided audio is ``{"bytes": n}`` (2: and the SHA-256 of its base64 text; 1: of the decoded bytes)
FORMAT_VERSION = 3
#: the longest the line of a microphone append waits to go to disk with others (seconds)
APPEND_FLUSH_S = 0.2
STASH_KEY = "recorder"
#: event type -> the field holding base64 audio
AUDIO_FIELDS = {
    "response.audio.delta": "delta",
    "response.output_audio.delta": "delta",
    "input_audio_buffer.append": "audio",
    "input_audio.turn.append": "audio",
}
_AUDIO_PLACEHOLDER = "\x00voicepipe-audio\x00"
_APPEND = "input_audio_buffer.append"
_APPEND_FIELDS = ("type", "audio")
#: the line the generic path (encoder, then mask) writes for ``{"type": _APPEND, "audio": text}``
#: with elided audio at a finite float time: ``%r`` is how the JSON encoder writes a float
_APPEND_LINE = '{"t": %r, "direction": "client", "event": {"type": "' + _APPEND + '", "audio": {"bytes": %d}}}'
_INFINITY = float("inf")
_AUDIO_PLACEHOLDER_JSON = json.dumps(_AUDIO_PLACEHOLDER)
#: server event type -> (the text stream it belongs to, "delta" | "done" | "response_done"); the
#: preview and GA names of a stream share its kind
TEXT_STREAM_EVENTS = {
    "response.audio_transcript.delta": ("transcript", "delta"),
    "response.output_audio_transcript.delta": ("transcript", "delta"),
    "response.text.delta": ("text", "delta"),
    "response.output_text.delta": ("text", "delta"),
    "response.function_call_arguments.delta": ("arguments", "delta"),
    "conversation.item.input_audio_transcription.delta": ("input_transcript", "delta"),
    "response.audio_transcript.done": ("transcript", "done"),
    "response.output_audio_transcript.done": ("transcript", "done"),
    "response.text.done": ("text", "done"),
    "response.output_text.done": ("text", "done"),
    "response.function_call_arguments.done": ("arguments", "done"),
    "conversation.item.input_audio_transcription.completed": ("input_transcript", "done"),
    "conversation.item.input_audio_transcription.failed": ("input_transcript", "done"),
    "response.done": (None, "response_done"),
}
#: lines waiting (held deltas included) before they are all written as they are (a stream that stops
#: on the beginning of a secret and never ends must not keep the rest of the session off disk)
MAX_HELD_LINES = 256


class _HeldDelta:
    """A text delta held back; ``line`` is set when its stream decides what it says."""

    __slots__ = ("t", "fields", "delta", "line")

    def __init__(self, t: float, fields: dict, delta: str):
        self.t = t
        self.fields = fields
        self.delta = delta
        self.line: Optional[str] = None


class _HeldStream:
    """The held deltas of one text stream, and their text."""

    __slots__ = ("response_id", "deltas", "text")

    def __init__(self, response_id: Any):
        self.response_id = response_id
        self.deltas: list[_HeldDelta] = []
        self.text = ""


class Recording:
    """The ``events.jsonl`` of one session, written through an unbuffered binary file."""

    def __init__(self, file: BinaryIO, clock_origin: float, *, full_audio: bool):
        self.file = file
        self.full_audio = full_audio
        self.clock_origin = clock_origin
        self.lines = 0
        self._held: dict[tuple, _HeldStream] = {}  # streams with held deltas
        self._queue: deque = deque()  # lines (str) and held deltas, in order, behind the first held delta
        self._waiting: list[str] = []  # append lines ("\n" included) not yet on disk: APPEND_FLUSH_S
        self._flush_timer: Optional[asyncio.TimerHandle] = None
        self._size: Optional[int] = None  # bytes on disk: where a failed write is cut back to

    def write(self, t: float, direction: str, event: Mapping[str, Any]) -> None:
        if self.file.closed:
            return
        fields = event_fields(event)
        event_type = fields.get("type")
        if event_type == _APPEND and direction == "client" and not self.full_audio and self._append(t, fields):
            return
        audio_field = AUDIO_FIELDS.get(event_type)
        if audio_field is None:
            stream = TEXT_STREAM_EVENTS.get(event_type)
            if stream is not None and direction == "server" and self._text_event(stream, t, fields):
                return  # held back, or released with its stream
            if direction == "meta" and self._held:
                self._release_all()  # the connection or the recording ends: no delta will follow
        audio = fields.get(audio_field) if audio_field else None
        full_audio = None
        if type(fields) is dict and not isinstance(audio, str):
            data = fields
        else:
            data = dict(fields)  # a copy: the event itself is never changed
        if isinstance(audio, str):
            if self.full_audio:
                full_audio = audio
                data[audio_field] = _AUDIO_PLACEHOLDER  # spliced in after masking: no regex over audio
            else:
                data[audio_field] = describe_audio(audio)
        line = _masked_line({"t": t, "direction": direction, "event": data})
        if full_audio is not None:
            line = line.replace(_AUDIO_PLACEHOLDER_JSON, json.dumps(full_audio), 1)
        if self._queue:
            self._queue.append(line)
            self._drain()
        else:
            self._emit(line)

    def flush(self) -> None:
        """Write every held delta (secrets completed so far masked), the lines behind them and the
        append lines waiting."""
        if self._held:
            self._release_all()
        self._drain()
        self._write_waiting()

    def close(self) -> None:
        if not self.file.closed:
            try:
                self.flush()
            finally:
                self.file.close()

    def _write_whole(self, data: bytes) -> None:
        """Append whole lines; a write the disk refuses is cut off again (the file stays whole)."""
        if self._size is None:
            self._size = os.fstat(self.file.fileno()).st_size
        self._size = append_whole(self.file.fileno(), data, self._size, str(getattr(self.file, "name", FILE_NAME)))

    def _emit(self, line: str) -> None:
        data = line + "\n"
        if self._waiting:  # the append lines before it, in the same system call
            data = "".join(self._waiting) + data
            self._waiting.clear()
        self._write_whole(data.encode("utf-8"))  # on disk when the call returns
        self.lines += 1

    # -- microphone appends --------------------------------------------------------------------------

    def _append(self, t: float, fields: Mapping[str, Any]) -> bool:
        """Record the usual microphone append (a 20 ms chunk: 50 a second) for a fraction of the
        generic path's cost: the line the encoder would write, from a template, masked all the
        same, written with the next line (:data:`APPEND_FLUSH_S`). False for any other shape of
        append (other fields, another key order, text that is not base64, an odd time): the
        generic path writes it."""
        audio = fields.get("audio")
        if type(audio) is not str or type(t) is not float or not -_INFINITY < t < _INFINITY:
            return False
        if len(fields) != 2 or tuple(fields) != _APPEND_FIELDS:
            return False
        size = base64_length(audio)
        if size is None:
            return False
        line = REDACTOR.redact(_APPEND_LINE % (t, size))
        if self._queue:  # behind a held delta: in order with the lines waiting there
            self._queue.append(line)
            self._drain()
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to flush it later: on disk now, as every other line
            self._emit(line)
            return True
        self._waiting.append(line + "\n")
        self.lines += 1
        if self._flush_timer is None:
            self._flush_timer = loop.call_later(APPEND_FLUSH_S, self._write_waiting)
        return True

    def _write_waiting(self) -> None:
        """Write the append lines waiting (the flush timer, or :meth:`flush`)."""
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.cancel()  # when called by flush(); a no-op when it is the timer that fired
        if self._waiting and not self.file.closed:
            data = "".join(self._waiting)
            self._waiting.clear()
            self._write_whole(data.encode("utf-8"))

    # -- secrets streamed in pieces ----------------------------------------------------------------

    def _text_event(self, stream: tuple, t: float, fields: Mapping[str, Any]) -> bool:
        """Handle a text stream's event; true when it was queued here (a held delta), false when
        :meth:`write` goes on to write it (after releasing what it ends)."""
        kind, role = stream
        held = self._held
        if role == "delta":
            delta = fields.get("delta")
            if not isinstance(delta, str):
                return False
            key = _stream_key(kind, fields) if held else None
            state = held.get(key) if held else None
            if state is None:
                if REDACTOR.secret_prefix_length(delta) == 0:
                    return False  # the common case: nothing held, nothing to hold
                key = _stream_key(kind, fields)
                state = held[key] = _HeldStream(fields.get("response_id"))
            entry = _HeldDelta(t, dict(fields), delta)  # a copy: the event itself is never changed
            state.deltas.append(entry)
            state.text += delta
            self._queue.append(entry)
            if len(state.deltas) > 1 and REDACTOR.secret_prefix_length(state.text) == 0:
                self._release(key)  # the secret is complete, or was not one
            self._drain()
            return True
        if held:
            if role == "done":
                key = _stream_key(kind, fields)
                if key in held:
                    self._release(key)
            else:  # response.done: its streams are over, done events or not
                response = fields.get("response")
                response_id = response.get("id") if isinstance(response, Mapping) else None
                for key, state in list(held.items()):
                    if state.response_id is not None and response_id in (None, state.response_id):
                        self._release(key)
        return False

    def _release(self, key: tuple) -> None:
        """Decide what the held deltas of a stream say: a secret split across them is masked."""
        state = self._held.pop(key)
        pieces = REDACTOR.redact_pieces([entry.delta for entry in state.deltas])
        for entry, piece in zip(state.deltas, pieces):
            entry.fields["delta"] = piece
            entry.line = _masked_line({"t": entry.t, "direction": "server", "event": entry.fields})

    def _release_all(self) -> None:
        for key in list(self._held):
            self._release(key)

    def _drain(self) -> None:
        """Write the queued lines up to the first delta still held."""
        queue = self._queue
        while queue:
            item = queue[0]
            line = item if type(item) is str else item.line
            if line is None:
                if len(queue) <= MAX_HELD_LINES:
                    return
                self._release_all()  # too much waits behind it: written as it is
                continue
            queue.popleft()
            self._emit(line)


def _stream_key(kind: str, fields: Mapping[str, Any]) -> tuple:
    """What a text stream's deltas and its done event share: the item (or call, or response) and
    the content part."""
    item = fields.get("item_id") or fields.get("call_id") or fields.get("response_id")
    index = fields.get("content_index")
    return (kind, item if isinstance(item, str) else None, index if isinstance(index, int) else None)


def _masked_line(record: dict) -> str:
    """``record`` as one JSON line, secrets masked."""
    try:
        line = _ENCODER.encode(record)
    except ValueError:  # NaN or an infinity (a JSON parser may accept them; JSON cannot hold them)
        line = _ENCODER.encode(_finite(record))
    return REDACTOR.redact(line)


def describe_audio(b64: str) -> dict:
    """``{"bytes": n}`` for a base64 audio payload, without decoding it: the decoded length, from
    the text's length and padding. Text that cannot be base64 (not ASCII, a length that is not a
    multiple of 4, ``=`` before the padding) gives ``{"bytes": None, "invalid_base64": <its
    length>}``.
    """
    length = base64_length(b64)
    if length is None:
        return {"bytes": None, "invalid_base64": len(b64)}
    return {"bytes": length}


def _json_default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Mapping):
        return dict(value.items())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value)}
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def _finite(value: Any) -> Any:
    """``value`` with NaN and the infinities replaced by ``None`` (JSON ``null``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class _LineEncoder:
    """``encode(obj)`` as ``json.JSONEncoder(ensure_ascii=False, default=_json_default,
    allow_nan=False)`` encodes, with the C encoder built once: ``JSONEncoder.encode`` builds one
    per call, a quarter of the cost of encoding a small event. Without a circular-reference
    check: events come from JSON and cannot hold cycles."""

    def __init__(self) -> None:
        self._python = json.JSONEncoder(ensure_ascii=False, default=_json_default, allow_nan=False)
        make = getattr(json.encoder, "c_make_encoder", None)
        self._c = None if make is None else make(
            None, _json_default, json.encoder.encode_basestring, None, ": ", ", ", False, False, False
        )

    def encode(self, obj: Any) -> str:
        if self._c is None or not isinstance(obj, dict):
            return self._python.encode(obj)
        return "".join(self._c(obj, 0))


# one encoder for every line
_ENCODER = _LineEncoder()


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    REDACTOR.refresh_env()  # secrets set since start-up count too
    settings = ctx.profile.section("recorder") or {}
    clock = session_clock(ctx)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    file = open(ctx.run_dir / FILE_NAME, "ab", buffering=0)
    recording = Recording(file, clock.origin, full_audio=bool(settings.get("audio", False)))
    ctx.stash[STASH_KEY] = recording
    recording.write(
        0.0,
        "meta",
        {
            "type": "recording.started",
            "format": FORMAT_VERSION,
            "voicepipe": voicepipe.__version__,
            "profile": getattr(ctx.profile, "name", None),
            "started_at": clock.started_at.isoformat(),
            "clock_origin": clock.origin,
            "playback_expected": clock.playback_expected,
            "audio": "full" if recording.full_audio else "elided",
        },
    )


@voicepipe.hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    recording = ctx.stash.get(STASH_KEY)
    if recording is not None:
        recording.write(event_time(ctx, event), "server", event)


@voicepipe.hookimpl
def voicepipe_client_event(event: Mapping[str, Any], ctx: Any) -> None:
    recording = ctx.stash.get(STASH_KEY)
    if recording is not None:
        recording.write(elapsed(ctx), "client", event)


@voicepipe.hookimpl
def voicepipe_playback(event: Mapping[str, Any], ctx: Any) -> None:
    recording = ctx.stash.get(STASH_KEY)
    if recording is not None:
        recording.write(elapsed(ctx), "local", event)


@voicepipe.hookimpl
def voicepipe_disconnected(ctx: Any, code: Any, reason: Any, reconnecting: bool) -> None:
    recording = ctx.stash.get(STASH_KEY)
    if recording is not None:
        recording.write(
            elapsed(ctx), "meta", {"type": "connection.lost", "code": code, "reason": reason, "reconnecting": reconnecting}
        )


@voicepipe.hookimpl
def voicepipe_reconnected(
    ctx: Any, attempts: int, gap_s: float, seeded_item_ids: list, buffered_audio_s: float
) -> None:
    recording = ctx.stash.get(STASH_KEY)
    if recording is not None:
        recording.write(
            elapsed(ctx),
            "meta",
            {
                "type": "connection.reconnected",
                "attempts": attempts,
                "gap_s": gap_s,
                "seeded_item_ids": list(seeded_item_ids),
                "buffered_audio_s": buffered_audio_s,
            },
        )


@voicepipe.hookimpl
def voicepipe_session_end(ctx: Any, reason: str) -> None:
    recording = ctx.stash.pop(STASH_KEY, None)
    if recording is not None:
        recording.flush()  # held deltas count among the lines
        recording.write(elapsed(ctx), "meta", {"type": "recording.finished", "reason": reason, "lines": recording.lines})
        recording.close()
