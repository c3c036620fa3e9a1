"""Concurrency: the most sessions one client process holds at real-time pacing without underruns or
a growing lag, and the most two client processes hold together.

The emulator runs in its own process at speed 1 (answers stream in real time, 100 ms deltas). A
client process runs its share of the N voicepipe sessions with every built-in plugin, each with a
``null`` microphone (silence in real time, 20 ms appends) and a ``null`` speaker on its real-time
clock, asking one typed question after the other (about 20 s answers, first questions spread over
``FIRST_QUESTION_SPREAD_S``, as callers arrive at their own moments: with a spread of a second,
every answer started within the same second and they stayed in step, a burst of N answer starts
the emulator served all at once every 20 s). Once all N are connected and every session has asked,
a window of ``window_s`` seconds is measured:

* event-loop lag: in each client process a ticker asks to wake every 10 ms and records how late it
  wakes (p99; with several processes, the worst process's);
* delivery lag of each audio delta: its arrival against the first delta of its answer plus the audio
  before it (the emulator sends delta i exactly i × 100 ms after the first); a delta later than
  ``BUFFER_MS`` (a device's output buffer) would have let the speaker run dry: an underrun;
* growth: the median delivery lag of the last quarter of the window against the first quarter.

A step passes with no underrun, a loop-lag p99 within ``BUFFER_MS`` and a growth under
``GROWTH_LIMIT_MS``. Steps run in increasing N until one fails; a row reports the largest N that
passed, with the CPU the client processes and the emulator used (the emulator serves all N sessions
from one process, so it is reported too: a saturated emulator is a limit of the test, not of the
client).

Two rows: one client process (this one; "one worker holds about 100"), and ``PROCESSES`` client
processes of N/P sessions each (``python -m benchmarks.concurrency --child``, started by this one;
"both cores"). The children connect their sessions and say so on stdout; once all have, the parent
names one window start on the system-wide monotonic clock, each child measures the same window and
writes what it recorded to a JSON file, and the parent merges them into one step verdict. A child
that dies or does not answer in time fails the step with its last stderr lines; every wait has a
timeout and every child is ended before the next step.

    python -m benchmarks.concurrency                        # both rows, full size
    python -m benchmarks.concurrency --processes 2 --steps 100,150 --window 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from voicepipe import eventloop
from benchmarks.harness import (
    OUTPUT_RATE,
    ROOT,
    EmulatorProcess,
    benchmark_key,
    make_runner,
    quiet_stdout,
    user_turn,
    write_profile,
)
from voicepipe.metrics_stats import percentile

GOAL_SESSIONS = 100
STEPS = (25, 50, 75, 100, 125, 150, 200)
#: the row of several client processes ("both cores" of a 2-core machine)
PROCESSES = 2
GOAL_SESSIONS_SPLIT = 200
SPLIT_STEPS = (100, 150, 200, 250)
BUFFER_MS = 50.0
GROWTH_LIMIT_MS = 10.0
TICK_S = 0.01
FIRST_QUESTION_SPREAD_S = 10.0
#: after the last session connected, beyond the spread: every first question asked, and a little more
SETTLE_S = 3.0


def spread_s(window_s: float) -> float:
    """How far first questions are spread: ``FIRST_QUESTION_SPREAD_S``, less for a short window."""
    return min(FIRST_QUESTION_SPREAD_S, window_s / 2)
CONNECT_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
#: a child's time to write its result after the window, and to exit after stopping its sessions
RESULT_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = STOP_TIMEOUT_S + 30.0
#: about 20 s of speech
LONG_ANSWER = (
    "The Caspian Sea is the largest lake in the world, with an area of about three hundred and seventy "
    "thousand square kilometres. It lies between Europe and Asia, east of the Caucasus mountains, and it "
    "is fed mostly by the Volga river. Its water is about one third as salty as the ocean, and it is home "
    "to the sturgeon that give the world most of its caviar."
)
SCENARIO = f"default_answer: {json.dumps(LONG_ANSWER)}\n"


class Window:
    """What all the sessions of one process record in a step, and the window they record in."""

    def __init__(self, sessions: int):
        self.sessions = sessions
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.deliveries: list[tuple[float, float]] = []  # (arrival, lag ms)
        self.ticks: list[tuple[float, float]] = []  # (due, lag ms)

    def connected_one(self) -> None:
        self.connected += 1
        if self.connected >= self.sessions:
            self.all_connected.set()

    def open(self, now: float) -> bool:
        return self.started_at is not None and now >= self.started_at and (self.ended_at is None or now <= self.ended_at)

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + TICK_S
        while True:
            await asyncio.sleep(max(due - loop.time(), 0))
            now = loop.time()
            if self.open(time.monotonic()):
                self.ticks.append((due, (now - due) * 1000))
            due = max(due + TICK_S, now)  # after a late wake-up, the next tick is due a full period later


class PacedSession:
    """Benchmark plugin: one typed question after the other; the delivery lag of every audio delta."""

    def __init__(self, window: Window, spread_s: float):
        self.window = window
        self.spread_s = spread_s
        self.started = False
        self.first_at: Optional[float] = None
        self.audio_ms = 0.0

    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type")
        if kind == "response.audio.delta":
            now = time.monotonic()
            if self.first_at is None:
                self.first_at = now
            elif self.window.open(now):
                self.window.deliveries.append((now, (now - self.first_at) * 1000 - self.audio_ms))
            self.audio_ms += len(event.get("delta") or "") * 3 / 4 / (OUTPUT_RATE * 2 / 1000)
        elif kind == "response.created":
            self.first_at, self.audio_ms = None, 0.0
        elif kind == "response.done":
            self._ask(ctx)
        elif kind == "session.updated" and not self.started:
            self.started = True
            self.window.connected_one()
            ctx.spawn(self._ask_later(ctx, random.uniform(0, self.spread_s)), name="benchmark first question")

    async def _ask_later(self, ctx: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        self._ask(ctx)

    @staticmethod
    def _ask(ctx: Any) -> None:
        for event in user_turn():
            ctx.send(event)


async def sleep_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment`` (one clock for every process on Linux)."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


class Fleet:
    """The sessions one process runs in a step: connect them all, measure a window, stop them."""

    def __init__(self, profile: Path, workdir: Path, sessions: int, spread_s: float):
        from voicepipe.logsetup import configure_logging

        self.sessions = sessions
        self.log = configure_logging(workdir / f"log-{sessions}", console_level="CRITICAL")
        self.window = Window(sessions)
        self.runners = [make_runner(profile, workdir / f"n{sessions}" / f"session-{i}", [PacedSession(self.window, spread_s)],
                                    self.log) for i in range(sessions)]
        self.tasks: list[asyncio.Task] = []
        self.cpu = 0.0  # of one core, over the window

    async def connect(self) -> None:
        """Start every session and wait until all are connected (RuntimeError if they are not in time)."""
        self.tasks = [asyncio.create_task(runner.run()) for runner in self.runners]
        connected = asyncio.create_task(self.window.all_connected.wait())
        done, _ = await asyncio.wait([connected, *self.tasks], timeout=CONNECT_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if connected not in done:
            connected.cancel()
            raise RuntimeError(f"{self.window.connected} of {self.sessions} sessions connected "
                               f"(ended: {self.early()[:3]})")

    def early(self) -> list:
        """Why the sessions that have ended so far ended."""
        return [runner.stop_reason for runner in self.runners if runner.stop_reason]

    async def measure(self, start_at: float, window_s: float) -> None:
        """Record the window from ``start_at`` (monotonic) for ``window_s`` seconds."""
        self.window.started_at = start_at
        await sleep_until(start_at)
        ticker = asyncio.create_task(self.window.tick())
        try:
            cpu_started, wall_started = time.process_time(), time.monotonic()
            await sleep_until(start_at + window_s)
            self.window.ended_at = time.monotonic()
            self.cpu = (time.process_time() - cpu_started) / (self.window.ended_at - wall_started)
        finally:
            ticker.cancel()

    async def stop(self) -> None:
        from voicepipe.logsetup import shutdown_logging

        for runner in self.runners:
            runner.request_stop("user")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), STOP_TIMEOUT_S)
        shutdown_logging()

    def recorded(self) -> dict:
        """What the window recorded, as the JSON a child hands to its parent."""
        return {"sessions": self.sessions, "started_at": self.window.started_at, "ended_at": self.window.ended_at,
                "deliveries": self.window.deliveries, "ticks": [lag for _, lag in self.window.ticks],
                "cpu": self.cpu, "early": self.early()}


async def measure_step(emulator: EmulatorProcess, profile: Path, workdir: Path, sessions: int, window_s: float) -> dict:
    """One step with every session in this process."""
    fleet = Fleet(profile, workdir, sessions, spread_s(window_s))
    try:
        await fleet.connect()
        start_at = time.monotonic() + spread_s(window_s) + SETTLE_S
        await sleep_until(start_at)
        emulator_started = emulator.cpu_seconds()
        await fleet.measure(start_at, window_s)
        assert fleet.window.ended_at is not None
        emulator_cpu = (emulator.cpu_seconds() - emulator_started) / (fleet.window.ended_at - start_at)
        early = fleet.early()
    finally:
        await fleet.stop()
    return summarize([fleet.recorded()], sessions, emulator_cpu, early)


def summarize(parts: Sequence[dict], sessions: int, emulator_cpu: float, early: list) -> dict:
    """One step's verdict from what each client process recorded (:meth:`Fleet.recorded`)."""
    started_at = min(part["started_at"] for part in parts)
    ended_at = max(part["ended_at"] for part in parts)
    span = ended_at - started_at
    deliveries = [tuple(pair) for part in parts for pair in part["deliveries"]]
    lags = [lag for _, lag in deliveries]
    first = sorted(lag for at, lag in deliveries if at < started_at + span / 4) or [0.0]
    last = sorted(lag for at, lag in deliveries if at > ended_at - span / 4) or [0.0]
    growth = percentile(last, 50) - percentile(first, 50)
    underruns = sum(1 for lag in lags if lag > BUFFER_MS)
    # each process has its own loop: the worst one's lag is the step's
    ticks = [sorted(part["ticks"]) or [0.0] for part in parts]
    loop_p50 = max(percentile(each, 50) for each in ticks)
    loop_p99 = max(percentile(each, 99) for each in ticks)
    ordered = sorted(lags) or [0.0]
    passed = not early and bool(lags) and underruns == 0 and loop_p99 <= BUFFER_MS and growth < GROWTH_LIMIT_MS
    return {
        "sessions": sessions,
        "processes": len(parts),
        "passed": passed,
        "loop_lag_p50_ms": round(loop_p50, 2),
        "loop_lag_p99_ms": round(loop_p99, 2),
        "loop_lag_p99_each_ms": [round(percentile(each, 99), 2) for each in ticks],
        "delivery_lag_p99_ms": round(percentile(ordered, 99), 2),
        "delivery_lag_max_ms": round(ordered[-1], 2),
        "lag_growth_ms": round(growth, 2),
        "deltas": len(lags),
        "underruns": underruns,
        "client_cpu": round(sum(part["cpu"] for part in parts), 2),
        "client_cpu_each": [round(part["cpu"], 2) for part in parts],
        "emulator_cpu": round(emulator_cpu, 2),
        "ended_early": len(early),
    }


