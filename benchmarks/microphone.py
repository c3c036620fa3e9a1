"""Microphone: client CPU per second of audio sent, 20 ms chunks against 100 ms chunks.

A voicepipe session with every built-in plugin sends the ``null`` microphone (silence, paced in
real time) to the emulator in its own process; nothing else happens in it (the server's VAD hears
no speech, so no answer comes). CPU time of this process is counted from the first append for
``seconds`` of audio. Runs of the two chunk lengths alternate, each 20 ms run paired with the
100 ms run beside it; the ratio is the median over the pairs of (20 ms CPU per second of audio) /
(100 ms CPU per second of audio): what the five times as many appends cost on top of the same audio.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from benchmarks.harness import EmulatorProcess, benchmark_key, make_runner, quiet_stdout, write_profile
from voicepipe.metrics_stats import percentile

GOAL_RATIO = 1.2
STOP_REASON = "benchmark_done"


class AppendClock:
    """Benchmark plugin: CPU time from the first ``input_audio_buffer.append`` sent until
    ``seconds`` of audio have been sent."""

    def __init__(self, seconds: float, chunk_ms: int):
        self.wanted = max(1, round(seconds * 1000 / chunk_ms))
        self.appends = 0
        self.cpu_started: Optional[float] = None
        self.cpu_seconds: Optional[float] = None

    def voicepipe_client_event(self, event: Any, ctx: Any) -> None:
        if event.get("type") != "input_audio_buffer.append" or self.cpu_seconds is not None:
            return
        if self.cpu_started is None:
            self.cpu_started = time.process_time()
            return
        self.appends += 1
        if self.appends >= self.wanted:
            self.cpu_seconds = time.process_time() - self.cpu_started
            ctx.stop(STOP_REASON)


async def session(url: str, workdir: Path, chunk_ms: int, seconds: float) -> float:
    """CPU seconds per second of audio of one session sending ``chunk_ms`` chunks."""
    from voicepipe.logsetup import configure_logging, shutdown_logging

    audio = {"chunk_ms": chunk_ms, "input": {"backend": "null"}, "output": {"backend": "null", "realtime": False}}
    profile = write_profile(workdir / "profile", url, audio)
    run_dir = workdir / "run"
    log = configure_logging(run_dir, console_level="ERROR")
    clock = AppendClock(seconds, chunk_ms)
    try:
        runner = make_runner(profile, run_dir, [clock], log)
        await runner.run()
    finally:
        shutdown_logging()
    if clock.cpu_seconds is None:
        raise RuntimeError(f"the session ended early ({runner.stop_reason}); see {run_dir}/voicepipe.log")
    return clock.cpu_seconds / (clock.appends * chunk_ms / 1000)


async def compare(url: str, workdir: Path, seconds: float, rounds: int) -> list[dict]:
    runs = iter(range(1_000_000))

    async def measure(chunk_ms: int) -> float:
        gc.collect()
        return await session(url, workdir / f"run-{next(runs)}", chunk_ms, seconds)

    await measure(20)  # warm-up: imports, first connection, caches on both sides
    await measure(100)
    per_second: dict[int, list[float]] = {20: [], 100: []}
    ratios = []
    for index in range(rounds):
        order = (20, 100) if index % 2 == 0 else (100, 20)
        measured = {chunk_ms: await measure(chunk_ms) for chunk_ms in order}
        for chunk_ms, value in measured.items():
            per_second[chunk_ms].append(value)
        ratios.append(measured[20] / measured[100])
    base = percentile(sorted(per_second[100]), 50)
    small = percentile(sorted(per_second[20]), 50)
    ratio = percentile(sorted(ratios), 50)
    return [
        {"benchmark": "microphone", "case": "100 ms chunks, all built-ins, null output", "ratio": 1.0,
         "ms_cpu_per_audio_s": round(base * 1000, 2),
         "result": f"{base * 1000:.2f} ms CPU per second of audio ({rounds} runs of {seconds:g} s)"},
        {"benchmark": "microphone", "case": "20 ms chunks, all built-ins, null output", "ratio": round(ratio, 2),
         "ms_cpu_per_audio_s": round(small * 1000, 2), "ratio_min": round(min(ratios), 2),
         "ratio_max": round(max(ratios), 2), "goal": f"ratio <= {GOAL_RATIO}", "passed": round(ratio, 2) <= GOAL_RATIO,
         "result": f"{small * 1000:.2f} ms CPU per second of audio (pairs {min(ratios):.2f}-{max(ratios):.2f}x)"},
    ]


def run(seconds: float = 6.0, rounds: int = 5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-microphone-") as tmp, \
            EmulatorProcess(speed=1) as emulator, benchmark_key(), quiet_stdout():
        return asyncio.run(compare(emulator.url, Path(tmp), seconds, rounds))


if __name__ == "__main__":
    import sys

    arguments = [float(value) for value in sys.argv[1:3]]
    for row in run(*arguments[:1], *[int(value) for value in arguments[1:2]]):
        print(row)
