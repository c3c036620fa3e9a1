"""Scenario files: what the emulated user says, what the assistant answers, which faults happen.

.. code-block:: yaml

    voice: synth                  # synth (default, deterministic) | espeak (espeak-ng if installed)
    greeting: Hello!              # answer to a response.create before the user said anything
    default_answer: "You said: {user}"   # when the turns run out
    response_delay_ms: 200        # thinking time before the first delta (divided by the speed)
    turns:                        # one per user turn, in order
      - user: What is the weather in Paris?        # the input transcript of that turn
        tool: {name: get_weather, arguments: {city: Paris}}
        assistant: "Here is the weather: {tool_output}"
      - user: What time is it in Tokyo, and is the Louvre open?
        preamble: Let me check.   # spoken in the same response, before the call(s)
        tool:                     # a list: parallel function calls in one response
          - {name: get_current_time, arguments: {timezone: Asia/Tokyo}}
          - {name: get_opening_hours, arguments: {place: Louvre}}
        assistant: "Here you go: {tool_output}"
    faults:
      - after: {event: response.audio.delta, count: 3}   # or after_client: {...} / after_events: N
        action: close             # delay | close | error | malformed | stop_answering | http_status
        code: 1011

Answers may use ``{user}`` (what the user said) and ``{tool_output}`` (the function call output the
client sent). ``tool`` is one call (a mapping) or several (a list of mappings): the first response
then calls every listed function that is a function tool of the session, one ``function_call``
output item per call, in order (none in the session: the turn is answered in words). After the
outputs, ``{tool_output}`` is the outputs of that response's calls, in call order, joined with
``"; "``. With the session's ``parallel_tool_calls: false`` a response makes one call, the next
one follows the first's output; ``tool_choice`` ``none`` answers in words, ``required`` or a named
function calls one even when the turn has none (arguments ``{}``). See ``example_scenario.yaml`` next to this module for every option.

Errors name the file and line: ``scenario.yaml:7: turns[1].usr: unknown key (did you mean 'user'?)``.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from voicepipe.errors import UsageError

DEFAULT_ANSWER = "This is the voicepipe emulator. You said: {user}"
DEFAULT_GREETING = "Hello! How can I help you today?"
DEFAULT_RESPONSE_DELAY_MS = 200.0
VOICES = ("synth", "espeak")
FAULT_ACTIONS = ("delay", "close", "error", "malformed", "stop_answering", "http_status")
MALFORMED_KINDS = ("not_json", "wrong_shape")

_TOP_KEYS = ("voice", "greeting", "default_answer", "response_delay_ms", "turns", "faults")
_TURN_KEYS = ("user", "preamble", "assistant", "tool")
_TOOL_KEYS = ("name", "arguments")
_TRIGGER_KEYS = ("after", "after_client", "after_events")
_ACTION_KEYS = {
    "delay": ("ms",),
    "close": ("code", "reason"),
    "error": ("code", "message", "type"),
    "malformed": ("kind",),
    "stop_answering": (),
    "http_status": ("status", "message"),
}


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant makes: the tool's name and its JSON arguments (a string)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Turn:
    """One user turn: what the user said, what the assistant answers, which tool(s) it calls first.

    ``tool`` is a :class:`ToolCall` (the scenario's single mapping) or a tuple of them (the list
    form: parallel calls in one response); :attr:`calls` is always the tuple.
    """

    user: Optional[str] = None
    assistant: Optional[str] = None
    tool: Union[ToolCall, tuple[ToolCall, ...], None] = None
    preamble: Optional[str] = None  # spoken in the same response as the tool call(s), before them

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The function calls of the turn's first response, in order (empty: none)."""
        if self.tool is None:
            return ()
        if isinstance(self.tool, ToolCall):
            return (self.tool,)
        return tuple(self.tool)


@dataclass(frozen=True)
class Fault:
    """A fault to inject on a connection once its trigger is reached.

    ``trigger`` is ``None`` (at once, when the connection opens), ``("server", type, count)``
    (after the count-th server event of that type is sent), ``("client", type, count)`` (after the
    count-th client event of that type is received) or ``("events", None, count)`` (after that
    many server events). ``connection`` limits the fault to the n-th connection (1-based).
    """

    action: str
    trigger: Optional[tuple] = None
    params: dict = field(default_factory=dict)
    connection: Optional[int] = None
    line: int = 0


