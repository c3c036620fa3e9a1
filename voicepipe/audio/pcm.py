"""Small PCM16 helpers shared by the audio backends and the audio plugin.

Everything here works on ``bytes`` of little-endian signed 16-bit samples. Only the helpers that
change the signal itself (stereo interleaving, G.711) import numpy, and only when first used.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

SAMPLE_WIDTH = 2  # bytes per PCM16 sample
DEFAULT_RATE = 24000

#: output_audio_format -> sample rate of the audio the service sends
OUTPUT_FORMAT_RATES = {
    "pcm16": 24000,
    "pcm16_16000hz": 16000,
    "pcm16_8000hz": 8000,
    "g711_ulaw": 8000,
    "g711_alaw": 8000,
}
G711_FORMATS = ("g711_ulaw", "g711_alaw")


def frames_for_ms(ms: float, rate: int) -> int:
    """Whole frames in ``ms`` milliseconds at ``rate`` (at least 1 for a positive duration)."""
    frames = int(round(rate * ms / 1000.0))
    return max(frames, 1) if ms > 0 else 0


def ms_for_bytes(n_bytes: int, rate: int) -> float:
    """Milliseconds of PCM16 mono audio in ``n_bytes``."""
    return n_bytes / SAMPLE_WIDTH / rate * 1000.0


def silence(frames: int, channels: int = 1) -> bytes:
    return bytes(frames * channels * SAMPLE_WIDTH)


def base64_length(text: str) -> Optional[int]:
    """The length of the bytes base64 ``text`` decodes to, from its length and padding alone
    (``None`` when it cannot be base64: not ASCII, a length that is not a multiple of 4, ``=``
    before the padding)."""
    size = len(text)
    if size % 4 or not text.isascii():
        return None
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    if text.find("=", 0, size - padding) != -1:
        return None
    return size // 4 * 3 - padding


class LazyPCM:
    """PCM16 audio still in the base64 text it arrived in, decoded only when someone asks for the
    bytes: ``len()`` is known from the text (:func:`base64_length`), ``bytes(payload)`` decodes
    (once). An output that only counts samples (the ``null`` output) never decodes.

    ``nbytes`` may be less than the text holds (an odd byte cut off). Text that
    :func:`base64_length` accepts but that holds characters outside the base64 alphabet decodes
    to silence of ``nbytes`` bytes if it cannot be decoded, and is cut or padded with silence to
    ``nbytes`` otherwise, so that what is played matches what was counted.
    """

    __slots__ = ("text", "nbytes", "_pcm")

    def __init__(self, text: str, nbytes: Optional[int] = None):
        if nbytes is None:
            nbytes = base64_length(text)
            if nbytes is None:
                raise ValueError("not base64 text")
        self.text = text
        self.nbytes = nbytes
        self._pcm: Optional[bytes] = None

    @classmethod
    def of(cls, text: str) -> Optional["LazyPCM"]:
        """A lazy payload for ``text``, or ``None`` when its length cannot be known without decoding it."""
        nbytes = base64_length(text)
        return None if nbytes is None else cls(text, nbytes)

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        pcm = self._pcm
        if pcm is None:
            import binascii

            try:
                pcm = binascii.a2b_base64(self.text)
            except (binascii.Error, ValueError):
                pcm = b""
            if len(pcm) != self.nbytes:
                pcm = pcm[: self.nbytes] + bytes(max(self.nbytes - len(pcm), 0))
            self._pcm = pcm
        return pcm

    @property
    def decoded(self) -> bool:
        """Whether the bytes have been asked for."""
        return self._pcm is not None

    def cut(self, nbytes: int) -> "LazyPCM":
        """The first ``nbytes`` bytes (at most ``len(self)``), still lazy."""
        if nbytes >= self.nbytes:
            return self
        part = LazyPCM(self.text, max(nbytes, 0))
        if self._pcm is not None:
            part._pcm = self._pcm[: part.nbytes]
        return part

    def __repr__(self) -> str:
        return f"LazyPCM({self.nbytes} bytes{', decoded' if self._pcm is not None else ''})"


def pcm_bytes(pcm: Any) -> bytes:
    """``pcm`` (bytes, a bytes-like object or a :class:`LazyPCM`) as ``bytes``."""
    return pcm if type(pcm) is bytes else bytes(pcm)


def normalise_format(fmt: Any) -> str:
    """``pcm16-16000hz`` (legacy spelling) and enum values → ``pcm16_16000hz``."""
    text = str(getattr(fmt, "value", fmt) or "pcm16").strip().lower()
    return text.replace("-", "_")


def output_format(session: Mapping[str, Any]) -> str:
    return normalise_format(session.get("output_audio_format"))


def input_format(session: Mapping[str, Any]) -> str:
    return normalise_format(session.get("input_audio_format"))


def output_rate(session: Mapping[str, Any]) -> int:
    """Sample rate of the assistant's audio in an effective session (``session.updated``)."""
    return OUTPUT_FORMAT_RATES.get(output_format(session), DEFAULT_RATE)