# -- several client processes ----------------------------------------------------------------------


class Child:
    """``python -m benchmarks.concurrency --child``: one client process of a step."""

    def __init__(self, index: int, workdir: Path):
        self.index = index
        self.workdir = workdir
        self.result_path = workdir / "result.json"
        self.stderr_path = workdir / "stderr.txt"
        self.proc: Optional[asyncio.subprocess.Process] = None

    async def start(self, profile: Path, sessions: int, window_s: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.concurrency", "--child", "--profile", str(profile),
                   "--sessions", str(sessions), "--window", f"{window_s:g}", "--workdir", str(self.workdir)]
        with open(self.stderr_path, "wb") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr)

    async def expect(self, word: str, timeout: float) -> None:
        """Wait for the line ``word`` on the child's stdout (RuntimeError if it ends or is late)."""
        try:
            await asyncio.wait_for(self._line(word), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"client process {self.index} did not say '{word}' within {timeout:g} s: "
                               f"{self.last_error()}") from None

    async def _line(self, word: str) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.proc.wait()
                raise RuntimeError(f"client process {self.index} exited with code {self.proc.returncode} "
                                   f"before '{word}': {self.last_error()}")
            if line.decode(errors="replace").strip() == word:
                return

    def go(self, start_at: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"go {start_at!r}\n".encode())

    def result(self) -> dict:
        return json.loads(self.result_path.read_text(encoding="utf-8"))

    def last_error(self) -> str:
        try:
            lines = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return " / ".join(lines[-3:]) or "no message"

    async def end(self, timeout: float) -> None:
        """Wait for the child to exit; past ``timeout``, end it."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
            return
        except asyncio.TimeoutError:
            pass
        for stop in (proc.terminate, proc.kill):
            with contextlib.suppress(ProcessLookupError):
                stop()
            try:
                await asyncio.wait_for(proc.wait(), 10)
                return
            except asyncio.TimeoutError:
                continue


async def all_of(waits: Sequence[Any]) -> None:
    """Await every one; the first to fail cancels the others and is raised."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def shares(sessions: int, processes: int) -> list[int]:
    """``sessions`` split over ``processes`` as evenly as can be (the first ones take the rest)."""
    base, rest = divmod(sessions, processes)
    return [base + (1 if index < rest else 0) for index in range(processes)]


