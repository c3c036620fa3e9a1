"""Browser-protocol load: how many callers serving processes hold, and what the web transport adds.

The load client (:mod:`benchmarks.page_client`) speaks the page's WebSocket protocol for N callers
at once: each sends the spoken question in 20 ms PCM16 frames at real-time pacing, then silence
until the answer has played, and asks again; it plays the answer on a simulated clock (a 50 ms
buffer from the first frame of an item) and sends ``played`` receipts every 20 ms, as the page
does. Per step, after all N are connected and settled, a window is measured:

* a late frame: one that arrived after its simulated playout time (first frame of its item +
  ``BUFFER_MS`` + the audio before it): the caller's speaker would have run dry;
* a late send: a microphone frame sent more than ``BUFFER_MS`` after its due time (the client
  itself could not keep up: a limit of the test, reported as such).

A step passes with no late frame and no failed caller; steps rise until one fails. One
`voicepipe serve` per worker count runs through all the steps (warm, as in production); with
several counts the servers are up side by side and each step loads them one after the other, so
that a host whose speed drifts weighs on every count alike. Each step reports every process's
share of a core over its window.

The added latency of the transport: the server's probe plugin (:mod:`benchmarks.web_probe`) stamps
each assistant delta as the first hook sees it; the client stamps the frame holding the same bytes
when its socket delivers it; both on the machine's monotonic clock.

    python -m benchmarks.web_load                          # emulator process + one server + client
    python -m benchmarks.web_load --workers 1,2 --steps 100,120,140,160,180,200,220,240 --window 10
    python -m benchmarks.web_load --workers 1,2 --emulator embedded ...   # emulator in each server
    python -m benchmarks.web_load --workers 1,2 --emulator embedded --rounds 3 ...  # three ratios, their median
    python -m benchmarks.web_load --url ws://127.0.0.1:8080/web-demo/ws   # a server started by hand

With ``--url`` the client only loads the given media endpoints (round robin), for a server on
another machine; the transport latency is then not measured (the probe is in the server this
command starts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from voicepipe import eventloop

from benchmarks.page_client import BENCH_TOKEN, BUFFER_MS, Step, call

ROOT = Path(__file__).resolve().parent.parent
SETTLE_S = 3.0
STEPS = (10, 20, 30, 40, 60, 80)


async def run_step(urls: list[str], sessions: int, window_s: float, keep_arrivals: bool = False,
                   cpu: Optional[Callable[[], dict[str, float]]] = None) -> Step:
    """``sessions`` callers on the line; once all are connected and settled, a window measured.

    ``cpu`` gives CPU seconds per process so far; ``step.cpu`` is then each one's share of a core
    over the window."""
    step = Step(sessions)
    stop = asyncio.Event()
    calling = asyncio.ensure_future(call(urls, step, stop, keep_arrivals))
    try:
        await asyncio.wait_for(step.all_ready.wait(), 180)
        await asyncio.sleep(SETTLE_S)
        now = time.monotonic()
        step.window = (now, now + window_s)
        before = cpu() if cpu else {}
        await asyncio.sleep(window_s)
        if cpu:
            after, elapsed = cpu(), time.monotonic() - now
            step.cpu = {name: (after[name] - before.get(name, 0.0)) / elapsed * 100 for name in after}
    finally:
        stop.set()
        await calling
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
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="callers per step, rising")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per step")
    parser.add_argument("--latency-sessions", type=int, default=4,
                        help="callers whose deltas time the transport's added latency first (0: skip it)")
    parser.add_argument("--workers", default="1",
                        help="serving processes (`voicepipe serve --workers N`); a list such as 1,2 measures each "
                             "side by side (one server per count, loaded in turn at every step, so that a host "
                             "whose speed drifts weighs on all of them alike) and prints the ratio of what they held")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole measurement; with --workers 1,2 "
                        "each round's ratio and their median are printed")
    parser.add_argument("--emulator", choices=("process", "embedded"), default="process",
                        help="the emulator in one process of its own (default), or embedded in each serving "
                             "process, as `endpoint: emulator` profiles run it")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.profile)
        return 0
    try:
        steps = [int(n) for n in args.steps.split(",") if n]
        if not steps or min(steps) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--steps {args.steps}: give numbers of callers such as 100,120,140")
    if args.url:
        for n in steps:
            step = eventloop.run(run_step(args.url, n, args.window))
            print(describe(step), flush=True)
            if step.late_frames or step.failed:
                break
        return 0
    try:
        counts = sorted({int(n) for n in args.workers.split(",") if n})
        if not counts or counts[0] < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--workers {args.workers}: give a number or a list such as 1,2")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more")
    if args.latency_sessions:
        measure_added_latency(args.latency_sessions, args.window)
    ratios = []
    for round_number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {round_number} of {args.rounds}", flush=True)
        print(f"reference loop before: {_reference_ms():.0f} ms (the machine's speed now; the same loop slower"
              " later means the host slowed down during the measurement)", flush=True)
        held = load_steps(steps, args.window, counts, args.emulator)
        print(f"reference loop after: {_reference_ms():.0f} ms", flush=True)
        one = held[counts[0]]
        for workers in counts[1:]:
            ratio = held[workers] / one if one else None
            if workers == 2 and counts[0] == 1 and ratio is not None:
                ratios.append(ratio)
            shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
            print(f"{workers} workers / {counts[0]}: {held[workers]} / {one} callers = {shown}"
                  " (goal >= 1.6x for 2 / 1)", flush=True)
    if len(ratios) > 1:
        print(f"2 workers / 1 over {len(ratios)} rounds: {', '.join(f'{r:.2f}' for r in ratios)};"
              f" median {statistics.median(ratios):.2f}x (goal >= 1.6x)", flush=True)
    return 0


def measure_added_latency(sessions: int, window: float) -> None:
    """Server dispatch -> client socket for the deltas of a few callers (the probe plugin's server)."""
    from benchmarks.concurrency import SCENARIO
    from benchmarks.harness import EmulatorProcess, benchmark_key
    from voicepipe.metrics_stats import percentile

    with tempfile.TemporaryDirectory(prefix="voicepipe-web-load-") as tmp, benchmark_key(), \
            EmulatorProcess(speed=1, scenario=SCENARIO) as emulator, server_process(Path(tmp), emulator.url) as (_, url):
        step = eventloop.run(run_step([url], sessions, window, keep_arrivals=True))
        probe = Path(tmp) / "probe"
        for _ in range(100):  # the callers hung up: their sessions end and write the probe files
            if len(list(probe.glob("*.json"))) >= sessions:
                break
            time.sleep(0.1)
        latency = sorted(added_latency(probe, step.arrivals))
    if latency:
        print(f"added latency over {len(latency)} deltas ({sessions} callers): "
              f"p50 {percentile(latency, 50):.3f} ms, p99 {percentile(latency, 99):.3f} ms", flush=True)


@contextlib.contextmanager
def _endpoint(workdir: Path, emulator: str) -> Iterator[tuple[dict, Callable[[], float]]]:
    """The profile's ``connection`` section, and the CPU seconds of an emulator of its own (or 0)."""
    from benchmarks.concurrency import SCENARIO
    from benchmarks.harness import EmulatorProcess

    connection = {"model": "gpt-realtime", "auth": "api-key", "connect_timeout_s": 120, "session_timeout_s": 120}
    if emulator == "embedded":
        scenario = workdir / "scenario.yaml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        yield {**connection, "endpoint": "emulator", "emulator": {"scenario": str(scenario), "speed": 1}}, lambda: 0.0
        return
    with EmulatorProcess(speed=1, scenario=SCENARIO) as process:
        yield {**connection, "endpoint": process.url}, process.cpu_seconds


@contextlib.contextmanager
def _serving(profile: Path, workers: int, log_dir: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`voicepipe serve [--workers N]` on a free loopback port, ready; stopped at the end."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, VOICEPIPE_SERVE_TOKEN=BENCH_TOKEN)
    scale = ["--workers", str(workers)] if workers > 1 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicepipe", "serve", str(profile), *scale, "--port", str(port), "--log-dir", str(log_dir)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the server did not become ready in 30 s")
        yield proc, port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()


def _wait_idle(port: int) -> None:
    """Until the last step's sessions have ended (``/metrics``: no active session)."""
    import urllib.request

    for _ in range(300):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            active = [line for line in response.read().decode().splitlines()
                      if line.startswith("voicepipe_serve_active_sessions{")]
        if active and all(float(line.rsplit(" ", 1)[1]) == 0 for line in active):
            return
        time.sleep(0.1)
    raise RuntimeError("the last step's sessions did not end in 30 s")


def load_steps(steps: list[int], window: float, counts: list[int], emulator: str) -> dict[int, int]:
    """The steps, rising, against one warm `voicepipe serve [--workers N]` per worker count; for each
    count, the most callers held.

    The servers run through all the steps, as one in production would: a step measures what it
    holds once warm, not its first seconds (imports on a first session, allocator growth). They
    are up side by side and at every step loaded one after the other (the idle ones cost nothing),
    so that a ratio compares measurements minutes apart, not a whole ladder apart."""
    from benchmarks.harness import benchmark_key, write_profile

    best = dict.fromkeys(counts, 0)
    with tempfile.TemporaryDirectory(prefix="voicepipe-web-load-") as tmp, benchmark_key(), \
            _endpoint(Path(tmp), emulator) as (connection, emulator_cpu), contextlib.ExitStack() as stack:
        profile = write_profile(Path(tmp) / "profile", connection["endpoint"],
                                {"input": {"backend": "web"}, "output": {"backend": "web"}},
                                connection=connection, serve={"max_sessions": 1000}, metrics={"table": False})
        servers = {workers: stack.enter_context(_serving(profile, workers, Path(tmp) / f"runs-{workers}"))
                   for workers in counts}
        climbing = list(counts)
        for n in steps:
            for workers in list(climbing):
                proc, port = servers[workers]
                step = _load_one(proc, port, n, window, emulator_cpu)
                servers_cpu = sorted((share for name, share in step.cpu.items() if name.startswith("server")),
                                     reverse=True)
                emulator_share = f"emulator {step.cpu['emulator']:.0f}%" if emulator == "process" else "emulator in them"
                print(f"{workers} worker{'s' if workers > 1 else ''}, {describe(step)}; CPU in the window: servers "
                      f"{'+'.join(f'{x:.0f}%' for x in servers_cpu if x >= 0.5)}, {emulator_share}, "
                      f"load client {step.cpu['load client']:.0f}%", flush=True)
                if step.late_frames or step.failed:
                    climbing.remove(workers)
                else:
                    best[workers] = n
            if not climbing:
                break
    for workers in counts:
        print(f"held: {best[workers]} callers at real-time pacing by {workers} serving "
              f"process{'es' if workers > 1 else ''} (emulator: {emulator})", flush=True)
    return best


def _load_one(proc: subprocess.Popen, port: int, sessions: int, window: float,
              emulator_cpu: Callable[[], float]) -> Step:
    """One step against one idle server, CPU per process measured over its window."""
    def cpu() -> dict[str, float]:
        seconds = {f"server {pid}": value for pid, value in _tree_cpu(proc.pid).items()}
        return {**seconds, "emulator": emulator_cpu(), "load client": time.process_time()}

    _wait_idle(port)
    return eventloop.run(run_step([f"ws://127.0.0.1:{port}/benchmark/ws"], sessions, window, cpu=cpu))


def _reference_ms() -> float:
    """CPU time of a fixed pure-Python loop, the best of three: a yardstick for drift."""
    best = float("inf")
    for _ in range(3):
        start, total = time.process_time(), 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - start)
    return best * 1000


def _tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and of each of its children (the gunicorn master and its workers)."""
    from benchmarks.harness import process_cpu_seconds

    each = {pid: process_cpu_seconds(pid)}
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(OSError, ValueError):
                each[int(child)] = process_cpu_seconds(int(child))
    return each


if __name__ == "__main__":
    sys.exit(main())
