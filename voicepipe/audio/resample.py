"""Sample-rate conversion with soxr, for devices that cannot run at the session's rate and for WAV
files recorded at another rate.

soxr's int16 output differs by a unit or two from run to run and with how the stream is split into
chunks; a stream made with ``exact=True`` is resampled in float32 and rounded, so its output
depends only on its input: converting twenty 20 ms frames one by one or in one call gives the
same bytes.

Streams use soxr's ``LQ`` quality by default: its filter passes 80 % of the band (9.6 kHz of a
24 kHz signal, more than speech needs) and it returns audio after about two 20 ms chunks, where
``HQ`` holds back three or four. Whole signals (a file) use ``HQ``: latency does not matter there.
"""

from __future__ import annotations

from typing import Any

STREAM_QUALITY = "LQ"
FILE_QUALITY = "HQ"


class StreamResampler:
    """Converts a stream of PCM16 mono chunks from one rate to another, keeping state between them.

    soxr holds back a few milliseconds of audio for its filter; :meth:`flush` returns them (at the
    end of an assistant item or of the stream) and makes the resampler ready for a new stream.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = STREAM_QUALITY, exact: bool = False):
        import numpy as np
        import soxr

        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self._np = np
        self._dtype = "float32" if exact else "int16"
        self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype=self._dtype, quality=quality)

    def process(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        samples = self._np.frombuffer(pcm, dtype="<i2")
        if self._dtype == "float32":
            return self._pcm16(self._stream.resample_chunk(samples.astype(self._np.float32)))
        return self._stream.resample_chunk(samples).astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """What the filter still holds; the resampler then starts afresh."""
        tail = self._stream.resample_chunk(self._np.zeros(0, dtype=self._dtype), last=True)
        self._stream.clear()
        if self._dtype == "float32":
            return self._pcm16(tail)
        return tail.astype("<i2", copy=False).tobytes()

    def _pcm16(self, out: Any) -> bytes:
        np = self._np
        if not len(out):
            return b""
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return out.astype("<i2").tobytes()


def resample(samples: Any, in_rate: int, out_rate: int, quality: str = FILE_QUALITY) -> Any:
    """Resample a whole mono int16 numpy signal (``HQ`` quality by default)."""
    import numpy as np
    import soxr

    if int(in_rate) == int(out_rate):
        return samples
    if len(samples) == 0:
        return np.zeros(0, dtype=np.int16)
    out = soxr.resample(np.asarray(samples, dtype=np.int16), int(in_rate), int(out_rate), quality=quality)
    return np.asarray(out, dtype=np.int16)
