"""The emulator's voice: deterministic synthesized speech whose length follows the text.

The default engine (``synth``) needs only numpy. Every word becomes one voiced syllable per vowel
group: a harmonic series on a falling pitch contour, shaped by the first three formants of the
syllable's vowel, with a short noise burst for a leading consonant. Words are separated by short
gaps, commas and sentence ends by longer pauses, so the audio is clearly non-silent, sounds vaguely
like speech, passes any energy voice detector, and lasts about as long as a person would take to
say the text. The same text always gives the same samples.

The ``espeak`` engine runs ``espeak-ng`` (when installed) for intelligible speech; when it is not
installed the synthesized voice is used instead.

Both are cached per (text, format, engine): a response re-uses the encoded, base64 chunks, so the
per-delta work at serving time is only sending a ready string.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import shutil
import subprocess
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from voicepipe.emulator.formats import encode_output, normalise_format, output_rate
from voicepipe.emulator.frames import b64text

log = logging.getLogger(__name__)

ENGINES = ("synth", "espeak")
CHUNK_MS = 100  # audio per response.audio.delta

SYLLABLE_MS = 150.0
WORD_GAP_MS = 45.0
COMMA_PAUSE_MS = 170.0
SENTENCE_PAUSE_MS = 300.0
ONSET_MS = 25.0
PEAK = 0.6

# first three formants (Hz) of the vowel that names a syllable
_FORMANTS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (300.0, 2200.0, 2950.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (320.0, 900.0, 2240.0),
    "y": (300.0, 2200.0, 2950.0),
}
_FORMANT_GAIN = (1.0, 0.55, 0.25)
_FORMANT_WIDTH = (90.0, 110.0, 160.0)
_DIGIT_VOWELS = "eoueioieae"  # zero, one, two… (roughly)

_PIECE = re.compile(r"\s*\S+")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")


@dataclass(frozen=True)
class Speech:
    """Synthesized speech: int16 samples, and when each transcript piece starts."""

    samples: np.ndarray
    rate: int
    pieces: tuple[str, ...]  # consecutive parts of the text, joined they give it back
    starts_ms: tuple[float, ...]  # where each piece starts in the audio
    ends_ms: tuple[float, ...] = ()  # where each piece's sound ends (the pause after it excluded)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.rate

    def transcript_until(self, audio_ms: float) -> str:
        """The pieces that started within the first ``audio_ms`` of the audio."""
        return "".join(p for p, start in zip(self.pieces, self.starts_ms) if start < audio_ms)


@dataclass(frozen=True)
class AudioStep:
    """One ``response.audio.delta``, and the transcript pieces that start in it (sent first)."""

    transcript: tuple[str, ...]
    audio_b64: str
    start_ms: float
    duration_ms: float


@dataclass(frozen=True)
class SpokenText:
    """A text ready to stream: transcript-annotated audio chunks in the output format."""

    text: str
    steps: tuple[AudioStep, ...]
    duration_ms: float
    pieces: tuple[str, ...]
    starts_ms: tuple[float, ...]
    ends_ms: tuple[float, ...] = ()

    def word_timing(self, index: int) -> tuple[int, int]:
        """``(audio_offset_ms, audio_duration_ms)`` of the ``index``-th piece, whole milliseconds."""
        start = self.starts_ms[index]
        end = self.ends_ms[index] if index < len(self.ends_ms) else self.duration_ms
        return int(round(start)), max(0, int(round(end - start)))

    def transcript_until(self, audio_end_ms: float) -> str:
        """The transcript of the first ``audio_end_ms`` of the audio (pieces that started by then)."""
        return "".join(p for p, start in zip(self.pieces, self.starts_ms) if start < audio_end_ms)


def split_pieces(text: str) -> list[str]:
    """Words with their leading whitespace; joined they give ``text`` back exactly."""
    pieces = _PIECE.findall(text)
    if not pieces:
        return [text] if text else []
    consumed = sum(len(p) for p in pieces)
    if consumed < len(text):
        pieces[-1] += text[consumed:]
    return pieces


def _syllable_vowels(word: str) -> list[str]:
    lower = word.lower()
    vowels = [group[0] for group in _VOWEL_GROUP.findall(lower)]
    vowels += [_DIGIT_VOWELS[int(ch)] for ch in lower if ch.isdigit()]
    if not vowels and any(ch.isalpha() for ch in lower):
        vowels = ["e"]  # "hmm", "psst": still a syllable
    return vowels


def _pause_after(word: str) -> float:
    stripped = word.rstrip()
    if stripped.endswith((".", "!", "?", ";", ":")):
        return SENTENCE_PAUSE_MS
    if stripped.endswith((",", "-", "—")):
        return COMMA_PAUSE_MS
    return WORD_GAP_MS


def _syllable(vowel: str, f0_start: float, f0_end: float, ms: float, onset: bool, rate: int, seed: int) -> np.ndarray:
    n = max(1, int(rate * ms / 1000.0))
    f0 = np.linspace(f0_start, f0_end, n)
    phase = 2.0 * np.pi * np.cumsum(f0) / rate
    mean_f0 = 0.5 * (f0_start + f0_end)
    harmonics = np.arange(1, max(2, int(min(3800.0, rate / 2 - 200) / mean_f0)) + 1, dtype=np.float64)
    amplitude = np.zeros_like(harmonics)
    for formant, gain, width in zip(_FORMANTS.get(vowel, _FORMANTS["e"]), _FORMANT_GAIN, _FORMANT_WIDTH):
        amplitude += gain / (1.0 + ((harmonics * mean_f0 - formant) / width) ** 2)
    amplitude *= 1.0 / np.sqrt(harmonics)
    voiced = amplitude @ np.sin(np.outer(harmonics, phase))
    attack, release = int(rate * 0.015), int(rate * 0.035)
    envelope = np.ones(n)
    if n > attack + release:
        envelope[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack))
        envelope[-release:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, release))
    voiced *= envelope
    if not onset:
        return voiced
    burst_n = int(rate * ONSET_MS / 1000.0)
    noise = np.random.default_rng(seed).standard_normal(burst_n + 1)
    burst = np.diff(noise) * 0.08 * np.hanning(burst_n)  # differentiated noise: a hiss
    return np.concatenate([burst, voiced])


@functools.lru_cache(maxsize=32)
def _synth(text: str, rate: int) -> Speech:
    pieces = split_pieces(text)
    total_syllables = sum(len(_syllable_vowels(p)) for p in pieces) or 1
    question = text.rstrip().endswith("?")
    parts: list[np.ndarray] = []
    starts: list[float] = []
    ends: list[float] = []
    position = 0  # samples so far
    index = 0
    for piece in pieces:
        starts.append(1000.0 * position / rate)
        word = piece.strip()
        seed = zlib.crc32(word.encode("utf-8"))
        vowels = _syllable_vowels(word)
        consonants = sum(ch.isalpha() for ch in word) - len(vowels)
        for k, vowel in enumerate(vowels):
            progress = index / total_syllables
            f0 = 150.0 - 30.0 * progress + 9.0 * math.sin(1.7 * index + (seed % 7))
            f0_end = f0 - 6.0
            if question and index == total_syllables - 1:
                f0_end = f0 + 35.0
            ms = SYLLABLE_MS + 12.0 * max(0, consonants) / max(1, len(vowels)) + (seed >> (k % 8)) % 30
            onset = k == 0 and word[:1].isalpha() and word[:1].lower() not in "aeiouy"
            part = _syllable(vowel, f0, f0_end, ms, onset, rate, seed + k)
            parts.append(part)
            position += len(part)
            index += 1
        ends.append(1000.0 * position / rate)
        gap = np.zeros(int(rate * _pause_after(word) / 1000.0))
        parts.append(gap)
        position += len(gap)
    if not parts:
        return Speech(np.zeros(0, dtype=np.int16), rate, tuple(pieces), tuple(starts), tuple(ends))
    signal = np.concatenate(parts)
    peak = float(np.max(np.abs(signal))) or 1.0
    samples = np.round(signal * (PEAK * 32767.0 / peak)).astype(np.int16)
    samples.setflags(write=False)
    return Speech(samples, rate, tuple(pieces), tuple(starts), tuple(ends))


def cached_speech(text: str, rate: int) -> Speech:
    """The synthesized voice saying ``text`` (cached): where its words fall, for timing guesses."""
    return _synth(text, rate)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=32)
def _espeak(text: str, rate: int) -> Speech:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "170", "--stdout"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    source_rate = int.from_bytes(wav[24:28], "little") or 22050
    data_at = wav.find(b"data")
    raw = wav[data_at + 8 :] if data_at >= 0 else wav[44:]
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    if source_rate != rate and len(samples):
        import soxr

        samples = np.clip(soxr.resample(samples.astype(np.float32), source_rate, rate), -32768, 32767).astype(np.int16)
    pieces = split_pieces(text)
    duration_ms = 1000.0 * len(samples) / rate
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(duration_ms * at / max(1, len(text)))
        at += len(piece)
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    samples.setflags(write=False)
    ends = tuple(offsets[1:]) + (duration_ms,)  # espeak gives no word ends: up to the next word
    return Speech(samples, rate, tuple(pieces), tuple(offsets), ends if pieces else ())


def synthesize(text: str, rate: int = 24000, engine: str = "synth") -> Speech:
    """Speech for ``text`` at ``rate`` Hz; ``engine`` is ``synth`` (default) or ``espeak``."""
    if engine == "espeak":
        if espeak_available():
            try:
                return _espeak(text, rate)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("espeak-ng failed (%s); using the synthesized voice", exc)
        else:
            log.warning("espeak-ng is not installed; using the synthesized voice")
    return _synth(text, rate)


_SPOKEN_CACHE_SIZE = 128  # ready answers; a 5 s answer is about 320 kB of base64
_spoken_cache: "OrderedDict[tuple, SpokenText]" = OrderedDict()
_spoken_lock = threading.Lock()


def cached_spoken(text: str, fmt: str = "pcm16", engine: str = "synth") -> Optional[SpokenText]:
    """The ready chunks for ``text`` if they were built before, else ``None`` (never blocks long)."""
    key = (text, normalise_format(fmt), engine)
    with _spoken_lock:
        hit = _spoken_cache.get(key)
        if hit is not None:
            _spoken_cache.move_to_end(key)
        return hit


def spoken(text: str, fmt: str = "pcm16", engine: str = "synth") -> SpokenText:
    """``text`` as ready-to-send ``CHUNK_MS`` audio deltas in output format ``fmt`` (cached)."""
    hit = cached_spoken(text, fmt, engine)
    if hit is not None:
        return hit
    fmt = normalise_format(fmt)
    result = _build_spoken(text, fmt, engine)
    with _spoken_lock:
        _spoken_cache[(text, fmt, engine)] = result
        while len(_spoken_cache) > _SPOKEN_CACHE_SIZE:
            _spoken_cache.popitem(last=False)
    return result


def _build_spoken(text: str, fmt: str, engine: str) -> SpokenText:
    rate = output_rate(fmt)
    speech = synthesize(text, rate, engine)
    per_chunk = max(1, rate * CHUNK_MS // 1000)
    steps = []
    piece_index = 0
    for start in range(0, len(speech.samples), per_chunk):
        chunk = speech.samples[start : start + per_chunk]
        start_ms = 1000.0 * start / rate
        end_ms = 1000.0 * (start + len(chunk)) / rate
        first = piece_index
        while piece_index < len(speech.pieces) and speech.starts_ms[piece_index] < end_ms:
            piece_index += 1
        steps.append(
            AudioStep(
                transcript=speech.pieces[first:piece_index],
                audio_b64=b64text(encode_output(chunk, fmt)),
                start_ms=start_ms,
                duration_ms=end_ms - start_ms,
            )
        )
    if piece_index < len(speech.pieces):  # text with no sound of its own (e.g. only punctuation)
        tail = speech.pieces[piece_index:]
        if steps:
            last = steps[-1]
            steps[-1] = AudioStep(last.transcript + tail, last.audio_b64, last.start_ms, last.duration_ms)
        else:
            steps.append(AudioStep(tail, "", 0.0, 0.0))
    return SpokenText(text, tuple(steps), speech.duration_ms, speech.pieces, speech.starts_ms, speech.ends_ms)
