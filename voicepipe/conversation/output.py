"""Printing conversation results: a line per turn, the reason for every failed check."""

from __future__ import annotations

import sys
from typing import TextIO

from voicepipe.conversation.runner import ConversationResult


def format_result(result: ConversationResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    where = f"  ({result.run_dir})" if result.run_dir is not None else ""
    head = f"{verdict} {result.conversation.path} [{result.pace or '-'}, {result.seconds:.1f} s]{where}"
    lines = [head]
    for turn in result.turns:
        failed = [check for check in turn.checks if not check.passed]
        mark = "ok  " if not failed else "FAIL"
        lines.append(f"  {mark} turn {turn.index + 1}: {turn.label}")
        for check in failed:
            lines.append(f"         {check.kind}: {check.message}")
    if result.error:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)


def print_result(result: ConversationResult, stream: TextIO | None = None) -> None:
    print(format_result(result), file=stream or sys.stdout, flush=True)


def print_summary(results: list[ConversationResult], stream: TextIO | None = None) -> int:
    """Print the totals; the exit code: 0 all passed, 2 a file or profile was not valid, 1 otherwise."""
    passed = sum(1 for r in results if r.passed)
    turns = sum(len(r.turns) for r in results)
    failed_turns = sum(1 for r in results for t in r.turns if not t.passed)
    print(f"{passed} of {len(results)} conversation(s) passed; {failed_turns} of {turns} turn(s) failed",
          file=stream or sys.stdout)
    if any(r.exit_code == 2 and not r.turns for r in results):
        return 2
    return 0 if passed == len(results) else 1
