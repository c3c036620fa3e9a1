"""A small declarative schema language for profiles: types, ranges, enums, mappings with known
keys (and "did you mean" for the others), tagged unions.

A spec validates a located :class:`~voicepipe.profile.nodes.Node` and returns its plain value, or
:data:`INVALID` after reporting what is wrong. :meth:`Spec.child` answers which spec governs a
key below this one, which ``--set`` uses to refuse keys the schema does not know.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from voicepipe.lazyimport import lazy_module
from voicepipe.profile.nodes import KeyPath, Node, Problems, show, to_plain, walk

difflib = lazy_module("difflib", globals())  # did-you-mean hints, for errors only

INVALID = object()


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> Optional[str]:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


class Check:
    """What a spec reports problems to."""

    def __init__(self, problems: Problems):
        self.problems = problems

    def error(self, node: Node, path: KeyPath, message: str, *, at_key: bool = False) -> object:
        self.problems.add(node.key_loc if at_key else node.loc, path, message)
        return INVALID


class Spec:
    """Base spec: subclasses implement :meth:`check` and :meth:`describe`."""

    nullable = False

    def validate(self, node: Node, path: KeyPath, v: Check) -> Any:
        if node.value is None:
            if self.nullable:
                return None
            return v.error(node, path, f"expected {self.describe()}, got null")
        return self.check(node, path, v)

    def check(self, node: Node, path: KeyPath, v: Check) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has this spec's Python type (used by :class:`Either` to pick one)."""
        return True

    def child(self, key: Any, current: Any) -> Optional["Spec"]:
        """The spec of ``key`` below this value (``current`` is the plain value there now, or
        ``None``); ``None`` when this spec has no such key."""
        return None

    def keys(self, current: Any) -> list[str]:
        """Known keys below this value, for "did you mean"."""
        return []


class Anything(Spec):
    """Any value at all, taken as is."""

    nullable = True

    def check(self, node: Node, path: KeyPath, v: Check) -> Any:
        return to_plain(node)

    def describe(self) -> str:
        return "any value"

    def child(self, key: Any, current: Any) -> Optional[Spec]:
        return ANYTHING


ANYTHING = Anything()


class Json(Spec):
    """Any value JSON can hold, taken as is: for settings sent to the service verbatim. YAML's
    dates, binary values, NaN and infinities are refused."""

    nullable = True

    def check(self, node: Node, path: KeyPath, v: Check) -> Any:
        bad = [(sub_path, child) for sub_path, child in walk(node, path) if not _is_json_scalar(child.value)]
        for sub_path, child in bad:
            v.error(child, sub_path, f"expected a JSON value (text, a finite number, true, false, null, a list or "
                                     f"a mapping), got {show(child.value)}")
        return INVALID if bad else to_plain(node)

    def describe(self) -> str:
        return "a JSON value"

    def child(self, key: Any, current: Any) -> Optional[Spec]:
        return JSON


JSON = Json()


def _is_json_scalar(value: Any) -> bool:
    """Whether a node's value is a JSON scalar (or a list or mapping, checked item by item)."""
    if value is None or isinstance(value, (str, bool, int, list, dict)):
        return True
    return isinstance(value, float) and math.isfinite(value)


class Bool(Spec):
    def check(self, node, path, v):
        if isinstance(node.value, bool):
            return node.value
        return v.error(node, path, f"expected true or false, got {show(node.value)}")

    def describe(self):
        return "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


class Str(Spec):
    """A string. ``numbers_as_text`` turns a YAML number into its text (``rate: 1.2`` -> "1.2");
    ``secret`` keeps the value out of messages; ``validator`` returns a problem or ``None``."""

    def __init__(self, *, numbers_as_text: bool = False, secret: bool = False, non_empty: bool = False,
                 validator: Optional[Callable[[str], Optional[str]]] = None, what: str = "a string"):
        self.numbers_as_text = numbers_as_text
        self.secret = secret
        self.non_empty = non_empty
        self.validator = validator
        self.what = what

    def check(self, node, path, v):
        value = node.value
        if self.numbers_as_text and _is_number(value):
            value = str(value)
        if not isinstance(value, str):
            got = "a value of another type" if self.secret else show(value)
            return v.error(node, path, f"expected {self.describe()}, got {got}")
        if self.non_empty and not value.strip():
            return v.error(node, path, f"expected {self.describe()}, got an empty string")
        if self.validator is not None:
            problem = self.validator(value)
            if problem:
                return v.error(node, path, problem)
        return value

    def describe(self):
        return self.what

    def accepts(self, value):
        return isinstance(value, str) or (self.numbers_as_text and _is_number(value))


