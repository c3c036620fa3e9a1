"""Overhead: client CPU time per server event, a voicepipe session with every built-in plugin against
a bare SDK receive loop, over the same event stream.

The emulator runs in its own process at speed 0 (as fast as the client reads), so the CPU clock of
this process measures the client alone. Both clients send the same ``session.update`` (the one
voicepipe builds from the quickstart profile) and the same typed turns, one after the other answer
is done, and count CPU time and events from ``session.updated`` to the last ``response.done``. The
voicepipe session plays the answers on the ``null`` output with ``realtime: false`` (each delta is
played as soon as it is written) and has an idle microphone, so both sides exchange the same events.
Each run of a case is paired with a run of the bare loop right beside it (before it, or after it
in every other round), and the cases rotate, round after round; each ratio is the median of the
rounds' ratios of a case to its paired bare run, which cancels slow changes in the machine's load.

More cases explain the result: the bare loop that also base64-decodes every audio delta (the
least any client that plays the answer must do); the bare loop that builds its events with
voicepipe's parser (:mod:`voicepipe.serverevents`, what the runtime reads frames with) instead of
the SDK's ``recv()``, so that what dispatch and the plugins cost shows against a loop that parses
like voicepipe; and, with ``breakdown``, the voicepipe core with every built-in plugin disabled,
then with one built-in at a time.
"""

from __future__ import annotations

import gc
import tempfile
import time
from base64 import b64decode
from pathlib import Path
from typing import Any, Optional

from voicepipe import eventloop
from benchmarks.harness import (
    BENCHMARK_KEY,
    IDLE_INPUT,
    EmulatorProcess,
    benchmark_key,
    make_runner,
    quiet_stdout,
    user_turn,
    write_profile,
)
from voicepipe.metrics_stats import percentile

GOAL_RATIO = 1.25
STOP_REASON = "benchmark_done"


class TurnDriver:
    """Benchmark plugin: ``turns`` typed turns, each sent once the previous answer is done; CPU time
    and server events are counted from ``session.updated`` to the last ``response.done``."""

    def __init__(self, turns: int):
        self.turns = turns
        self.answered = 0
        self.events = 0
        self.cpu_started: Optional[float] = None
        self.cpu_seconds: Optional[float] = None
        self.session_update: Optional[dict] = None

    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type")
        if self.cpu_started is None:
            if kind == "session.updated":
                self.cpu_started = time.process_time()
                self._ask(ctx)
            return
        if self.cpu_seconds is not None:
            return
        self.events += 1
        if kind == "response.done":
            self.answered += 1
            if self.answered >= self.turns:
                self.cpu_seconds = time.process_time() - self.cpu_started
                ctx.stop(STOP_REASON)
            else:
                self._ask(ctx)

    def voicepipe_client_event(self, event: Any, ctx: Any) -> None:
        if event.get("type") == "session.update" and self.session_update is None:
            self.session_update = dict(event)

    @staticmethod
    def _ask(ctx: Any) -> None:
        for event in user_turn():
            ctx.send(event)


async def voicepipe_round(profile: Path, run_dir: Path, turns: int) -> tuple[float, int, dict]:
    """One voicepipe session of ``turns`` turns: (CPU seconds, server events, the session.update sent)."""
    from voicepipe.logsetup import configure_logging, shutdown_logging

    log = configure_logging(run_dir, console_level="ERROR")
    driver = TurnDriver(turns)
    try:
        runner = make_runner(profile, run_dir, [driver], log)
        await runner.run()
    finally:
        shutdown_logging()
    if driver.cpu_seconds is None or driver.session_update is None:
        raise RuntimeError(f"the voicepipe session ended early ({runner.stop_reason}); see {run_dir}/voicepipe.log")
    return driver.cpu_seconds, driver.events, driver.session_update


async def bare_round(url: str, session_update: dict, turns: int, decode_audio: bool = False,
                     voicepipe_parser: bool = False) -> tuple[float, int]:
    """The same turns through the SDK alone: connect, ``session.update``, a ``recv()`` loop; with
    ``decode_audio`` it also base64-decodes each audio delta, the least a client that plays audio does;
    with ``voicepipe_parser`` the events come from :func:`voicepipe.serverevents.receive` instead of
    ``recv()`` (the same typed events, built as the voicepipe runtime builds them)."""
    from azure.ai.voicelive.aio import connect
    from azure.core.credentials import AzureKeyCredential

    from voicepipe.serverevents import receive

    async with connect(endpoint=url, credential=AzureKeyCredential(BENCHMARK_KEY), model="gpt-realtime") as conn:
        recv = (lambda: receive(conn)) if voicepipe_parser else conn.recv
        await conn.send(session_update)
        while (await recv()).get("type") != "session.updated":
            pass
        started = time.process_time()
        events = answered = 0
        for event in user_turn():
            await conn.send(event)
        while answered < turns:
            event = await recv()
            events += 1
            kind = event.get("type")
            if decode_audio and kind == "response.audio.delta":
                b64decode(event.get("delta"))
            elif kind == "response.done":
                answered += 1
                if answered < turns:
                    for event in user_turn():
                        await conn.send(event)
        return time.process_time() - started, events


