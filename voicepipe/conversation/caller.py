"""The scripted caller's voice and microphone.

:func:`turn_audio` makes the PCM a spoken turn sends: ``say`` text synthesized with espeak-ng (or
the emulator's deterministic synthesized voice, which needs nothing and is enough for the
emulator, which takes the words from its scenario), ``audio`` read from a WAV file. Nothing is ever
downloaded.

:class:`ScriptedMicrophone` is the audio input backend (``audio.input.backend: conversation``) the
audio plugin streams from. Paced (``realtime``), it behaves like a muted microphone that someone
speaks into now and then: silence in real time, the turn's speech when :meth:`speak` is called,
so the capture clock of the metrics holds. Unpaced, it sends each utterance and its trailing
silence as fast as the connection takes them and then waits for the next one.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Optional

from voicepipe.audio.base import AudioInput
from voicepipe.audio.null import Alarm
from voicepipe.audio.pcm import SAMPLE_WIDTH, frames_for_ms, silence
from voicepipe.errors import UsageError

BACKEND = "conversation"
#: silence after an unpaced utterance, so that the service's voice detection ends the turn
FAST_TRAILING_SILENCE_MS = 1500
#: what the caller says to talk over an answer when the next turn is not spoken
INTERJECTION = "Sorry, wait a moment."


def choose_engine(voice: str, needs_intelligible: bool) -> str:
    """The engine for ``say`` turns: espeak-ng when asked for or available, else the synthesized voice
    (which only the emulator understands: against a real endpoint espeak-ng is required)."""
    from voicepipe.emulator.voice import espeak_available

    if voice == "synth":
        return "synth"
    if espeak_available():
        return "espeak"
    if voice == "espeak" or needs_intelligible:
        raise UsageError(
            "say: turns need espeak-ng to speak to a real endpoint, and it is not installed "
            "(apt-get install espeak-ng, or record the turn and use audio: file.wav)"
        )
    return "synth"


#: quieter than this (about -50 dBFS) at either end of an utterance is trimmed, so that its end is
#: the end of the speech: voice_to_voice_ms is timed from there
TRIM_LEVEL = 100


def trimmed(pcm: bytes) -> bytes:
    """``pcm`` without the near-silence at its start and end."""
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) // SAMPLE_WIDTH * SAMPLE_WIDTH], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > TRIM_LEVEL)
    if not len(loud):
        return pcm
    return samples[loud[0] : loud[-1] + 1].tobytes()


def say_audio(text: str, rate: int, engine: str) -> bytes:
    from voicepipe.emulator.voice import synthesize

    return trimmed(synthesize(text, rate, engine).samples.tobytes())


def wav_audio(path: Path, rate: int) -> bytes:
    from voicepipe.audio.wav import check_supported, load_mono_pcm16, read_wav_info

    info = read_wav_info(path, where="audio")
    check_supported(info, where="audio")
    return trimmed(load_mono_pcm16(info, rate))


class ScriptedMicrophone(AudioInput):
    """An input whose speech comes from :meth:`speak` (see the module docstring)."""

    def __init__(self, realtime: bool, clock: Callable[[], float] = time.monotonic):
        self.realtime = realtime
        self.clock = clock
        self.sample_rate = 0
        self.frames_per_chunk = 0
        self.opened: Optional[asyncio.Event] = None
        self._queue: collections.deque = collections.deque()  # chunks, or callables run when reached
        self._wake: Optional[asyncio.Event] = None
        self._closed = False
        self._alarm = Alarm()

    def _events(self) -> None:
        if self.opened is None:
            self.opened = asyncio.Event()
            self._wake = asyncio.Event()

    async def wait_open(self) -> None:
        self._events()
        await self.opened.wait()

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        self._events()
        self.sample_rate = int(sample_rate)
        self.frames_per_chunk = int(frames_per_chunk)
        self.opened.set()

    def speak(self, pcm: bytes, on_spoken: Optional[Callable[[], None]] = None) -> None:
        """Queue ``pcm`` (PCM16 mono at the input rate); ``on_spoken`` runs once its last sample
        has been captured (paced) or handed over (unpaced)."""
        step = self.frames_per_chunk * SAMPLE_WIDTH
        for at in range(0, len(pcm), step):
            self._queue.append(pcm[at : at + step])
        if on_spoken is not None:
            self._queue.append(on_spoken)
        if not self.realtime:
            tail = frames_for_ms(FAST_TRAILING_SILENCE_MS, self.sample_rate)
            self._queue.extend([silence(self.frames_per_chunk)] * max(1, tail // self.frames_per_chunk))
        if self._wake is not None:
            self._wake.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if self.opened is None or not self.opened.is_set():
            raise RuntimeError("open() the input before iterating over it")
        quiet = silence(self.frames_per_chunk)
        started = self.clock()
        frames = 0
        while not self._closed:
            if self._queue:
                chunk = self._queue.popleft()
                if callable(chunk):
                    chunk()
                    continue
            elif self.realtime:
                chunk = quiet
            else:
                self._wake.clear()
                await self._wake.wait()
                continue
            frames += len(chunk) // SAMPLE_WIDTH
            if self.realtime:
                delay = started + frames / self.sample_rate - self.clock()
                if delay > 0:
                    await self._alarm.sleep(delay)
            else:
                await asyncio.sleep(0)
            if self._closed:
                return
            yield chunk

    async def close(self) -> None:
        self._closed = True
        self._alarm.ring()
        if self._wake is not None:
            self._wake.set()
