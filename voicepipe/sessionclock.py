"""One session clock shared by the plugins that write files, so their times agree to the microsecond.

Times are seconds since the session started (``ctx.now()`` at ``voicepipe_session_start``), rounded
to the microsecond. Every plugin that asks for the time of the same server event gets the same
number: the recorder writes it to ``events.jsonl``, and replay sets the clock back to it, so a
replayed session computes exactly the times the live one did.

The state lives in ``ctx.stash["voicepipe.clock"]``; replay presets it from the recording.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

STASH_KEY = "voicepipe.clock"
NO_OUTPUT_BACKENDS = {None, "", "none", "off", False}


class SessionClock:
    """Where session time starts, when the session started on the wall clock, and whether local
    playback milestones are expected (an audio output plays the answers)."""

    def __init__(self, origin: float, started_at: datetime, playback_expected: bool):
        self.origin = origin
        self.started_at = started_at
        self.playback_expected = playback_expected
        self._last_event: Any = None
        self._last_time = 0.0

    def elapsed(self, now: float) -> float:
        return round(now - self.origin, 6)


def session_clock(ctx: Any) -> SessionClock:
    """The session's clock, created on first use (at session start)."""
    clock = ctx.stash.get(STASH_KEY)
    if clock is None:
        clock = SessionClock(ctx.now(), datetime.now().astimezone(), _profile_plays_audio(ctx.profile))
        ctx.stash[STASH_KEY] = clock
    return clock


def preset_clock(ctx: Any, *, origin: float, started_at: datetime, playback_expected: bool) -> SessionClock:
    """Install a clock with known values (replay: the recording's)."""
    clock = SessionClock(origin, started_at, playback_expected)
    ctx.stash[STASH_KEY] = clock
    return clock


def elapsed(ctx: Any) -> float:
    """Seconds since the session started, now."""
    return session_clock(ctx).elapsed(ctx.now())


def event_time(ctx: Any, event: Any) -> float:
    """Seconds since the session started at which ``event`` arrived; the same for every plugin."""
    clock = session_clock(ctx)
    if clock._last_event is not event:
        clock._last_event = event
        clock._last_time = clock.elapsed(ctx.now())
    return clock._last_time


def at_time(ctx: Any, at: Optional[float]) -> Optional[float]:
    """Session time of a ``ctx.now()`` reading such as a playback milestone's ``at``."""
    if at is None:
        return None
    return session_clock(ctx).elapsed(float(at))


def _profile_plays_audio(profile: Any) -> bool:
    """Whether the profile has an audio output, i.e. playback milestones will report what was heard."""
    if "audio" in (getattr(profile, "disable", None) or ()):
        return False
    try:
        output = (profile.section("audio") or {}).get("output")
    except Exception:
        return False
    if not output:
        return False
    backend = output.get("backend") if isinstance(output, dict) else output
    return backend not in NO_OUTPUT_BACKENDS
