"""Breaking the reference cycles that libraries leave among a finished connection's objects.

A process serving many sessions must free each session's objects by reference counting when it
ends: objects in a reference cycle wait for a full garbage collection instead, and with the
objects of a hundred ended sessions to examine, its pause is longer than the callers' audio
buffers. These helpers cut the cycles aiohttp and the Voice Live SDK leave behind, once the
objects are no longer used; each is harmless where a library version has no such cycle.
"""

from __future__ import annotations

from typing import Any


def release_websocket(ws: Any) -> None:
    """Once ``ws`` (an aiohttp client or server WebSocket) is closed: cut its connection's
    reference back to it.

    With a heartbeat, aiohttp (3.14; since the heartbeat is reset on any data received) hands the
    connection's protocol a callback, a bound method of the WebSocket, and never takes it back;
    the WebSocket refers to its protocol too, so the pair and all they hold (request, transport,
    buffers, the client's HTTP session) form a cycle.

    A close that failed (the peer had gone: "Cannot write to closing transport") is kept as
    ``ws.exception()``, whose traceback holds the frame of ``ws.close``, which holds ``ws``: the
    exception stays, without its traceback.
    """
    for owner in (getattr(ws, "_response", None), getattr(ws, "_req", None)):
        protocol = getattr(owner, "_protocol", None)
        if getattr(protocol, "_data_received_cb", None) is not None:
            protocol._data_received_cb = None
    exc = getattr(ws, "_exception", None)
    seen = 0
    while isinstance(exc, BaseException) and seen < 10:  # and what it was raised while handling
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
        seen += 1


def release_sdk_connection(connection: Any) -> None:
    """Once a Voice Live SDK ``VoiceLiveConnection`` is closed: its resource helpers
    (``connection.session``, ``.response``, ...) each refer back to it, a cycle that holds its
    HTTP session and WebSocket. They are dropped (using them afterwards raises
    ``AttributeError``), and the WebSocket released as above."""
    attributes = getattr(connection, "__dict__", None)
    if attributes is None:
        return
    for name, value in list(attributes.items()):
        if getattr(value, "_connection", None) is connection:
            del attributes[name]
    release_websocket(attributes.get("_connection"))
