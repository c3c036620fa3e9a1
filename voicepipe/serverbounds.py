"""Bounds on the values a server sends that size, pace or allocate something on this side.

The effective session in ``session.updated`` decides the audio rates: the microphone is opened and
paced at ``input_audio_sampling_rate``, buffers are sized from it, playback positions are counted
with ``output_audio_sampling_rate``. A broken or hostile server could send a negative rate (a busy
loop that starves the event loop), a huge one (gigabytes of buffers) or a fractional one (a
division by zero). Such a value is replaced before any plugin sees the session: by what the client
asked for in ``session.update`` when that is sound, else the field is dropped so the default
applies, with one warning naming the field, the value and the bounds.
"""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping, Optional

#: the lowest and highest audio sampling rate accepted from a server (G.711 telephony .. studio)
MIN_RATE = 8000
MAX_RATE = 48000
RATE_FIELDS = ("input_audio_sampling_rate", "output_audio_sampling_rate")
FORMAT_FIELDS = ("input_audio_format", "output_audio_format")


def sane_rate(value: Any) -> Optional[int]:
    """``value`` as a whole sampling rate within bounds, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None  # also NaN and infinities
    rate = int(value)
    return rate if MIN_RATE <= rate <= MAX_RATE else None


def enforce_bounds(session: MutableMapping[str, Any], requested: Mapping[str, Any]) -> list[dict]:
    """Replace the out-of-bounds values of ``session`` in place; one problem record per value replaced."""
    problems: list[dict] = []
    for name in RATE_FIELDS:
        value = session.get(name)
        if value is None:
            continue
        rate = sane_rate(value)
        if rate is not None:
            if rate != value or type(value) is not int:
                session[name] = rate  # 16000.0 -> 16000
            continue
        problems.append(_replace(session, name, value, sane_rate(requested.get(name)), f"a whole number from {MIN_RATE} to {MAX_RATE}"))
    for name in FORMAT_FIELDS:
        value = session.get(name)
        if value is not None and not isinstance(value, str):
            fallback = requested.get(name)
            problems.append(_replace(session, name, value, fallback if isinstance(fallback, str) else None, "text"))
    return problems


def bounded_session(event: MutableMapping[str, Any], requested: Mapping[str, Any], log: Any) -> dict:
    """The effective session of a ``session.updated`` event, within bounds: the event is corrected
    in place (so plugins see the same values) and each replaced value is logged."""
    session = event.get("session")
    if session is None:
        return {}
    if not isinstance(session, MutableMapping):
        session = dict(session)
        event["session"] = session
    for problem in enforce_bounds(session, requested):
        log.warning("server_value_out_of_bounds", **problem)
    return dict(session)


def _replace(session: MutableMapping[str, Any], name: str, value: Any, fallback: Any, bounds: str) -> dict:
    if fallback is not None:
        session[name] = fallback
    else:
        del session[name]
    return {
        "field": name,
        "value": _shown(value),
        "expected": bounds,
        "using": fallback if fallback is not None else "the default",
    }


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
