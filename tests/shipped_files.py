"""The profiles this repository ships, as the tests see them.

``profiles/*.yaml`` in a checkout also holds whatever someone saved there to try (the README
suggests ``profiles/mine.yaml``), valid or not: the tests that check every shipped profile take
the files git tracks, and every file only outside a git checkout (an unpacked source archive).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shipped_profiles() -> list[Path]:
    """``profiles/*.yaml`` (not the scenarios below it) that git tracks, sorted."""
    every = sorted((ROOT / "profiles").glob("*.yaml"))
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "profiles/*.yaml"], cwd=ROOT, capture_output=True,
                                timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return every
    tracked = {ROOT / name for name in listed.decode().split("\0") if name and "/" not in name[len("profiles/"):]}
    return [path for path in every if path in tracked] if tracked else every