class Enum(Spec):
    """One of a fixed set of strings (or numbers). ``fold_case`` accepts any case and returns the
    declared spelling."""

    def __init__(self, values: Sequence[Any], *, fold_case: bool = False, what: Optional[str] = None):
        self.values = list(values)
        self.fold_case = fold_case
        self.what = what

    def check(self, node, path, v):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return v.error(node, path, f"expected {self.describe()}, got {show(value)}")
        if value in self.values:
            return value
        if self.fold_case and isinstance(value, str):
            for declared in self.values:
                if isinstance(declared, str) and declared.lower() == value.lower():
                    return declared
        message = f"expected {self.describe()}, got {show(value)}"
        if isinstance(value, str):
            close = did_you_mean(value, [str(x) for x in self.values])
            if close is not None:
                message += f" (did you mean {close!r}?)"
        return v.error(node, path, message)

    def describe(self):
        if self.what:
            return self.what
        if len(self.values) == 1:
            return repr(self.values[0]) if isinstance(self.values[0], str) else str(self.values[0])
        return "one of " + ", ".join(str(x) for x in self.values)

    def accepts(self, value):
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)


class Number(Spec):
    """An int or float in ``[low, high]``; ``above`` makes the lower bound exclusive; ``integer``
    refuses floats."""

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None, *, above: Optional[float] = None,
                 integer: bool = False, unit: str = ""):
        self.low = low
        self.high = high
        self.above = above
        self.integer = integer
        self.unit = unit

    def check(self, node, path, v):
        value = node.value
        ok_type = isinstance(value, int) if self.integer else _is_number(value)
        if isinstance(value, bool) or not ok_type:
            return v.error(node, path, f"expected {self.describe()}, got {show(value)}")
        if not math.isfinite(value):  # .nan passes every range check; neither it nor .inf is JSON
            return v.error(node, path, f"expected {self.describe()}, got {_fmt(value)}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high) or (
            self.above is not None and value <= self.above
        ):
            return v.error(node, path, f"expected {self.describe()}, got {_fmt(value)}")
        return value

    def describe(self):
        kind = "an integer" if self.integer else "a number"
        unit = f" {self.unit}" if self.unit else ""
        if self.above is not None:
            bounds = f" > {_fmt(self.above)}" + (f" and <= {_fmt(self.high)}" if self.high is not None else "")
        elif self.low is not None and self.high is not None:
            bounds = f" from {_fmt(self.low)} to {_fmt(self.high)}"
        elif self.low is not None:
            bounds = f" >= {_fmt(self.low)}"
        elif self.high is not None:
            bounds = f" <= {_fmt(self.high)}"
        else:
            bounds = ""
        return f"{kind}{unit}{bounds}"

    def accepts(self, value):
        return (isinstance(value, int) if self.integer else _is_number(value)) and not isinstance(value, bool)


def Int(low=None, high=None, **kw) -> Number:  # noqa: N802 - reads like a type in the schema
    return Number(low, high, integer=True, **kw)


