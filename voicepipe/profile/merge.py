"""Putting a profile together: ``extends:`` parents under it, ``--set`` overrides on top.

Parents are merged in the order listed, then the profile itself: mappings merge key by key, the
later value wins, lists and scalars are replaced whole. When a mapping's ``type`` or ``backend``
changes, the inherited keys the new kind does not know are dropped: a ``pyaudio`` input's
``device`` means nothing to the ``wav`` backend that replaces it. ``--set`` overrides come last,
before validation, and may only name keys the schema knows.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Optional, Sequence

from voicepipe import shipped
from voicepipe.errors import UsageError
from voicepipe.profile.interpolate import interpolate
from voicepipe.profile.nodes import KeyPath, Loc, Node, Problems, from_plain, show, to_plain
from voicepipe.profile.schema import is_secret_key, known_keys, profile_spec, spec_at
from voicepipe.profile.spec import did_you_mean
from voicepipe.profile.yamlimport import yaml
from voicepipe.profile.yamlload import parse_value, parse_yaml

#: profile files an ``extends:`` tree may name in all (each one counted every time it is named):
#: a few files that each extend the next several times would otherwise multiply without end
MAX_EXTENDS = 64
KIND_KEYS = ("type", "backend")  # a mapping that changes one of these drops the keys the new kind lacks
SET_EXAMPLE = "session.voice.name=en-US-Emma:DragonHDLatestNeural"


def merge(base: Node, over: Node, path: KeyPath = ()) -> Node:
    """``over`` on top of ``base``: mappings merged recursively, anything else replaced."""
    if not (isinstance(base.value, dict) and isinstance(over.value, dict)):
        return over
    merged = dict(base.value)
    for key, child in over.value.items():
        merged[key] = merge(merged[key], child, path + (key,)) if key in merged else child
    node = Node(merged, over.loc, over.key_loc)
    if _kind_changes(base.value, over.value):
        drop_foreign_keys(node, path, keep=over.value)
    return node


def _kind_changes(base: dict, over: dict) -> bool:
    return any(key in base and key in over and base[key].value != over[key].value for key in KIND_KEYS)


def drop_foreign_keys(node: Node, path: KeyPath, keep: Mapping[str, object]) -> None:
    """Remove the keys of the mapping at ``path`` that its (new) kind does not know, except those
    in ``keep`` (written where the kind changed: a mistake there is reported, not dropped)."""
    spec, _ = spec_at(profile_spec(()), path, None)
    if spec is None:
        return
    current = to_plain(node)
    for key in list(node.value):
        if key not in keep and spec.child(key, current) is None:
            del node.value[key]


class _Loaded:
    """What one profile load has read so far: each parent file's merged tree (read once, copied
    wherever it is named again) and how many parents the tree has named."""

    def __init__(self) -> None:
        self.trees: dict[Path, Optional[Node]] = {}
        self.named = 0
        self.over_limit = False


def load_tree(display: str, real: Path, text: str, environ: Mapping[str, str], problems: Problems,
              chain: tuple = (), loaded: Optional[_Loaded] = None) -> Optional[Node]:
    """The profile in ``text`` merged over its ``extends:`` parents (not interpolated yet: a
    value a profile replaces is never looked at).

    ``display`` is the path as the user gave it (used in messages), ``real`` the resolved path,
    ``chain`` the (real, display) pairs of the profiles that extend this one. Each file is read
    and merged once per load, and the whole tree may name at most :data:`MAX_EXTENDS` parents.
    """
    loaded = loaded if loaded is not None else _Loaded()
    root = parse_yaml(text, display, problems)
    if root is None:
        return None
    if not isinstance(root.value, dict):
        problems.add(root.loc, (), f"expected a mapping of sections (connection:, session:, …), got {show(root.value)}")
        return None
    extends = root.value.pop("extends", None)
    if extends is None or extends.value is None:
        return root
    interpolate(extends, environ, problems, ("extends",))
    items = extends.value if isinstance(extends.value, list) else [extends]
    chain = chain + ((real, display),)
    base: Optional[Node] = None
    for index, item in enumerate(items):
        path: KeyPath = ("extends", index) if isinstance(extends.value, list) else ("extends",)
        loaded.named += 1
        if loaded.named > MAX_EXTENDS:
            if not loaded.over_limit:
                loaded.over_limit = True
                problems.add(item.loc, path, f"the extends tree names more than {MAX_EXTENDS} profile files in all "
                                             "(flatten it: extend fewer files, fewer times)")
            break
        parent = _load_parent(item, path, display, real, environ, problems, chain, loaded)
        if parent is not None:
            base = parent if base is None else merge(base, parent)
    return root if base is None else merge(base, root)


def _load_parent(item: Node, path: KeyPath, display: str, real: Path, environ: Mapping[str, str],
                 problems: Problems, chain: tuple, loaded: _Loaded) -> Optional[Node]:
    if not isinstance(item.value, str) or not item.value.strip():
        problems.add(item.loc, path, f"expected a profile file (or a list of them), got {show(item.value)}")
        return None
    name = item.value.strip()
    parent_display = name if os.path.isabs(name) else os.path.normpath(os.path.join(os.path.dirname(display), name))
    try:
        if shipped.is_builtin(name):
            parent_display, parent_real = name, shipped.profile_path(name).resolve()
        else:
            parent_real = (real.parent / name).resolve()
    except UsageError as exc:
        problems.add(item.loc, path, str(exc))
        return None
    except (ValueError, OSError, RuntimeError) as exc:  # a NUL in the name, a symlink loop
        problems.add(item.loc, path, f"cannot read {parent_display!r} ({exc})")
        return None
    seen = [r for r, _ in chain]
    if parent_real in seen:
        cycle = [d for _, d in chain[seen.index(parent_real):]] + [parent_display]
        problems.add(item.loc, path, f"extends cycle: {' -> '.join(cycle)}")
        return None
    if parent_real in loaded.trees:  # read and merged already: the same tree again
        tree = loaded.trees[parent_real]
        return None if tree is None else _copy(tree)
    if is_special_file(parent_real):
        problems.add(item.loc, path, f"{parent_display!r} is not a regular file")  # a FIFO would block
        return None
    try:
        text = parent_real.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(item.loc, path, f"no such profile file {parent_display!r} (paths are relative to the folder "
                                     f"of {display})")
        return None
    except IsADirectoryError:
        problems.add(item.loc, path, f"{parent_display!r} is a folder, not a profile file")
        return None
    except UnicodeDecodeError:
        problems.add(item.loc, path, f"{parent_display!r} is not a UTF-8 text file")
        return None
    except OSError as exc:
        problems.add(item.loc, path, f"cannot read {parent_display!r} ({exc.strerror or exc})")
        return None
    tree = load_tree(parent_display, parent_real, text, environ, problems, chain, loaded)
    loaded.trees[parent_real] = tree
    return None if tree is None else _copy(tree)


def _copy(node: Node) -> Node:
    """A copy of a tree that later steps (merging, interpolation) may change without touching the original."""
    value = node.value
    if isinstance(value, dict):
        value = {key: _copy(child) for key, child in value.items()}
    elif isinstance(value, list):
        value = [_copy(child) for child in value]
    return Node(value, node.loc, node.key_loc, node.raw)


def apply_overrides(root: Node, overrides: Sequence[str], problems: Problems) -> None:
    """Apply ``--set KEY=VALUE`` overrides to the tree, in order."""
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.add(Loc.from_override(text), (), f"expected KEY=VALUE, e.g. {SET_EXAMPLE}")
            continue
        loc = Loc.from_override(key)
        parts = key.split(".")
        if any(not part.strip() for part in parts):
            problems.add(loc, (), f"expected a dotted key like {SET_EXAMPLE.partition('=')[0]}")
            continue
        if parts[0] == "connection" and any(is_secret_key(part) for part in parts[1:]):
            problems.add(loc, (), "a key must not be written in the profile or on the command line "
                                  "(set AZURE_VOICELIVE_API_KEY in the environment)")
            continue
        try:
            node = parse_value(raw, loc, tuple(parts), problems) if raw.strip() else Node("", loc)
        except (yaml.YAMLError, UnicodeError) as exc:  # UnicodeError: text YAML cannot hold (a lone surrogate)
            problem = getattr(exc, "problem", None) or "not valid YAML"
            problems.add(loc, (), f"cannot read the value {raw!r} ({problem}; quote it or write it as YAML)")
            continue
        if node is not None:
            _set(root, parts, to_plain(node), loc, problems)


def _set(root: Node, parts: list[str], value: object, loc: Loc, problems: Problems) -> None:
    data = to_plain(root)
    path = _typed_path(root, parts)
    spec = profile_spec(data.get("plugins") if isinstance(data.get("plugins"), list) else ())
    found, depth = spec_at(spec, path, data)
    if found is None:
        unknown = path[depth]
        close = did_you_mean(str(unknown), known_keys(spec, path[:depth], data))
        hint = f" (did you mean {close!r}?)" if close else ""
        problems.add(loc, path[: depth + 1], f"unknown key{hint}")
        return
    node = root
    for depth, key in enumerate(path[:-1]):
        container = node.value
        if isinstance(container, dict):
            if key not in container or container[key].value is None:
                container[key] = Node({}, loc)
            node = container[key]
        elif isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
            node = container[key]
        else:
            problems.add(loc, path[: depth + 1], f"cannot set a key inside {show(container)}")
            return
    last = path[-1]
    target = node.value
    if isinstance(target, dict) and isinstance(last, str):
        previous = target.get(last)
        target[last] = from_plain(value, loc)
        if last in KIND_KEYS and previous is not None and previous.value != value:
            drop_foreign_keys(node, path[:-1], keep={last: value})
    elif isinstance(target, list) and isinstance(last, int) and 0 <= last < len(target):
        target[last] = from_plain(value, loc)
    else:
        where = f"{show(target)}" if not isinstance(target, list) else f"a list of {len(target)} items"
        problems.add(loc, path, f"cannot set this key inside {where}")


def _typed_path(root: Node, parts: list[str]) -> KeyPath:
    """Dotted parts with list indexes as ints where the tree holds a list."""
    path: list = []
    node: Optional[Node] = root
    for part in parts:
        key: object = part
        if node is not None and isinstance(node.value, list) and part.isascii() and part.isdigit():
            key = int(part)
            node = node.value[key] if key < len(node.value) else None
        elif node is not None and isinstance(node.value, dict):
            node = node.value.get(part)
        else:
            node = None
        path.append(key)
    return tuple(path)


def is_special_file(path: Path) -> bool:
    """Whether ``path`` is a FIFO, socket or device: reading one would block or never end."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # missing, unreadable, a name too long: reading it reports that
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
