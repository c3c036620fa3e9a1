"""The client echo reference: what the speaker played, lined up with the microphone in time.

With ``input_audio_echo_cancellation: {reference_source: client, channels: 2}`` the service takes
stereo input: the microphone on channel 0 and the signal the client played on channel 1. The output
backend hands every block it plays to :meth:`EchoReference.played` with the time its first sample
is heard; the audio plugin asks for the window that matches each microphone chunk's capture time.
Both clocks are ``time.monotonic()``, so the pairing holds whatever the two devices' buffering.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

from voicepipe.audio.pcm import SAMPLE_WIDTH

#: how much played audio is kept for pairing
KEEP_S = 2.0
#: a block whose time differs from where the timeline expects it by more than this re-anchors it
#: (device callbacks jitter by a few milliseconds; a real gap or clock drift moves further)
REANCHOR_S = 0.02


class EchoReference:
    """The played signal of the last :data:`KEEP_S` seconds, at ``rate``, on the monotonic clock."""

    def __init__(self, rate: int):
        self.rate = int(rate)
        self._incoming: deque[tuple[bytes, int, float]] = deque()  # appended from any thread
        self._buffer = bytearray()
        self._start: Optional[float] = None  # time of self._buffer[0]
        self._resampler: Any = None
        self._resampler_rate = 0

    def played(self, pcm: bytes, rate: int, started_at: float) -> None:
        """A block the output played (callable from a device thread: one deque append)."""
        self._incoming.append((pcm, rate, started_at))

    def window(self, start: float, frames: int) -> bytes:
        """The ``frames`` played samples from time ``start`` on (silence where nothing played)."""
        self._absorb()
        if self._start is None:
            return bytes(frames * SAMPLE_WIDTH)
        offset = int(round((start - self._start) * self.rate)) * SAMPLE_WIDTH
        size = frames * SAMPLE_WIDTH
        lo, hi = max(offset, 0), min(offset + size, len(self._buffer))
        if lo >= hi:
            return bytes(size)
        return bytes(lo - offset) + bytes(self._buffer[lo:hi]) + bytes(offset + size - hi)

    def _absorb(self) -> None:
        incoming = self._incoming
        while incoming:
            pcm, rate, started_at = incoming.popleft()
            if rate != self.rate:
                pcm, started_at = self._convert(pcm, rate, started_at)
            self._place(pcm, started_at)
        keep = int(KEEP_S * self.rate) * SAMPLE_WIDTH
        excess = len(self._buffer) - keep
        if excess > 0:
            del self._buffer[:excess]
            self._start += excess / SAMPLE_WIDTH / self.rate

    def _place(self, pcm: bytes, started_at: float) -> None:
        if self._start is None:
            self._start = started_at
            self._buffer += pcm
            return
        expected = self._start + len(self._buffer) / SAMPLE_WIDTH / self.rate
        drift = started_at - expected
        if abs(drift) > REANCHOR_S:
            if 0 < drift < KEEP_S:
                self._buffer += bytes(int(round(drift * self.rate)) * SAMPLE_WIDTH)
            elif drift < 0 and -drift * self.rate * SAMPLE_WIDTH < len(self._buffer):
                del self._buffer[len(self._buffer) - int(round(-drift * self.rate)) * SAMPLE_WIDTH :]
            else:
                self._buffer.clear()
                self._start = started_at
        self._buffer += pcm

    def _convert(self, pcm: bytes, rate: int, started_at: float) -> tuple[bytes, float]:
        from voicepipe.audio.resample import StreamResampler

        if self._resampler is None or self._resampler_rate != rate:
            self._resampler = StreamResampler(rate, self.rate)
            self._resampler_rate = rate
        converted = self._resampler.process(pcm)
        # what comes out now entered the filter earlier: date it from the end of this block
        end = started_at + len(pcm) / SAMPLE_WIDTH / rate
        return converted, end - len(converted) / SAMPLE_WIDTH / self.rate