class ListOf(Spec):
    def __init__(self, item: Spec, *, min_len: int = 0, max_len: Optional[int] = None, unique: bool = False,
                 single: bool = False):
        self.item = item
        self.min_len = min_len
        self.max_len = max_len
        self.unique = unique
        self.single = single  # a lone item stands for a list of one

    def check(self, node, path, v):
        if not isinstance(node.value, list):
            if self.single and self.item.accepts(node.value):
                return self.item.validate(node, path, v)
            return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")
        if len(node.value) < self.min_len:
            return v.error(node, path, f"expected at least {self.min_len} item{'s' if self.min_len > 1 else ''}")
        if self.max_len is not None and len(node.value) > self.max_len:
            return v.error(node, path, f"expected at most {self.max_len} items, got {len(node.value)}")
        result = []
        seen: list[Any] = []
        for index, child in enumerate(node.value):
            value = self.item.validate(child, path + (index,), v)
            if value is INVALID:
                continue
            if self.unique and value in seen:
                v.error(child, path + (index,), f"{show(value)} is listed twice")
                continue
            seen.append(value)
            result.append(value)
        return result

    def describe(self):
        if self.single:
            return f"{self.item.describe()} or a list of them"
        text = self.item.describe()
        for article in ("a ", "an "):
            if text.startswith(article) and " " not in text[len(article):]:
                return f"a list of {text[len(article):]}s"  # "a string" -> "a list of strings"
        return f"a list ({text} each)"

    def accepts(self, value):
        return isinstance(value, list) or (self.single and self.item.accepts(value))

    def child(self, key, current):
        return self.item if isinstance(key, int) else None


class FreeMap(Spec):
    """A mapping with any keys; values checked by ``values``."""

    def __init__(self, values: Spec = ANYTHING, *, max_len: Optional[int] = None, what: str = "a mapping"):
        self.values = values
        self.max_len = max_len
        self.what = what

    def check(self, node, path, v):
        if not isinstance(node.value, dict):
            return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")
        if self.max_len is not None and len(node.value) > self.max_len:
            return v.error(node, path, f"expected at most {self.max_len} entries, got {len(node.value)}")
        result = {}
        for key, child in node.value.items():
            value = self.values.validate(child, path + (key,), v)
            if value is not INVALID:
                result[key] = value
        return result

    def describe(self):
        return self.what

    def accepts(self, value):
        return isinstance(value, dict)

    def child(self, key, current):
        return self.values if isinstance(key, str) else None


class Map(Spec):
    """A mapping with known keys.

    ``passthrough`` keys are fields the service accepts that the SDK model lacks: validated like
    the others, sent by item assignment. ``required`` keys must be present. ``other`` decides the
    spec of a key not declared (``None`` = unknown key). ``forbid`` names keys refused with
    ``forbid_message`` (their value is never shown). ``after`` runs cross-field checks on the
    validated mapping.
    """

    def __init__(self, fields: Mapping[str, Spec], *, passthrough: Optional[Mapping[str, Spec]] = None,
                 required: Sequence[str] = (), other: Optional[Callable[[str], Optional[Spec]]] = None,
                 unknown_hint: str = "", forbid: Optional[Callable[[str], bool]] = None, forbid_message: str = "",
                 after: Optional[Callable[[dict, Node, KeyPath, Check], None]] = None, nullable: bool = False,
                 what: str = "a mapping"):
        self.fields = dict(fields)
        self.passthrough = dict(passthrough or {})
        self.required = tuple(required)
        self.other = other
        self.unknown_hint = unknown_hint
        self.forbid = forbid
        self.forbid_message = forbid_message
        self.after = after
        self.nullable = nullable
        self.what = what

    def spec_for(self, key: str) -> Optional[Spec]:
        spec = self.fields.get(key) or self.passthrough.get(key)
        if spec is None and self.other is not None:
            spec = self.other(key)
        return spec

    def check(self, node, path, v, unknown: Optional[Callable[[str, Node], None]] = None):
        if not isinstance(node.value, dict):
            return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")
        result = {}
        for key, child in node.value.items():
            if self.forbid is not None and self.forbid(key):
                v.error(child, path + (key,), self.forbid_message, at_key=True)
                continue
            spec = self.spec_for(key)
            if spec is None:
                if unknown is not None:
                    unknown(key, child)
                else:
                    self.unknown(key, child, path, v)
                continue
            value = spec.validate(child, path + (key,), v)
            if value is not INVALID:
                result[key] = value
        missing = [key for key in self.required if key not in node.value]
        for key in missing:
            v.error(node, path, f"missing required key {key!r}", at_key=True)
        if self.after is not None and not missing:
            self.after(result, node, path, v)
        return result

    def unknown(self, key: str, child: Node, path: KeyPath, v: Check) -> None:
        known = self.keys(None)
        close = did_you_mean(key, known)
        if close is not None:
            hint = f"did you mean {close!r}?"
        elif self.unknown_hint:
            hint = self.unknown_hint
        else:
            hint = "known keys: " + ", ".join(known)
        v.error(child, path + (key,), f"unknown key ({hint})", at_key=True)

    def describe(self):
        return self.what

    def accepts(self, value):
        return isinstance(value, dict)

    def child(self, key, current):
        return self.spec_for(key) if isinstance(key, str) else None

    def keys(self, current):
        return list(self.fields) + list(self.passthrough)


