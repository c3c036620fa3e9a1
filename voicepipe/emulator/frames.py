"""The text of a server event, made without scanning audio it knows needs no escaping.

A ``response.audio.delta`` carries 100 ms of audio as base64: 6,400 characters at 24 kHz, which
``json.dumps`` scans for characters to escape (about 15 µs each, ten times a second per session).
Base64 has none: its alphabet is ``A-Z a-z 0-9 + / =``. Text made by :func:`b64text` is marked as
such (a :class:`Base64Text`, a ``str`` in every way), and :func:`event_text` writes such a last
field by concatenation. The text is the one ``json.dumps(event)`` makes, character for character.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from typing import Any


class Base64Text(str):
    """Text that :func:`b64text` made from bytes: base64's alphabet only, which JSON writes as it is."""

    __slots__ = ()


def b64text(data: bytes) -> Base64Text:
    """``base64.b64encode(data).decode("ascii")``, marked as needing no JSON escaping."""
    return Base64Text(b2a_base64(data, newline=False).decode("ascii"))


def event_text(event: dict[str, Any]) -> str:
    """``json.dumps(event)``; a :class:`Base64Text` last field is appended without being scanned."""
    if event:
        key = next(reversed(event))
        value = event[key]
        if type(value) is Base64Text and type(key) is str:
            rest = dict(event)
            del rest[key]
            head = json.dumps(rest)
            return head[:-1] + (", " if rest else "") + json.dumps(key) + ': "' + value + '"}'
    return json.dumps(event)
