"""A quiet microphone sent in fewer, longer appends.

Each input chunk wakes the event loop, and on a small machine the wake-up costs more than the
chunk's own work: 20 ms chunks make a session cost about four times what 100 ms chunks do. Short
chunks are worth it while someone speaks (the service hears the start and the end of a turn
sooner), not while the room is quiet. So once the input has been quiet (no sample louder than
``quiet_dbfs``) for ``QUIET_AFTER_S``, quiet chunks are held and handed on together, ``batch_ms``
at a time; a louder chunk is handed on at once with whatever was held before it.

What the service receives is unchanged, byte for byte and in order; quiet audio arrives up to
``batch_ms`` minus one chunk later, audio after a sound never later. The hold-off keeps the first
second of quiet after speech in short chunks, so the end of a turn is heard as soon as before by
any detector that needs less than that much silence.

Inputs that pace themselves (``null``, ``wav``) and the device inputs apply it before they wake
the loop; an input that does not know the attribute sends every chunk as it comes.
"""

from __future__ import annotations

import math
from typing import Optional

#: how long the input must stay quiet before chunks are held
QUIET_AFTER_S = 1.0
DEFAULT_BATCH_MS = 100
DEFAULT_QUIET_DBFS = -50.0


def quiet_peak(dbfs: float) -> int:
    """The largest PCM16 sample magnitude that still counts as quiet at ``dbfs`` (full scale 0)."""
    return max(int(32768 * math.pow(10.0, dbfs / 20.0)), 0)


class QuietBatcher:
    """Decides, chunk by chunk, what to hand on now. :meth:`feed` returns the bytes to send (one
    chunk, or held quiet chunks joined, with the chunk that ended the hold), or ``None`` to hold."""

    def __init__(self, chunk_ms: float, batch_ms: float = DEFAULT_BATCH_MS, dbfs: float = DEFAULT_QUIET_DBFS):
        self.batch_chunks = max(int(batch_ms // chunk_ms), 1)
        self.after_chunks = math.ceil(QUIET_AFTER_S * 1000 / chunk_ms)
        self.peak = quiet_peak(dbfs)
        self._held: list[bytes] = []
        self._quiet_run = 0
        self._waiting = 0  # chunks held since the last hand-on

    @property
    def enabled(self) -> bool:
        return self.batch_chunks > 1

    def is_quiet(self, chunk: bytes) -> bool:
        if not chunk.strip(b"\0"):
            return True  # digital silence, the common case of a muted or null input: no numpy
        import numpy

        samples = numpy.frombuffer(chunk, dtype="<i2", count=len(chunk) // 2)
        peak = self.peak
        return int(samples.max()) <= peak and int(samples.min()) >= -peak

    def holds(self, chunk: bytes) -> bool:
        """Whether ``chunk`` may wait with those held before it; false: they all leave now, with
        it. For an input that keeps the bytes itself and only needs to know when to wake."""
        if self.is_quiet(chunk):
            self._quiet_run += 1
            if self._quiet_run > self.after_chunks:
                self._waiting += 1
                if self._waiting < self.batch_chunks:
                    return True
        else:
            self._quiet_run = 0
        self._waiting = 0
        return False

    def feed(self, chunk: bytes) -> Optional[bytes]:
        if self.holds(chunk):
            self._held.append(chunk)
            return None
        if self._held:
            self._held.append(chunk)
            return self._take()
        return chunk

    def flush(self) -> Optional[bytes]:
        """What is held (at the end of the input), or ``None``."""
        return self._take() if self._held else None

    def _take(self) -> bytes:
        held = self._held
        self._held = []
        return held[0] if len(held) == 1 else b"".join(held)