class Tagged(Spec):
    """A mapping whose ``tag`` key (``type``) picks one of several :class:`Map` variants."""

    def __init__(self, variants: Mapping[str, Map], *, tag: str = "type", nullable: bool = False,
                 what: Optional[str] = None):
        self.variants = dict(variants)
        self.tag = tag
        self.nullable = nullable
        self.what = what
        self.tag_spec = Enum(list(self.variants))
        for name, variant in self.variants.items():
            variant.fields.setdefault(tag, Enum([name]))

    def check(self, node, path, v):
        if not isinstance(node.value, dict):
            return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")
        tag_node = node.value.get(self.tag)
        if tag_node is None:
            return v.error(node, path, f"missing required key {self.tag!r} ({self.tag_spec.describe()})", at_key=True)
        tag = self.tag_spec.validate(tag_node, path + (self.tag,), v)
        if tag is INVALID:
            return INVALID
        variant = self.variants[tag]

        def unknown(key: str, child: Node) -> None:
            owners = [name for name, other in self.variants.items() if other.spec_for(key) is not None]
            if owners:
                v.error(child, path + (key,), f"not a setting of {self.tag} {tag} (only of {', '.join(owners)})",
                        at_key=True)
            else:
                variant.unknown(key, child, path, v)

        return variant.check(node, path, v, unknown=unknown)

    def describe(self):
        return self.what or f"a mapping with {self.tag}: {self.tag_spec.describe()}"

    def accepts(self, value):
        return isinstance(value, dict)

    def variant_of(self, current: Any) -> Optional[Map]:
        if isinstance(current, dict) and current.get(self.tag) in self.variants:
            return self.variants[current[self.tag]]
        return None

    def child(self, key, current):
        if not isinstance(key, str):
            return None
        if key == self.tag:
            return self.tag_spec
        variant = self.variant_of(current)
        if variant is not None:
            return variant.child(key, None)
        for variant in self.variants.values():
            spec = variant.child(key, None)
            if spec is not None:
                return spec
        return None

    def keys(self, current):
        variant = self.variant_of(current)
        variants = [variant] if variant is not None else list(self.variants.values())
        names: list[str] = []
        for each in variants:
            names += [key for key in each.keys(None) if key not in names]
        return names


class Either(Spec):
    """One of several specs, picked by the Python type of the value."""

    def __init__(self, *options: Spec, nullable: bool = False, what: Optional[str] = None):
        self.options = options
        self.nullable = nullable
        self.what = what

    def check(self, node, path, v):
        for option in self.options:
            if option.accepts(node.value):
                return option.validate(node, path, v)
        return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")

    def describe(self):
        return self.what or " or ".join(option.describe() for option in self.options)

    def accepts(self, value):
        return any(option.accepts(value) for option in self.options)

    def child(self, key, current):
        for option in self.options:
            if current is None or option.accepts(current):
                spec = option.child(key, current)
                if spec is not None:
                    return spec
        return None

    def keys(self, current):
        names: list[str] = []
        for option in self.options:
            if current is None or option.accepts(current):
                names += [key for key in option.keys(current) if key not in names]
        return names
