"""Microphone: client CPU per second of audio sent, 20 ms chunks against 100 ms chunks.

A voicepipe session with every built-in plugin sends the ``null`` microphone (silence, paced in
real time) to the emulator in its own process; nothing else happens in it (the server's VAD hears
no speech, so no answer comes). CPU time of this process is counted once ``SKIP_S`` of audio has
been sent (the first second of a silence still goes out chunk by chunk) for ``seconds`` of
audio. Three cases alternate, each run of a 20 ms case paired with the 100 ms run beside it, the
ratio the median over the pairs:

* 20 ms chunks of a quiet input, as every profile sends it by default (``audio.batch_ms``: the
  steady part of a silence or a sound leaves 100 ms at a time) — the goal's row;
* 20 ms chunks, every chunk sent as it comes (``batch_ms: 0``): what the edges cost (the first
  second of a silence, the first half second of a sound, a sound during an answer).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from voicepipe import eventloop
from benchmarks.harness import EmulatorProcess, benchmark_key, make_runner, quiet_stdout, write_profile
from voicepipe.audio.pcm import SAMPLE_WIDTH, base64_length
from voicepipe.metrics_stats import percentile

GOAL_RATIO = 1.2
STOP_REASON = "benchmark_done"
RATE = 24000
#: audio sent before the clock starts: warm-up, and the quiet input's first second in chunks
SKIP_S = 1.5
#: (name, chunk_ms, batch_ms)
BASE = ("100 ms chunks", 100, 100)
CASES = (
    ("20 ms chunks, quiet (sent 100 ms at a time after its first second)", 20, 100),
    ("20 ms chunks, every chunk as it comes (batch_ms: 0)", 20, 0),
)


class AppendClock:
    """Benchmark plugin: CPU time over ``seconds`` of audio appended, from the first append that
    leaves after ``SKIP_S`` of audio."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.sent_s = 0.0
        self.counted_s = 0.0
        self.cpu_started: Optional[float] = None
        self.cpu_seconds: Optional[float] = None

    def voicepipe_client_event(self, event: Any, ctx: Any) -> None:
        if event.get("type") != "input_audio_buffer.append" or self.cpu_seconds is not None:
            return
        audio_s = (base64_length(event["audio"]) or 0) / SAMPLE_WIDTH / RATE
        self.sent_s += audio_s
        if self.cpu_started is None:
            if self.sent_s >= SKIP_S:
                self.cpu_started = time.process_time()
            return
        self.counted_s += audio_s
        if self.counted_s >= self.seconds:
            self.cpu_seconds = time.process_time() - self.cpu_started
            ctx.stop(STOP_REASON)


async def session(url: str, workdir: Path, chunk_ms: int, batch_ms: int, seconds: float) -> float:
    """CPU seconds per second of audio of one session sending ``chunk_ms`` chunks."""
    from voicepipe.logsetup import configure_logging, shutdown_logging

    audio = {"chunk_ms": chunk_ms, "batch_ms": batch_ms, "input": {"backend": "null"},
             "output": {"backend": "null", "realtime": False}}
    profile = write_profile(workdir / "profile", url, audio)
    run_dir = workdir / "run"
    log = configure_logging(run_dir, console_level="ERROR")
    clock = AppendClock(seconds)
    try:
        runner = make_runner(profile, run_dir, [clock], log)
        await runner.run()
    finally:
        shutdown_logging()
    if clock.cpu_seconds is None:
        raise RuntimeError(f"the session ended early ({runner.stop_reason}); see {run_dir}/voicepipe.log")
    return clock.cpu_seconds / clock.counted_s


async def compare(url: str, workdir: Path, seconds: float, rounds: int) -> list[dict]:
    runs = iter(range(1_000_000))

    async def measure(case: tuple) -> float:
        gc.collect()
        _, chunk_ms, batch_ms = case
        return await session(url, workdir / f"run-{next(runs)}", chunk_ms, batch_ms, seconds)

    everything = (BASE, *CASES)
    for case in everything:
        await measure(case)  # warm-up: imports, first connection, caches on both sides
    per_second: dict[str, list[float]] = {case[0]: [] for case in everything}
    ratios: dict[str, list[float]] = {case[0]: [] for case in CASES}
    for index in range(rounds):
        order = everything if index % 2 == 0 else everything[::-1]
        measured = {case[0]: await measure(case) for case in order}
        for name, value in measured.items():
            per_second[name].append(value)
        for name, _, _ in CASES:
            ratios[name].append(measured[name] / measured[BASE[0]])
    base = percentile(sorted(per_second[BASE[0]]), 50)
    rows = [
        {"benchmark": "microphone", "case": f"{BASE[0]}, all built-ins, null output", "ratio": 1.0,
         "ms_cpu_per_audio_s": round(base * 1000, 2),
         "result": f"{base * 1000:.2f} ms CPU per second of audio ({rounds} runs of {seconds:g} s)"},
    ]
    for number, (name, _, _) in enumerate(CASES):
        value = percentile(sorted(per_second[name]), 50)
        pairs = ratios[name]
        ratio = percentile(sorted(pairs), 50)
        row = {"benchmark": "microphone", "case": f"{name}, all built-ins, null output", "ratio": round(ratio, 2),
               "ms_cpu_per_audio_s": round(value * 1000, 2), "ratio_min": round(min(pairs), 2),
               "ratio_max": round(max(pairs), 2),
               "result": f"{value * 1000:.2f} ms CPU per second of audio (pairs {min(pairs):.2f}-{max(pairs):.2f}x)"}
        if number == 0:
            row.update(goal=f"ratio <= {GOAL_RATIO}", passed=round(ratio, 2) <= GOAL_RATIO)
        rows.append(row)
    return rows


def run(seconds: float = 6.0, rounds: int = 5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-microphone-") as tmp, \
            EmulatorProcess(speed=1) as emulator, benchmark_key(), quiet_stdout():
        return eventloop.run(compare(emulator.url, Path(tmp), seconds, rounds))


if __name__ == "__main__":
    import sys

    arguments = [float(value) for value in sys.argv[1:3]]
    for row in run(*arguments[:1], *[int(value) for value in arguments[1:2]]):
        print(row)
