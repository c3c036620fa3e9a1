"""Energy voice activity detection on the appended audio's own timeline.

Audio is cut into 10 ms frames. A frame's speech likelihood is its RMS level mapped linearly from
-60 dBFS (0.0) to -15 dBFS (1.0); a frame is voiced when that likelihood reaches ``threshold``, so
threshold 0.5 means about -37 dBFS, 0.3 about -46 dBFS, 0.8 about -24 dBFS.

Speech starts once ``speech_duration_ms`` of consecutive voiced frames are seen (30 ms when the
session leaves it unset); ``audio_start_ms`` is where that voiced run began minus
``prefix_padding_ms`` (never before 0), as the committed item includes the padding. Speech stops
once ``silence_duration_ms`` of unvoiced audio follows the last voiced frame; ``audio_end_ms`` is
the end of that last voiced frame.

``end_hold`` approximates a semantic end-of-utterance detector: when ``silence_duration_ms`` of
silence is reached it is asked, with the milliseconds from the first to the last voiced frame of
the speech so far, how much silence must follow before the utterance ends (at least the silence
duration); ``None`` keeps the plain energy detector (``server_vad``).

All times are milliseconds of audio appended since the session began, so the events come out the
same whether the client streams in real time or pushes a whole file at once. The detector keeps
only counters and at most one partial frame, whatever the amount of audio.

Every append of every session goes through :meth:`EnergyVad.feed`, so it decides cheaply what is
clearly on one side of the threshold: a frame's energy (its exact sum of squares) is compared with
the energy the threshold stands for, and only a frame within 0.005 dB of it is decided by the
formula above, in the float32 arithmetic it has always used; the decisions are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

FRAME_MS = 10
FLOOR_DBFS = -60.0
CEILING_DBFS = -15.0
DEFAULT_MIN_SPEECH_MS = 30


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" | "stop"
    ms: int


#: relative width, in energy, of the band around the threshold decided by the formula (±0.004 dB)
SURE_MARGIN = 1e-3
_EMPTY = np.zeros(0, dtype=np.int16)


def speech_likelihood(rms: np.ndarray) -> np.ndarray:
    """RMS (int16 full scale = 32768) → 0…1, linear in dBFS between the floor and the ceiling."""
    dbfs = 20.0 * np.log10(np.maximum(rms, 1e-3) / 32768.0)
    return np.clip((dbfs - FLOOR_DBFS) / (CEILING_DBFS - FLOOR_DBFS), 0.0, 1.0)


def voiced_by_formula(frames: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each row of int16 ``frames`` is voiced: its RMS's likelihood reaches ``threshold``."""
    wide = frames.astype(np.float32)
    return speech_likelihood(np.sqrt(np.mean(wide * wide, axis=1))) >= threshold


def energy_bounds(threshold: float, frame_samples: int) -> "tuple[float, float] | None":
    """Sums of squares of a frame below which it is surely unvoiced and above which it is surely
    voiced at ``threshold``; ``None`` when the threshold is not in (0, 1] (every frame is then
    decided by the formula)."""
    if not 0.0 < threshold <= 1.0:
        return None
    dbfs = FLOOR_DBFS + threshold * (CEILING_DBFS - FLOOR_DBFS)
    energy = frame_samples * 32768.0**2 * 10.0 ** (dbfs / 10.0)
    return energy * (1.0 - SURE_MARGIN), energy * (1.0 + SURE_MARGIN)


class EnergyVad:
    """Streaming detector: :meth:`feed` samples, get start/stop events with their audio times."""

    def __init__(
        self,
        rate: int,
        *,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        speech_duration_ms: Optional[int] = None,
        timeline_ms: int = 0,
        end_hold: Optional[Callable[[int], float]] = None,
    ):
        self.end_hold = end_hold
        self.rate = rate
        self.threshold = float(threshold)
        self.prefix_padding_ms = int(prefix_padding_ms)
        self.silence_frames = max(1, -(-int(silence_duration_ms) // FRAME_MS))
        self.min_speech_frames = max(1, -(-int(speech_duration_ms or DEFAULT_MIN_SPEECH_MS) // FRAME_MS))
        self.frame_samples = max(1, rate * FRAME_MS // 1000)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = int(timeline_ms) // FRAME_MS  # frames consumed since the session began
        self.speaking = False
        self._run_start: Optional[int] = None  # first frame of the current voiced run
        self._run_length = 0
        self._last_voiced_end = 0  # frame index just after the last voiced frame
        self._silent = 0
        self._needed = self.silence_frames  # silent frames that end the current speech
        self._bounds = energy_bounds(self.threshold, self.frame_samples)

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio consumed so far (whole frames)."""
        return self._frames * FRAME_MS

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Consume samples; return the start/stop events they complete, in order."""
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        whole = len(samples) // self.frame_samples * self.frame_samples
        self._pending = samples[whole:].copy() if whole < len(samples) else _EMPTY
        if not whole:
            return []
        frames = samples[:whole].reshape(-1, self.frame_samples)
        bounds = self._bounds
        if bounds is None:
            voiced = voiced_by_formula(frames, self.threshold)
        else:
            wide = frames.astype(np.float64)  # exact: a frame's squares of int16 sum far below 2**53
            energy = np.add.reduce(wide * wide, axis=1)
            if not self.speaking and energy.max() < bounds[0]:
                # nothing voiced and no speech to end: only the timeline moves
                self._frames += len(energy)
                self._run_start, self._run_length = None, 0
                return []
            voiced = energy > bounds[1]
            if ((energy >= bounds[0]) != voiced).any():  # a frame at the threshold itself
                voiced = voiced_by_formula(frames, self.threshold)
        events: list[VadEvent] = []
        for is_voiced in voiced.tolist():
            index = self._frames
            self._frames += 1
            if not self.speaking:
                if is_voiced:
                    if self._run_start is None:
                        self._run_start, self._run_length = index, 0
                    self._run_length += 1
                    if self._run_length >= self.min_speech_frames:
                        self.speaking = True
                        self._silent = 0
                        self._last_voiced_end = index + 1
                        start_ms = max(0, self._run_start * FRAME_MS - self.prefix_padding_ms)
                        events.append(VadEvent("start", start_ms))
                else:
                    self._run_start, self._run_length = None, 0
            elif is_voiced:
                self._silent = 0
                self._needed = self.silence_frames
                self._last_voiced_end = index + 1
            else:
                self._silent += 1
                if self._silent == self.silence_frames and self.end_hold is not None:
                    spoken_ms = (self._last_voiced_end - (self._run_start or 0)) * FRAME_MS
                    hold_frames = -(-int(self.end_hold(spoken_ms)) // FRAME_MS)
                    self._needed = max(self.silence_frames, hold_frames)
                if self._silent >= self._needed:
                    self._needed = self.silence_frames
                    self.speaking = False
                    self._run_start, self._run_length = None, 0
                    events.append(VadEvent("stop", self._last_voiced_end * FRAME_MS))
        return events

    def reset(self) -> None:
        """Forget any speech in progress (after a buffer clear or commit); the timeline continues."""
        self.speaking = False
        self._run_start, self._run_length, self._silent = None, 0, 0

    def skip(self, samples: int) -> None:
        """Advance the timeline over audio that is not analysed (e.g. while detection is off)."""
        total = len(self._pending) + samples
        self._frames += total // self.frame_samples
        self._pending = np.zeros(total % self.frame_samples, dtype=np.int16)
