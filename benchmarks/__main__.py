"""Run the benchmarks, print one table, and update BENCHMARKS.md.

    ./dev bench                         # = .venv/bin/python -m benchmarks
    python -m benchmarks --quick        # tiny sizes, to check that everything runs (BENCHMARKS.md untouched)
    python -m benchmarks --only overhead,memory --json rows.json
    python -m benchmarks soak           # minutes of concurrent sessions: fds, tasks, memory stay flat
    python -m benchmarks.breakdown      # where the overhead goes: CPU per event by plugin and operation

Ratios are measured side by side in one run; on a shared machine the absolute times are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
COMMAND = "./dev bench"
COMMAND_EXPANDED = ".venv/bin/python -m benchmarks"
START_MARK = "<!-- benchmark results: start (written by python -m benchmarks) -->"
END_MARK = "<!-- benchmark results: end -->"
NAMES = (
    "overhead", "microphone", "conversation", "barge-in", "playout", "memory", "concurrency", "start-up", "conversations"
)


def _sizes(quick: bool) -> dict[str, Callable[[], list[dict]]]:
    """Benchmark name -> a call that runs it at the full or the quick size."""
    from benchmarks import (
        bargein, concurrency, conversation, conversations, memory, microphone, overhead, playout, startup,
    )

    if quick:
        return {
            "overhead": lambda: overhead.run(turns=2, rounds=2, breakdown=False),
            "microphone": lambda: microphone.run(seconds=0.5, rounds=1),
            "conversation": lambda: conversation.run(turns=1, turn_s=3.0, rounds=1),
            "barge-in": lambda: bargein.run(iterations=20, device_iterations=3),
            "playout": lambda: playout.run(responses=4, deltas=10),
            "memory": lambda: memory.run(minutes=1.0, warm_up_minutes=0.25),
            "concurrency": lambda: concurrency.run(steps=(3,), window_s=2.0, split_steps=(4,)),
            "start-up": lambda: startup.run(rounds=2),
            "conversations": lambda: conversations.run(count=2, jobs=2),
        }
    return {
        "overhead": lambda: overhead.run(),
        "microphone": lambda: microphone.run(),
        "conversation": lambda: conversation.run(),
        "barge-in": lambda: bargein.run(),
        "playout": lambda: playout.run(),
        "memory": lambda: memory.run(),
        "concurrency": lambda: concurrency.run(),
        "start-up": lambda: startup.run(),
        "conversations": lambda: conversations.run(),
    }


def run_all(names: list[str], quick: bool) -> list[dict]:
    """Run the named benchmarks in order; a benchmark that fails becomes an ``error`` row."""
    calls = _sizes(quick)
    rows: list[dict] = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            produced = calls[name]()
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            produced = [{"benchmark": name, "case": "failed to run", "error": f"{type(exc).__name__}: {exc}",
                         "result": f"error: {type(exc).__name__}: {exc}", "passed": None}]
        print(f"bench: {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        rows += produced
    return rows


# -- the table -------------------------------------------------------------------------------------------

HEADERS = ("Benchmark", "Case", "Result", "Ratio", "Goal", "Met")


def result_text(row: dict) -> str:
    if row.get("result"):
        return str(row["result"])
    if "p50_ms" in row:  # the start-up rows
        return f"p50 {row['p50_ms']} ms"
    return ""


def met_text(row: dict) -> str:
    if row.get("error"):
        return "error"
    if row.get("skipped"):
        return "skipped"
    passed = row.get("passed")
    if passed is None:
        return "-"
    return "yes" if passed else "NO"


def table_cells(rows: list[dict]) -> list[tuple[str, ...]]:
    cells = []
    for row in rows:
        ratio = row.get("ratio")
        cells.append((
            str(row.get("benchmark", "")),
            str(row.get("case", "")),
            result_text(row),
            "-" if ratio is None else f"{ratio:g}",
            str(row.get("goal", "-")),
            met_text(row),
        ))
    return cells


def text_table(rows: list[dict]) -> str:
    """The table for a terminal: aligned columns."""
    cells = [HEADERS, *table_cells(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    def escape(value: str) -> str:
        return value.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(escape(v) for v in line) + " |" for line in table_cells(rows)]
    return "\n".join(lines)


def details(rows: list[dict]) -> list[str]:
    """Lines worth keeping beside the table: every concurrency step, where memory grows."""
    lines = []
    for row in rows:
        for step in row.get("steps") or []:
            from benchmarks.concurrency import describe

            lines.append(f"- concurrency {'passed' if step['passed'] else 'failed'}: {describe(step)}")
        if row.get("top"):
            lines.append(f"- memory, largest live allocations made after warm-up: {'; '.join(row['top'])}")
    if any(row.get("benchmark") == "start-up" for row in rows) and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        lines.append("- start-up: PYTHONDONTWRITEBYTECODE was set here and removed for the measured commands, "
                     "so that they run with byte-code caches as an installed package does")
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from voicepipe import eventloop

    return (f"{os.cpu_count()} CPUs (nproc) {cpu}, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}, event loop {eventloop.chosen()}")


def results_section(rows: list[dict], when: str, where: str) -> str:
    extra = details(rows)
    parts = [
        START_MARK,
        f"Latest run: `{COMMAND}` (= `{COMMAND_EXPANDED}`) on {when}, {where}.",
        "",
        markdown_table(rows),
    ]
    if extra:
        parts += ["", *extra]
    parts.append(END_MARK)
    return "\n".join(parts)


INTRO = """# Benchmarks

