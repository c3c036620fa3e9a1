"""Where the overhead of benchmark 1 goes: CPU microseconds per server event, by built-in plugin and
by the operations that cost the most, on the event stream the overhead benchmark sees.

    .venv/bin/python -m benchmarks.breakdown [--turns 8] [--passes 7]

The stream is taken from the emulator once: the raw frames of ``turns`` typed turns, as in
:mod:`benchmarks.overhead`. Every pass parses it again into fresh SDK events (what
``connection.recv()`` does; not timed) and times with ``time.process_time()`` a Pipeline that holds
one built-in plugin against the same Pipeline holding none, each event dispatched as the runtime's
reader does, then one turn of the event loop: the difference is that plugin's cost. The operations
are timed alone over the same events. Every number is the best of ``passes`` passes (on a busy
machine noise only adds). Nothing here is a goal; BENCHMARKS.md quotes a run of it.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from voicepipe import eventloop
from benchmarks.harness import (
    BENCHMARK_KEY,
    IDLE_INPUT,
    SESSION_UPDATED,
    EmulatorProcess,
    IdleInputPlugin,
    benchmark_key,
    quiet_stdout,
    server_event,
    user_turn,
    write_profile,
)

BUILTINS = ("audio", "tools", "recorder", "transcript", "metrics", "console")
AUDIO_DELTA = "response.audio.delta"


async def capture(url: str, session_update: dict, turns: int) -> list[str]:
    """The raw server frames of ``turns`` typed turns, from ``session.updated`` to the last
    ``response.done`` (the events the overhead benchmark counts)."""
    from azure.ai.voicelive.aio import connect
    from azure.core.credentials import AzureKeyCredential

    frames: list[str] = []
    async with connect(endpoint=url, credential=AzureKeyCredential(BENCHMARK_KEY), model="gpt-realtime") as conn:
        await conn.send(session_update)
        while json.loads(await conn.recv_bytes()).get("type") != "session.updated":
            pass
        for _ in range(turns):
            for event in user_turn():
                await conn.send(event)
            while True:
                raw = (await conn.recv_bytes()).decode("utf-8")
                frames.append(raw)
                if json.loads(raw).get("type") == "response.done":
                    break
    return frames


def parse(frames: list[str]) -> list[Any]:
    """Fresh SDK events, as ``connection.recv()`` builds them."""
    from azure.ai.voicelive.models import ServerEvent

    return [ServerEvent._deserialize(json.loads(raw), []) for raw in frames]


async def pipeline_with(workdir: Path, url: str, only: Optional[str]) -> Any:
    """A started Pipeline with the built-in ``only`` (or none), the idle microphone and the
    ``null`` output with ``realtime: false``, after ``session.created`` and ``session.updated``."""
    from voicepipe.logsetup import configure_logging
    from voicepipe.pipeline import Pipeline
    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.profile import load_profile

    audio = {"input": {"backend": IDLE_INPUT}, "output": {"backend": "null", "realtime": False}}
    disabled = [name for name in BUILTINS if name != only]
    profile = load_profile(write_profile(workdir / "profile", url, audio, disable=disabled))
    pm = make_plugin_manager(profile, autoload=False)
    pm.add(IdleInputPlugin(), "benchmark-idle-input", "benchmark")
    configure_plugins(pm, profile)
    log = configure_logging(workdir / "run", console_level="ERROR")
    pipeline = Pipeline(profile, pm, workdir / "run", log, send=lambda event: None, stop=lambda reason: None)
    await pipeline.start()
    pipeline.ctx.session_id = SESSION_UPDATED["id"]
    pipeline.dispatch(server_event({"type": "session.created", "event_id": "e_created", "session": SESSION_UPDATED}))
    pipeline.ctx.session = dict(SESSION_UPDATED)
    pipeline.dispatch(server_event({"type": "session.updated", "event_id": "e_updated", "session": SESSION_UPDATED}))
    audio_state = pipeline.ctx.stash.get("audio")
    while audio_state is not None and not audio_state.output_ready:
        await asyncio.sleep(0.001)
    return pipeline


async def dispatch_cpu(pipeline: Any, events: list[Any]) -> float:
    """CPU seconds to dispatch ``events`` one by one, each followed by one turn of the loop."""
    started = time.process_time()
    for event in events:
        pending = pipeline.dispatch(event)
        if pending:
            for _, awaitable in pending:
                await awaitable
        await asyncio.sleep(0)
    return time.process_time() - started


async def plugin_costs(url: str, workdir: Path, frames: list[str], passes: int) -> dict[str, float]:
    """Microseconds per event of each built-in alone, over a Pipeline with none (``""``)."""
    from voicepipe.logsetup import shutdown_logging

    cases = [None, *BUILTINS]
    best = {case: float("inf") for case in cases}
    runs = 0
    for _ in range(passes):
        for case in cases:  # interleaved: each pass sees the same machine for every case
            runs += 1
            # a fresh session each time: the same item ids again would find their answers done
            pipeline = await pipeline_with(workdir / f"{case or 'none'}-{runs}", url, case)
            try:
                best[case] = min(best[case], await dispatch_cpu(pipeline, parse(frames)))
            finally:
                await pipeline.end("user")
                shutdown_logging()
    base = best[None]
    return {case: (best[case] - base) / len(frames) * 1e6 for case in BUILTINS} | {"": base / len(frames) * 1e6}


def operation_costs(frames: list[str], workdir: Path, passes: int) -> list[tuple[str, float]]:
    """Microseconds per event of the operations the built-ins spend most on."""
    from voicepipe.builtin.recorder import _ENCODER, describe_audio
    from voicepipe.diskwrite import append_whole
    from voicepipe.pipeline import event_fields
    from voicepipe.redact import REDACTOR

    events = parse(frames)
    count = len(events)
    deltas = [event.get("delta") for event in events if event.get("type") == AUDIO_DELTA]
    records = []
    for event in events:
        data = dict(event_fields(event))
        if data.get("type") == AUDIO_DELTA:
            data["delta"] = describe_audio(data["delta"])
        records.append({"t": 12.345678, "direction": "server", "event": data})
    lines = [_ENCODER.encode(record) for record in records]
    encoded = [(line + "\n").encode("utf-8") for line in lines]

    def timed(items: list, work: Callable[[Any], Any]) -> float:
        best = float("inf")
        for _ in range(passes):
            started = time.process_time()
            for item in items:
                work(item)
            best = min(best, time.process_time() - started)
        return best / count * 1e6

    from voicepipe.serverevents import EventParser

    parser = EventParser()
    for raw in frames:  # the first event of each class is checked against the SDK: not timed
        parser.parse(raw)
    rows = [
        ("SDK: JSON text -> typed event (connection.recv(), the bare loop)",
         timed(frames, lambda raw: parse([raw]))),
        ("voicepipe.serverevents: JSON text -> the same typed event (the runtime's reader)",
         timed(frames, parser.parse)),
        ("SDK: event.get() on a typed event, x1",
         timed(events, lambda event: event.get("type"))),
        ("voicepipe.pipeline.event_fields(event).get(), x1",
         timed(events, lambda event: event_fields(event).get("type"))),
        ("audio: base64 decode of each audio delta",
         timed(deltas, binascii.a2b_base64)),
        ("recorder: elided audio of each delta (describe_audio: its length, no hash since format 3)",
         timed(deltas, describe_audio)),
        ("recorder: copy of the event's fields (dict)",
         timed(events, lambda event: dict(event_fields(event)))),
        ("recorder: JSON-encode the line",
         timed(records, _ENCODER.encode)),
        ("recorder: mask secrets in the line (REDACTOR.redact)",
         timed(lines, REDACTOR.redact)),
    ]
    with open(workdir / "lines.jsonl", "ab", buffering=0) as sink:
        size = [0]

        def write(data: bytes) -> None:
            size[0] = append_whole(sink.fileno(), data, size[0], "lines.jsonl")

        rows.append(("recorder: one unbuffered write of the line", timed(encoded, write)))
    try:
        from voicepipe.eventshape import malformed
    except ImportError:
        pass
    else:
        rows.append(("runtime: eventshape.malformed(event)", timed(events, malformed)))
    return rows


async def measure(url: str, workdir: Path, turns: int, passes: int) -> dict:
    from voicepipe.profile import load_profile, session_update_payload

    profile = load_profile(write_profile(workdir / "session", url, {}))
    frames = await capture(url, session_update_payload(profile), turns)
    audio_deltas = sum(1 for raw in frames if f'"type": "{AUDIO_DELTA}"' in raw or f'"type":"{AUDIO_DELTA}"' in raw)
    plugins = await plugin_costs(url, workdir, frames, passes)
    return {
        "events": len(frames),
        "audio_deltas": audio_deltas,
        "plugins": plugins,
        "operations": operation_costs(frames, workdir, passes),
    }


def run(turns: int = 8, passes: int = 7) -> dict:
    with tempfile.TemporaryDirectory(prefix="voicepipe-bench-breakdown-") as tmp, \
            EmulatorProcess(speed=0) as emulator, benchmark_key(), quiet_stdout():
        return eventloop.run(measure(emulator.url, Path(tmp), turns, passes))


def report(result: dict) -> str:
    plugins = result["plugins"]
    lines = [
        f"{result['events']} events ({result['audio_deltas']} audio deltas), CPU us per event, best of the passes",
        "",
        "built-in plugin alone (Pipeline with it - Pipeline with none)",
    ]
    lines += [f"  {name:<12} {plugins[name]:6.1f}" for name in BUILTINS]
    lines += [f"  {'(sum)':<12} {sum(plugins[name] for name in BUILTINS):6.1f}",
              f"  {'(no plugin)':<12} {plugins['']:6.1f}  dispatch + one loop turn, Pipeline with no built-in",
              "", "operations"]
    lines += [f"  {us:6.1f}  {what}" for what, us in result["operations"]]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=8, help="typed turns in the captured stream (default 8)")
    parser.add_argument("--passes", type=int, default=7, help="passes; the best counts (default 7)")
    args = parser.parse_args(argv)
    print(report(run(args.turns, args.passes)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
