"""Browser-protocol load: how many callers one serving process holds, and what the web transport adds.

A headless client speaks the page's WebSocket protocol (:mod:`voicepipe.serve.browser`) for N
callers at once: each sends the spoken question (``profiles/audio/question.wav``) in 20 ms PCM16
frames at real-time pacing, then silence until the answer has played, and asks again; it plays the
answer on a simulated clock (a 50 ms buffer from the first frame of an item) and sends ``played``
receipts every 20 ms, as the page does. Per step, after all N are connected and settled, a window
is measured:

* a late frame: one that arrived after its simulated playout time (first frame of its item +
  ``BUFFER_MS`` + the audio before it): the caller's speaker would have run dry;
* a late send: a microphone frame sent more than ``BUFFER_MS`` after its due time (the client
  itself could not keep up: a limit of the test, reported as such).

A step passes with no late frame. Steps go up until one fails.

The added latency of the transport: the server's probe plugin (:mod:`benchmarks.web_probe`) stamps
each assistant delta as the first hook sees it; the client stamps the frame holding the same bytes
when its socket delivers it; both on the machine's monotonic clock.

    python -m benchmarks.web_load                      # emulator + one serving process + the client
    python -m benchmarks.web_load --steps 10,20 --window 15
    python -m benchmarks.web_load --url ws://127.0.0.1:8080/web-demo/ws --url ws://...  # given servers

With ``--url`` the client only loads the given media endpoints (round robin): for a server started
by hand, or several workers behind one port (then the transport latency is not measured: the
probe is in the server this command starts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from voicepipe import eventloop

ROOT = Path(__file__).resolve().parent.parent
BUFFER_MS = 50.0
FRAME_MS = 20
RECEIPT_MS = 20
SETTLE_S = 3.0
STEPS = (10, 20, 30, 40, 60, 80)
_HEADER = struct.Struct("<I")
BENCH_TOKEN = "web-load-benchmark-token-0123456789"


def _question(rate: int) -> bytes:
    from voicepipe.audio.wav import load_mono_pcm16, read_wav_info

    return load_mono_pcm16(read_wav_info(ROOT / "profiles" / "audio" / "question.wav"), rate)


class Step:
    """What all the callers of one step record."""

    def __init__(self, sessions: int):
        self.sessions = sessions
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.window: Optional[tuple[float, float]] = None
        self.frames = 0
        self.late_frames = 0
        self.worst_ms = 0.0
        self.sends = 0
        self.late_sends = 0
        self.arrivals: dict[tuple[str, int], float] = {}  # (item_id, bytes so far) -> arrival
        self.failed: list[str] = []

    def counting(self, now: float) -> bool:
        return self.window is not None and self.window[0] <= now <= self.window[1]


async def caller(url: str, step: Step, stop: asyncio.Event, keep_arrivals: bool, ask_once: bool = False) -> None:
    """One caller of the page's protocol: asks the question, plays the answer with receipts, and
    asks again once it has played out (or, with ``ask_once``, stays on the line in silence)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, protocols=("voicepipe.v1", f"voicepipe.token.{BENCH_TOKEN}"), max_msg_size=0, compress=0)
        except Exception as exc:
            step.failed.append(f"{type(exc).__name__}: {exc}")
            step.ready += 1
            if step.ready >= step.sessions:
                step.all_ready.set()
            return
        items: dict[int, str] = {}
        received: dict[str, int] = {}  # item_id -> frames received
        first: dict[str, float] = {}  # item_id -> first frame arrival
        played: dict[str, int] = {}
        state = {"rate": 0, "out_rate": 0, "last_audio": 0.0}
        ready = asyncio.Event()

        async def read() -> None:
            async for message in ws:
                now = time.monotonic()
                if message.type == aiohttp.WSMsgType.BINARY:
                    data = message.data
                    item_id = items.get(_HEADER.unpack_from(data)[0], "")
                    size = (len(data) - 4) // 2
                    before = received.get(item_id, 0)
                    received[item_id] = before + size
                    start = first.setdefault(item_id, now)
                    state["last_audio"] = now
                    if keep_arrivals:
                        step.arrivals[(item_id, (before + size) * 2)] = now
                    if step.counting(now):
                        step.frames += 1
                        lag_ms = (now - start) * 1000.0 - before * 1000.0 / state["out_rate"]
                        if lag_ms > BUFFER_MS:
                            step.late_frames += 1
                            step.worst_ms = max(step.worst_ms, lag_ms)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    m = json.loads(message.data)
                    if m["type"] == "item":
                        items[m["n"]] = m["item_id"]
                    elif m["type"] == "ready":
                        state["rate"], state["out_rate"] = m["input_rate"], m["output_rate"]
                        ready.set()

        async def receipts() -> None:  # the simulated speaker: plays from the first frame + buffer
            while True:
                await asyncio.sleep(RECEIPT_MS / 1000)
                now = time.monotonic()
                for item_id, start in list(first.items()):
                    frames = min(received[item_id], int((now - start - BUFFER_MS / 1000) * state["out_rate"]))
                    if frames > played.get(item_id, 0):
                        played[item_id] = frames
                        await ws.send_str(json.dumps({"type": "played", "item_id": item_id, "ms": frames * 1000 / state["out_rate"]}))
                    elif frames >= received[item_id]:
                        del first[item_id]

        reader = asyncio.ensure_future(read())
        speaker = asyncio.ensure_future(receipts())
        try:
            await asyncio.wait_for(ready.wait(), 120)
            rate = state["rate"]
            question = _question(rate)
            frame_bytes = rate * FRAME_MS // 1000 * 2
            silence = bytes(frame_bytes)
            step.ready += 1
            if step.ready >= step.sessions:
                step.all_ready.set()
            started = time.monotonic()
            sent = 0
            asked_at = -1e9
            while not stop.is_set() and not ws.closed:
                now = time.monotonic()
                # ask again once the answer has played out (no audio for a second) and a pause passed
                again = not (ask_once and asked_at > 0)
                if again and now - asked_at > 4.0 and now - state["last_audio"] > 1.0 and not first:
                    asked_at = now
                    chunks = [question[i : i + frame_bytes] for i in range(0, len(question), frame_bytes)]
                else:
                    chunks = [silence]
                for chunk in chunks:
                    due = started + sent * FRAME_MS / 1000
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif step.counting(time.monotonic()) and -delay * 1000 > BUFFER_MS:
                        step.late_sends += 1
                    if step.counting(time.monotonic()):
                        step.sends += 1
                    await ws.send_bytes(chunk)
                    sent += 1
                    if stop.is_set():
                        break
        except Exception as exc:
            step.failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            speaker.cancel()
            with contextlib.suppress(Exception):
                await ws.send_str('{"type":"hangup"}')
                await ws.close()
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader


