"""What the two PortAudio backends (``pyaudio``, ``sounddevice``) share: callback streams bridged to
the event loop, the playback queue, resampling when the device refuses the session's rate.

Input and output are separate streams, never one duplex stream: full duplex through ALSA's pulse
plugin can die silently with PortAudio 19.6. A stream is opened and closed in a worker thread (that
can take tens of milliseconds); the callbacks run on PortAudio's thread and reach the loop only
through ``loop.call_soon_threadsafe``.

Options (``audio.input`` / ``audio.output``): ``device`` (``default``, an index, or part of a name;
``voicepipe devices`` lists them), ``latency`` (seconds, or ``low`` / ``high``; PortAudio's default
otherwise), and for output ``fade_ms`` (default 5: the ramp that avoids a click on barge-in).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, AsyncIterator, Callable, Mapping, Optional

from voicepipe.audio.base import AudioInput, AudioOutput, ItemPlayback
from voicepipe.audio.null import option_ms
from voicepipe.audio.pcm import SAMPLE_WIDTH, Rechunker, frames_for_ms
from voicepipe.audio.playback import Milestone, PlaybackQueue
from voicepipe.errors import UsageError
from voicepipe.lazyimport import lazy_module

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

#: the queue may run dry this long before the resampler's held-back tail is released into it
RESAMPLER_FLUSH_MARGIN_S = 0.01


def latency_option(options: Mapping[str, Any], direction: str) -> Any:
    value = options.get("latency")
    if value is None or value in ("low", "high"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 2:
        return float(value)
    raise UsageError(f"audio.{direction}.latency: expected low, high or seconds between 0 and 2, got {value!r}")


def choose_rate(session_rate: int, device_default: float, supports: Callable[[int], bool]) -> Optional[int]:
    """The session's rate if the device takes it, else the device's default rate, else ``None``."""
    if supports(session_rate):
        return session_rate
    fallback = int(round(device_default or 0))
    if fallback and fallback != session_rate and supports(fallback):
        return fallback
    return None


class DeviceOutput(AudioOutput):
    """Speaker playback through a PortAudio callback stream; the played counter is advanced by the
    callback, frames actually handed to the device."""

    backend = "device"

    def __init__(self, options: Mapping[str, Any]):
        self.device = options.get("device", "default")
        self.latency = latency_option(options, "output")
        self.fade_ms = option_ms(options, "fade_ms", 5, "audio.output")
        self.sample_rate = 0
        self.device_rate = 0
        self.latency_s = 0.0
        self.device_name = ""
        self.queue: Optional[PlaybackQueue] = None
        self.underflows = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._resampler: Any = None
        self._resampler_item: Optional[str] = None
        self._flush_timer: Optional[asyncio.TimerHandle] = None
        self._writes = 0
        self._fade_frames = 0
        self._closed = False

    # -- subclasses ------------------------------------------------------------------------------

    def _start_stream(self, session_rate: int) -> tuple[int, float]:
        """Open and start the stream (worker thread); return (device rate, output latency s)."""
        raise NotImplementedError

    def _stop_stream(self) -> None:
        """Stop and close the stream (worker thread); must not raise."""

    # -- the contract ----------------------------------------------------------------------------

    async def open(self, sample_rate: int) -> None:
        self._loop = asyncio.get_running_loop()
        self.sample_rate = int(sample_rate)
        # the queue exists before the stream starts: the first callback may come at once
        self.device_rate, self.latency_s = await asyncio.to_thread(self._start_stream, self.sample_rate)
        self._fade_frames = frames_for_ms(self.fade_ms, self.device_rate)
        if self.device_rate != self.sample_rate:
            from voicepipe.audio.resample import StreamResampler

            self._resampler = StreamResampler(self.sample_rate, self.device_rate)

    async def probe(self, sample_rate: int) -> None:
        """Check, before any connection, that the device exists and takes a usable rate."""
        await asyncio.to_thread(self._probe, int(sample_rate))

    def _probe(self, session_rate: int) -> None:
        """Resolve the device and its rate without opening a stream (worker thread); raise
        :class:`UsageError` when it cannot be used."""

    def _make_queue(self, device_rate: int) -> PlaybackQueue:
        """Called by ``_start_stream`` once the device rate is known, before the stream starts."""
        self.queue = PlaybackQueue(device_rate)
        return self.queue

    def write(self, pcm: bytes, item_id: str) -> None:
        queue = self.queue
        if queue is None or self._closed:
            return
        if self._resampler is not None:
            if self._resampler_item is not None and item_id != self._resampler_item:
                queue.write(self._resampler.flush(), self._resampler_item)
            self._resampler_item = item_id
            pcm = self._resampler.process(pcm)
            self._schedule_flush()
        queue.write(pcm, item_id)

    def played_ms(self, item_id: str) -> float:
        return self.queue.played_ms(item_id) if self.queue is not None else 0.0

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        return self.queue.playback(item_id) if self.queue is not None else None

    def clear(self) -> Optional[ItemPlayback]:
        if self.queue is None:
            return None
        if self._resampler is not None:
            self._resampler.flush()  # what it held back is dropped with the rest
            self._resampler_item = None
        return self.queue.clear(self._fade_frames)

    async def drain(self) -> None:
        self._flush_resampler()
        while self.queue is not None and not self._closed:
            queued = self.queue.queued_frames
            if not queued:
                break
            await asyncio.sleep(max(queued / self.queue.rate, 0.005))
        if not self._closed and self.latency_s:
            await asyncio.sleep(self.latency_s)  # what the device still buffers

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._stop_stream)

    # -- the device thread ---------------------------------------------------------------------------

    def _fill(self, frames: int) -> bytes:
        """The next ``frames`` frames for the device (called from the PortAudio callback)."""
        try:
            heard_at = time.monotonic() + self.latency_s
            pcm, milestones = self.queue.take(frames, heard_at)
            on_played = self.on_played
            if on_played is not None:
                on_played(pcm, self.queue.rate, heard_at)
            if milestones:
                self._loop.call_soon_threadsafe(self._deliver, milestones)
            return pcm
        except RuntimeError:  # the loop is closing: play out silence until the stream stops
            return bytes(frames * SAMPLE_WIDTH)

    def _deliver(self, milestones: list[Milestone]) -> None:
        callback = self.on_playback
        if callback is not None:
            for kind, item_id in milestones:
                callback(kind, item_id)

    # -- the resampler's tail ------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        """Release the resampler's held-back audio just before the queue would run dry, unless more
        audio arrives first (then the filter continues seamlessly)."""
        self._writes += 1
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._loop is None or self.queue is None:
            return
        due = max(self.queue.queued_frames / self.queue.rate - RESAMPLER_FLUSH_MARGIN_S, 0.0)
        self._flush_timer = self._loop.call_later(due, self._flush_if_idle, self._writes)

    def _flush_if_idle(self, writes: int) -> None:
        if writes == self._writes:
            self._flush_resampler()

    def _flush_resampler(self) -> None:
        if self._resampler is not None and self._resampler_item is not None and self.queue is not None:
            self.queue.write(self._resampler.flush(), self._resampler_item)


class DeviceInput(AudioInput):
    """Microphone capture through a PortAudio callback stream, in chunks of the session's size."""

    backend = "device"

    def __init__(self, options: Mapping[str, Any]):
        self.device = options.get("device", "default")
        self.latency = latency_option(options, "input")
        self.sample_rate = 0
        self.frames_per_chunk = 0
        self.device_rate = 0
        self.device_name = ""
        self.overflows = 0
        self._queue: Optional[asyncio.Queue] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._resampler: Any = None
        self._closed = False

    def _start_stream(self, session_rate: int, frames_per_chunk: int) -> tuple[int, float]:
        """Open and start the stream (worker thread); return (device rate, input latency s)."""
        raise NotImplementedError

    def _stop_stream(self) -> None:
        """Stop and close the stream (worker thread); must not raise."""

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.sample_rate = int(sample_rate)
        self.frames_per_chunk = int(frames_per_chunk)
        self.device_rate, self.latency_s = await asyncio.to_thread(self._start_stream, self.sample_rate, self.frames_per_chunk)
        if self.device_rate != self.sample_rate:
            from voicepipe.audio.resample import StreamResampler

            self._resampler = StreamResampler(self.device_rate, self.sample_rate)

    async def probe(self, sample_rate: int) -> None:
        """Check, before any connection, that the device exists and takes a usable rate."""
        await asyncio.to_thread(self._probe, int(sample_rate))

    def _probe(self, session_rate: int) -> None:
        """Resolve the device and its rate without opening a stream (worker thread); raise
        :class:`UsageError` when it cannot be used."""

    def device_frames_per_chunk(self, device_rate: int) -> int:
        """Frames per device buffer: one session chunk's duration at the device's rate."""
        return max(int(round(self.frames_per_chunk * device_rate / self.sample_rate)), 1)

    def _captured(self, data: bytes) -> None:
        """A buffer from the device (called from the PortAudio callback)."""
        batcher = self.batcher
        if batcher is not None:
            data = batcher.feed(data)  # while it waits, the loop is not woken for it
            if data is None:
                return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._queue.put_nowait, data)

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if self._queue is None:
            raise RuntimeError("open() the input before iterating over it")
        queue = self._queue
        rechunker = Rechunker(self.frames_per_chunk * SAMPLE_WIDTH)
        resampler = self._resampler
        batched = self.batcher is not None
        while True:
            data = await queue.get()
            if data is None:
                return
            if resampler is not None:
                data = resampler.process(data)
            if batched:  # what the device thread handed on together leaves together
                chunks = list(rechunker.feed(data))
                if chunks:
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                continue
            for chunk in rechunker.feed(data):
                yield chunk

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._stop_stream)
        if self._queue is not None:
            held = self.batcher.flush() if self.batcher is not None else None
            if held is not None:
                self._queue.put_nowait(held)
            self._queue.put_nowait(None)
