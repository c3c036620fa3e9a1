"""Concurrency: the most sessions one process holds at real-time pacing without underruns or a
growing lag.

The emulator runs in its own process at speed 1 (answers stream in real time, 100 ms deltas). This
process runs N voicepipe sessions with every built-in plugin, each with a ``null`` microphone
(silence in real time, 20 ms appends) and a ``null`` speaker on its real-time clock, asking one
typed question after the other (about 20 s answers, first questions spread over a second). Once all
N are connected and have settled, a window of ``window_s`` seconds is measured:

* event-loop lag: a ticker asks to wake every 10 ms and records how late it wakes (p99);
* delivery lag of each audio delta: its arrival against the first delta of its answer plus the audio
  before it (the emulator sends delta i exactly i × 100 ms after the first); a delta later than
  ``BUFFER_MS`` (a device's output buffer) would have let the speaker run dry: an underrun;
* growth: the median delivery lag of the last quarter of the window against the first quarter.

A step passes with no underrun, a loop-lag p99 within ``BUFFER_MS`` and a growth under
``GROWTH_LIMIT_MS``. Steps run in increasing N until one fails; the row reports the largest N that
passed, with the CPU both processes used (the emulator serves all N sessions on its own core, so
it is reported too: a saturated emulator is a limit of the test, not of the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from benchmarks.harness import (
    OUTPUT_RATE,
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
BUFFER_MS = 50.0
GROWTH_LIMIT_MS = 10.0
TICK_S = 0.01
SETTLE_S = 3.0
CONNECT_TIMEOUT_S = 180.0
#: about 20 s of speech
LONG_ANSWER = (
    "The Caspian Sea is the largest lake in the world, with an area of about three hundred and seventy "
    "thousand square kilometres. It lies between Europe and Asia, east of the Caucasus mountains, and it "
    "is fed mostly by the Volga river. Its water is about one third as salty as the ocean, and it is home "
    "to the sturgeon that give the world most of its caviar."
)
SCENARIO = f"default_answer: {json.dumps(LONG_ANSWER)}\n"


class Window:
    """What all the sessions of one step record, and the window they record in."""

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

    def __init__(self, window: Window):
        self.window = window
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
            ctx.spawn(self._ask_later(ctx, random.uniform(0, 1.0)), name="benchmark first question")

    async def _ask_later(self, ctx: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        self._ask(ctx)

    @staticmethod
    def _ask(ctx: Any) -> None:
        for event in user_turn():
            ctx.send(event)


async def measure_step(emulator: EmulatorProcess, profile: Path, workdir: Path, sessions: int, window_s: float) -> dict:
    from voicepipe.logsetup import configure_logging, shutdown_logging

    log = configure_logging(workdir / f"log-{sessions}", console_level="CRITICAL")
    window = Window(sessions)
    runners = [make_runner(profile, workdir / f"n{sessions}" / f"session-{i}", [PacedSession(window)], log)
               for i in range(sessions)]
    tasks = [asyncio.create_task(runner.run()) for runner in runners]
    ticker: Optional[asyncio.Task] = None
    try:
        connected = asyncio.create_task(window.all_connected.wait())
        done, _ = await asyncio.wait([connected, *tasks], timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if connected not in done:
            connected.cancel()
            ended = [r.stop_reason for r in runners if r.stop_reason]
            raise RuntimeError(f"{window.connected} of {sessions} sessions connected (ended: {ended[:3]})")
        await asyncio.sleep(SETTLE_S)
        ticker = asyncio.create_task(window.tick())
        cpu_started, emulator_started, wall_started = time.process_time(), emulator.cpu_seconds(), time.monotonic()
        window.started_at = wall_started
        await asyncio.sleep(window_s)
        window.ended_at = time.monotonic()
        wall = window.ended_at - wall_started
        client_cpu = (time.process_time() - cpu_started) / wall
        emulator_cpu = (emulator.cpu_seconds() - emulator_started) / wall
        early = [r.stop_reason for r in runners if r.stop_reason]
    finally:
        if ticker is not None:
            ticker.cancel()
        for runner in runners:
            runner.request_stop("user")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        shutdown_logging()
    return summarize(window, sessions, client_cpu, emulator_cpu, early)


def summarize(window: Window, sessions: int, client_cpu: float, emulator_cpu: float, early: list) -> dict:
    assert window.started_at is not None and window.ended_at is not None
    span = window.ended_at - window.started_at
    ticks = sorted(lag for _, lag in window.ticks) or [0.0]
    lags = [lag for _, lag in window.deliveries]
    first = sorted(lag for at, lag in window.deliveries if at < window.started_at + span / 4) or [0.0]
    last = sorted(lag for at, lag in window.deliveries if at > window.ended_at - span / 4) or [0.0]
    growth = percentile(last, 50) - percentile(first, 50)
    underruns = sum(1 for lag in lags if lag > BUFFER_MS)
    loop_p99 = percentile(ticks, 99)
    ordered = sorted(lags) or [0.0]
    passed = not early and bool(lags) and underruns == 0 and loop_p99 <= BUFFER_MS and growth < GROWTH_LIMIT_MS
    return {
        "sessions": sessions,
        "passed": passed,
        "loop_lag_p50_ms": round(percentile(ticks, 50), 2),
        "loop_lag_p99_ms": round(loop_p99, 2),
        "delivery_lag_p99_ms": round(percentile(ordered, 99), 2),
        "delivery_lag_max_ms": round(ordered[-1], 2),
        "lag_growth_ms": round(growth, 2),
        "deltas": len(lags),
        "underruns": underruns,
        "client_cpu": round(client_cpu, 2),
        "emulator_cpu": round(emulator_cpu, 2),
        "ended_early": len(early),
    }


async def climb(emulator: EmulatorProcess, workdir: Path, steps: tuple, window_s: float) -> list[dict]:
    audio = {"input": {"backend": "null"}, "output": {"backend": "null"}}
    profile = write_profile(workdir / "profile", emulator.url, audio)
    results = []
    for sessions in steps:
        result = await measure_step(emulator, profile, workdir, sessions, window_s)
        results.append(result)
        if not result["passed"]:
            break
    return results


def describe(step: dict) -> str:
    return (f"N={step['sessions']}: loop lag p99 {step['loop_lag_p99_ms']:.1f} ms, delivery lag p99 "
            f"{step['delivery_lag_p99_ms']:.1f} ms, growth {step['lag_growth_ms']:+.1f} ms, "
            f"{step['underruns']} underruns of {step['deltas']} deltas, CPU client {step['client_cpu']:.0%} "
            f"emulator {step['emulator_cpu']:.0%}")


def why_failed(step: dict) -> str:
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


def run(steps: tuple = STEPS, window_s: float = 20.0) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-concurrency-") as tmp, \
            EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, benchmark_key(), quiet_stdout():
        results = asyncio.run(climb(emulator, Path(tmp), tuple(steps), window_s))
    passing = [r for r in results if r["passed"]]
    best = passing[-1] if passing else None
    failed = next((r for r in results if not r["passed"]), None)
    if best is None:
        result = "no step passed"
    else:
        result = (f"{best['sessions']} sessions: loop lag p99 {best['loop_lag_p99_ms']:.1f} ms, delivery lag p99 "
                  f"{best['delivery_lag_p99_ms']:.1f} ms, CPU client {best['client_cpu']:.0%} emulator {best['emulator_cpu']:.0%}")
    result += f"; {failed['sessions']} failed: {why_failed(failed)}" if failed else "; every step passed"
    count = best["sessions"] if best else 0
    return [{
        "benchmark": "concurrency",
        "case": f"sessions at real-time pacing, {window_s:g} s per step",
        "max_sessions": count,
        "steps": results,
        "result": result,
        "goal": f">= {GOAL_SESSIONS} sessions",
        "passed": count >= GOAL_SESSIONS,
    }]


if __name__ == "__main__":
    for row in run():
        print(row)
