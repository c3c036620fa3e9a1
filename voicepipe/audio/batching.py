"""Steady microphone input sent in fewer, longer appends.

Each input chunk wakes the event loop, and on a small machine the wake-up costs more than the
chunk's own work: 20 ms chunks make a session cost four to five times what 100 ms chunks do. Short
chunks are worth it where the service decides something (the start of speech, the end of a turn,
a barge-in), not in the steady middle of a silence or of a sentence. So:

* the edges leave at once, chunk by chunk: the first ``QUIET_AFTER_S`` of quiet after a sound (the
  end of a turn is heard as soon as before by any detector that needs less silence than that),
  the first ``ONSET_S`` of a sound after a steady quiet (the start of speech), and any sound
  while an answer is in progress (:attr:`InputBatcher.answering`, kept by the audio plugin: a
  barge-in is heard as soon as before);
* everything else waits and leaves ``batch_ms`` at a time, and any chunk that must leave at once
  takes what waits before it along.

Quiet means no sample louder than ``quiet_dbfs``. What the service receives is unchanged, byte for
byte and in order; audio in the steady middle arrives up to ``batch_ms`` minus one chunk later.

Inputs that pace themselves (``null``, ``wav``), the device inputs and a caller's input under
``voicepipe serve`` apply it before they wake the loop; an input that does not know the
attribute sends every chunk as it comes.
"""

from __future__ import annotations

import math
from typing import Optional

#: quiet after a sound that still leaves chunk by chunk
QUIET_AFTER_S = 1.0
#: the start of a sound (after a steady quiet) that leaves chunk by chunk
ONSET_S = 0.5
DEFAULT_BATCH_MS = 100
DEFAULT_QUIET_DBFS = -50.0


def quiet_peak(dbfs: float) -> int:
    """The largest PCM16 sample magnitude that still counts as quiet at ``dbfs`` (full scale 0)."""
    return max(int(32768 * math.pow(10.0, dbfs / 20.0)), 0)


class InputBatcher:
    """Decides, chunk by chunk, what leaves now. :meth:`feed` returns the bytes to send (one chunk,
    or waiting chunks joined with the one that ended the wait), or ``None`` while it waits;
    :meth:`holds` only says whether a chunk may wait, for an input that keeps the bytes itself."""

    def __init__(self, chunk_ms: float, batch_ms: float = DEFAULT_BATCH_MS, dbfs: float = DEFAULT_QUIET_DBFS):
        self.chunk_ms = chunk_ms
        self.batch_chunks = max(int(batch_ms // chunk_ms), 1)
        self.after_chunks = math.ceil(QUIET_AFTER_S * 1000 / chunk_ms)
        self.onset_chunks = math.ceil(ONSET_S * 1000 / chunk_ms)
        self.peak = quiet_peak(dbfs)
        #: an answer is in progress or playing: every sound leaves at once (set from the event loop,
        #: read by a device thread: a plain attribute)
        self.answering = False
        self._held: list[bytes] = []
        self._quiet_run = 0  # consecutive quiet chunks
        self._sound_run = 0  # chunks with sound since the last steady quiet
        self._waiting = 0  # chunks waiting since the last hand-on

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
        """Whether ``chunk`` may wait with those before it; false: they all leave now, with it."""
        return self.decide(self.is_quiet(chunk))

    def decide(self, quiet: bool) -> bool:
        """:meth:`holds` for a chunk whose quietness the input judged itself (a phone call's wire
        audio, before it is converted)."""
        if quiet:
            self._quiet_run += 1
            steady = self._quiet_run > self.after_chunks
            if steady:
                self._sound_run = 0
        else:
            self._quiet_run = 0
            self._sound_run += 1
            steady = self._sound_run > self.onset_chunks and not self.answering
        if steady:
            self._waiting += 1
            if self._waiting < self.batch_chunks:
                return True
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
        """What waits (at the end of the input), or ``None``."""
        return self._take() if self._held else None

    def _take(self) -> bytes:
        held = self._held
        self._held = []
        return held[0] if len(held) == 1 else b"".join(held)