@dataclass
class Scenario:
    """Everything a scenario file says; ``Scenario()`` is the empty scenario (default answers)."""

    turns: list[Turn] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    greeting: str = DEFAULT_GREETING
    default_answer: str = DEFAULT_ANSWER
    voice: str = "synth"
    response_delay_ms: float = DEFAULT_RESPONSE_DELAY_MS
    source: Optional[str] = None

    def turn_of(self, role: str, text: str, start: int = 0) -> Optional[int]:
        """The index of the first turn from ``start`` whose ``role`` text (``user``: what was said,
        ``assistant``: the answer with ``{user}`` filled in) is ``text``, ignoring case, spacing
        and punctuation; ``None`` when none is. How a re-seeded conversation finds its place."""
        wanted = _plain(text)
        if not wanted:
            return None
        for index in range(max(0, start), len(self.turns)):
            turn = self.turns[index]
            said = turn.user if role == "user" else answer_text(turn.assistant or "", user=turn.user or "")
            if said and _plain(said) == wanted:
                return index
        return None


def _plain(text: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


# -- YAML with line numbers ----------------------------------------------------------------------


class _LineDict(dict):
    line = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _LineList(list):
    line = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


@functools.lru_cache(maxsize=None)  # one class: each class made is a reference cycle (its __mro__)
def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node):
        loader.flatten_mapping(node)
        result = _LineDict()
        result.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise _Problems([f"{key_node.start_mark.line + 1}: {key}: duplicate key"])
            result[key] = loader.construct_object(value_node, deep=True)
            result.lines[key] = key_node.start_mark.line + 1
        return result

    def sequence(loader, node):
        result = _LineList()
        result.line = node.start_mark.line + 1
        for child in node.value:
            result.append(loader.construct_object(child, deep=True))
            result.lines.append(child.start_mark.line + 1)
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return Loader


