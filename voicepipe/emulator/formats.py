"""Audio formats the emulated service accepts and produces: PCM16 at several rates and G.711.

Input audio (``input_audio_format``) is PCM16 at ``input_audio_sampling_rate`` or G.711 μ-law /
A-law at 8 kHz. Output audio (``output_audio_format``) is PCM16 at 24 kHz (``pcm16``) or at the
rate its name says (``pcm16_16000hz``…), or G.711 at 8 kHz. Legacy hyphenated names
(``pcm16-16000hz``) are accepted as the SDK still documents them.
"""

from __future__ import annotations

import numpy as np

INPUT_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")
INPUT_SAMPLE_RATES = (8000, 16000, 24000, 44100, 48000)

OUTPUT_RATES = {
    "pcm16": 24000,
    "pcm16_8000hz": 8000,
    "pcm16_16000hz": 16000,
    "pcm16_22050hz": 22050,
    "pcm16_24000hz": 24000,
    "pcm16_44100hz": 44100,
    "pcm16_48000hz": 48000,
    "g711_ulaw": 8000,
    "g711_alaw": 8000,
}


def normalise_format(name: str) -> str:
    """``pcm16-16000hz`` → ``pcm16_16000hz``; other names unchanged."""
    return name.replace("-", "_")


def output_rate(fmt: str | None) -> int:
    """The sampling rate of an output format (24 kHz when unset)."""
    return OUTPUT_RATES.get(normalise_format(fmt or "pcm16"), 24000)


def input_rate(fmt: str | None, session_rate: int) -> int:
    """The sampling rate of input audio: 8 kHz for G.711, else the session's rate."""
    return 8000 if (fmt or "pcm16").startswith("g711") else session_rate


def bytes_per_sample(fmt: str | None) -> int:
    return 1 if (fmt or "pcm16").startswith("g711") else 2


def _ulaw_decode_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
        sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
        table[byte] = -sample if sign else sample
    return table


def _alaw_decode_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        a = byte ^ 0x55
        magnitude = (a & 0x0F) << 4
        segment = (a & 0x70) >> 4
        if segment == 0:
            magnitude += 8
        else:
            magnitude = (magnitude + 0x108) << (segment - 1)
        table[byte] = magnitude if a & 0x80 else -magnitude
    return table


_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()


def _segment(magnitude: np.ndarray) -> np.ndarray:
    """Exponent 0…7 of 15-bit magnitudes (position of the highest bit above bit 7)."""
    safe = np.maximum(magnitude, 1)
    return np.clip(np.floor(np.log2(safe)).astype(np.int32) - 7, 0, 7)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = _segment(magnitude)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32)
    mask = np.where(x >= 0, 0xD5, 0x55)
    magnitude = np.minimum(np.where(x >= 0, x, -x - 1), 32767)
    exponent = np.where(magnitude < 256, 0, _segment(magnitude))
    mantissa = np.where(magnitude < 256, magnitude >> 4, (magnitude >> (exponent + 3)) & 0x0F)
    return (((exponent << 4) | mantissa) ^ mask).astype(np.uint8).tobytes()


def decode_input(raw: bytes, fmt: str | None) -> np.ndarray:
    """Input bytes → int16 samples (an odd trailing PCM16 byte is the caller's to carry)."""
    fmt = fmt or "pcm16"
    if fmt == "g711_ulaw":
        return _ULAW_DECODE[np.frombuffer(raw, dtype=np.uint8)]
    if fmt == "g711_alaw":
        return _ALAW_DECODE[np.frombuffer(raw, dtype=np.uint8)]
    return np.frombuffer(raw, dtype="<i2")


def encode_output(pcm: np.ndarray, fmt: str | None) -> bytes:
    """int16 samples → output bytes in ``fmt``."""
    fmt = normalise_format(fmt or "pcm16")
    if fmt == "g711_ulaw":
        return ulaw_encode(pcm)
    if fmt == "g711_alaw":
        return alaw_encode(pcm)
    return pcm.astype("<i2").tobytes()
