"""How fast the emulator generates an answer, and which clock its listener is assumed to play on.

The service generates audio faster than real time (the SDK's ``conversation.item.truncate``
docstring: "the server will produce audio faster than realtime"), so a client usually holds
seconds of an answer that ``response.done`` has already closed, and a barge-in then finds a
finished response still playing and truncates it. :data:`SERVICE` reproduces that: the first
``burst_ms`` of every answer at once, the rest ``speed`` times faster than real time.

The older modes are kept: ``realtime(1)`` streams at exactly real time, ``realtime(N)`` N times
faster (the whole conversation runs N times faster, the listener included), ``realtime(0)`` as fast
as the client reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SERVICE_SPEED = 4.0
SERVICE_BURST_MS = 1000.0


@dataclass(frozen=True)
class Pacing:
    """``speed``: generation rate after the burst, times real time (0: unpaced). ``burst_ms``:
    audio sent at once when an answer starts. ``timescale``: conversation milliseconds per real
    millisecond, for thinking time and the listener's playback clock (0: no clock)."""

    speed: float = SERVICE_SPEED
    burst_ms: float = SERVICE_BURST_MS
    timescale: float = 1.0

    def audio_due_s(self, ms: float) -> float:
        """Seconds after the first delta at which the audio starting at ``ms`` is sent."""
        if self.speed <= 0:
            return 0.0
        return max(0.0, ms - self.burst_ms) / 1000.0 / self.speed

    def step_s(self, ms: float) -> float:
        """Seconds between two text or argument deltas ``ms`` apart at real time."""
        return ms / 1000.0 / self.speed if self.speed > 0 else 0.0

    def latency_s(self, ms: float) -> float:
        """Seconds of thinking time before an answer (``ms`` of conversation time)."""
        return ms / 1000.0 / self.timescale if self.timescale > 0 else 0.0

    def describe(self) -> str:
        if self.speed <= 0 and self.burst_ms <= 0:
            return "as fast as possible"
        if self.burst_ms <= 0:
            return f"speed {self.speed:g}"
        rate = "unpaced" if self.speed <= 0 else f"{self.speed:g}x real time"
        return f"service-like: {self.burst_ms:g} ms at once, then {rate}"


SERVICE = Pacing()


def pacing_for(speed: Optional[float] = None, burst_ms: Optional[float] = None) -> Pacing:
    """The pacing the settings ask for: neither given, :data:`SERVICE`; only ``speed``, the older
    mode (real time times ``speed``, no burst); ``burst_ms`` given, service-like with that burst
    (and ``speed``, or the service's rate, after it)."""
    for name, value in (("speed", speed), ("burst_ms", burst_ms)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"emulator {name}: expected 0 or a positive number, got {value!r}")
    if burst_ms is None:
        if speed is None:
            return SERVICE
        return Pacing(speed=float(speed), burst_ms=0.0, timescale=float(speed))
    return Pacing(speed=SERVICE_SPEED if speed is None else float(speed), burst_ms=float(burst_ms), timescale=1.0)