async def run_step(urls: list[str], sessions: int, window_s: float, keep_arrivals: bool = False) -> Step:
    step = Step(sessions)
    stop = asyncio.Event()
    tasks = []
    for index in range(sessions):
        tasks.append(asyncio.ensure_future(caller(urls[index % len(urls)], step, stop, keep_arrivals)))
        await asyncio.sleep(0.05)  # callers arrive over a moment, not in one burst
    await asyncio.wait_for(step.all_ready.wait(), 180)
    await asyncio.sleep(SETTLE_S)
    now = time.monotonic()
    step.window = (now, now + window_s)
    await asyncio.sleep(window_s)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return step


# -- the server this benchmark starts ------------------------------------------------------------------


def serve(profile: str) -> None:
    """The serving process: the app on a free loopback port, its URL on the first line of stdout."""
    from aiohttp import web

    from voicepipe.logsetup import configure_logging, get_logger
    from voicepipe.serve.app import build_app, load_served
    from voicepipe.serve.guard import Guard
    from voicepipe.serve.host import SessionHost

    configure_logging(None, console_level="ERROR", session_files=True)

    async def main() -> None:
        served = load_served([profile])
        for each in served:
            each.max_sessions = 1000  # the load decides, not the profile's default limit
        host = SessionHost(served, log=get_logger(), log_dir=os.environ.get("VOICEPIPE_WEB_RUNS"), max_sessions=1000)
        runner = web.AppRunner(build_app(host, Guard(host)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"ws://127.0.0.1:{port}/{served[0].name}/ws", flush=True)
        await asyncio.Event().wait()

    eventloop.run(main())


@contextlib.contextmanager
def server_process(workdir: Path, emulator_url: str):
    from benchmarks.harness import write_profile

    profile = write_profile(
        workdir / "profile", emulator_url, {"input": {"backend": "web"}, "output": {"backend": "web"}},
        plugins=[str(ROOT / "benchmarks" / "web_probe.py")],
    )
    (workdir / "probe").mkdir()
    (workdir / "runs").mkdir()
    # the load client presents the token a served paid endpoint needs (the emulator here is a URL)
    env = dict(os.environ, VOICEPIPE_WEB_PROBE=str(workdir / "probe"), VOICEPIPE_WEB_RUNS=str(workdir / "runs"),
               VOICEPIPE_SERVE_TOKEN=BENCH_TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.web_load", "serve", str(profile)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("ws://"):
            raise RuntimeError(f"the server did not start: {url or 'no output'}")
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def added_latency(probe_dir: Path, arrivals: dict) -> list[float]:
    """Server dispatch -> client socket, ms, for every delta both sides saw."""
    values = []
    for path in probe_dir.glob("*.json"):
        for item_id, total, at in json.loads(path.read_text()):
            arrived = arrivals.get((item_id, total))
            if arrived is not None:
                values.append((arrived - at) * 1000.0)
    return values


def describe(step: Step) -> str:
    return (f"N={step.sessions}: {step.late_frames} of {step.frames} frames later than {BUFFER_MS:.0f} ms"
            f" (worst {step.worst_ms:.1f} ms), {step.late_sends} late mic sends, {len(step.failed)} failed")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="load", choices=("load", "serve"))
    parser.add_argument("profile", nargs="?", help="(serve) the profile to serve")
    parser.add_argument("--url", action="append", default=[], help="a media WebSocket URL to load (repeatable)")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)))
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per step")
    parser.add_argument("--latency-sessions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1,
                        help="serve with `voicepipe serve --workers N` (the added latency is then not measured)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.profile)
        return 0
    from benchmarks.concurrency import SCENARIO
    from benchmarks.harness import EmulatorProcess, benchmark_key, process_cpu_seconds
    from voicepipe.metrics_stats import percentile

    steps = [int(n) for n in args.steps.split(",") if n]
    if args.url:
        for n in steps:
            step = eventloop.run(run_step(args.url, n, args.window))
            print(describe(step), flush=True)
            if step.late_frames or step.failed:
                break
        return 0
    with tempfile.TemporaryDirectory(prefix="voicepipe-web-load-") as tmp, benchmark_key(), \
            EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, server_process(Path(tmp), emulator.url) as (proc, url):
        step = eventloop.run(run_step([url], args.latency_sessions, args.window, keep_arrivals=True))
        probe = Path(tmp) / "probe"
        for _ in range(100):  # the callers hung up: their sessions end and write the probe files
            if len(list(probe.glob("*.json"))) >= args.latency_sessions:
                break
            time.sleep(0.1)
        latency = sorted(added_latency(Path(tmp) / "probe", step.arrivals))
        if latency:
            print(f"added latency over {len(latency)} deltas ({args.latency_sessions} callers): "
                  f"p50 {percentile(latency, 50):.3f} ms, p99 {percentile(latency, 99):.3f} ms", flush=True)
    if args.workers > 1:
        return load_workers(steps, args.window, args.workers)
    best = 0
    for n in steps:
        with tempfile.TemporaryDirectory(prefix="voicepipe-web-load-") as tmp, benchmark_key(), \
                EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, server_process(Path(tmp), emulator.url) as (proc, url):
            cpu0, ecpu0, t0 = process_cpu_seconds(proc.pid), emulator.cpu_seconds(), time.monotonic()
            step = eventloop.run(run_step([url], n, args.window))
            elapsed = time.monotonic() - t0
            cpu = (process_cpu_seconds(proc.pid) - cpu0) / elapsed * 100
            ecpu = (emulator.cpu_seconds() - ecpu0) / elapsed * 100
            print(f"{describe(step)}; CPU server {cpu:.0f}% emulator {ecpu:.0f}%", flush=True)
            if step.late_frames or step.failed:
                break
            best = n
    print(f"held: {best} callers at real-time pacing by one serving process", flush=True)
    return 0


def load_workers(steps: list[int], window: float, workers: int) -> int:
    """The steps against `voicepipe serve --workers N` on one port, the emulator in its own process."""
    import socket
    import urllib.request

    from benchmarks.concurrency import SCENARIO
    from benchmarks.harness import EmulatorProcess, benchmark_key, write_profile

    best = 0
    for n in steps:
        with tempfile.TemporaryDirectory(prefix="voicepipe-web-load-") as tmp, benchmark_key(), \
                EmulatorProcess(speed=1, scenario=SCENARIO) as emulator:
            profile = write_profile(Path(tmp) / "profile", emulator.url,
                                    {"input": {"backend": "web"}, "output": {"backend": "web"}},
                                    serve={"max_sessions": 1000}, metrics={"table": False})
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            env = dict(os.environ, VOICEPIPE_SERVE_TOKEN=BENCH_TOKEN)
            proc = subprocess.Popen(
                [sys.executable, "-m", "voicepipe", "serve", str(profile), "--workers", str(workers), "--port", str(port),
                 "--log-dir", str(Path(tmp) / "runs")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                for _ in range(300):
                    try:
                        if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                            break
                    except OSError:
                        time.sleep(0.1)
                cpu0, ecpu0, t0 = _tree_cpu(proc.pid), emulator.cpu_seconds(), time.monotonic()
                step = eventloop.run(run_step([f"ws://127.0.0.1:{port}/benchmark/ws"], n, window))
                elapsed = time.monotonic() - t0
                cpu = (_tree_cpu(proc.pid) - cpu0) / elapsed * 100
                ecpu = (emulator.cpu_seconds() - ecpu0) / elapsed * 100
            finally:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                if proc.poll() is None:
                    proc.kill()
            print(f"{describe(step)}; CPU servers {cpu:.0f}% emulator {ecpu:.0f}%", flush=True)
            if step.late_frames or step.failed:
                break
            best = n
    print(f"held: {best} callers at real-time pacing by {workers} workers", flush=True)
    return 0


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the gunicorn master and its workers)."""
    from benchmarks.harness import process_cpu_seconds

    total = process_cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(OSError, ValueError):
                total += process_cpu_seconds(int(child))
    return total


if __name__ == "__main__":
    sys.exit(main())