async def measure_split_step(emulator: EmulatorProcess, profile: Path, workdir: Path, sessions: int,
                             window_s: float, processes: int) -> dict:
    """One step with the sessions spread over ``processes`` child processes."""
    children = [Child(index, workdir / f"n{sessions}" / f"process-{index}") for index in range(processes)]
    try:
        for child, count in zip(children, shares(sessions, processes)):
            await child.start(profile, count, window_s)
        await all_of([child.expect("connected", CONNECT_TIMEOUT_S + 30) for child in children])
        start_at = time.monotonic() + spread_s(window_s) + SETTLE_S
        for child in children:
            child.go(start_at)
        await sleep_until(start_at)
        emulator_started = emulator.cpu_seconds()
        await sleep_until(start_at + window_s)
        emulator_cpu = (emulator.cpu_seconds() - emulator_started) / max(time.monotonic() - start_at, 1e-9)
        await all_of([child.expect("measured", RESULT_TIMEOUT_S) for child in children])
        parts = [child.result() for child in children]
    except RuntimeError as exc:
        return failed_step(sessions, processes, str(exc))
    finally:
        await asyncio.gather(*(child.end(EXIT_TIMEOUT_S) for child in children))
    early = [reason for part in parts for reason in part["early"]]
    return summarize(parts, sessions, emulator_cpu, early)


