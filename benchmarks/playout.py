"""Playout: a ``response.audio.delta`` received → its audio handed to the output backend.

Every built-in plugin runs behind the Pipeline, fed spoken answers (transcript and audio deltas, as
the service interleaves them) while a microphone streams; the ``wav`` output runs on its real-time
virtual clock. The time is taken from the start of the delta's dispatch (where the runtime's reader
hands it over) to the call of the output backend's ``write``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from voicepipe import eventloop
from benchmarks.harness import DispatchHarness, ResponseScript, quiet_stdout
from voicepipe.metrics_stats import percentile

GOAL_P99_MS = 2.0


async def measure(workdir: Path, responses: int, deltas: int) -> dict:
    harness = DispatchHarness(workdir, {"output": {"backend": "wav", "file": str(workdir / "output.wav")}})
    scripts = [ResponseScript(number, deltas=deltas) for number in range(responses)]
    latencies: list[float] = []
    try:
        await harness.start()
        output = harness.audio.output
        original_write = output.write
        written: list[float] = []

        def timed_write(pcm: bytes, item_id: str) -> Any:
            written.append(time.perf_counter())
            return original_write(pcm, item_id)

        output.write = timed_write
        pipeline = harness.pipeline
        for script in scripts:
            for event in script.head:
                await harness.feed(event)
            for words, audio in script.deltas:
                await harness.feed(words)
                written.clear()
                started = time.perf_counter()
                pending = pipeline.dispatch(audio)
                if pending:
                    for _, awaitable in pending:
                        await awaitable
                if len(written) != 1:
                    raise RuntimeError(f"an audio delta reached the output {len(written)} times")
                latencies.append((written[0] - started) * 1000)
                await asyncio.sleep(0)
            for event in script.completed:
                await harness.feed(event)
    finally:
        await harness.end("user")
    ordered = sorted(latencies)
    return {"p50_ms": round(percentile(ordered, 50), 3), "p99_ms": round(percentile(ordered, 99), 3),
            "max_ms": round(ordered[-1], 3), "samples": len(ordered)}


def run(responses: int = 40, deltas: int = 50) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-playout-") as tmp, quiet_stdout():
        stats = eventloop.run(measure(Path(tmp), responses, deltas))
    return [{"benchmark": "playout", "case": "wav output: audio delta dispatched -> output.write()", **stats,
             "result": f"p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms ({stats['samples']} deltas)",
             "goal": f"p99 <= {GOAL_P99_MS:g} ms", "passed": stats["p99_ms"] <= GOAL_P99_MS}]


if __name__ == "__main__":
    for row in run():
        print(row)
