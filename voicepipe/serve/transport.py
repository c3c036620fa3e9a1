"""A caller's media connection, as a session sees it: the contract every transport follows.

``voicepipe serve`` accepts a media connection (a browser WebSocket, an ACS or Twilio media
stream), wraps it in a :class:`Transport` and runs one session of the profile with it as
``ctx.transport``. The audio plugin takes the session's audio from it (``audio.input/output.backend:
web | acs | twilio``), so barge-in, truncation and the played clock work as with a sound card.

A transport provides:

``input``
    an :class:`voicepipe.audio.base.AudioInput`; :class:`CallerInput` fits every transport: the
    socket reader ``feed``\\ s PCM16 at the session's input rate and it yields exact chunks.
``output``
    an :class:`voicepipe.audio.base.AudioOutput` whose played clock is the caller's (playback
    receipts from the browser, acknowledged marks for Twilio, sent audio less the buffering
    ACS is assumed to hold).
``await run()``
    reads the connection until the caller hangs up or :meth:`close` is called; returns the
    reason (``"caller_hung_up"``, ``"caller_error"``, ...).
``await close(reason)``
    ends the call from our side (idempotent): the session ended, the server drains.

A transport that also wants server events (the browser page shows the transcript) implements
hooks as a plugin does: :attr:`plugin` is registered in the session's own plugin manager.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any, AsyncIterator, Optional

from voicepipe.audio.base import AudioInput, AudioOutput
from voicepipe.audio.pcm import SAMPLE_WIDTH

#: audio a caller may send before the session has opened its input, and the most that may wait
#: unread: beyond it the oldest is dropped (a caller cannot grow the server's memory)
MAX_PENDING_S = 2.0


class Transport(abc.ABC):
    """One caller's connection; see the module docstring for the contract."""

    #: the backend name a profile uses for it: ``web``, ``acs``, ``twilio``
    kind: str = ""
    input: AudioInput
    output: AudioOutput
    #: an object with hook implementations, registered in the session's plugin manager, or None
    plugin: Any = None

    @abc.abstractmethod
    async def run(self) -> str:
        """Serve the connection until it ends; return why it ended."""

    @abc.abstractmethod
    async def close(self, reason: str) -> None:
        """End the connection from the server's side; safe to call more than once."""


class CallerInput(AudioInput):
    """Audio the caller sends, as session chunks.

    The transport's reader calls :meth:`feed` with PCM16 mono at the session's input rate (known
    once :meth:`open` ran; :attr:`sample_rate` is ``None`` before) and :meth:`end` when the call
    ends. Chunks are yielded as they fill, so the caller's own pacing is the session's clock;
    with :attr:`batcher` set, chunks it lets wait stay in ``_pending`` (under the same bound) until
    one that must leave, or a full batch, wakes the reader, and then leave together.
    """

    realtime = True

    def __init__(self) -> None:
        self.sample_rate: Optional[int] = None
        self._chunk_bytes = 0
        self._pending = bytearray()
        self._checked = 0  # bytes of _pending the batcher has seen
        self._limit = 0
        self._ended = False
        self._closed = False
        self._wake: Optional[asyncio.Event] = None
        #: bytes dropped because the session did not keep up (or the caller sent too fast)
        self.dropped_bytes = 0
        self._opened = asyncio.Event()

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        self.sample_rate = sample_rate
        self._chunk_bytes = frames_per_chunk * SAMPLE_WIDTH
        self._limit = int(MAX_PENDING_S * sample_rate) * SAMPLE_WIDTH
        self._wake = asyncio.Event()
        if len(self._pending) > self._limit:
            self._drop(len(self._pending) - self._limit)
        self._opened.set()
        self._check()

    async def rate(self) -> int:
        """The session's input rate, once the session has opened its input."""
        await self._opened.wait()
        assert self.sample_rate is not None
        return self.sample_rate

    def feed(self, pcm: bytes, leave: Optional[bool] = None) -> None:
        """Add caller audio (PCM16 at :attr:`sample_rate`); never blocks.

        ``leave`` is for a feeder that applied :attr:`batcher`'s rules itself (a phone call's wire
        audio, decided before it is converted): ``True``, every whole chunk pending leaves now;
        ``False``, it waits. ``None``: the batcher decides chunk by chunk."""
        if self._ended or self._closed:
            return
        self._pending += pcm
        limit = self._limit or int(MAX_PENDING_S * 48000) * SAMPLE_WIDTH
        if len(self._pending) > limit:
            self._drop(len(self._pending) - limit)
        if self._wake is not None:
            if leave is None or self.batcher is None:
                self._check()
            elif leave:
                size = self._chunk_bytes
                self._checked = len(self._pending) - len(self._pending) % size
                if self._checked:
                    self._wake.set()

    def _check(self) -> None:
        """Wake the reader when a chunk is ready to leave."""
        size = self._chunk_bytes
        if self.batcher is None:
            if len(self._pending) >= size:
                self._wake.set()
            return
        pending = self._pending
        while self._checked + size <= len(pending):  # chunks that may wait wake nobody
            chunk = bytes(pending[self._checked : self._checked + size])
            self._checked += size
            if not self.batcher.holds(chunk):
                self._wake.set()

    def _drop(self, count: int) -> None:
        count -= count % SAMPLE_WIDTH
        del self._pending[:count]
        self._checked = max(self._checked - count, 0)
        self.dropped_bytes += count

    def end(self) -> None:
        """The caller hung up: what is pending is still yielded, then iteration stops."""
        self._ended = True
        if self._wake is not None:
            self._wake.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if self._wake is None:
            raise RuntimeError("open() the input before iterating over it")
        size = self._chunk_bytes
        batched = self.batcher is not None
        while not self._closed:
            if batched and self._checked and self._wake.is_set():
                # woken by a chunk that must leave, or a full batch: what waited leaves with it
                chunk = bytes(self._pending[: self._checked])
                del self._pending[: self._checked]
                self._checked = 0
                yield chunk
                continue
            if not batched and len(self._pending) >= size:
                chunk = bytes(self._pending[:size])
                del self._pending[:size]
                yield chunk
                continue
            if self._ended:
                tail = len(self._pending) - len(self._pending) % SAMPLE_WIDTH
                if tail:
                    chunk = bytes(self._pending[:tail])
                    self._pending.clear()
                    yield chunk
                return
            self._wake.clear()
            await self._wake.wait()

    async def close(self) -> None:
        self._closed = True
        if self._wake is not None:
            self._wake.set()