def failed_step(sessions: int, processes: int, error: str) -> dict:
    return {"sessions": sessions, "processes": processes, "passed": False, "error": error}


async def child_main(profile: Path, sessions: int, window_s: float, workdir: Path) -> int:
    """A child's side: connect, say so, wait for the window's start, measure, hand over, stop."""
    channel = sys.stdout  # the console plugin's lines go to os.devnull (quiet_stdout)
    loop = asyncio.get_running_loop()
    with quiet_stdout():
        fleet = Fleet(profile, workdir, sessions, spread_s(window_s))
        try:
            await fleet.connect()
            print("connected", file=channel, flush=True)
            line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), CONNECT_TIMEOUT_S + 60)
            word, _, value = line.strip().partition(" ")
            if word != "go":
                print(f"client process: expected 'go <start>' on stdin, got {line.strip()!r}", file=sys.stderr)
                return 1
            await fleet.measure(float(value), window_s)
            partial = workdir / "result.json.part"
            partial.write_text(json.dumps(fleet.recorded()), encoding="utf-8")
            partial.replace(workdir / "result.json")
            print("measured", file=channel, flush=True)
        finally:
            await fleet.stop()
    return 0


# -- the rows ----------------------------------------------------------------------------------------


async def climb(emulator: EmulatorProcess, workdir: Path, steps: tuple, window_s: float, processes: int = 1) -> list[dict]:
    audio = {"input": {"backend": "null"}, "output": {"backend": "null"}}
    profile = write_profile(workdir / "profile", emulator.url, audio)
    results = []
    for sessions in steps:
        if processes == 1:
            result = await measure_step(emulator, profile, workdir, sessions, window_s)
        else:
            result = await measure_split_step(emulator, profile, workdir, sessions, window_s, processes)
        results.append(result)
        if not result["passed"]:
            break
    return results


def describe(step: dict) -> str:
    where = f"N={step['sessions']}" + (f" over {step['processes']} processes" if step.get("processes", 1) > 1 else "")
    if step.get("error"):
        return f"{where}: {step['error']}"
    each = step.get("client_cpu_each") or [step["client_cpu"]]
    client = " + ".join(f"{cpu:.0%}" for cpu in each)
    lags = step.get("loop_lag_p99_each_ms") or []
    loop = f"{step['loop_lag_p99_ms']:.1f} ms" + (f" ({' / '.join(f'{lag:.1f}' for lag in lags)})" if len(lags) > 1 else "")
    return (f"{where}: loop lag p99 {loop}, delivery lag p99 "
            f"{step['delivery_lag_p99_ms']:.1f} ms, growth {step['lag_growth_ms']:+.1f} ms, "
            f"{step['underruns']} underruns of {step['deltas']} deltas, CPU client {client} "
            f"emulator {step['emulator_cpu']:.0%}")


