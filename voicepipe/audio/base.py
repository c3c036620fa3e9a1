"""The audio backend contract.

A backend is chosen per profile (``audio.input.backend`` / ``audio.output.backend``) and created
through the ``voicepipe_audio_backend`` hook, so a third-party backend is just a plugin that
answers that hook with an object following one of the two classes below.

All audio is PCM16 little-endian mono at the session's rate (``input_audio_sampling_rate`` for
input, the output format's rate for output; 24 kHz unless the profile says otherwise). A backend
whose device cannot run at that rate resamples itself.

Input
    ``await open(sample_rate, frames_per_chunk)``, then ``async for chunk in input`` yields
    chunks of exactly ``frames_per_chunk`` frames (the last one may be shorter) until the source
    ends (a file) or ``close()`` is called (a device). ``await close()`` is idempotent.

Output
    ``await open(sample_rate)``; ``write(pcm, item_id)`` queues audio without blocking;
    ``played_ms(item_id)`` reports how much of that item the *backend's own clock* has played
    (the device callback's frame counter, a file's virtual timeline), never wall-clock guesses;
    ``clear()`` silences the output at once (a fade of a few ms is allowed), drops everything
    queued and returns the :class:`ItemPlayback` of the item that was playing, or ``None`` if
    nothing was; ``await drain()`` waits until everything written has played; ``await close()``
    is idempotent. ``on_playback`` (set by the audio plugin) is called from the event loop thread
    with ``("started" | "finished", item_id)`` when the clock passes the first or the last written
    sample of an item ("finished" again after each later write for that item has played, so a
    reader that needs the end of an item checks that no more audio is coming).

Optional, to skip decoding
    ``accepts_lazy_pcm`` (a class attribute, false unless set): an output that sets it may be
    handed a :class:`voicepipe.audio.pcm.LazyPCM` by ``write`` instead of bytes: the audio still
    in the base64 text it arrived in, whose ``len()`` is known without decoding and which
    ``bytes(payload)`` decodes. An output that only needs the sample count (``null``) then never
    decodes; any other output gets ``bytes``.

Optional, to send steady input in fewer appends
    ``batcher`` (set by the audio plugin before ``open``, or left ``None``): an input that supports
    it passes each chunk through ``batcher.feed(chunk)`` and yields only what that returns
    (``None``: nothing now), then ``batcher.flush()`` when it ends, so that in a steady silence or
    sound the loop wakes once per batch instead of once per chunk (:mod:`voicepipe.audio.batching`). A yielded chunk may then
    be several chunks long.

Optional, for the client echo reference
    ``on_played`` (set by the audio plugin, or left ``None``): an output that supports it calls
    ``on_played(pcm, sample_rate, started_at)`` with every block its clock plays, silence
    included, in playing order; ``started_at`` is the ``time.monotonic()`` at which the block's
    first sample is heard. It may be called from a device thread and must return at once. An
    input's ``latency_s`` says how long before a chunk is yielded its last sample was captured,
    beyond the chunk's own length (a device's input latency; 0 for a file).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Optional


@dataclass
class ItemPlayback:
    """Where playback of one assistant item stands, by the backend's clock."""

    item_id: str
    written_ms: float
    played_ms: float
    started_at: Optional[float] = None  # time.monotonic() of the first played sample
    finished_at: Optional[float] = None  # time.monotonic() when the last written sample played


class AudioInput(abc.ABC):
    """A source of PCM16 mono chunks: a microphone, a file, a generator."""

    latency_s: float = 0.0
    #: set by the audio plugin before ``open`` (a :class:`voicepipe.audio.batching.InputBatcher`):
    #: an input that honours it yields what ``batcher.feed(chunk)`` hands on instead of each chunk
    batcher: Any = None

    @abc.abstractmethod
    async def open(self, sample_rate: int, frames_per_chunk: int) -> None: ...

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class AudioOutput(abc.ABC):
    """A sink for PCM16 mono audio with its own playback clock."""

    on_playback: Optional[Callable[[str, str], None]] = None
    on_played: Optional[Callable[[bytes, int, float], None]] = None
    #: ``write`` may be handed a :class:`voicepipe.audio.pcm.LazyPCM` instead of bytes
    accepts_lazy_pcm: bool = False

    @abc.abstractmethod
    async def open(self, sample_rate: int) -> None: ...

    @abc.abstractmethod
    def write(self, pcm: bytes, item_id: str) -> None: ...

    @abc.abstractmethod
    def played_ms(self, item_id: str) -> float: ...

    @abc.abstractmethod
    def clear(self) -> Optional[ItemPlayback]: ...

    @abc.abstractmethod
    async def drain(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        """Playback state of one item, or ``None`` if it was never written."""
        return None
