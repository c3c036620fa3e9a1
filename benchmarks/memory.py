"""Memory: growth over a long session, at least 30 simulated minutes of answers at full speed.

One voicepipe session with every built-in plugin against the emulator in its own process at speed 0;
typed turns, each sent once the previous answer is done, until the answers add up to the simulated
length; the output is ``null`` with ``realtime: false``. After a warm-up (the first minutes of
answers) the garbage is collected, RSS is read and tracemalloc starts; at the end the same again.
Reported: the memory allocated after the warm-up that is still alive at the end (tracemalloc), with
the three source lines holding most of it, and the RSS growth, which also holds tracemalloc's own
bookkeeping (so it is an upper bound of what the session itself grew).
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any, Optional

from voicepipe import eventloop
from benchmarks.harness import (
    IDLE_INPUT,
    OUTPUT_RATE,
    ROOT,
    EmulatorProcess,
    benchmark_key,
    make_runner,
    quiet_stdout,
    rss_bytes,
    user_turn,
    write_profile,
)

GOAL_MB = 5.0
STOP_REASON = "benchmark_done"
MB = 1024 * 1024


class LongSession:
    """Benchmark plugin: typed turns until ``minutes`` of answers were received, with memory readings
    after ``warm_up_minutes`` and at the end (both at a ``response.done``)."""

    def __init__(self, minutes: float, warm_up_minutes: float):
        self.target_ms = minutes * 60_000
        self.warm_up_ms = warm_up_minutes * 60_000
        self.audio_ms = 0.0
        self.turns = 0
        self.readings: dict[str, dict] = {}
        self.top: list[str] = []

    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type")
        if kind == "response.audio.delta":
            self.audio_ms += len(event.get("delta") or "") * 3 / 4 / (OUTPUT_RATE * 2 / 1000)
        elif kind == "session.updated" and self.turns == 0:
            self._ask(ctx)
        elif kind == "response.done":
            if "warm" not in self.readings and self.audio_ms >= self.warm_up_ms:
                self.readings["warm"] = self._reading()
                tracemalloc.start(1)
            if self.audio_ms >= self.target_ms and "end" not in self.readings:
                self.readings["end"] = self._reading()
                snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
                tracemalloc.stop()
                if snapshot is not None:
                    self.top = [f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno} {stat.size / 1024:.0f} KiB"
                                for stat in snapshot.statistics("lineno")[:3]]
                ctx.stop(STOP_REASON)
            elif "end" not in self.readings:
                self._ask(ctx)

    def _ask(self, ctx: Any) -> None:
        self.turns += 1
        for event in user_turn():
            ctx.send(event)

    def _reading(self) -> dict:
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        bookkeeping = tracemalloc.get_tracemalloc_memory() if tracemalloc.is_tracing() else 0
        return {"rss": rss_bytes(), "traced": traced, "bookkeeping": bookkeeping,
                "audio_ms": self.audio_ms, "turns": self.turns}


def _short(filename: str) -> str:
    """``voicepipe/builtin/transcript.py``, ``azure/ai/...``, ``json/decoder.py``: the path from the package."""
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return "/".join(Path(filename).parts[-2:])


async def measure(url: str, workdir: Path, minutes: float, warm_up_minutes: float) -> dict:
    from voicepipe.logsetup import configure_logging, shutdown_logging

    audio = {"input": {"backend": IDLE_INPUT}, "output": {"backend": "null", "realtime": False}}
    profile = write_profile(workdir / "profile", url, audio)
    run_dir = workdir / "run"
    log = configure_logging(run_dir, console_level="ERROR")
    plugin = LongSession(minutes, warm_up_minutes)
    runner: Optional[Any] = None
    try:
        runner = make_runner(profile, run_dir, [plugin], log)
        await runner.run()
    finally:
        shutdown_logging()
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    if "end" not in plugin.readings:
        reason = runner.stop_reason if runner is not None else "?"
        raise RuntimeError(f"the long session ended early ({reason}); see {run_dir}/voicepipe.log")
    warm, end = plugin.readings["warm"], plugin.readings["end"]
    return {
        "simulated_min": round(end["audio_ms"] / 60_000, 1),
        "measured_min": round((end["audio_ms"] - warm["audio_ms"]) / 60_000, 1),
        "turns": end["turns"] - warm["turns"],
        "traced_growth_mb": round(end["traced"] / MB, 2),
        "rss_growth_mb": round((end["rss"] - warm["rss"]) / MB, 2),
        "tracemalloc_mb": round(end["bookkeeping"] / MB, 2),
        "top": plugin.top,
    }


def run(minutes: float = 32.0, warm_up_minutes: float = 2.0) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-memory-") as tmp, \
            EmulatorProcess(speed=0) as emulator, benchmark_key(), quiet_stdout():
        stats = eventloop.run(measure(emulator.url, Path(tmp), minutes, warm_up_minutes))
    growth = max(stats["traced_growth_mb"], stats["rss_growth_mb"])
    return [{
        "benchmark": "memory",
        "case": "one session, all built-in plugins, null output",
        **stats,
        "result": (f"{stats['traced_growth_mb']:+.2f} MB live, {stats['rss_growth_mb']:+.2f} MB RSS (with "
                   f"{stats['tracemalloc_mb']:.1f} MB of tracemalloc's) over "
                   f"{stats['measured_min']:g} simulated min ({stats['turns']} turns) after warm-up"),
        "goal": f"< {GOAL_MB:g} MB",
        "passed": growth < GOAL_MB,
    }]


if __name__ == "__main__":
    for row in run():
        print(row)
