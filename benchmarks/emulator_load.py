"""The emulator's CPU per message at real-time pacing: what one more session costs the process that
serves them all.

The emulator runs in its own process at speed 1; this one opens N raw WebSocket connections (no
voicepipe session: the client's cost is not the subject) and, after a warm-up that has the answer's
audio synthesized once:

1. every connection sends ``input_audio_buffer.append`` of silence, one ``chunk_ms`` chunk every
   ``chunk_ms`` in real time, for ``seconds`` (the connections' chunks spread over one period, as
   sessions that started at different times), with the quickstart's session (semantic VAD on);
2. every connection asks one typed question and reads the answer, streamed by the emulator in real
   time (100 ms audio deltas, each with the transcript deltas that start in it).

The emulator's CPU time (``/proc``) is divided by the appends of phase 1 and by the audio deltas of
phase 2: CPU per append, CPU per audio delta (its transcript deltas and timers included). CPU time
is the emulator's own, so a busy machine changes it less than it changes a real-time verdict, but
a loaded machine still makes wake-ups dearer: compare figures measured side by side.

    python -m benchmarks.emulator_load                          # 50 connections, 10 s, 20 ms chunks
    python -m benchmarks.emulator_load --chunk-ms 100 --rounds 2
    python -m benchmarks.emulator_load --source /path/to/other/checkout   # side by side with it
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from voicepipe import eventloop
from benchmarks.harness import (
    ANSWER,
    BENCHMARK_KEY,
    ROOT,
    process_cpu_seconds,
    quickstart_session,
    user_turn,
)

START_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 120.0


def chunk_frame(chunk_ms: int) -> str:
    """The text of one append of ``chunk_ms`` of 24 kHz PCM16 silence, as voicepipe sends it."""
    from voicepipe.clientevents import AudioAppend, append_frame

    frame = append_frame(AudioAppend(bytes(48 * chunk_ms)))
    assert frame is not None
    return frame


async def _until(ws, kinds: set) -> int:
    """Read events until one of ``kinds``; the number of audio deltas read on the way."""
    import aiohttp

    deltas = 0
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        kind = json.loads(message.data).get("type")
        if kind == "response.audio.delta":
            deltas += 1
        if kind in kinds:
            return deltas
    raise RuntimeError(f"the emulator closed a connection before {sorted(kinds)}")


class Load:
    """N connections through the phases, with a barrier between phases."""

    def __init__(self, url: str, connections: int, seconds: float, chunk_ms: int):
        self.url, self.connections, self.seconds, self.chunk_ms = url, connections, seconds, chunk_ms
        self.frame = chunk_frame(chunk_ms)
        self.chunks = max(1, round(seconds * 1000 / chunk_ms))
        self.arrived = {name: 0 for name in ("ready", "appended", "answered")}
        self.go = {name: asyncio.Event() for name in ("append", "ask")}
        self.start_at = 0.0
        self.deltas = 0

    async def wait_for(self, name: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT_S + self.seconds
        while self.arrived[name] < self.connections:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.arrived[name]} of {self.connections} connections reached '{name}'")
            await asyncio.sleep(0.02)

    async def one(self, http, index: int) -> None:
        loop = asyncio.get_running_loop()
        async with http.ws_connect(self.url, headers={"api-key": BENCHMARK_KEY}, max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"type": "session.update", "session": quickstart_session()}))
            await _until(ws, {"session.updated"})
            if index == 0:  # the answer's audio is synthesized once, outside the phases measured
                for event in user_turn():
                    await ws.send_str(json.dumps(event))
                await _until(ws, {"response.audio.delta"})
                await ws.send_str(json.dumps({"type": "response.cancel"}))
                await _until(ws, {"response.done"})
            self.arrived["ready"] += 1
            await self.go["append"].wait()
            offset = self.start_at + (index / self.connections) * self.chunk_ms / 1000
            for number in range(self.chunks):
                await asyncio.sleep(max(0.0, offset + number * self.chunk_ms / 1000 - loop.time()))
                await ws.send_str(self.frame)
            # an event that fails at once: its error comes after every append was handled
            await ws.send_str(json.dumps({"type": "response.cancel"}))
            await _until(ws, {"error"})
            self.arrived["appended"] += 1
            await self.go["ask"].wait()
            for event in user_turn():
                await ws.send_str(json.dumps(event))
            deltas = await _until(ws, {"response.done"})
            self.deltas += deltas
            self.arrived["answered"] += 1

    async def run(self, pid: int) -> dict:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(self.one(http, index)) for index in range(self.connections)]
            try:
                await self.wait_for("ready")
                self.start_at = asyncio.get_running_loop().time() + 0.2
                cpu, wall = process_cpu_seconds(pid), time.monotonic()
                self.go["append"].set()
                await self.wait_for("appended")
                append_cpu, append_wall = process_cpu_seconds(pid) - cpu, time.monotonic() - wall
                cpu, wall = process_cpu_seconds(pid), time.monotonic()
                self.go["ask"].set()
                await self.wait_for("answered")
                answer_cpu, answer_wall = process_cpu_seconds(pid) - cpu, time.monotonic() - wall
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        appends = self.chunks * self.connections
        return {
            "connections": self.connections,
            "chunk_ms": self.chunk_ms,
            "appends": appends,
            "us_per_append": round(append_cpu / appends * 1e6, 1),
            "append_phase_cpu": round(append_cpu / append_wall, 3),
            "deltas": self.deltas,
            "us_per_delta": round(answer_cpu / max(self.deltas, 1) * 1e6, 1),
            "answer_phase_cpu": round(answer_cpu / answer_wall, 3),
        }


def measure(source: Path, connections: int, seconds: float, chunk_ms: int, answer: str = ANSWER) -> dict:
    """One measurement against the emulator of the checkout at ``source``."""
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-emulator-load-") as tmp:
        scenario = Path(tmp) / "scenario.yaml"
        scenario.write_text(f"default_answer: {json.dumps(answer)}\n", encoding="utf-8")
        command = [sys.executable, "-m", "voicepipe", "emulator", "--port", "0", "--speed", "1",
                   "--scenario", str(scenario)]
        proc = subprocess.Popen(command, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = _first_line(proc)
            if " on " not in line:
                raise RuntimeError(f"the emulator of {source} did not start: {line.strip() or 'no output'}")
            base = line.split(" on ", 1)[1].strip()
            url = "ws" + base[len("http"):] + "/voice-live/realtime?api-version=2025-10-01&model=gpt-realtime"
            result = eventloop.run(Load(url, connections, seconds, chunk_ms).run(proc.pid))
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    return {"source": str(source), **result}


def _first_line(proc: subprocess.Popen) -> str:
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    return proc.stdout.readline() if ready else ""


def describe(result: dict) -> str:
    return (f"{result['source']}: {result['connections']} connections, {result['chunk_ms']} ms appends "
            f"{result['us_per_append']:.1f} us CPU each ({result['append_phase_cpu']:.0%} of a core); answers "
            f"{result['us_per_delta']:.1f} us CPU per audio delta ({result['answer_phase_cpu']:.0%}, "
            f"{result['deltas']} deltas)")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emulator_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50, metavar="N", help="connections at once (50)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="seconds of appends (10)")
    parser.add_argument("--chunk-ms", type=int, default=20, metavar="MS", help="audio per append (20)")
    parser.add_argument("--rounds", type=int, default=1, metavar="R", help="measurements of each source, alternating (1)")
    parser.add_argument("--source", type=Path, action="append", default=[], metavar="DIR",
                        help="a voicepipe checkout whose emulator is measured too, side by side with this one")
    args = parser.parse_args(argv)
    for name, value in (("--connections", args.connections), ("--chunk-ms", args.chunk_ms), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{name}: expected 1 or more, got {value}")
    if args.seconds <= 0:
        parser.error(f"--seconds: expected more than 0, got {args.seconds:g}")
    sources = [ROOT]
    for source in args.source:
        if not (source / "voicepipe" / "emulator").is_dir():
            parser.error(f"--source {source}: no voicepipe/emulator there (give the checkout's top folder)")
        sources.append(source.resolve())
    for _ in range(args.rounds):
        for source in sources:
            print(describe(measure(source, args.connections, args.seconds, args.chunk_ms)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