def input_rate(session: Mapping[str, Any]) -> int:
    """Sample rate the service expects for appended audio in an effective session."""
    if input_format(session) in G711_FORMATS:
        return 8000
    from voicepipe.serverbounds import sane_rate

    return sane_rate(session.get("input_audio_sampling_rate")) or DEFAULT_RATE


class Rechunker:
    """Cuts a stream of PCM byte strings into chunks of exactly ``chunk_bytes``."""

    def __init__(self, chunk_bytes: int):
        self.chunk_bytes = chunk_bytes
        self._pending = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._pending and len(data) == self.chunk_bytes:
            yield data  # the common case for a device that delivers whole chunks: no copy
            return
        self._pending += data
        size = self.chunk_bytes
        while len(self._pending) >= size:
            chunk = bytes(self._pending[:size])
            del self._pending[:size]
            yield chunk

    def rest(self) -> Optional[bytes]:
        """What is left over (shorter than a chunk), or ``None``."""
        if not self._pending:
            return None
        data = bytes(self._pending)
        self._pending.clear()
        return data


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono PCM16 signals of the same length → one stereo PCM16 signal (left on channel 0)."""
    import numpy as np

    a = np.frombuffer(left, dtype="<i2")
    b = np.frombuffer(right, dtype="<i2")
    n = min(len(a), len(b))
    stereo = np.empty((len(a), 2), dtype="<i2")
    stereo[:, 0] = a
    stereo[:n, 1] = b[:n]
    stereo[n:, 1] = 0
    return stereo.tobytes()


# -- G.711 (telephony formats) -----------------------------------------------------------------------

_G711_DECODE: dict[str, Any] = {}
_G711_ENCODE: dict[str, Any] = {}


def _ulaw_to_linear(codes: Any) -> Any:
    import numpy as np

    u = ~codes.astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_to_linear(codes: Any) -> Any:
    import numpy as np

    a = codes.astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _tables(fmt: str) -> tuple[Any, Any]:
    import numpy as np

    if fmt not in _G711_DECODE:
        codes = np.arange(256, dtype=np.uint8)
        decode = _ulaw_to_linear(codes) if fmt == "g711_ulaw" else _alaw_to_linear(codes)
        # encode by nearest decoded level: sort the 256 levels and search every 16-bit value once;
        # of mu-law's two zeros (0x7F, 0xFF) the higher code sorts first: G.711 encodes 0 as 0xFF
        order = np.lexsort((-codes.astype(np.int32), decode))
        levels = decode[order].astype(np.int32)
        values = np.arange(-32768, 32768, dtype=np.int32)
        pos = np.clip(np.searchsorted(levels, values), 1, 255)
        lower, upper = levels[pos - 1], levels[pos]
        nearest = np.where(values - lower <= upper - values, pos - 1, pos)
        _G711_DECODE[fmt] = decode
        _G711_ENCODE[fmt] = order[nearest].astype(np.uint8)
    return _G711_DECODE[fmt], _G711_ENCODE[fmt]


def g711_decode(data: bytes, fmt: str) -> bytes:
    """G.711 (``g711_ulaw`` / ``g711_alaw``) bytes → PCM16."""
    import numpy as np

    decode, _ = _tables(fmt)
    return decode[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def g711_quiet_codes(fmt: str, peak: int) -> bytes:
    """The G.711 codes whose level is no louder than ``peak`` (a PCM16 magnitude): a frame is
    quiet when ``frame.translate(None, codes)`` leaves nothing, with no decoding."""
    decode, _ = _tables(fmt)
    return bytes(code for code in range(256) if abs(int(decode[code])) <= peak)


def g711_encode(pcm: bytes, fmt: str) -> bytes:
    """PCM16 → G.711 (``g711_ulaw`` / ``g711_alaw``) bytes."""
    import numpy as np

    _, encode = _tables(fmt)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return encode[samples].tobytes()
