"""The loaded profile: validated plain data plus where each key was written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from voicepipe import shipped
from voicepipe.profile.nodes import Loc


class Profile:
    """A validated profile.

    ``data`` is the merged (``extends``, ``--set``), interpolated and validated content as plain
    dicts and lists; keys that were never set are absent, not ``None``. ``warnings`` are non-fatal
    problems, formatted like errors. Sections are read with :meth:`section` or the properties.
    """

    def __init__(self, path: str | os.PathLike, data: Optional[dict] = None, *, warnings: Sequence[str] = (),
                 locations: Optional[Mapping[tuple, Loc]] = None):
        self.path = Path(path)
        self.name = self.path.stem.removeprefix(shipped.PREFIX)
        self.base_dir = _folder_of(str(path)) if shipped.is_builtin(str(path)) else self.path.parent
        self.data: dict = dict(data or {})
        self.warnings: list[str] = list(warnings)
        self._locations: dict[tuple, Loc] = dict(locations or {})

    @classmethod
    def empty(cls, name: str = "profile") -> "Profile":
        """A profile with nothing set, for commands that run without one (``voicepipe replay``)."""
        return cls(Path(name))

    def __repr__(self) -> str:
        return f"Profile({str(self.path)!r})"

    def section(self, name: str) -> dict:
        """The top-level mapping ``name`` (``{}`` when absent)."""
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def _list(self, name: str) -> list:
        value = self.data.get(name)
        return list(value) if isinstance(value, list) else []

    @property
    def connection(self) -> dict:
        return self.section("connection")

    @property
    def session(self) -> dict:
        return self.section("session")

    @property
    def audio(self) -> dict:
        return self.section("audio")

    @property
    def logging(self) -> dict:
        return self.section("logging")

    @property
    def runtime(self) -> dict:
        return self.section("runtime")

    @property
    def plugins(self) -> list[str]:
        return self._list("plugins")

    @property
    def disable(self) -> list[str]:
        return self._list("disable")

    def dir_of(self, *keys: str | int) -> Path:
        """The folder a relative path set at ``keys`` is relative to: that of the profile file
        that wrote it (so a profile extending another keeps the other's paths working), the
        working directory for a ``--set`` override, :attr:`base_dir` when the key is not set."""
        path: tuple[Any, ...] = tuple(keys)
        while path:
            loc = self._locations.get(path)
            if loc is not None:
                return Path.cwd() if loc.override else _folder_of(loc.file)
            path = path[:-1]
        return self.base_dir

    def location(self, *keys: str | int) -> str:
        """``file:line:col`` where the key path was set (``--set KEY`` for an override); the
        nearest enclosing key's position when that key is not set; the file path otherwise."""
        path: tuple[Any, ...] = tuple(keys)
        while path:
            loc = self._locations.get(path)
            if loc is not None:
                return str(loc)
            path = path[:-1]
        return str(self.path)


def _folder_of(file: str) -> Path:
    """The folder of a profile file as loaded (``builtin:NAME`` is a shipped profile)."""
    if shipped.is_builtin(file):
        return shipped.root() / "profiles"
    return Path(os.path.abspath(file)).parent
