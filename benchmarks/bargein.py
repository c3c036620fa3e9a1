"""Barge-in: ``input_audio_buffer.speech_started`` received → the output is silent.

Every built-in plugin runs behind the Pipeline, fed the server events of a spoken answer (a constant
non-zero tone, so that any zero sample played is silence) while a microphone streams; part of the
answer plays, then ``speech_started`` is dispatched as the runtime's reader dispatches it.

* File backend (``wav``, real-time virtual clock): from the start of the dispatch to the moment the
  output's ``clear()`` has returned, after which its played counter no longer advances (checked 10 ms
  later for every sample).
* Device backend (``sounddevice`` on the default device with ``latency: 0.04`` configured, when the
  default input is the monitor of the default output, as under ``.ci/audio-ci.sh``): from the start
  of the dispatch to the moment the sound stops on the sink, read from the sink's monitor: a second
  stream records it in 5 ms blocks, and the last sample of the answer (the end of the fade) is placed
  at its block's arrival time less the samples that follow it. That is never earlier than the sound
  stopped, so whatever the device buffers, PortAudio and the sound server included, is in the
  figure. The goal is what voicepipe configures, in milliseconds: the output latency asked for + the
  fade + one callback block (silence starts with the next block the device asks for) + one monitor
  block (the resolution of the measurement); what PortAudio reports as the latency is shown, not used.
  Without such a sound server the row is measured under ``.ci/audio-ci.sh`` (a private PulseAudio
  with a null sink) when PulseAudio is installed, and skipped otherwise.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from voicepipe import eventloop
from benchmarks.harness import (
    ROOT,
    DispatchHarness,
    ResponseScript,
    quiet_stdout,
    sound_server_available,
)
from voicepipe.metrics_stats import percentile

GOAL_FILE_P99_MS = 5.0
DEVICE_BACKEND = "sounddevice"
#: the device options the row runs with: the latency is configured, so the goal can be stated in it
DEVICE_LATENCY_S = 0.04
ROWS_MARKER = "BENCHMARK-ROWS "
#: the monitor stream's block: the resolution of "the sound stopped"
MONITOR_BLOCK_MS = 5.0
#: a monitor sample at most this far from zero is silence (the answer is a constant 3000; the sound
#: server resamples, so silence is not exactly zero)
SILENCE_LEVEL = 100
#: the sound counts as stopped once the monitor has recorded this much silence after it
QUIET_MS = 100.0


def _stats(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(percentile(ordered, 50), 3), "p99_ms": round(percentile(ordered, 99), 3),
            "max_ms": round(ordered[-1], 3), "samples": len(ordered)}


# -- the file backend ----------------------------------------------------------------------------------


async def measure_file(workdir: Path, iterations: int) -> dict:
    harness = DispatchHarness(workdir, {"output": {"backend": "wav", "file": str(workdir / "output.wav")}})
    scripts = [ResponseScript(number, deltas=10) for number in range(iterations)]
    latencies: list[float] = []
    counter_moved = 0
    try:
        await harness.start()
        output = harness.audio.output
        original_clear = output.clear
        cleared: dict[str, Any] = {}

        def timed_clear() -> Any:
            playback = original_clear()
            cleared["at"] = time.perf_counter()
            return playback

        output.clear = timed_clear
        pipeline = harness.pipeline
        for script in scripts:
            for event in script.head:
                await harness.feed(event)
            for words, audio in script.deltas:
                await harness.feed(words)
                await harness.feed(audio)
            await asyncio.sleep(random.uniform(0.01, 0.04))  # part of the answer plays
            cleared.clear()
            started = time.perf_counter()
            pending = pipeline.dispatch(script.speech_started)
            if pending:
                for _, awaitable in pending:
                    await awaitable
            if "at" not in cleared:
                raise RuntimeError("speech_started did not clear the output")
            latencies.append((cleared["at"] - started) * 1000)
            played = output.played_ms(script.item_id)
            await asyncio.sleep(0.01)
            if output.played_ms(script.item_id) != played:
                counter_moved += 1
            for event in script.cancelled:
                await harness.feed(event)
        truncates = sum(1 for e in harness.sent if e["type"] in ("conversation.item.truncate", "conversation.item.delete"))
    finally:
        await harness.end("user")
    if counter_moved:
        raise RuntimeError(f"the played counter kept moving after {counter_moved} barge-ins")
    if truncates != iterations:
        raise RuntimeError(f"{iterations} barge-ins sent {truncates} truncate/delete events")
    return _stats(latencies)


def file_row(workdir: Path, iterations: int) -> dict:
    with quiet_stdout():
        stats = eventloop.run(measure_file(workdir, iterations))
    return {"benchmark": "barge-in", "case": "wav output (file clock): speech_started -> clear() returned",
            **stats, "result": f"p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms ({stats['samples']} barge-ins)",
            "goal": f"p99 <= {GOAL_FILE_P99_MS:g} ms", "passed": stats["p99_ms"] <= GOAL_FILE_P99_MS}


# -- a device backend ----------------------------------------------------------------------------------


def monitor_is_default_input() -> bool:
    """Whether the default input records what the default output plays (PulseAudio: the default
    source is the default sink's monitor), so that the device row can hear the sound stop."""
    try:
        sink, source = (subprocess.run(["pactl", command], capture_output=True, text=True, timeout=10).stdout.strip()
                        for command in ("get-default-sink", "get-default-source"))
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(sink) and source == f"{sink}.monitor"


class SinkMonitor:
    """Records the default input (the sink's monitor) in small blocks, each with the time its
    callback ran, on PortAudio's thread."""

    def __init__(self, rate: int) -> None:
        import sounddevice

        self.rate = rate
        self.blocks: list[tuple[float, bytes]] = []
        self._stream = sounddevice.RawInputStream(
            samplerate=rate, blocksize=round(rate * MONITOR_BLOCK_MS / 1000), channels=1, dtype="int16",
            latency="low", callback=self._captured)

    def _captured(self, data: Any, frames: int, time_info: Any, status: Any) -> None:
        self.blocks.append((time.monotonic(), bytes(data)))

    def __enter__(self) -> "SinkMonitor":
        self._stream.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stream.stop()
        self._stream.close()

    def stopped_at(self, since: int) -> Optional[float]:
        """When the last sound recorded from block ``since`` on was on the sink (at the latest), once
        ``QUIET_MS`` of silence followed it; ``None`` until then (or while nothing was heard yet)."""
        import numpy as np

        blocks = self.blocks[since:]
        last: Optional[tuple[int, int]] = None  # (block, samples after the last loud one in it)
        quiet = 0
        for index, (_, pcm) in enumerate(blocks):
            samples = np.frombuffer(pcm, dtype="<i2")
            loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
            if len(loud):
                last = (index, len(samples) - 1 - int(loud[-1]))
                quiet = last[1]
            else:
                quiet += len(samples)
        if last is None or quiet * 1000 / self.rate < QUIET_MS:
            return None
        arrived, _ = blocks[last[0]]
        return arrived - last[1] / self.rate


async def measure_device(workdir: Path, iterations: int) -> dict:
    from voicepipe.audio.sounddevice_backend import OUTPUT_BUFFER_MS

    harness = DispatchHarness(workdir, {"output": {"backend": DEVICE_BACKEND, "latency": DEVICE_LATENCY_S}})
    scripts = [ResponseScript(number, deltas=5) for number in range(iterations)]
    latencies: list[float] = []
    try:
        await harness.start()
        output = harness.audio.output
        with SinkMonitor(output.device_rate) as monitor:
            for script in scripts:
                for event in script.head:
                    await harness.feed(event)
                for words, audio in script.deltas:
                    await harness.feed(words)
                    await harness.feed(audio)
                deadline = time.monotonic() + 5
                while output.played_ms(script.item_id) <= 0:  # the device has started playing the answer
                    if time.monotonic() > deadline:
                        raise RuntimeError("the device does not play")
                    await asyncio.sleep(0.002)
                await asyncio.sleep(random.uniform(0.02, 0.1))
                since = len(monitor.blocks)
                started = time.monotonic()
                pending = harness.pipeline.dispatch(script.speech_started)
                if pending:
                    for _, awaitable in pending:
                        await awaitable
                deadline = time.monotonic() + 3
                while (stopped := monitor.stopped_at(since)) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the sound did not stop on the sink within 3 s of a barge-in, or the "
                                           "sink's monitor never heard it (is the default input its monitor?)")
                    await asyncio.sleep(0.01)
                latencies.append((stopped - started) * 1000)
                for event in script.cancelled:
                    await harness.feed(event)
        reported_ms = float(output.latency_s) * 1000
        fade_ms = float(output.fade_ms)
        underflows = int(getattr(output, "underflows", 0))
    finally:
        await harness.end("user")
    return {**_stats(latencies), "min_ms": round(min(latencies), 3), "latency_ms": DEVICE_LATENCY_S * 1000,
            "block_ms": float(OUTPUT_BUFFER_MS), "fade_ms": fade_ms, "monitor_block_ms": MONITOR_BLOCK_MS,
            "reported_latency_ms": round(reported_ms, 1), "underflows": underflows}