Run them with `./dev bench` (= `.venv/bin/python -m benchmarks`); the run takes a few minutes,
prints the table below and rewrites the part of this file between the two markers. Ratios are
measured side by side in one run: on a shared machine absolute times are noise. `--quick` runs every
benchmark at a tiny size (what `tests/test_benchmarks_smoke.py` does) and leaves this file alone.

"""

ABOUT = """
## What the rows measure

1. **Overhead** (`benchmarks/overhead.py`): client CPU time per server event for a voicepipe session
   with every built-in plugin (`null` output, `realtime: false`) against a bare SDK `recv()` loop, the
   same typed turns over the same emulator stream, the emulator in its own process at speed 0. Every
   run of a case is paired with a run of the bare loop beside it; a case's ratio is the median, over
   the rounds, of its ratio to its paired bare run. The `+ base64 decode` row is the bare loop doing
   the least a client that plays audio must do. The `core + X only` rows disable every built-in but
   X and show where the time goes; `core, every built-in disabled` is the runtime and the Pipeline
   alone. `python -m benchmarks.breakdown` splits the overhead by plugin and by operation (below).
2. **Barge-in** (`benchmarks/bargein.py`): `speech_started` dispatched → output silent, through the
   Pipeline with every built-in plugin: on the `wav` output until `clear()` returned (its played
   counter stops), on a PortAudio device until the device clock plays the last sample, which
   includes the wait for the device's next callback block, the 5 ms fade and the device's output
   latency.
3. **Playout** (`benchmarks/playout.py`): audio delta dispatched → `output.write()` called.
4. **Memory** (`benchmarks/memory.py`): live memory allocated after a warm-up, and RSS growth, over
   at least 30 simulated minutes of answers in one session at full speed.
5. **Concurrency** (`benchmarks/concurrency.py`): the most sessions one process holds with the
   emulator at real-time pacing: no delta later than a 50 ms device buffer, event-loop lag p99 within
   it, no growing delivery lag; and the most two client processes hold together (N/2 sessions each,
   one verdict over both, the emulator still one process).
6. **Start-up** (`benchmarks/startup.py`): `voicepipe --help` and `voicepipe validate` against
   `python -c pass`.
7. **Microphone** (`benchmarks/microphone.py`): client CPU per second of audio sent, a session
   with every built-in plugin sending the `null` microphone (silence in real time, so no answer
   comes) in 20 ms chunks against 100 ms chunks, runs alternating, the ratio the median over the
   pairs: 20 ms chunks of a quiet input as every profile sends them (`audio.batch_ms`: the steady
   part of a silence or a sound leaves 100 ms at a time), and every chunk sent as it comes
   (`batch_ms: 0`), which is what the edges cost (the first second of a silence, the first half
   second of a sound, a sound during an answer).
8. **Conversation** (`benchmarks/conversation.py`): client CPU for a spoken conversation at
   real-time pacing (20 ms microphone chunks, server VAD, answers on the `null` output's clock),
   voicepipe against a bare SDK loop doing the same (paced appends, `recv()`, base64 decode of the
   answers), and LiveKit Agents' Azure `RealtimeModel` and Pipecat's Voice Live service as peer
   rows when the Python named by `VOICEPIPE_BENCH_LIVEKIT_PYTHON` / `VOICEPIPE_BENCH_PIPECAT_PYTHON`
   (default: this one) can import them; otherwise they are skipped with a message. They are not
   dependencies of voicepipe or its tests: `python -m venv /tmp/lk && /tmp/lk/bin/pip install
   "livekit-agents" "livekit-plugins-azure[realtime]"`, `python -m venv /tmp/pc && /tmp/pc/bin/pip
   install "pipecat-ai[azure]"`, then set the two variables to their `bin/python`.
"""


def write_markdown(path: Path, rows: list[dict], when: str, where: str) -> None:
    """Replace the results section of ``path`` (between the markers), or write the whole file."""
    section = results_section(rows, when, where)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1]
        text = head + section + tail
    else:
        text = INTRO + section + "\n" + ABOUT
    path.write_text(text, encoding="utf-8")


def main(argv: Optional[list[str]] = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["soak"]:  # the soak runs apart from the table: python -m benchmarks soak --help
        from benchmarks.soak import main as soak_main

        return soak_main(arguments[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that everything runs")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of: {', '.join(NAMES)}")
    parser.add_argument("--output", metavar="FILE", type=Path,
                        help="the Markdown file to update (default BENCHMARKS.md; not written with --quick unless given)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write every row as JSON")
    args = parser.parse_args(argv)

    names = list(NAMES)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in NAMES]
        if unknown:
            parser.error(f"--only: unknown benchmark {', '.join(unknown)} (choose from {', '.join(NAMES)})")

    rows = run_all(names, args.quick)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    print()
    print(text_table(rows))
    for line in details(rows):
        print(line)
    print(f"\n{when}; {where}")
    output = args.output if args.output is not None else (None if args.quick else DEFAULT_OUTPUT)
    if output is not None:
        write_markdown(output, rows, when, where)
        print(f"wrote {output}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 1 if any(row.get("error") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
