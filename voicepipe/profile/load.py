"""``load_profile``: read, merge, interpolate, override and validate a profile file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

from voicepipe import shipped
from voicepipe.errors import ProfileError, UsageError
from voicepipe.lazyimport import lazy_module
from voicepipe.profile.interpolate import interpolate
from voicepipe.profile.merge import apply_overrides, is_special_file, load_tree
from voicepipe.profile.model import Profile
from voicepipe.profile.nodes import Node, Problems, walk
from voicepipe.profile.schema import auto_truncate_warning, profile_spec
from voicepipe.profile.spec import INVALID, Check

difflib = lazy_module("difflib", globals())  # did-you-mean hints, for errors only


def load_profile(path: str | os.PathLike, overrides: Sequence[str] = (), *,
                 environ: Optional[Mapping[str, str]] = None) -> Profile:
    """Load and validate the profile at ``path``.

    ``overrides`` are ``--set`` strings ``a.b.c=value`` (the value read as YAML). ``${VAR}``
    references are resolved from ``environ`` (default: ``os.environ``). A missing or unreadable
    file raises :class:`UsageError`; every problem in the profile is reported at once in one
    :class:`ProfileError`, each as ``file:line:col: key.path: problem (hint)``.
    """
    display = os.fspath(path)
    real = shipped.profile_path(display) if shipped.is_builtin(display) else Path(display)
    text = _read(display, real)
    problems = Problems()
    env = os.environ if environ is None else environ
    root = load_tree(display, real.resolve(), text, env, problems)
    if root is None:
        raise ProfileError(_masked(problems.lines, env))
    interpolate(root, env, problems)
    for key in [key for key, child in root.value.items() if child.value is None]:
        del root.value[key]  # an empty section (`session:` with everything commented out) is no section
    apply_overrides(root, overrides, problems)
    plugins = root.value.get("plugins")
    listed = [item.value for item in plugins.value] if plugins is not None and isinstance(plugins.value, list) else []
    data = profile_spec(listed).validate(root, (), Check(problems))
    if problems or data is INVALID:
        raise ProfileError(_masked(problems.lines, env))
    warnings = Problems()
    warning = auto_truncate_warning(data)
    if warning:
        where = _node_at(root, ("audio", "truncate"))
        warnings.add(where.key_loc if where else None, ("audio", "truncate"), warning)
    locations = {key_path: node.key_loc for key_path, node in walk(root)}
    return Profile(display, data, warnings=_masked(warnings.lines, env), locations=locations)


def _masked(lines: list[str], environ: Mapping[str, str]) -> list[str]:
    """Messages quote the user's values; a credential that reached one through ``${VAR}`` is
    masked (only the values: the messages themselves name keys like ``api_key`` on purpose)."""
    if not lines:
        return lines
    from voicepipe.redact import ALWAYS_SECRET_ENV, MASK, MIN_SECRET_LENGTH, looks_like_secret_name

    secrets = sorted(
        {value for name, value in environ.items()
         if (name in ALWAYS_SECRET_ENV or looks_like_secret_name(name)) and value and len(value) >= MIN_SECRET_LENGTH},
        key=len, reverse=True,
    )
    for secret in secrets:
        lines = [line.replace(secret, MASK) for line in lines]
    return lines


def _read(display: str, real: Path) -> str:
    if not display.strip():
        raise UsageError("no profile given: name a profile file, e.g. profiles/demo.yaml")
    if is_special_file(real):
        raise UsageError(f"{display}: not a regular file (give a .yaml file)")
    try:
        return real.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{display}: no such profile file{_missing_hint(real)}") from None
    except IsADirectoryError:
        raise UsageError(f"{display}: is a folder, not a profile file (give a .yaml file)") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{display}: not a UTF-8 text file (undecodable byte at offset {exc.start})") from None
    except ValueError as exc:  # a NUL character in the path
        raise UsageError(f"{display}: not a usable file name ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{display}: cannot read the profile ({exc.strerror or exc})") from None


def _missing_hint(real: Path) -> str:
    folder = real.parent
    if not folder.is_dir():
        return f" (there is no folder {str(folder)!r} here: run from the project folder or give the full path)"
    names = sorted(p.name for p in folder.glob("*.y*ml") if p.is_file())
    close = difflib.get_close_matches(real.name, names, n=1)
    if close:
        return f" (did you mean {str(folder / close[0])!r}?)"
    if names:
        return f" (profiles in {str(folder)!r}: {', '.join(names)})"
    return f" (no profiles in {str(folder)!r})"


def _node_at(root: Node, path: tuple) -> Optional[Node]:
    node: Optional[Node] = root
    for key in path:
        node = node.value.get(key) if node is not None and isinstance(node.value, dict) else None
    return node
