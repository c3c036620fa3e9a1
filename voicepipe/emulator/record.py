"""What each accepted connection did, kept for tests and diagnostics (bounded)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

MAX_RECORDED = 50_000  # events kept per direction; past it the oldest tenth is dropped


class ConnectionRecord:
    """What one accepted connection did.

    ``client_events`` and ``server_events`` are the events received and sent, in order, as dicts
    (the ``audio`` of ``input_audio_buffer.append`` is replaced by ``"<N base64 characters>"``;
    past ``MAX_RECORDED`` events the oldest tenth is dropped). ``closed`` is set when the
    connection has ended; ``close_code`` is the WebSocket close code when known. ``number`` counts
    connection attempts from 1 (refused ones included); ``query`` holds the URL query parameters
    (``api-version``, ``model``, ``agent-name``…); ``session`` is the effective session. With
    ``keep_events`` false no events are kept (both lists stay empty).
    """

    def __init__(self, number: int, query: dict[str, str], keep_events: bool = True):
        self.number = number
        self.keep_events = keep_events
        self.query = query
        self.client_events: list[dict] = []
        self.server_events: list[dict] = []
        self.closed = asyncio.Event()
        self.close_code: Optional[int] = None
        self.session: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = "closed" if self.closed.is_set() else "open"
        return f"<ConnectionRecord #{self.number} {state}, {len(self.client_events)} in, {len(self.server_events)} out>"

    def received(self, event: dict) -> None:
        if self.keep_events:
            _keep(self.client_events, _without_audio(event))

    def sent(self, event: dict) -> None:
        if self.keep_events:
            _keep(self.server_events, event)


def _keep(events: list, event: dict) -> None:
    events.append(event)
    if len(events) > MAX_RECORDED:
        del events[: max(1, MAX_RECORDED // 10)]


def _without_audio(event: dict) -> dict:
    if event.get("type") == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
        return {**event, "audio": f"<{len(event['audio'])} base64 characters>"}
    return event
