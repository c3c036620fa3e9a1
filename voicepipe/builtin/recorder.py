"""Built-in plugin "recorder": every event of the session to ``events.jsonl``, as it happens.

One JSON object per line::

    {"t": 1.234567, "direction": "server", "event": {...}}

``t`` is seconds since the session started on the monotonic clock (see :mod:`voicepipe.sessionclock`).
``direction`` is ``server`` (server events), ``client`` (client events, as sent), ``local``
(playback milestones) or ``meta`` (``recording.started`` / ``recording.finished``, which say how to
read the rest). Audio payloads (``delta`` of ``response.audio.delta``, ``audio`` of
``input_audio_buffer.append``) are replaced by ``{"bytes": n, "sha256": <first 16 hex digits>}``
unless the profile says ``recorder: {audio: true}``. Lines are masked for secrets and flushed one
by one, so a killed process leaves every event it saw on disk.

``voicepipe replay`` reads this file back (:mod:`voicepipe.replay`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any, Mapping, TextIO

import voicepipe
from voicepipe.redact import REDACTOR
from voicepipe.sessionclock import elapsed, event_time, session_clock

FILE_NAME = "events.jsonl"
FORMAT_VERSION = 1
STASH_KEY = "recorder"
#: event type -> the field holding base64 audio
AUDIO_FIELDS = {
    "response.audio.delta": "delta",
    "response.output_audio.delta": "delta",
    "input_audio_buffer.append": "audio",
    "input_audio.turn.append": "audio",
}
_AUDIO_PLACEHOLDER = "\x00voicepipe-audio\x00"
_AUDIO_PLACEHOLDER_JSON = json.dumps(_AUDIO_PLACEHOLDER)


class Recording:
    """The ``events.jsonl`` of one session."""

    def __init__(self, file: TextIO, clock_origin: float, *, full_audio: bool):
        self.file = file
        self.full_audio = full_audio
        self.clock_origin = clock_origin
        self.lines = 0

    def write(self, t: float, direction: str, event: Mapping[str, Any]) -> None:
        if self.file.closed:
            return
        data = _plain(event)
        audio_field = AUDIO_FIELDS.get(data.get("type", ""))
        audio = data.get(audio_field) if audio_field else None
        full_audio = None
        if isinstance(audio, str):
            data = dict(data)
            if self.full_audio:
                full_audio = audio
                data[audio_field] = _AUDIO_PLACEHOLDER  # spliced in after masking: no regex over audio
            else:
                data[audio_field] = describe_audio(audio)
        line = json.dumps({"t": t, "direction": direction, "event": data}, ensure_ascii=False, default=_json_default)
        line = REDACTOR.redact(line)
        if full_audio is not None:
            line = line.replace(_AUDIO_PLACEHOLDER_JSON, json.dumps(full_audio), 1)
        self.file.write(line + "\n")  # line-buffered: on disk when the call returns
        self.lines += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            self.file.close()


def describe_audio(b64: str) -> dict:
    """``{"bytes": n, "sha256": first 16 hex digits}`` of a base64 audio payload."""
    try:
        raw = base64.b64decode(b64)
    except (binascii.Error, ValueError):
        return {"bytes": None, "sha256": None, "invalid_base64": len(b64)}
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()[:16]}


def _plain(event: Mapping[str, Any]) -> dict:
    """The event's JSON fields (an SDK model keeps them in a dict; no decoding happens here)."""
    if isinstance(event, dict):
        return event
    return dict(event.items())


def _json_default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Mapping):
        return dict(value.items())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()[:16]}
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


@voicepipe.hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    REDACTOR.refresh_env()  # secrets set since start-up count too
    settings = ctx.profile.section("recorder") or {}
    clock = session_clock(ctx)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    file = open(ctx.run_dir / FILE_NAME, "a", encoding="utf-8", buffering=1)
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
def voicepipe_session_end(ctx: Any, reason: str) -> None:
    recording = ctx.stash.pop(STASH_KEY, None)
    if recording is not None:
        recording.write(elapsed(ctx), "meta", {"type": "recording.finished", "reason": reason, "lines": recording.lines})
        recording.close()