def device_goal_ms(stats: dict) -> float:
    """What voicepipe configures: the output latency asked for, the fade, one callback block, and
    one monitor block (the measurement's resolution)."""
    return stats["latency_ms"] + stats["fade_ms"] + stats["block_ms"] + stats["monitor_block_ms"]


def device_rows_here(workdir: Path, iterations: int) -> list[dict]:
    with quiet_stdout():
        stats = eventloop.run(measure_device(workdir, iterations))
    goal = device_goal_ms(stats)
    return [{
        "benchmark": "barge-in",
        "case": f"{DEVICE_BACKEND} output, latency {stats['latency_ms']:g} ms (PulseAudio null sink): "
                "speech_started -> sound stops on the sink",
        **stats,
        "goal_ms": goal,
        "ratio": round(stats["p99_ms"] / goal, 2),
        "result": (f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms ({stats['samples']} barge-ins, heard "
                   f"on the sink's monitor; PortAudio reports {stats['reported_latency_ms']:.1f} ms of latency)"),
        "goal": (f"p99 <= {goal:g} ms: latency {stats['latency_ms']:g} + fade {stats['fade_ms']:g} + one "
                 f"{stats['block_ms']:g} ms block + one {stats['monitor_block_ms']:g} ms monitor block"),
        "passed": stats["p99_ms"] <= goal,
    }]


def device_rows(workdir: Path, iterations: int) -> list[dict]:
    """The device row: here if the default input is the default output's monitor, else under ``.ci/audio-ci.sh``, else skipped."""
    if sound_server_available() and monitor_is_default_input():
        return device_rows_here(workdir, iterations)
    script = ROOT / ".ci" / "audio-ci.sh"
    if shutil.which("pulseaudio") and shutil.which("pactl") and script.is_file():
        command = ["bash", str(script), sys.executable, "-m", "benchmarks.bargein", "--device", str(iterations)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        for line in done.stdout.splitlines():
            if line.startswith(ROWS_MARKER):
                return json.loads(line[len(ROWS_MARKER):])
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [_skipped(f"the device run under .ci/audio-ci.sh failed: {reason}")]
    return [_skipped("no PulseAudio whose default input is the monitor of its default output")]


def _skipped(why: str) -> dict:
    return {"benchmark": "barge-in", "case": f"{DEVICE_BACKEND} output: skipped", "skipped": why,
            "result": f"skipped: {why}", "passed": None}


def run(iterations: int = 300, device_iterations: int = 200) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-bargein-") as tmp:
        rows = [file_row(Path(tmp) / "file", iterations)]
        if device_iterations:
            rows += device_rows(Path(tmp) / "device", device_iterations)
        return rows


def _device_main(iterations: int) -> None:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-bargein-") as tmp:
        rows = device_rows_here(Path(tmp), iterations)
    print(ROWS_MARKER + json.dumps(rows), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--device":
        _device_main(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
    else:
        for row in run():
            print(row)
