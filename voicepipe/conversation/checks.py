"""The ``expect`` checks of a turn, each giving a pass or a failure with the reason in one line.

Phrases (``says_any``, ``says_all``, ``says_none``) are matched in the words of the answer (every
message of the turn's responses, joined), ignoring case, punctuation and repeated spaces.
``tool_call`` arguments match as a subset: every key given must be there with an equal value
(text compared ignoring case), other keys may be there too. ``voice_to_voice_ms`` is measured
from the end of the caller's speech (or the typed message being sent) to the first sample of the
answer played, tool calls included; ``p`` takes that percentile (nearest rank) of the turn's
samples, one per run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from voicepipe.conversation.driver import TurnRecord
from voicepipe.conversation.spec import Turn

_NOT_WORD = re.compile(r"[^\w']+")


@dataclass
class CheckResult:
    kind: str
    passed: bool
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "passed": self.passed, "message": self.message}


def normalise(text: str) -> str:
    return " " + " ".join(_NOT_WORD.sub(" ", text.lower()).split()) + " "


def contains(answer: str, phrase: str) -> bool:
    wanted = normalise(phrase).strip()
    return bool(wanted) and f" {wanted} " in normalise(answer)


def _quote(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return json.dumps(text if len(text) <= limit else text[: limit - 3] + "...", ensure_ascii=False)


def _phrases(phrases: Iterable[str]) -> str:
    return ", ".join(_quote(p) for p in phrases)


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_matches, expected, actual))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().lower() == actual.strip().lower()
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual)
    return expected == actual


def _describe_call(call: dict) -> str:
    arguments = call.get("arguments")
    shown = json.dumps(arguments, ensure_ascii=False, sort_keys=True) if not isinstance(arguments, str) else arguments
    return f"{call.get('name')} {shown}"


def check_tool_calls(turn: Turn, record: TurnRecord) -> list[CheckResult]:
    results = []
    for wanted in turn.tool_calls:
        shown = f"{wanted.name} {json.dumps(wanted.arguments, ensure_ascii=False, sort_keys=True)}" if wanted.arguments \
            else wanted.name
        same_name = [c for c in record.tool_calls if c.get("name") == wanted.name]
        if any(_matches(wanted.arguments, c.get("arguments")) for c in same_name):
            results.append(CheckResult("tool_call", True, f"called {shown}"))
            continue
        if not record.tool_calls:
            got = "no tool was called"
        else:
            got = "got " + "; ".join(_describe_call(c) for c in record.tool_calls)
        results.append(CheckResult("tool_call", False, f"expected a call of {shown}, {got}"))
    return results


def check_says(kind: str, phrases: list[str], answer: str) -> CheckResult:
    found = [p for p in phrases if contains(answer, p)]
    heard = f"the answer was {_quote(answer)}" if answer.strip() else "there was no answer in words"
    if kind == "says_any":
        if found:
            return CheckResult(kind, True, f"said {_quote(found[0])}")
        return CheckResult(kind, False, f"none of {_phrases(phrases)} was said; {heard}")
    if kind == "says_all":
        missing = [p for p in phrases if p not in found]
        if not missing:
            return CheckResult(kind, True, f"said all of {_phrases(phrases)}")
        return CheckResult(kind, False, f"{_phrases(missing)} not said; {heard}")
    if found:
        return CheckResult(kind, False, f"said {_phrases(found)}, which it must not; {heard}")
    return CheckResult(kind, True, f"said none of {_phrases(phrases)}")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def check_latency(spec: dict, samples: list[Optional[float]], paced: bool) -> CheckResult:
    kind = "voice_to_voice_ms"
    under = float(spec["under"])
    measured = [s for s in samples if s is not None]
    if not measured:
        why = ("the conversation ran with pace: fast, which has no capture clock (use pace: realtime or auto)"
               if not paced else "the answer never started playing")
        return CheckResult(kind, False, f"not measured: {why}")
    p = spec.get("p")
    value = percentile(measured, float(p)) if p is not None else max(measured)
    what = f"p{p:g} of {len(measured)} sample(s)" if p is not None else "measured"
    if value < under:
        return CheckResult(kind, True, f"{value:.0f} ms ({what}), under {under:g} ms")
    return CheckResult(kind, False, f"{value:.0f} ms ({what}), not under {under:g} ms")


def check_interrupted(expected: bool, record: TurnRecord) -> CheckResult:
    kind = "interrupted"
    if record.interrupted == expected:
        return CheckResult(kind, True, "the answer was cut off" if expected else "the answer played to the end")
    if expected:
        if not record.response_ids:
            return CheckResult(kind, False, "expected the answer to be cut off, but there was no answer")
        return CheckResult(kind, False, "expected the answer to be cut off, but it played to the end "
                                        "(barge_in_after_ms later than the answer is long?)")
    return CheckResult(kind, False, "expected the answer to play to the end, but it was cut off")


def evaluate(turn: Turn, record: TurnRecord, samples: Optional[list] = None) -> list[CheckResult]:
    """Every check of ``turn`` except ``judge`` (the runner asks the plugins for that)."""
    results: list[CheckResult] = []
    if record.failure:
        results.append(CheckResult("answer", False, record.failure))
    expect = turn.expect
    results += check_tool_calls(turn, record)
    for kind in ("says_any", "says_all", "says_none"):
        if kind in expect:
            results.append(check_says(kind, list(expect[kind]), record.answer))
    if "voice_to_voice_ms" in expect:
        results.append(check_latency(expect["voice_to_voice_ms"], samples or [record.voice_to_voice_ms], record.paced))
    if "interrupted" in expect:
        results.append(check_interrupted(bool(expect["interrupted"]), record))
    return results


def judge_result(verdicts: list, plugin_error: Optional[str]) -> CheckResult:
    """The ``judge`` check from what the ``voicepipe_judge_turn`` implementations returned."""
    kind = "judge"
    if plugin_error:
        return CheckResult(kind, False, plugin_error)
    given = [v for v in verdicts if v is not None]
    if not given:
        return CheckResult(kind, False, "no plugin judged this turn (add a plugin that implements "
                                        "voicepipe_judge_turn to the profile)")
    failures = []
    for verdict in given:
        passed, reason = _verdict(verdict)
        if not passed:
            failures.append(reason or "the judge said no")
    if failures:
        return CheckResult(kind, False, "; ".join(failures))
    reasons = [r for r in (_verdict(v)[1] for v in given) if r]
    return CheckResult(kind, True, "; ".join(reasons) or "the judge agreed")


def _verdict(value: Any) -> tuple[bool, str]:
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return bool(value[0]), str(value[1] or "")
    if isinstance(value, dict):
        return bool(value.get("passed")), str(value.get("reason") or "")
    return False, f"a judge returned {value!r} (expected true/false, (passed, reason) or {{passed, reason}})"
