"""Conversation tests offline: how many conversations a minute ``voicepipe test`` gets through.

The shipped ``conversations/concierge.conversation.yaml`` (three turns: two spoken, one typed, two
tool calls) runs against the embedded emulator at its default pace (fast: no real-time waits),
first one at a time, then ``jobs`` at a time in one process as ``voicepipe test -j`` runs them.
Every run must pass; a failed one makes the row an error.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from voicepipe import eventloop
from voicepipe.conversation.runner import run_many
from voicepipe.conversation.spec import load_conversation
from voicepipe.logsetup import configure_logging, shutdown_logging

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "conversations" / "concierge.conversation.yaml"


def _measure(count: int, jobs: int, log_dir: Path) -> float:
    conversation = load_conversation(EXAMPLE)
    started = time.perf_counter()
    results = eventloop.run(run_many([conversation] * count, jobs=jobs, log_dir=log_dir, autoload=False))
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.passed]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} conversations failed: {failed[0].error or failed[0].turns}")
    return elapsed


def run(count: int = 20, jobs: int = 4) -> list[dict]:
    rows = []
    configure_logging(None, console_level="ERROR", session_files=True)
    try:
        with tempfile.TemporaryDirectory(prefix="voicepipe-bench-conv-") as folder:
            for parallel in (1, jobs):
                elapsed = _measure(count, parallel, Path(folder) / f"j{parallel}")
                per_minute = count / elapsed * 60.0
                rows.append({
                    "benchmark": "conversations",
                    "case": f"concierge example (3 turns, 2 tool calls), offline, -j {parallel}",
                    "result": f"{per_minute:.0f} conversations/min ({count} in {elapsed:.1f} s, report.html included)",
                    "per_minute": round(per_minute, 1),
                    "jobs": parallel,
                })
    finally:
        shutdown_logging()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row["case"], "->", row["result"])
