"""Client events sent for less CPU: the microphone's ``input_audio_buffer.append`` frame from a template.

The SDK's ``VoiceLiveConnection.send`` turns every event into text with ``json.dumps(dict(event))``
(a new encoder each call, and escaping the 1,280 characters of base64 of a 20 ms chunk: about
10 µs, 50 times a second per session). An :class:`AudioAppend` is the plain
``{"type": "input_audio_buffer.append", "audio": <base64>}`` dict every observer sees, made from the
PCM bytes, so its text is base64 and needs no escaping: its frame is a concatenation.

The SDK has no public way to send text that is already JSON (a ``str`` event is encoded again, as
a JSON string), so :class:`FrameSender` writes the frame through the socket the SDK itself writes
to, ``connection._connection.send_str``, and only once it has seen that this is what the SDK does:
the first append on each connection goes through the public ``send`` with that socket watched, and
only if the public ``send`` wrote exactly the template's text, once, through ``send_str``, do the
following appends on that connection skip it. Anything else (an SDK that frames events otherwise,
a connection without that member, a test double) keeps every event on the public ``send``.
"""

from __future__ import annotations

from binascii import b2a_base64
from typing import Any, Callable, Optional

APPEND = "input_audio_buffer.append"
_FRAME_HEAD = '{"type": "' + APPEND + '", "audio": "'  # json.dumps's default separators
_FRAME_TAIL = '"}'


class AudioAppend(dict):
    """``{"type": "input_audio_buffer.append", "audio": <base64 of pcm>}``, a dict in every way; the
    type says its audio text was made here from bytes (see :func:`append_frame`)."""

    __slots__ = ()

    def __init__(self, pcm: bytes):
        dict.__init__(self, type=APPEND, audio=b2a_base64(pcm, newline=False).decode("ascii"))


def append_frame(event: AudioAppend) -> Optional[str]:
    """The JSON text ``json.dumps(dict(event))`` makes, or ``None`` if the event no longer has the
    shape it was made with (an observer changed it)."""
    if len(event) != 2 or event.get("type") != APPEND:
        return None
    audio = event.get("audio")
    if type(audio) is not str:
        return None
    return _FRAME_HEAD + audio + _FRAME_TAIL


class _Watched:
    """The SDK's socket during one public ``send``: ``send_str`` is recorded, then done; every other
    attribute is the socket's own."""

    def __init__(self, socket: Any):
        self._socket = socket
        self.texts: list = []

    async def send_str(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self.texts.append((data, args, kwargs))
        return await self._socket.send_str(data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)


class FrameSender:
    """Sends one connection's client events: appends made by :class:`AudioAppend` as their frame
    once the SDK has been seen to write that frame itself, everything else with ``connection.send``.

    Errors are the SDK's: a failed write raises its ``ConnectionError``, as ``send`` does."""

    __slots__ = ("connection", "_send_text", "_probed")

    def __init__(self, connection: Any):
        self.connection = connection
        #: the socket's ``send_str`` once the probe has passed
        self._send_text: Optional[Callable[[str], Any]] = None
        self._probed = False

    async def send(self, event: Any) -> None:
        send_text = self._send_text
        if send_text is not None and type(event) is AudioAppend:
            frame = append_frame(event)
            if frame is not None:
                try:
                    await send_text(frame)
                except Exception as exc:  # what the SDK's send catches, reported as it reports it
                    error = _sdk_error(exc)
                    if error is exc:
                        raise
                    raise error from exc
                return
        elif not self._probed and type(event) is AudioAppend:
            frame = append_frame(event)
            if frame is not None:
                self._probed = True
                await self._probe(event, frame)
                return
        await self.connection.send(event)

    @property
    def raw(self) -> bool:
        """Whether appends skip the SDK's ``send`` on this connection."""
        return self._send_text is not None

    async def _probe(self, event: AudioAppend, frame: str) -> None:
        """Send ``event`` with the public ``send`` while watching the socket it writes to."""
        connection = self.connection
        socket = getattr(connection, "_connection", None)
        if socket is None or not callable(getattr(socket, "send_str", None)) or isinstance(socket, _Watched):
            await connection.send(event)
            return
        watched = _Watched(socket)
        connection._connection = watched
        try:
            await connection.send(event)
        finally:
            if connection._connection is watched:
                connection._connection = socket
        if watched.texts == [(frame, (), {})]:
            self._send_text = socket.send_str


def _sdk_error(exc: Exception) -> Exception:
    """The exception ``VoiceLiveConnection.send`` raises for ``exc`` (its ``ConnectionError`` for the
    errors it catches, ``exc`` itself otherwise)."""
    import aiohttp
    from azure.ai.voicelive.aio import ConnectionError as SDKConnectionError

    if isinstance(exc, (TypeError, ValueError, aiohttp.ClientError, RuntimeError)):
        return SDKConnectionError(f"Failed to send event: {exc}")
    return exc
