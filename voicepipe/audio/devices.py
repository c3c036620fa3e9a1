"""Audio devices as the device backends see them: listing (``voicepipe devices``) and choosing one
from a profile's ``device:`` value (``default``, an index, or part of a name)."""

from __future__ import annotations

from typing import Any, Optional

from voicepipe.audio import errors
from voicepipe.errors import UsageError

DEVICE_BACKENDS = ("pyaudio", "sounddevice")
_COLUMNS = ("backend", "index", "name", "in", "out", "rate", "default")


def list_devices(backend: Optional[str] = None) -> list[dict]:
    """Every input and output device of ``backend`` (or of both device backends).

    Each row: ``backend``, ``index``, ``name``, ``host_api``, ``max_input_channels``,
    ``max_output_channels``, ``default_samplerate``, ``is_default_input``, ``is_default_output``.
    A backend that cannot load PortAudio is a :class:`UsageError` when asked for by name; when
    listing both, it is skipped unless neither works.
    """
    names = DEVICE_BACKENDS if backend is None else (backend,)
    rows: list[dict] = []
    failures: list[UsageError] = []
    for name in names:
        if name not in DEVICE_BACKENDS:
            raise UsageError(f"unknown device backend {name!r} (choose one of: {', '.join(DEVICE_BACKENDS)})")
        try:
            rows.extend(_enumerate(name))
        except UsageError as exc:
            if backend is not None:
                raise
            failures.append(exc)
    if failures and len(failures) == len(names):
        raise failures[0]
    return rows


def _enumerate(backend: str) -> list[dict]:
    if backend == "pyaudio":
        from voicepipe.audio import pyaudio_backend

        return pyaudio_backend.list_devices()
    from voicepipe.audio import sounddevice_backend

    return sounddevice_backend.list_devices()


def format_devices(rows: list[dict]) -> str:
    """The rows as an aligned table, one device a line."""
    if not rows:
        return "no audio devices found (is a sound server running? is a sound card connected?)"
    table = [list(_COLUMNS)]
    for row in rows:
        defaults = [d for d, flag in (("in", row.get("is_default_input")), ("out", row.get("is_default_output"))) if flag]
        table.append(
            [
                str(row.get("backend", "")),
                str(row.get("index", "")),
                str(row.get("name", "")),
                str(row.get("max_input_channels", 0)),
                str(row.get("max_output_channels", 0)),
                f"{float(row.get('default_samplerate') or 0):g}",
                ",".join(defaults),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    return "\n".join(lines)


def resolve_device(rows: list[dict], spec: Any, direction: str, backend: str) -> dict:
    """The device row a profile's ``device:`` names for ``direction`` (``input`` / ``output``).

    ``default`` (or unset) is the system default; an integer (or a string of digits) is an index;
    any other string is matched against the names, exactly first, then as a case-insensitive part.
    """
    channels_key = "max_input_channels" if direction == "input" else "max_output_channels"
    default_key = "is_default_input" if direction == "input" else "is_default_output"
    usable = [row for row in rows if int(row.get(channels_key) or 0) > 0]
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "default"):
        for row in usable:
            if row.get(default_key):
                return row
        raise errors.no_device(direction, backend, "default", f"no default {direction} device")
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise UsageError(
            f"audio.{direction}.device: expected 'default', a device index or part of a device name, got {spec!r}"
        )
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for row in rows:
            if row.get("index") == index:
                if int(row.get(channels_key) or 0) <= 0:
                    raise errors.no_device(direction, backend, index, f"{row.get('name')!r} has no {direction} channels")
                return row
        raise errors.no_device(direction, backend, index, "no device has this index")
    wanted = spec.strip().lower()
    exact = [row for row in usable if str(row.get("name", "")).lower() == wanted]
    if exact:
        return exact[0]
    partial = [row for row in usable if wanted in str(row.get("name", "")).lower()]
    if partial:
        return partial[0]
    raise errors.no_device(direction, backend, spec, f"no {direction} device name contains {spec!r}")
