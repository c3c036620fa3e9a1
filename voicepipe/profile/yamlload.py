"""Reading a YAML file into located nodes, with duplicate keys reported instead of dropped.

PyYAML's own loader keeps the last of two equal keys without a word and forgets where anything
was written. Here the document is only *composed* by PyYAML (nodes with marks); the tree is built
by hand so that every key and value keeps its line and column and duplicates can be reported.
PyYAML marks are 0-based; every location printed is 1-based.
"""

from __future__ import annotations

from typing import Optional

from voicepipe.profile.yamlimport import yaml  # first: PyYAML imported the quick way

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from voicepipe.profile.nodes import KeyPath, Loc, Node, Problems, show

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_resolver = Resolver()
#: how deeply a profile may nest (its schema needs 6 levels; a tool's JSON schema a few more)
MAX_DEPTH = 64
#: how many values a profile may hold, every repetition of an alias counted: a few aliases that
#: repeat aliases make a small file hold billions
MAX_VALUES = 20_000


class _TooLarge(Exception):
    """The document holds more than :data:`MAX_VALUES` values."""


def mark_loc(file: str, mark: Optional[yaml.Mark]) -> Loc:
    if mark is None:
        return Loc(file)
    return Loc(file, mark.line + 1, mark.column + 1)


def parse_yaml(text: str, file: str, problems: Problems) -> Optional[Node]:
    """The document in ``text`` as a node tree, or ``None`` after reporting a syntax error.

    An empty document is an empty mapping. Keys are always strings, as written (``no:`` is the
    key ``"no"``, not ``False``).
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context or 'cannot parse'}"
        if exc.context and exc.problem and exc.context_mark is not None and exc.context_mark is not mark:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        problems.add(mark_loc(file, mark), (), message)
        return None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        position = getattr(exc, "position", None)
        problems.add(Loc(file), (), f"YAML syntax error: {getattr(exc, 'reason', None) or exc}"
                     + (f" (at character {position})" if position is not None else ""))
        return None
    if root is None:
        return Node({}, Loc(file, 1, 1))
    try:
        return _TreeBuilder(file, problems).build(root, (), None)
    except _TooLarge:
        problems.add(Loc(file), (), f"more than {MAX_VALUES} values (aliases that repeat aliases?)")
        return None


def parse_value(text: str, loc: Loc, path: KeyPath, problems: Problems) -> Optional[Node]:
    """``text`` (a ``--set`` value) read as YAML into nodes all located at ``loc``, with the limits
    and checks of a profile file; ``None`` after reporting a problem. A syntax error raises
    :class:`yaml.YAMLError` (:class:`UnicodeError` for text YAML cannot hold)."""
    root = yaml.compose(text, Loader=_Loader)
    if root is None:
        return Node(None, loc)
    reported = len(problems)
    try:
        node = _TreeBuilder(loc.file, problems, at=loc).build(root, path, None)
    except _TooLarge:
        problems.add(loc, (), f"more than {MAX_VALUES} values (aliases that repeat aliases?)")
        return None
    return node if len(problems) == reported else None


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:bool`` -> ``!!bool``."""
    return "!!" + tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


def resolve_scalar(text: str) -> object:
    """``text`` read as an unquoted YAML scalar: ``8765`` -> 8765, ``true`` -> True, ``x`` -> 'x'.

    Only ever a scalar: a value that looks like YAML structure (``a: b``) stays a string.
    """
    tag = _resolver.resolve(ScalarNode, text, (True, False))
    try:
        return SafeConstructor().construct_object(ScalarNode(tag, text))
    except Exception:  # PyYAML's constructors fail in their own ways (ValueError, KeyError ...)
        return text


class _TreeBuilder:
    """Builds the node tree of a composed document; ``at`` locates every node there instead of
    where it was written (a ``--set`` value)."""

    def __init__(self, file: str, problems: Problems, at: Optional[Loc] = None):
        self.file = file
        self.problems = problems
        self.at = at
        self.constructor = SafeConstructor()
        self.active: set[int] = set()  # collections being built, to stop a recursive alias
        self.values = 0  # values built so far, each repetition of an alias counted
        self.depth = 0  # collections being built now, merged ones (<<) included

    def loc(self, node: yaml.Node) -> Loc:
        return self.at or mark_loc(self.file, node.start_mark)

    def build(self, node: yaml.Node, path: KeyPath, key_loc: Optional[Loc]) -> Node:
        loc = self.loc(node)
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooLarge()
        if isinstance(node, ScalarNode):
            return self.scalar(node, path, loc, key_loc)
        if id(node) in self.active:
            self.problems.add(loc, path, "an alias refers to the collection that contains it")
            return Node(None, loc, key_loc)
        if self.depth >= MAX_DEPTH:
            self.problems.add(loc, path, f"nested deeper than {MAX_DEPTH} levels")
            return Node(None, loc, key_loc)
        self.active.add(id(node))
        self.depth += 1
        try:
            if isinstance(node, SequenceNode):
                items = [self.build(child, path + (index,), None) for index, child in enumerate(node.value)]
                return Node(items, loc, key_loc)
            return Node(self.mapping(node, path), loc, key_loc)
        finally:
            self.active.discard(id(node))
            self.depth -= 1

    def scalar(self, node: ScalarNode, path: KeyPath, loc: Loc, key_loc: Optional[Loc]) -> Node:
        try:
            value = self.constructor.construct_object(node)
        except Exception as exc:  # PyYAML's constructors fail in their own ways on bad tagged values
            problem = getattr(exc, "problem", None) or (str(exc) if isinstance(exc, ValueError) else None)
            message = f"cannot read this value ({problem or 'not a valid ' + _short_tag(node.tag)})"
            self.problems.add(loc, path, message, final=True)  # not also "expected …, got null"
            value = None
        raw = node.value if not node.style else None  # plain style: None (PyYAML) or "" (libyaml)
        return Node(value, loc, key_loc, raw)

    def mapping(self, node: MappingNode, path: KeyPath) -> dict:
        entries: dict[str, Node] = {}
        merged: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for key, child in self.merge_sources(value_node, path).items():
                    merged.setdefault(key, child)  # the first merged mapping wins, as in YAML 1.1
                continue
            key_loc = self.loc(key_node)
            if not isinstance(key_node, ScalarNode):
                self.problems.add(key_loc, path, "a key must be a plain name, not a list or mapping")
                continue
            key = key_node.value
            if key in entries:
                first = entries[key].key_loc.line
                where = f" (first set on line {first})" if first is not None else ""
                self.problems.add(key_loc, path + (key,), f"duplicate key {key!r}{where}")
                continue
            entries[key] = self.build(value_node, path + (key,), key_loc)
        for key, child in merged.items():
            entries.setdefault(key, child)
        return entries

    def merge_sources(self, node: yaml.Node, path: KeyPath) -> dict[str, Node]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        result: dict[str, Node] = {}
        for source in sources:
            built = self.build(source, path, None)
            if not isinstance(built.value, dict):
                self.problems.add(built.loc, path, f"'<<' merges mappings only, got {show(built.value)}")
                continue
            for key, child in built.value.items():
                result.setdefault(key, child)
        return result
