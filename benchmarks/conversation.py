"""Conversation: client CPU per session for a spoken conversation at real-time pacing, voicepipe
against a bare SDK loop doing the same work, and, when installed, peer frameworks.

The emulator runs in its own process at speed 1. Each client sends the same microphone stream, paced
in real time in 20 ms chunks: ``turns`` turns of ``turn_s`` seconds, each the question of
``profiles/audio/question.wav`` (2.5 s of speech) then silence; the emulator's VAD ends each turn
and answers (``ANSWER``, about 3 s of audio). Client CPU (user + system of the client process) is
counted from ``session.updated`` until the input has ended and the last answer is done.

* bare SDK loop: ``connect``, ``session.update``, one task sending the chunks with
  ``connection.send`` (as ``conn.input_audio_buffer.append`` does, without building a model), a
  ``recv()`` loop that base64-decodes each audio delta (the least a client that plays audio does);
* voicepipe: the quickstart profile with every built-in plugin, the ``null`` output on its
  real-time clock, the microphone's chunks as above (20 ms, and 100 ms for comparison);
* peers (``benchmarks/peers/``): LiveKit Agents' Azure ``RealtimeModel`` and Pipecat's Voice Live
  service, each run by the Python named in ``VOICEPIPE_BENCH_LIVEKIT_PYTHON`` /
  ``VOICEPIPE_BENCH_PIPECAT_PYTHON`` (default: this one) when it can import them, else skipped
  with a row saying so. They are not dependencies of voicepipe or of its tests.

Every round runs every client (the bare loop, voicepipe with 20 ms and with 100 ms chunks, each
installed peer) in alternating order; each run is compared with the bare run of its round, and a
case's ratio is the median of those. The goal: voicepipe with 20 ms chunks at most the bare loop,
and below LiveKit's when LiveKit is measured.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any, Mapping, Optional

from voicepipe import eventloop
from benchmarks.harness import (
    BENCHMARK_KEY,
    ROOT,
    EmulatorProcess,
    benchmark_key,
    make_runner,
    quiet_stdout,
    write_profile,
)
from voicepipe.audio.null import PacedInput
from voicepipe.metrics_stats import percentile

ANSWER = "The Caspian Sea is the largest lake in the world."
SCENARIO = f"default_answer: {json.dumps(ANSWER)}\n"
RATE = 24000
INPUT = "benchmark-conversation"
GOAL_RATIO = 1.0
LIVEKIT = "LiveKit Agents Azure RealtimeModel"
PEERS = {
    LIVEKIT: ("VOICEPIPE_BENCH_LIVEKIT_PYTHON", "livekit.plugins.azure", "livekit_client.py"),
    "Pipecat Voice Live service": ("VOICEPIPE_BENCH_PIPECAT_PYTHON", "pipecat.services.azure", "pipecat_client.py"),
}


def microphone(turns: int, turn_s: float, chunk_ms: int) -> list[bytes]:
    """The microphone stream as chunks: per turn the recorded question, then silence."""
    with wave.open(str(ROOT / "profiles" / "audio" / "question.wav"), "rb") as f:
        speech = f.readframes(f.getnframes())
    turn = speech[: int(turn_s * RATE) * 2].ljust(int(turn_s * RATE) * 2, b"\x00")
    stream = turn * turns
    size = RATE * chunk_ms // 1000 * 2
    return [stream[i:i + size] for i in range(0, len(stream), size)]


class ConversationInput(PacedInput):
    """The benchmark's microphone for voicepipe: the chunks, paced in real time, then the end."""

    def __init__(self, chunks: list[bytes]):
        super().__init__(realtime=True)
        self._chunks = chunks

    def chunks(self) -> Any:
        return iter(self._chunks)


class ConversationPlugin:
    """Provides the input backend and measures CPU from ``session.updated`` to the session's end."""

    def __init__(self, chunks: list[bytes]):
        self._chunks = chunks
        self.cpu_started: Optional[float] = None
        self.cpu_seconds: Optional[float] = None
        self.answers = 0

    def voicepipe_audio_backend(self, name: str, direction: str, options: Mapping[str, Any]) -> Any:
        if name == INPUT and direction == "input":
            return ConversationInput(self._chunks)
        return None

    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type")
        if kind == "session.updated" and self.cpu_started is None:
            self.cpu_started = time.process_time()
        elif kind == "response.done":
            self.answers += 1

    def voicepipe_session_end(self, ctx: Any, reason: str) -> None:
        if self.cpu_started is not None:
            self.cpu_seconds = time.process_time() - self.cpu_started


async def voicepipe_run(url: str, workdir: Path, turns: int, turn_s: float, chunk_ms: int) -> float:
    from voicepipe.logsetup import configure_logging, shutdown_logging

    audio = {"chunk_ms": chunk_ms, "input": {"backend": INPUT}, "output": {"backend": "null"}}
    profile = write_profile(workdir / "profile", url, audio)
    run_dir = workdir / "run"
    log = configure_logging(run_dir, console_level="ERROR")
    plugin = ConversationPlugin(microphone(turns, turn_s, chunk_ms))
    try:
        runner = make_runner(profile, run_dir, [plugin], log)
        await runner.run()
    finally:
        shutdown_logging()
    if plugin.cpu_seconds is None or plugin.answers < turns or runner.stop_reason != "input_finished":
        raise RuntimeError(f"the voicepipe session ended early ({runner.stop_reason}, {plugin.answers} answers)")
    return plugin.cpu_seconds


