"""The profile as a tree of located values, and the list of problems found in it.

Every value read from a file keeps where it was written (:class:`Loc`), so a problem found after
``extends`` merging, interpolation and ``--set`` overrides still points at the line that caused it.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Optional, Sequence, Union

PathKey = Union[str, int]
KeyPath = tuple  # of PathKey


class Loc(NamedTuple):  # not a frozen dataclass: making that class costs a millisecond at start-up
    """Where a value was set: ``file:line:col`` (1-based), a whole file, or a ``--set`` override."""

    file: str
    line: Optional[int] = None
    col: Optional[int] = None
    override: Optional[str] = None  # the dotted key of a --set, when the value came from one

    @classmethod
    def from_override(cls, key: str) -> "Loc":
        shown = printable(key)
        return cls(file=f"--set {shown}", override=shown)

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


class Node:
    """One value of the profile: a scalar, a ``list`` of nodes or a ``dict`` of key -> node.

    ``loc`` is where the value starts; ``key_loc`` is where its key was written (the value itself
    for list items and the document root). ``raw`` is the source text of an unquoted scalar, kept
    so that an unquoted ``${VAR}`` can be read again as a YAML scalar after substitution.
    """

    __slots__ = ("value", "loc", "key_loc", "raw")

    def __init__(self, value: Any, loc: Loc, key_loc: Optional[Loc] = None, raw: Optional[str] = None):
        self.value = value
        self.loc = loc
        self.key_loc = key_loc or loc
        self.raw = raw

    def __repr__(self) -> str:
        return f"Node({self.value!r} @ {self.loc})"

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)


def to_plain(node: Optional[Node]) -> Any:
    """The plain Python value of a node tree (dicts, lists, scalars)."""
    if node is None:
        return None
    if isinstance(node.value, dict):
        return {key: to_plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [to_plain(child) for child in node.value]
    return node.value


def from_plain(value: Any, loc: Loc) -> Node:
    """A node tree for a plain value, every node located at ``loc`` (used for ``--set`` values)."""
    if isinstance(value, dict):
        return Node({str(key): from_plain(child, loc) for key, child in value.items()}, loc)
    if isinstance(value, list):
        return Node([from_plain(child, loc) for child in value], loc)
    return Node(value, loc)


def walk(node: Node, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Node]]:
    """Every (path, node) pair of the tree, parents before children."""
    yield path, node
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            yield from walk(child, path + (key,))
    elif isinstance(node.value, list):
        for index, child in enumerate(node.value):
            yield from walk(child, path + (index,))


def dotted(path: Sequence[PathKey]) -> str:
    """``("session", "tools", 0, "name")`` -> ``session.tools[0].name``."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{printable(key)}" if text else printable(str(key))
    return text


def printable(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``), so that a problem
    about a key that holds one is still one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def show(value: Any, limit: int = 40) -> str:
    """A short rendering of a user's value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class Problems:
    """Problems collected while loading a profile, each one line ``location: key.path: problem``.

    :attr:`lines` lists them in file order (line, column), files in the order they were first
    read, ``--set`` overrides last.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Optional[Loc], str]] = []
        self._blocked: set[tuple[Optional[Loc], str]] = set()

    def add(self, loc: Optional[Loc], path: Sequence[PathKey], message: str, *, final: bool = False) -> None:
        """Record a problem. ``final`` silences later problems about the same value (an unresolved
        ``${VAR}`` need not also be reported as a value of the wrong type)."""
        key = dotted(path)
        if (loc, key) in self._blocked:
            return
        if final:
            self._blocked.add((loc, key))
        prefix = str(loc) if loc is not None else ""
        if loc is not None and loc.override is not None and loc.override == key:
            key = ""  # "--set a.b: problem" already names the key
        line = ": ".join(part for part in (prefix, key, message) if part)
        if all(line != existing for _, existing in self._entries):
            self._entries.append((loc, line))

    @property
    def lines(self) -> list[str]:
        files: dict[str, int] = {}
        for loc, _ in self._entries:
            if loc is not None and loc.override is None:
                files.setdefault(loc.file, len(files))

        def order(entry: tuple[Optional[Loc], str]) -> tuple:
            loc = entry[0]
            if loc is None or loc.override is not None:
                return (len(files), 0, 0)
            return (files[loc.file], loc.line or 0, loc.col or 0)

        return [line for _, line in sorted(self._entries, key=order)]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
