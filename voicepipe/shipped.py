"""The profiles, plugins and audio that ship with voicepipe.

A profile names a shipped one as ``builtin:<file>`` (``extends: builtin:ava.yaml``, or
``voicepipe run builtin:demo.yaml``), so a project outside this repository starts from them. In a
wheel they are package data under ``voicepipe/data/``; in a checkout they are the repository's own
``profiles/`` and ``plugins/`` folders (the wheel is built from those).
"""

from __future__ import annotations

from pathlib import Path

from voicepipe.errors import UsageError

PREFIX = "builtin:"

def root() -> Path:
    """The folder that holds the shipped ``profiles/`` and ``plugins/``."""
    packaged = Path(__file__).with_name("data")
    if (packaged / "profiles").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent  # a checkout


def is_builtin(spec: str) -> bool:
    return spec.startswith(PREFIX)


def profile_path(spec: str) -> Path:
    """The file a ``builtin:NAME`` names; a :class:`UsageError` listing the shipped ones if none."""
    name = spec[len(PREFIX):].strip()
    if not name.endswith((".yaml", ".yml")):
        name += ".yaml"
    path = root() / "profiles" / name
    if "/" in name or "\\" in name or not path.is_file():
        raise UsageError(f"{spec}: no such shipped profile (shipped: {', '.join(list_profiles())})")
    return path


def list_profiles() -> list[str]:
    """The shipped profiles' file names."""
    return sorted(p.name for p in (root() / "profiles").glob("*.yaml"))


def describe(name: str) -> str:
    """The first clause of a shipped profile's opening comment: what it is for."""
    words = []
    for line in (root() / "profiles" / name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or line.strip() == "#":
            break
        if "yaml-language-server" not in line:
            words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    ends = [i for i in (text.find(": "), text.find(". ")) if i >= 0]
    return text[: min(ends)] if ends else text