BUILTINS = ("audio", "tools", "recorder", "transcript", "metrics", "console")
BARE = "bare SDK recv() loop"
BARE_DECODING = "bare SDK recv() loop + base64 decode of each audio delta"
BARE_PARSER = "bare loop, events built by voicepipe's parser instead of recv()"
BARE_CASES = {BARE: {}, BARE_DECODING: {"decode_audio": True}, BARE_PARSER: {"voicepipe_parser": True}}
EVERYTHING = "voicepipe, all built-in plugins, null output"


def variants(breakdown: bool) -> dict[str, list[str]]:
    """Case name -> the built-in plugins it disables."""
    cases = {"voicepipe core, every built-in disabled": list(BUILTINS), EVERYTHING: []}
    if breakdown:
        for name in BUILTINS:
            cases[f"voicepipe core + {name} only"] = [other for other in BUILTINS if other != name]
    return cases


async def compare(url: str, workdir: Path, turns: int, rounds: int, breakdown: bool) -> list[dict]:
    audio = {"input": {"backend": IDLE_INPUT}, "output": {"backend": "null", "realtime": False}}
    cases = variants(breakdown)
    profiles = {case: write_profile(workdir / f"profile-{index}", url, audio, disable=disabled)
                for index, (case, disabled) in enumerate(cases.items())}
    runs = iter(range(1_000_000))

    # warm-up: imports, first connections, caches on both sides
    _, _, session_update = await voicepipe_round(profiles[EVERYTHING], workdir / "warm-up", 1)
    await bare_round(url, session_update, 1)
    await bare_round(url, session_update, 1, voicepipe_parser=True)

    measured_cases = [BARE_DECODING, BARE_PARSER, *cases]
    per_event: dict[str, list[float]] = {name: [] for name in [BARE, *measured_cases]}
    ratios: dict[str, list[float]] = {name: [] for name in measured_cases}
    events: dict[str, int] = {}

    async def measure(name: str) -> float:
        """CPU microseconds per event of one run of case ``name``."""
        gc.collect()
        if name in BARE_CASES:
            cpu, count = await bare_round(url, session_update, turns, **BARE_CASES[name])
        else:
            cpu, count, _ = await voicepipe_round(profiles[name], workdir / f"run-{next(runs)}", turns)
        events[name] = count
        per_event[name].append(cpu / count * 1e6)
        return cpu / count * 1e6

    for index in range(rounds):
        order = measured_cases[index % len(measured_cases):] + measured_cases[: index % len(measured_cases)]
        if index % 2:
            order.reverse()
        for name in order:
            # each case is paired with a bare run right beside it (before it in even rounds, after it
            # in odd ones), so that a change in the machine's load between runs cancels out
            if index % 2:
                measured = await measure(name)
                bare = await measure(BARE)
            else:
                bare = await measure(BARE)
                measured = await measure(name)
            ratios[name].append(measured / bare)
    if len(set(events.values())) != 1:
        raise RuntimeError(f"the clients saw different event streams: {events}")

    count = events[BARE]
    base = percentile(sorted(per_event[BARE]), 50)
    rows = [{"benchmark": "overhead", "case": BARE, "us_per_event": round(base, 1),
             "events": count, "rounds": rounds, "ratio": 1.0,
             "result": f"{base:.1f} us CPU/event ({count} events x {len(per_event[BARE])} runs, one beside each other run)"}]
    for name in measured_cases:
        measured = percentile(sorted(per_event[name]), 50)
        ratio = percentile(sorted(ratios[name]), 50)
        row = {"benchmark": "overhead", "case": name, "us_per_event": round(measured, 1), "events": count,
               "rounds": rounds, "ratio": round(ratio, 2), "ratio_min": round(min(ratios[name]), 2),
               "ratio_max": round(max(ratios[name]), 2),
               "result": f"{measured:.1f} us CPU/event (rounds {min(ratios[name]):.2f}-{max(ratios[name]):.2f}x)"}
        if name == EVERYTHING:
            row.update(goal=f"ratio <= {GOAL_RATIO}", passed=row["ratio"] <= GOAL_RATIO)  # the ratio as shown
        if name not in BARE_CASES:
            # what dispatch and the plugins add to a loop that parses frames as voicepipe does
            same_parser = measured / percentile(sorted(per_event[BARE_PARSER]), 50)
            row["ratio_vs_parser_loop"] = round(same_parser, 2)
            row["result"] += f"; {same_parser:.2f}x the loop with voicepipe's parser"
        rows.append(row)
    return rows


def run(turns: int = 16, rounds: int = 7, breakdown: bool = True) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-overhead-") as tmp, \
            EmulatorProcess(speed=0) as emulator, benchmark_key(), quiet_stdout():
        return eventloop.run(compare(emulator.url, Path(tmp), turns, rounds, breakdown))


if __name__ == "__main__":
    for row in run():
        print(row)