async def bare_run(url: str, session_update: dict, turns: int, turn_s: float) -> float:
    """The same conversation through the SDK alone (see the module's docstring)."""
    from base64 import b64decode, b64encode

    from azure.ai.voicelive.aio import connect
    from azure.core.credentials import AzureKeyCredential

    chunks = microphone(turns, turn_s, 20)
    async with connect(endpoint=url, credential=AzureKeyCredential(BENCHMARK_KEY), model="gpt-realtime") as conn:
        await conn.send(session_update)
        while (await conn.recv()).get("type") != "session.updated":
            pass
        started = time.process_time()
        loop = asyncio.get_running_loop()

        async def speak() -> None:
            start = loop.time()
            for index, chunk in enumerate(chunks):
                delay = start + (index + 1) * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await conn.send({"type": "input_audio_buffer.append", "audio": b64encode(chunk).decode("ascii")})

        speaking = asyncio.ensure_future(speak())
        answers = 0
        while answers < turns:
            event = await conn.recv()
            kind = event.get("type")
            if kind == "response.audio.delta":
                b64decode(event.get("delta"))
            elif kind == "response.done":
                answers += 1
        await speaking
        return time.process_time() - started


def peer_command(name: str) -> tuple[Optional[list[str]], str]:
    """The command that runs peer ``name``'s client, or ``None`` and why it is skipped."""
    variable, module, script = PEERS[name]
    python = os.environ.get(variable) or sys.executable
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, (f"skipped: {module} is not importable by {python} (install it in a virtual environment "
                      f"and set {variable} to its python)")
    return [python, str(ROOT / "benchmarks" / "peers" / script)], ""


def peer_run(command: list[str], url: str, session_update: dict, turns: int, turn_s: float) -> float:
    """A peer client in its own process: it prints ``{"cpu_s": ...}`` as its last line."""
    arguments = {"url": url, "key": BENCHMARK_KEY, "session": session_update.get("session", {}), "turns": turns,
                 "turn_s": turn_s, "question": str(ROOT / "profiles" / "audio" / "question.wav")}
    done = subprocess.run([*command, json.dumps(arguments)], capture_output=True, text=True, timeout=turns * turn_s * 4 + 120)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{command[-1]} failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return float(json.loads(lines[-1])["cpu_s"])


async def compare(url: str, workdir: Path, turns: int, turn_s: float, rounds: int, peers: bool) -> list[dict]:
    from voicepipe.profile import load_profile, session_update_payload

    runs = iter(range(1_000_000))
    profile = load_profile(write_profile(workdir / "ref", url, {}))
    session_update = session_update_payload(profile)
    await voicepipe_run(url, workdir / "warm-up", 1, turn_s, 20)  # imports, caches
    cases = {"voicepipe, all built-ins, null output, 20 ms chunks": 20,
             "voicepipe, all built-ins, null output, 100 ms chunks": 100}
    rows_before: list[dict] = []
    peer_commands: dict[str, list[str]] = {}
    for name in PEERS if peers else ():
        command, why = peer_command(name)
        if command is None:
            rows_before.append({"benchmark": "conversation", "case": name, "skipped": True, "result": why})
        else:
            peer_commands[name] = command
    failed: dict[str, str] = {}

    async def measure(which: str) -> Optional[float]:
        gc.collect()
        if which == "bare":
            return await bare_run(url, session_update, turns, turn_s)
        if which in cases:
            return await voicepipe_run(url, workdir / f"run-{next(runs)}", turns, turn_s, cases[which])
        try:
            return await asyncio.to_thread(peer_run, peer_commands[which], url, session_update, turns, turn_s)
        except Exception as exc:
            failed[which] = str(exc)
            return None

    # every round runs every client, in alternating order; each is compared with the bare run of its round
    order = ["bare", *cases, *peer_commands]
    cpu: dict[str, list[float]] = {which: [] for which in order}
    ratios: dict[str, list[float]] = {which: [] for which in order[1:]}
    for index in range(rounds):
        values = {}
        for which in order if index % 2 == 0 else order[::-1]:
            if which not in failed:
                values[which] = await measure(which)
        for which, value in values.items():
            if value is not None:
                cpu[which].append(value)
                if which != "bare":
                    ratios[which].append(value / values["bare"])
    base = percentile(sorted(cpu["bare"]), 50)
    seconds = turns * turn_s
    rows = [{"benchmark": "conversation", "case": "bare SDK loop, 20 ms chunks, audio decoded", "ratio": 1.0,
             "cpu_s": round(base, 3), "result": f"{base:.3f} s CPU per {seconds:g} s conversation ({len(cpu['bare'])} runs)"}]
    shown = {which: round(percentile(sorted(pairs), 50), 2) for which, pairs in ratios.items() if pairs}
    for which in order[1:]:
        if which in failed:
            rows.append({"benchmark": "conversation", "case": which, "error": failed[which], "result": f"error: {failed[which]}"})
            continue
        value = percentile(sorted(cpu[which]), 50)
        pairs = ratios[which]
        row = {"benchmark": "conversation", "case": which, "ratio": shown[which], "cpu_s": round(value, 3),
               "result": f"{value:.3f} s CPU (pairs {min(pairs):.2f}-{max(pairs):.2f}x)"}
        if cases.get(which) == 20:
            livekit = shown.get(LIVEKIT)
            row["goal"] = f"ratio <= {GOAL_RATIO}" + (", and below LiveKit's" if livekit is not None else "")
            # judged on the ratios as shown
            row["passed"] = shown[which] <= GOAL_RATIO and (livekit is None or shown[which] < livekit)
        rows.append(row)
    return rows + rows_before


def run(turns: int = 3, turn_s: float = 6.0, rounds: int = 2, peers: bool = True) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-conversation-") as tmp, \
            EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, benchmark_key(), quiet_stdout():
        return eventloop.run(compare(emulator.url, Path(tmp), turns, turn_s, rounds, peers))


if __name__ == "__main__":
    for row in run(*[int(value) for value in sys.argv[1:2]]):
        print(row)
