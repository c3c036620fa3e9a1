"""Audio devices as the device backends see them, listed (``voicepipe devices``); choosing one is
:mod:`voicepipe.audio.devicechoice`."""

from __future__ import annotations

from typing import Optional

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