def why_failed(step: dict) -> str:
    if step.get("error"):
        return step["error"]
    reasons = []
    if step["ended_early"]:
        reasons.append(f"{step['ended_early']} sessions ended early")
    if not step["deltas"]:
        reasons.append("no audio arrived")
    if step["underruns"]:
        reasons.append(f"{step['underruns']} of {step['deltas']} deltas later than {BUFFER_MS:g} ms")
    if step["loop_lag_p99_ms"] > BUFFER_MS:
        reasons.append(f"loop lag p99 {step['loop_lag_p99_ms']:.0f} ms")
    if step["lag_growth_ms"] >= GROWTH_LIMIT_MS:
        reasons.append(f"lag grew {step['lag_growth_ms']:+.0f} ms")
    return ", ".join(reasons) or "?"


def row(steps: tuple, window_s: float, processes: int) -> dict:
    """One row: its steps climbed against an emulator of its own."""
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-concurrency-") as tmp, \
            EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, benchmark_key(), quiet_stdout():
        results = eventloop.run(climb(emulator, Path(tmp), tuple(steps), window_s, processes))
    passing = [r for r in results if r["passed"]]
    best = passing[-1] if passing else None
    failed = next((r for r in results if not r["passed"]), None)
    if best is None:
        result = "no step passed"
    else:
        client = " + ".join(f"{cpu:.0%}" for cpu in best["client_cpu_each"])
        result = (f"{best['sessions']} sessions: loop lag p99 {best['loop_lag_p99_ms']:.1f} ms, delivery lag p99 "
                  f"{best['delivery_lag_p99_ms']:.1f} ms, CPU client {client} emulator {best['emulator_cpu']:.0%}")
    result += f"; {failed['sessions']} failed: {why_failed(failed)}" if failed else "; every step passed"
    count = best["sessions"] if best else 0
    goal = GOAL_SESSIONS if processes == 1 else GOAL_SESSIONS_SPLIT
    case = f"sessions at real-time pacing, {window_s:g} s per step"
    if processes > 1:
        case = f"sessions at real-time pacing over {processes} client processes, {window_s:g} s per step"
    return {
        "benchmark": "concurrency",
        "case": case,
        "processes": processes,
        "max_sessions": count,
        "steps": results,
        "result": result,
        "goal": f">= {goal} sessions",
        "passed": count >= goal,
    }


def run(steps: tuple = STEPS, window_s: float = 20.0, split_steps: tuple = SPLIT_STEPS,
        processes: int = PROCESSES) -> list[dict]:
    """The one-process row over ``steps``, then the ``processes``-process row over ``split_steps``
    (left out when empty)."""
    rows = [row(steps, window_s, 1)]
    if split_steps:
        rows.append(row(split_steps, window_s, processes))
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, metavar="P",
                        help="only the row of P client processes (1: the one-process row); default: both rows")
    parser.add_argument("--steps", metavar="N,N,...", help="session counts to climb (default: the row's)")
    parser.add_argument("--window", type=float, default=20.0, metavar="S", help="seconds measured per step (20)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.profile is None or args.sessions is None or args.workdir is None:
            parser.error("--child needs --profile, --sessions and --workdir")
        try:
            return eventloop.run(child_main(args.profile, args.sessions, args.window, args.workdir))
        except Exception as exc:  # the parent shows the last stderr lines
            print(f"client process: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 1
    if args.processes is not None and args.processes < 1:
        parser.error(f"--processes: expected 1 or more, got {args.processes}")
    steps: Optional[tuple] = None
    if args.steps:
        try:
            steps = tuple(int(value) for value in args.steps.split(","))
        except ValueError:
            parser.error(f"--steps: expected session counts such as 100,150, got {args.steps!r}")
        if any(count < 1 for count in steps):
            parser.error(f"--steps: every count must be 1 or more, got {args.steps!r}")
    if args.processes is None:
        rows = run(window_s=args.window) if steps is None else run(steps, args.window, steps)
    else:
        default = STEPS if args.processes == 1 else SPLIT_STEPS
        rows = [row(steps or default, args.window, args.processes)]
    for each in rows:
        print(json.dumps({key: value for key, value in each.items() if key != "steps"}))
        for step in each["steps"]:
            print(f"  {'passed' if step['passed'] else 'failed'}: {describe(step)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
