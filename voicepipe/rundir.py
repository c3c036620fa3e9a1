"""The run folder: where one run leaves its technical log, transcript, events and audio."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

DEFAULT_LOG_DIR = "logs"
TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_UNSAFE = re.compile(r"[^\w.-]+")


def make_run_dir(profile: Any, base: str | Path | None = None, now: Optional[datetime] = None) -> Path:
    """Create and return ``<base>/<YYYY-MM-DD_HH-MM-SS>_<name>/``.

    ``base`` defaults to the profile's ``logging.dir`` (else ``logs``); a relative one is taken
    from the current working directory. ``name`` is ``logging.run_name`` or the profile's name.
    When the folder exists already (two runs in the same second), ``-2``, ``-3`` … is appended.
    """
    settings = getattr(profile, "logging", None) or {}
    base_dir = Path(base if base is not None else settings.get("dir") or DEFAULT_LOG_DIR).expanduser()
    if not base_dir.is_absolute():
        base_dir = Path.cwd() / base_dir
    name = _safe_name(_masked(str(settings.get("run_name") or getattr(profile, "name", None) or "run")))
    stem = f"{(now or datetime.now()).strftime(TIMESTAMP_FORMAT)}_{name}"
    candidate, counter = base_dir / stem, 1
    try:
        base_dir.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                counter += 1
                candidate = base_dir / f"{stem}-{counter}"
    except OSError as exc:
        from voicepipe.errors import UsageError

        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot create a run folder in {base_dir}: {reason} (choose another logging.dir or --log-dir)"
        ) from None


def _masked(name: str) -> str:
    """A name with secrets taken out (a run_name built from ``${VAR}`` may hold a key)."""
    from voicepipe.redact import MASK, REDACTOR

    return REDACTOR.redact(name).replace(MASK, "-")


def _safe_name(name: str) -> str:
    """A folder-name-safe version of a profile or run name."""
    return _UNSAFE.sub("-", name).strip("-.") or "run"
