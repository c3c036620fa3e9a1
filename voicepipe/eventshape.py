"""The shape every plugin may rely on: server events whose known fields have the wrong type are skipped.

The SDK hands any JSON object with a ``type`` to the runtime, so a broken or hostile server could
send ``{"type": "response.done", "response": "???"}``. Rather than every plugin checking every
field, the runtime (and replay) checks the fields plugins read and skips an event that
contradicts them, with one log line. A field that is absent or ``null`` passes: plugins already
read fields with ``event.get(...)``. Unknown event types pass untouched.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from voicepipe.pipeline import event_fields

_NUMBER = (int, float)

_OBJECT_FIELDS = {
    "session.created": ("session",),
    "session.updated": ("session",),
    "response.created": ("response",),
    "response.done": ("response",),
    "response.output_item.added": ("item",),
    "response.output_item.done": ("item",),
    "conversation.item.created": ("item",),
    "conversation.item.done": ("item",),
    "conversation.item.retrieved": ("item",),
    "response.content_part.added": ("part",),
    "response.content_part.done": ("part",),
    "error": ("error",),
}
_TEXT_FIELDS = {
    "response.audio.delta": ("delta",),
    "response.output_audio.delta": ("delta",),
    "response.audio_transcript.delta": ("delta",),
    "response.output_audio_transcript.delta": ("delta",),
    "response.audio_transcript.done": ("transcript",),
    "response.output_audio_transcript.done": ("transcript",),
    "response.text.delta": ("delta",),
    "response.output_text.delta": ("delta",),
    "response.text.done": ("text",),
    "response.output_text.done": ("text",),
    "response.function_call_arguments.delta": ("delta",),
    "response.function_call_arguments.done": ("arguments", "name", "call_id"),
    "conversation.item.input_audio_transcription.delta": ("delta",),
    "conversation.item.input_audio_transcription.completed": ("transcript",),
}
_NUMBER_FIELDS = {
    "input_audio_buffer.speech_started": ("audio_start_ms",),
    "input_audio_buffer.speech_stopped": ("audio_end_ms",),
    "conversation.item.truncated": ("audio_end_ms",),
}
_ID_FIELDS = ("item_id", "response_id", "call_id", "previous_item_id")
#: objects plugins read an ``id`` from, whatever the event type
_OBJECTS_WITH_ID = ("item", "response", "session")


def malformed(event: Mapping[str, Any]) -> Optional[str]:
    """Why ``event`` cannot be handed to plugins, or ``None`` when its known fields are sound."""
    event = event_fields(event)  # the SDK's own get() would cost more than the whole check
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return f"'type' is {_kind(event_type)}, not text"
    for name in _OBJECT_FIELDS.get(event_type, ()):
        value = event.get(name)
        if value is not None and not isinstance(value, Mapping):
            return f"{event_type}.{name} is {_kind(value)}, not an object"
    for name in _TEXT_FIELDS.get(event_type, ()):
        value = event.get(name)
        if value is not None and not isinstance(value, str):
            return f"{event_type}.{name} is {_kind(value)}, not text"
    for name in _NUMBER_FIELDS.get(event_type, ()):
        value = event.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, _NUMBER)):
            return f"{event_type}.{name} is {_kind(value)}, not a number"
    for name in _ID_FIELDS:
        value = event.get(name)
        if value is not None and not isinstance(value, str):
            return f"{event_type}.{name} is {_kind(value)}, not text"
    for name in _OBJECTS_WITH_ID:
        value = event.get(name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            return f"{event_type}.{name} is {_kind(value)}, not an object"
        object_id = value.get("id")
        if object_id is not None and not isinstance(object_id, str):
            return f"{event_type}.{name}.id is {_kind(object_id)}, not text"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _NUMBER):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


# -- reading inside an event's objects: malformed() checks an event's own fields, not what they hold --


def mapping_or_empty(value: Any) -> Mapping[str, Any]:
    """An object field (``item``, ``response``, ``error`` ...), or an empty one if it is not an object."""
    return value if isinstance(value, Mapping) else {}


def mapping_parts(value: Any) -> list:
    """The objects of a list field (``content``); a field that is not a list holds none."""
    return [part for part in value if isinstance(part, Mapping)] if isinstance(value, list) else []


def text_or_none(value: Any) -> Optional[str]:
    """An id or text read from inside an object (``item.id``): text, else ``None``."""
    return value if isinstance(value, str) else None


def text_or_empty(value: Any) -> str:
    """A text field, or ``""`` when it is missing or not text."""
    return value if isinstance(value, str) else ""


def finite_or_none(value: Any) -> Optional[float]:
    """A number field as a float, or ``None`` when it is missing or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None
