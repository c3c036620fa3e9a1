"""The ``null`` backend, and the virtual playback clock the file outputs share.

``null`` input yields silence paced in real time until it is closed, like a muted microphone.
``null`` output plays on a virtual clock without keeping the audio: barge-in, ``played_ms`` and the
playback milestones behave exactly as with a speaker, so a session without a sound card still
truncates where a listener would have stopped hearing.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, AsyncIterator, Callable, Mapping, Optional

from voicepipe.audio.base import AudioInput, AudioOutput, ItemPlayback
from voicepipe.audio.pcm import SAMPLE_WIDTH, pcm_bytes, silence
from voicepipe.audio.playback import Milestone, PlaybackQueue
from voicepipe.errors import UsageError
from voicepipe.lazyimport import lazy_module

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

#: the virtual clock wakes at least this often to move the timeline on (silence, milestones)
MAX_TICK_S = 0.1


def option_bool(options: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = options.get(key, default)
    if isinstance(value, bool):
        return value
    raise UsageError(f"{where}.{key}: expected true or false, got {value!r}")


def option_ms(options: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = options.get(key, default)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise UsageError(f"{where}.{key}: expected a number of milliseconds >= 0, got {value!r}")


class Alarm:
    """One wait at a time that :meth:`ring` cuts short: a timer and a future, a third of the cost
    of ``asyncio.wait_for`` on an event (which makes a task and a timeout for every wait)."""

    def __init__(self) -> None:
        self._waiter: Optional[asyncio.Future] = None

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, or until :meth:`ring`."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self._waiter is waiter:
                self._waiter = None

    def ring(self) -> None:
        """End the current wait now (nothing happens when nothing waits)."""
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PacedInput(AudioInput):
    """An input that yields ready-made chunks, paced like a microphone: chunk ``k`` comes out once
    its last sample would have been captured (``open`` time + (k+1) chunk lengths), or as fast as
    the loop allows when ``realtime`` is false.

    Each wait is one timer until the chunk's deadline, computed from the start (so delays do not
    add up), which :meth:`close` cuts short."""

    def __init__(self, realtime: bool = True, clock: Callable[[], float] = time.monotonic):
        self.realtime = realtime
        self.clock = clock
        self.sample_rate = 0
        self.frames_per_chunk = 0
        self._closed: Optional[asyncio.Event] = None  # created in open(), inside the loop
        self._alarm = Alarm()

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        self.sample_rate = int(sample_rate)
        self.frames_per_chunk = int(frames_per_chunk)
        self._closed = asyncio.Event()

    def chunks(self) -> Any:
        """The chunks to yield, in order (an iterator of bytes). Subclasses provide it."""
        raise NotImplementedError

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if self._closed is None:
            raise RuntimeError("open() the input before iterating over it")
        closed = self._closed
        started = self.clock()
        elapsed_frames = 0
        chunks = self.chunks()
        if self.batcher is not None:
            chunks = _batched(chunks, self.batcher)
        for chunk in chunks:
            if closed.is_set():
                return
            elapsed_frames += len(chunk) // SAMPLE_WIDTH
            if self.realtime:
                delay = started + elapsed_frames / self.sample_rate - self.clock()
                if delay > 0:
                    await self._alarm.sleep(delay)
                    if closed.is_set():
                        return
            else:
                await asyncio.sleep(0)  # let the loop send what was queued
            yield chunk

    async def close(self) -> None:
        if self._closed is not None:
            self._closed.set()
        self._alarm.ring()


def _batched(chunks: Any, batcher: Any) -> Any:
    """The chunks as the batcher hands them on: a batch is yielded (and so paced) when the
    last chunk in it would have been captured."""
    for chunk in chunks:
        out = batcher.feed(chunk)
        if out is not None:
            yield out
    rest = batcher.flush()
    if rest is not None:
        yield rest


class NullInput(PacedInput):
    """Silence, paced in real time (unpaced it would flood the connection), until closed."""

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(realtime=True)

    def chunks(self) -> Any:
        chunk = silence(self.frames_per_chunk)
        while True:
            yield chunk


class VirtualClockOutput(AudioOutput):
    """An output whose playback clock is virtual: from ``open()`` it advances in real time (or, with
    ``realtime`` false, jumps to the end of each write, so written = played), and the timeline it
    plays, silence included, goes to :meth:`emit`."""

    fade_frames = 0  # a file shows the cut exactly
    #: whether :meth:`emit` does anything with the audio (a file writes it); an output that keeps
    #: none, and has no ``on_played`` listener, only counts samples: it never decodes a ``LazyPCM``
    keeps_audio = True

    def __init__(self, realtime: bool = True, clock: Callable[[], float] = time.monotonic):
        self.realtime = realtime
        self.clock = clock
        self.sample_rate = 0
        self.queue: Optional[PlaybackQueue] = None
        self._origin = 0.0
        self._position = 0  # frames of timeline played since open()
        self._wake = Alarm()  # rung by write(): the next boundary moved
        self._pump: Optional[asyncio.Task] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closed = False
        self._announced: list[Milestone] = []  # milestones waiting for the next loop iteration

    # -- what subclasses provide ------------------------------------------------------------------

    def emit(self, pcm: bytes) -> None:
        """The next stretch of the played timeline (a file writes it)."""

    def finish(self) -> None:
        """Called once by close(), after the last emit."""

    # -- the contract -------------------------------------------------------------------------------

    async def open(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.queue = PlaybackQueue(self.sample_rate)
        self._origin = self.clock()
        self._loop = asyncio.get_running_loop()
        if self.realtime:
            self._pump = self._loop.create_task(self._run_clock(), name="voicepipe audio clock")

    def write(self, pcm: bytes, item_id: str) -> None:
        if self.queue is None or self._closed:
            return
        if self.realtime:
            self.advance()
            self.queue.write(pcm, item_id)
            self._wake.ring()
        elif self.queue.queued_frames:
            self.queue.write(pcm, item_id)
            self._play(self.queue.queued_frames)
        else:  # the clock jumps to the end of the write: it plays as it is, not through the queue
            started_at = self._origin + self._position / self.sample_rate
            pcm, milestones = self.queue.play_through(pcm, item_id, started_at)
            self._played(pcm, len(pcm) // SAMPLE_WIDTH, milestones, started_at)

    def played_ms(self, item_id: str) -> float:
        if self.queue is None:
            return 0.0
        self.advance()
        return self.queue.played_ms(item_id)

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        if self.queue is None:
            return None
        self.advance()
        return self.queue.playback(item_id)

    def clear(self) -> Optional[ItemPlayback]:
        if self.queue is None:
            return None
        self.advance()
        return self.queue.clear(self.fade_frames)

    async def drain(self) -> None:
        while self.queue is not None and not self._closed:
            self.advance()
            queued = self.queue.queued_frames
            if not queued:
                return
            await asyncio.sleep(max(queued / self.sample_rate, 0.001))

    async def close(self) -> None:
        if self._closed or self.queue is None:
            self._closed = True
            return
        if self.realtime:
            self.advance()
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        self.finish()

    # -- the clock -----------------------------------------------------------------------------------

    def advance(self) -> None:
        """Play the timeline up to now."""
        if self.queue is None or self._closed or not self.realtime:
            return
        target = int((self.clock() - self._origin) * self.sample_rate + 1e-6)  # not 399.999… for 400
        if target > self._position:
            self._play(target - self._position)

    def _play(self, frames: int) -> None:
        started_at = self._origin + self._position / self.sample_rate
        pcm, milestones = self.queue.take(frames, started_at, self.keeps_audio or self.on_played is not None)
        self._played(pcm, frames, milestones, started_at)

    def _played(self, pcm: Any, frames: int, milestones: list[Milestone], started_at: float) -> None:
        """``frames`` frames (``pcm``, unless the output keeps no audio) were played from
        ``started_at`` on: the timeline moves on by that much."""
        self._position += frames
        if self.keeps_audio or self.on_played is not None:
            pcm = pcm_bytes(pcm)  # a LazyPCM is decoded here, when the audio itself is needed
            if self.keeps_audio:
                self.emit(pcm)
            if self.on_played is not None:
                self.on_played(pcm, self.sample_rate, started_at)
        if milestones:
            self._announce(milestones)

    def _announce(self, milestones: list[Milestone]) -> None:
        # never call back into the plugin from inside one of its own calls (write, clear, ...):
        # deliver on the next loop iteration, everything announced until then in one callback
        if self.on_playback is not None and self._loop is not None:
            if not self._announced:
                self._loop.call_soon(self._deliver)
            self._announced += milestones

    def _deliver(self) -> None:
        milestones, self._announced = self._announced, []
        previous = None
        for milestone in milestones:
            # the same milestone twice in a row ("finished" after two writes) says nothing new
            if milestone != previous and self.on_playback is not None:
                self.on_playback(*milestone)
            previous = milestone

    async def _run_clock(self) -> None:
        while not self._closed:
            self.advance()
            boundary = self.queue.frames_to_next_boundary()
            timeout = MAX_TICK_S
            if boundary:
                due = self._origin + (self._position + boundary) / self.sample_rate
                timeout = min(MAX_TICK_S, max(due - self.clock(), 0.0005))
            await self._wake.sleep(timeout)


class NullOutput(VirtualClockOutput):
    """Plays on a virtual real-time clock and keeps nothing: it takes a ``LazyPCM`` and, unless an
    echo reference listens to what it plays, only counts its samples without decoding it."""

    keeps_audio = False
    accepts_lazy_pcm = True

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(option_bool(options, "realtime", True, "audio.output"))