class _Problems(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# -- validation ----------------------------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []

    def report(self, source: str) -> str:
        """All problems, in file order, each as ``source:line: key: problem``."""
        return "\n".join(f"{source}:{text}" for _, text in sorted(self.problems, key=lambda p: p[0]))

    def problem(self, line: int, path: str, message: str) -> None:
        self.problems.append((line, f"{line}: {path}: {message}" if path else f"{line}: {message}"))

    def mapping(self, value: Any, line: int, path: str, allowed: tuple) -> Optional[_LineDict]:
        if not isinstance(value, dict):
            self.problem(line, path, f"expected a mapping, got {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (expected one of: {', '.join(allowed)})"
                self.problem(
                    _line_of(value, key, line), f"{path}.{key}" if path else str(key), f"unknown key{suggestion}"
                )
        return value

    def text(self, mapping: _LineDict, key: str, path: str, required: bool = False) -> Optional[str]:
        if key not in mapping or mapping[key] is None:
            if required:
                self.problem(mapping.line, path, f"'{key}' is required")
            return None
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(_line_of(mapping, key), _join(path, key), f"expected text, got {_describe(value)}")
            return None
        return str(value)

    def number(
        self, mapping: _LineDict, key: str, path: str, *, minimum: float = 0, integer: bool = False
    ) -> Optional[float]:
        if key not in mapping:
            return None
        value = mapping[key]
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.problem(_line_of(mapping, key), _join(path, key), f"expected {kind}, got {_describe(value)}")
            return None
        if value < minimum:
            self.problem(_line_of(mapping, key), _join(path, key), f"expected {kind} ≥ {minimum:g}, got {value}")
            return None
        return value

    def choice(self, mapping: _LineDict, key: str, path: str, choices: tuple) -> Optional[str]:
        if key not in mapping:
            return None
        value = mapping[key]
        if value not in choices:
            self.problem(
                _line_of(mapping, key), _join(path, key), f"expected one of {', '.join(choices)}, got {value!r}"
            )
            return None
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _line_of(mapping: Any, key: Any, default: int = 0) -> int:
    lines = getattr(mapping, "lines", None)
    if isinstance(lines, dict) and key in lines:
        return lines[key]
    return getattr(mapping, "line", default) or default


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _parse_turn(check: _Checker, raw: Any, line: int, path: str) -> Optional[Turn]:
    turn = check.mapping(raw, line, path, _TURN_KEYS)
    if turn is None:
        return None
    user = check.text(turn, "user", path)
    assistant = check.text(turn, "assistant", path)
    preamble = check.text(turn, "preamble", path)
    tool: Union[ToolCall, tuple[ToolCall, ...], None] = None
    if "tool" in turn:
        raw_tool, tool_line = turn["tool"], _line_of(turn, "tool")
        if isinstance(raw_tool, list):
            tool = _parse_tools(check, raw_tool, tool_line, f"{path}.tool")
        elif isinstance(raw_tool, dict):
            tool = _parse_tool(check, raw_tool, tool_line, f"{path}.tool")
        else:
            check.problem(tool_line, f"{path}.tool", f"expected a mapping or a list of mappings, got {_describe(raw_tool)}")
    if not any(k in turn for k in _TURN_KEYS):
        check.problem(turn.line or line, path, "a turn needs at least one of user, assistant, tool")
    if preamble is not None and "tool" not in turn:
        check.problem(_line_of(turn, "preamble", line), f"{path}.preamble", "a preamble goes with a tool call: add 'tool'")
    return Turn(user=user, assistant=assistant, tool=tool, preamble=preamble)


def _parse_tools(check: _Checker, raw: list, line: int, path: str) -> Optional[tuple[ToolCall, ...]]:
    """The list form of ``tool``: parallel calls, each entry a mapping like the single form."""
    if not raw:
        check.problem(line, path, "expected at least one call (a mapping or a list of mappings), got an empty list")
        return None
    calls = []
    for index, entry in enumerate(raw):
        entry_line = raw.lines[index] if isinstance(raw, _LineList) else line
        call = _parse_tool(check, entry, entry_line, f"{path}[{index}]")
        if call is not None:
            calls.append(call)
    return tuple(calls) if len(calls) == len(raw) else None


def _parse_tool(check: _Checker, raw: Any, line: int, path: str) -> Optional[ToolCall]:
    tool = check.mapping(raw, line, path, _TOOL_KEYS)
    if tool is None:
        return None
    name = check.text(tool, "name", path, required=True)
    arguments: Any = tool.get("arguments", {})
    if isinstance(arguments, dict):
        encoded = json.dumps(arguments)
    elif isinstance(arguments, str):
        try:
            json.loads(arguments)
        except ValueError as exc:
            check.problem(_line_of(tool, "arguments"), f"{path}.arguments", f"not valid JSON ({exc.msg})")
            return None
        encoded = arguments
    else:
        check.problem(
            _line_of(tool, "arguments"),
            f"{path}.arguments",
            f"expected a mapping or a JSON string, got {_describe(arguments)}",
        )
        return None
    return ToolCall(name, encoded) if name else None


def _parse_trigger(check: _Checker, fault: _LineDict, path: str) -> tuple[bool, Optional[tuple]]:
    from voicepipe.emulator.events import CLIENT_EVENT_TYPES, SERVER_EVENT_TYPES

    given = [key for key in _TRIGGER_KEYS if key in fault]
    if len(given) > 1:
        check.problem(fault.line, path, f"give only one of {', '.join(given)}")
        return False, None
    if not given:
        return True, None
    key = given[0]
    line = _line_of(fault, key)
    if key == "after_events":
        count = check.number(fault, key, path, minimum=1, integer=True)
        return count is not None, ("events", None, count)
    spec = check.mapping(fault[key], line, f"{path}.{key}", ("event", "count"))
    if spec is None:
        return False, None
    known = SERVER_EVENT_TYPES if key == "after" else CLIENT_EVENT_TYPES
    event = check.text(spec, "event", f"{path}.{key}", required=True)
    if event is not None and event not in known:
        hint = difflib.get_close_matches(event, known, n=1)
        side = "server" if key == "after" else "client"
        check.problem(
            _line_of(spec, "event", line),
            f"{path}.{key}.event",
            f"unknown {side} event type {event!r}" + (f" (did you mean '{hint[0]}'?)" if hint else ""),
        )
        return False, None
    count = check.number(spec, "count", f"{path}.{key}", minimum=1, integer=True) if "count" in spec else 1
    if event is None or count is None:
        return False, None
    return True, ("server" if key == "after" else "client", event, int(count))


def _parse_fault(check: _Checker, raw: Any, line: int, path: str) -> Optional[Fault]:
    if not isinstance(raw, dict):
        check.problem(line, path, f"expected a mapping, got {_describe(raw)}")
        return None
    if "action" not in raw:
        check.problem(getattr(raw, "line", line), path, f"'action' is required (one of {', '.join(FAULT_ACTIONS)})")
        return None
    action = raw["action"]
    if action not in FAULT_ACTIONS:
        check.problem(
            _line_of(raw, "action", line),
            f"{path}.action",
            f"expected one of {', '.join(FAULT_ACTIONS)}, got {action!r}",
        )
        return None
    fault = check.mapping(raw, line, path, ("action", "connection", *_TRIGGER_KEYS, *_ACTION_KEYS[action]))
    if fault is None:
        return None
    ok, trigger = _parse_trigger(check, fault, path)
    connection = check.number(fault, "connection", path, minimum=1, integer=True)
    if "connection" in fault and connection is None:
        ok = False
    params: dict[str, Any] = {}
    if action == "delay":
        ms = check.number(fault, "ms", path)
        if "ms" not in fault:
            check.problem(fault.line, path, "'ms' is required for a delay")
        if ms is None:
            return None
        params["ms"] = float(ms)
    elif action == "close":
        code = check.number(fault, "code", path, minimum=1000, integer=True) if "code" in fault else 1011
        if code is None or code > 4999:
            if code is not None:
                check.problem(
                    _line_of(fault, "code"), f"{path}.code", f"expected a WebSocket close code 1000-4999, got {code}"
                )
            return None
        params["code"] = int(code)
        params["reason"] = check.text(fault, "reason", path) or ""
    elif action == "error":
        params["code"] = check.text(fault, "code", path) or "server_error"
        params["message"] = (
            check.text(fault, "message", path) or "The server had an error while processing your request."
        )
        params["type"] = check.text(fault, "type", path) or "server_error"
    elif action == "malformed":
        params["kind"] = check.choice(fault, "kind", path, MALFORMED_KINDS) or "not_json"
    elif action == "http_status":
        status = check.number(fault, "status", path, minimum=400, integer=True) if "status" in fault else 403
        if status is None or status > 599:
            if status is not None:
                check.problem(
                    _line_of(fault, "status"), f"{path}.status", f"expected an HTTP error status 400-599, got {status}"
                )
            return None
        params["status"] = int(status)
        params["message"] = check.text(fault, "message", path) or ""
        if trigger is not None:
            check.problem(
                fault.line, path, "http_status happens at connect: it takes no after/after_client/after_events"
            )
            return None
    if not ok:
        return None
    return Fault(action=action, trigger=trigger, params=params, connection=connection, line=fault.line)


def _parse(data: Any, check: _Checker) -> Scenario:
    scenario = Scenario()
    if data is None:
        return scenario
    top = check.mapping(data, 1, "", _TOP_KEYS)
    if top is None:
        return scenario
    voice = check.choice(top, "voice", "", VOICES)
    if voice:
        scenario.voice = voice
    for key in ("greeting", "default_answer"):
        value = check.text(top, key, "")
        if value is not None:
            setattr(scenario, key, value)
    delay = check.number(top, "response_delay_ms", "")
    if delay is not None:
        scenario.response_delay_ms = float(delay)
    for key, parse, target in (("turns", _parse_turn, scenario.turns), ("faults", _parse_fault, scenario.faults)):
        if key not in top or top[key] is None:
            continue
        items = top[key]
        if not isinstance(items, list):
            check.problem(_line_of(top, key), key, f"expected a list, got {_describe(items)}")
            continue
        for index, item in enumerate(items):
            line = items.lines[index] if isinstance(items, _LineList) else _line_of(top, key)
            parsed = parse(check, item, line, f"{key}[{index}]")
            if parsed is not None:
                target.append(parsed)
    return scenario


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse scenario YAML text; problems raise :class:`UsageError` as ``source:line: key: problem``."""
    import yaml

    check = _Checker()
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except _Problems as exc:
        raise UsageError("\n".join(f"{source}:{p}" for p in exc.problems)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{source}:{line}: not valid YAML: {what}") from None
    scenario = _parse(data, check)
    if check.problems:
        raise UsageError(check.report(source))
    scenario.source = source
    return scenario


def load_scenario(path: Union[str, os.PathLike]) -> Scenario:
    """Load and validate a scenario file; any problem raises :class:`UsageError` naming file:line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{file}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read the scenario ({exc})") from None
    return parse_scenario(text, str(file))


def answer_text(template: str, *, user: str = "", tool_output: str = "") -> str:
    """Fill ``{user}`` and ``{tool_output}`` into an answer (other braces are left alone)."""
    return template.replace("{user}", user).replace("{tool_output}", tool_output)
