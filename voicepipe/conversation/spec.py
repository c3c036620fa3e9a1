"""Conversation files: what a scripted caller says, turn by turn, and what each answer must show.

A conversation file is YAML, validated like a profile: every problem is reported at once as
``file:line:col: key.path: problem`` (a :class:`voicepipe.errors.ProfileError`, exit code 2)::

    profile: ../profiles/tools.yaml        # required, relative to this file
    scenario: scenarios/hours.yaml         # optional: the emulator's scenario when run offline
    set: [session.voice.temperature=0.7]   # optional profile overrides, as --set
    pace: auto                             # auto | fast | realtime (see voicepipe.conversation.runner)
    voice: auto                            # the caller's voice for `say`: auto | espeak | synth
    turn_timeout_s: 30                     # how long one turn may take to be answered
    turns:
      - say: What are your opening hours on Sunday?     # or text: ..., or audio: question.wav
        barge_in_after_ms: 800                          # talk over the answer after this much of it played
        expect:
          tool_call: {name: get_opening_hours, arguments: {day: sunday}}   # or a list of calls
          says_any: [closed, not open]
          says_all: [Sunday]
          says_none: [Monday]
          voice_to_voice_ms: {under: 1500, p: 95}
          interrupted: false
          judge: polite and short                       # handed to the voicepipe_judge_turn hook
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from voicepipe.errors import ProfileError, UsageError
from voicepipe.profile.nodes import Loc, Node, Problems
from voicepipe.profile.spec import (
    ANYTHING,
    INVALID,
    JSON,
    Bool,
    Check,
    Enum,
    FreeMap,
    ListOf,
    Map,
    Number,
    Str,
)
from voicepipe.profile.yamlload import parse_yaml

#: files ``voicepipe test FOLDER`` and pytest collect
SUFFIXES = (".conversation.yaml", ".conversation.yml")
PACES = ("auto", "fast", "realtime")
VOICES = ("auto", "espeak", "synth")
DEFAULT_TURN_TIMEOUT_S = 30.0
MAX_FILE_BYTES = 1_000_000


def _turn_checks(result: dict, node: Node, path: tuple, v: Check) -> None:
    given = [key for key in ("say", "text", "audio") if key in node.value]
    if len(given) != 1:
        what = "none of them" if not given else " and ".join(given)
        v.error(node, path, f"a turn needs exactly one of say, text or audio (got {what})", at_key=True)


_PHRASES = ListOf(Str(non_empty=True), min_len=1, single=True)
_TOOL_CALL = Map({"name": Str(non_empty=True), "arguments": FreeMap(JSON)}, required=("name",), what="a tool call")
_EXPECT = Map(
    {
        "tool_call": ListOf(_TOOL_CALL, min_len=1, single=True),
        "says_any": _PHRASES,
        "says_all": _PHRASES,
        "says_none": _PHRASES,
        "voice_to_voice_ms": Map({"under": Number(above=0, unit="ms"), "p": Number(above=0, high=100)},
                                 required=("under",), what="a mapping like {under: 1500, p: 95}"),
        "interrupted": Bool(),
        "judge": ANYTHING,
    },
    what="a mapping of expectations",
)
_TURN = Map(
    {
        "say": Str(non_empty=True),
        "text": Str(non_empty=True),
        "audio": Str(non_empty=True, what="a WAV file path"),
        "barge_in_after_ms": Number(low=0, unit="ms"),
        "expect": _EXPECT,
        "name": Str(non_empty=True),
    },
    after=_turn_checks,
    what="a turn (a mapping with say, text or audio)",
)
CONVERSATION = Map(
    {
        "profile": Str(non_empty=True, what="a profile path"),
        "scenario": Str(non_empty=True, what="a scenario path"),
        "set": ListOf(Str(non_empty=True, what="KEY=VALUE"), single=True),
        "pace": Enum(PACES),
        "voice": Enum(VOICES),
        "turn_timeout_s": Number(above=0, high=3600, unit="s"),
        "name": Str(non_empty=True),
        "turns": ListOf(_TURN, min_len=1),
    },
    required=("profile", "turns"),
    what="a conversation (a mapping with profile and turns)",
)


@dataclass
class ToolCallExpectation:
    name: str
    arguments: dict = field(default_factory=dict)


@dataclass
class Turn:
    """One scripted turn of the caller."""

    index: int
    loc: Loc
    say: Optional[str] = None
    text: Optional[str] = None
    audio: Optional[Path] = None
    barge_in_after_ms: Optional[float] = None
    expect: dict = field(default_factory=dict)
    name: Optional[str] = None

    @property
    def label(self) -> str:
        words = self.say or self.text or (self.audio.name if self.audio else "")
        return self.name or (words if len(words) <= 60 else words[:57] + "...")

    @property
    def spoken(self) -> bool:
        return self.text is None

    @property
    def tool_calls(self) -> list[ToolCallExpectation]:
        calls = self.expect.get("tool_call")
        if calls is None:
            return []
        return [ToolCallExpectation(c["name"], dict(c.get("arguments") or {})) for c in calls]


@dataclass
class Conversation:
    """A validated conversation file."""

    path: Path
    profile: Path
    turns: list[Turn]
    scenario: Optional[Path] = None
    overrides: list[str] = field(default_factory=list)
    pace: str = "auto"
    voice: str = "auto"
    turn_timeout_s: float = DEFAULT_TURN_TIMEOUT_S
    name: str = ""

    @property
    def needs_timing(self) -> bool:
        """Whether a turn measures or depends on time (barge-in, latency): those run paced."""
        return any(t.barge_in_after_ms is not None or "voice_to_voice_ms" in t.expect for t in self.turns)


def _listed(expect: dict) -> dict:
    """``expect`` with the keys that take one item or a list always holding a list."""
    result = dict(expect)
    for key in ("tool_call", "says_any", "says_all", "says_none"):
        if key in result and not isinstance(result[key], list):
            result[key] = [result[key]]
    return result


def is_conversation_file(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def load_conversation(path: str | os.PathLike) -> Conversation:
    """Read and validate the conversation at ``path``; every problem at once as a ProfileError."""
    display = os.fspath(path)
    real = Path(display)
    try:
        if real.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{display}: larger than {MAX_FILE_BYTES} bytes; is it a conversation file?")
        text = real.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{display}: no such conversation file") from None
    except IsADirectoryError:
        raise UsageError(f"{display}: is a folder, not a conversation file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{display}: not UTF-8 text; is it a conversation file?") from None
    except OSError as exc:
        raise UsageError(f"{display}: cannot read it: {exc.strerror or exc}") from None
    problems = Problems()
    root = parse_yaml(text, display, problems)
    if root is None:
        raise ProfileError(problems.lines)
    data = CONVERSATION.validate(root, (), Check(problems))
    if data is INVALID or problems:
        raise ProfileError(problems.lines)
    base = real.parent
    turns: list[Turn] = []
    for index, (raw, node) in enumerate(zip(data["turns"], root.value["turns"].value)):
        audio = None
        if "audio" in raw:
            audio = base / raw["audio"]
            if not audio.is_file():
                where = node.value["audio"].loc
                problems.add(where, ("turns", index, "audio"), f"no such WAV file: {audio}")
        turns.append(Turn(index=index, loc=node.loc, say=raw.get("say"), text=raw.get("text"), audio=audio,
                          barge_in_after_ms=raw.get("barge_in_after_ms"), expect=_listed(raw.get("expect") or {}),
                          name=raw.get("name")))
    profile = base / data["profile"]
    if not profile.is_file():
        problems.add(root.value["profile"].loc, ("profile",), f"no such profile: {profile}")
    scenario = base / data["scenario"] if "scenario" in data else None
    if scenario is not None and not scenario.is_file():
        problems.add(root.value["scenario"].loc, ("scenario",), f"no such scenario file: {scenario}")
    if problems:
        raise ProfileError(problems.lines)
    name = data.get("name") or real.name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".conversation")
    return Conversation(
        path=real,
        profile=profile,
        turns=turns,
        scenario=scenario,
        overrides=list(data.get("set") or []),
        pace=data.get("pace", "auto"),
        voice=data.get("voice", "auto"),
        turn_timeout_s=float(data.get("turn_timeout_s", DEFAULT_TURN_TIMEOUT_S)),
        name=name,
    )


def collect(paths: list[str]) -> list[Path]:
    """The conversation files named by ``paths`` (files as given, folders searched recursively)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_conversation_file(p))
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{given}: no such conversation file or folder")
    return found


