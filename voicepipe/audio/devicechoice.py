"""Choosing a device from a profile's ``device:`` value (``default``, an index, or part of a name)
among the rows a device backend lists."""

from __future__ import annotations

from typing import Any

from voicepipe.audio import errors
from voicepipe.errors import UsageError


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
