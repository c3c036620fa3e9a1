"""``@voicepipe.tool``: a typed Python function is a function tool, its schema read from its signature.

::

    from typing import Literal
    from voicepipe import tool

    @tool
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
        \"\"\"Today's weather in a city.

        Args:
            city: The city, e.g. London.
            unit: The temperature unit.
        \"\"\"
        ...

List the file as a plugin (``plugins: [plugins/weather.py]``): the tool is declared to the session
(name, the docstring's first paragraph as description, a JSON schema of the parameters) and its
calls run the function with the model's arguments, checked against that schema. An ``async def``
is awaited; a plain function runs in a thread. Declaring the same name in ``session.tools`` keeps
the profile's declaration (the YAML form stays, for tools whose schema you write by hand).

Types understood: ``str``, ``int``, ``float``, ``bool``, ``list[X]``, ``dict``, ``Literal[...]``,
``enum.Enum`` subclasses, ``Optional[X]`` (``X | None``); a parameter with a default is optional.
Descriptions come from a Google-style ``Args:`` section or Sphinx ``:param name:`` lines.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import sys
import types
import typing
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional

from voicepipe.errors import UsageError

MARK = "__voicepipe_tool__"
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


class TypedTool(NamedTuple):  # not a frozen dataclass: making that class costs a millisecond at start-up
    """A decorated function and the declaration built from it."""

    name: str
    function: Callable[..., Any]
    declaration: dict


def tool(function: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None) -> Any:
    """Mark ``function`` as a function tool (``@tool`` or ``@tool(name="other_name")``)."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, MARK, TypedTool(name or func.__name__, func, declaration(func, name or func.__name__)))
        return func

    return mark(function) if function is not None else mark


def declaration(func: Callable[..., Any], name: str) -> dict:
    """The ``session.tools`` entry for ``func``: name, description and JSON schema of its parameters."""
    where = f"@tool {func.__module__}.{func.__qualname__}"
    summary, described = _docstring(inspect.getdoc(func) or "")
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # a forward reference that does not resolve
        raise UsageError(f"{where}: cannot read its type hints ({exc})") from None
    properties: dict = {}
    required = []
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise UsageError(f"{where}: *args and **kwargs cannot be described to the model; name each parameter")
        if parameter.name in ("ctx", "self"):
            continue
        if parameter.name not in hints:
            raise UsageError(f"{where}: parameter {parameter.name!r} needs a type hint (str, int, float, bool, ...)")
        schema, optional = _schema(hints[parameter.name], f"{where}: parameter {parameter.name!r}")
        if parameter.name in described:
            schema["description"] = described[parameter.name]
        if parameter.default is not parameter.empty:
            if _json_value(parameter.default):
                schema["default"] = parameter.default
        elif not optional:
            required.append(parameter.name)
        properties[parameter.name] = schema
    parameters: dict = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    entry = {"type": "function", "name": name, "parameters": parameters}
    if summary:
        entry["description"] = summary
    return entry


def _schema(hint: Any, where: str) -> tuple[dict, bool]:
    """The JSON schema of a type hint, and whether the hint admits ``None``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return _schema(rest[0], where)[0], len(rest) < len(args)
        return {"anyOf": [_schema(arg, where)[0] for arg in rest]}, len(rest) < len(args)
    if origin is typing.Literal:
        return {"enum": list(args)}, None in args
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}, False
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set):
        items = args[0] if args and args[0] is not Ellipsis else None
        schema: dict = {"type": "array"}
        if items is not None:
            schema["items"] = _schema(items, where)[0]
        return schema, False
    if origin is dict or hint is dict:
        return {"type": "object"}, False
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}, False
    if hint is Any:
        return {}, True
    raise UsageError(f"{where}: type {hint!r} cannot be described to the model (use str, int, float, bool, "
                     "list, dict, Literal or an Enum)")


def _docstring(text: str) -> tuple[str, dict]:
    """The first paragraph, and parameter descriptions from ``Args:`` or ``:param x:`` lines."""
    summary = " ".join(text.split("\n\n", 1)[0].split())
    described: dict = {}
    for match in re.finditer(r"^\s*:param\s+(?:\w+\s+)?(\w+):\s*(.+)$", text, re.MULTILINE):
        described[match.group(1)] = match.group(2).strip()
    section = re.search(r"^\s*(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", text, re.MULTILINE)
    if section:
        current = None
        for line in section.group(1).splitlines():
            item = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if item and (current is None or len(line) - len(line.lstrip()) <= _indent_of(section.group(1))):
                current = item.group(1)
                described[current] = item.group(2).strip()
            elif current is not None and line.strip():
                described[current] = f"{described[current]} {line.strip()}".strip()
    return summary, described


def _indent_of(block: str) -> int:
    first = block.splitlines()[0]
    return len(first) - len(first.lstrip())


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def typed_tools(namespace: Any) -> list[TypedTool]:
    """The decorated functions of a module (or of a class plugin's module)."""
    if inspect.isclass(namespace):
        namespace = sys.modules.get(namespace.__module__)
    if namespace is None:
        return []
    return [getattr(value, MARK) for value in vars(namespace).values() if callable(value) and hasattr(value, MARK)]


class TypedToolsPlugin:
    """The plugin that declares and runs a module's ``@tool`` functions (shared: no state)."""

    def __init__(self, tools: Iterable[TypedTool]):
        self.tools = {entry.name: entry for entry in tools}
        self._validators: dict = {}

    def voicepipe_session_config(self, profile: Any, session: Any) -> None:
        declared = session.get("tools") or []
        names = {_field(entry, "name") for entry in declared}
        added = [entry.declaration for name, entry in self.tools.items() if name not in names]
        if added:
            session["tools"] = [*declared, *added]

    def voicepipe_tools_provided(self) -> list[str]:
        return list(self.tools)

    def voicepipe_tool_call(self, name: str, arguments: Mapping[str, Any], call_id: str, ctx: Any) -> Any:
        entry = self.tools.get(name)
        if entry is None:
            return None
        problem = self._problem(entry, arguments)
        if problem is not None:
            ctx.log.warning("tool_arguments_invalid", tool=name, call_id=call_id, problem=problem)
            return {"error": f"the arguments for {name} do not match its parameters: {problem}"}
        from voicepipe.toolbind import call_handler

        kwargs = dict(arguments)
        if "ctx" in inspect.signature(entry.function).parameters:
            kwargs["ctx"] = ctx
        return call_handler(entry.function, name, kwargs)

    def _problem(self, entry: TypedTool, arguments: Mapping[str, Any]) -> Optional[str]:
        from voicepipe.toolbind import Tool

        checker = self._validators.get(entry.name)
        if checker is None:
            checker = self._validators[entry.name] = Tool(entry.name, entry.declaration["parameters"], None)
        return checker.argument_problem(dict(arguments))


def _field(entry: Any, key: str) -> Any:
    getter = getattr(entry, "get", None)
    return getter(key) if getter is not None else getattr(entry, key, None)
