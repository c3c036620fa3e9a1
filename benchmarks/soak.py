"""Soak: many sessions in one process for minutes; open files, tasks and memory must stay flat.

    ./dev bench soak                          # = .venv/bin/python -m benchmarks soak
    python -m benchmarks soak --sessions 100 --minutes 6 --round 60
    python -m benchmarks.soak --sessions 10 --minutes 1 --round 20 --speed 4

The emulator runs in its own process at ``speed`` (1: answers stream in real time, in 100 ms audio
deltas). This process runs the soak in **rounds**: in each, ``sessions`` voicepipe sessions with
every built-in plugin (a ``null`` microphone sending silence in real time, a ``null`` speaker on its
real-time clock) connect together, ask one typed question after the other (about 8 s answers) for
``round_s`` seconds, and are then stopped (reason ``user``); the next round starts once every
session of this one has ended. The soak stops by itself after the round that reaches ``minutes``.

Readings of this process:

* open file descriptors (``/proc/self/fd``), asyncio tasks (``asyncio.all_tasks()``), RSS
  (``/proc/self/statm``) and the blocks the Python allocator holds (``sys.getallocatedblocks()``);
* **between rounds** (no session alive, garbage collected, and the C allocator asked to give back
  the free memory it keeps, ``malloc_trim``, so that RSS follows what is alive rather than how the
  heap happened to be cut up): the *quiet* readings. The first round is the warm-up (imports,
  caches, the allocator's arenas); its quiet reading is the baseline and every later quiet reading
  is compared with it;
* **during rounds**, every ``interval_s`` seconds once every session of the round has finished its
  second turn (by then its first answer has played out and the metrics plugin has opened
  ``metrics.jsonl`` for its record: every file the session writes is open) and until the round is
  stopped: the *busy* readings. The sessions hold the same descriptors all along, so the descriptor count must not
  move; the tasks come and go with each turn's phase, so each round's peak in its second half is
  compared with its peak in the first half (a task left behind by every turn would add one per
  session per turn).

The emulator's open file descriptors are read between rounds too, once its count is back to what it
was before the first round or 30 s have passed (it may still be answering questions the stopped
sessions asked; a server that leaks sockets would end the soak in refused connections). Each
session must end cleanly: exit code 0, reason ``user``, ``voicepipe_session_end`` called once, at
least one turn answered, its ``events.jsonl`` closed with ``recording.finished``, never reconnected
(a connection dropped on loopback is a defect, or a process too loaded to answer pings), and no
line at level error in the technical log. The event loop's lag (how late a 100 ms timer fires) is
reported per round: when it reaches seconds, the process was overloaded and the figures say more
about the machine than about voicepipe. A round's run folders are checked, then deleted, so the
disk use stays that of one round.

:func:`verdicts` holds the limits (see :data:`LIMITS`); ``tests/test_soak.py`` asserts them and this
module's ``main`` prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from voicepipe import eventloop
from benchmarks.harness import EmulatorProcess, benchmark_key, quiet_stdout, rss_bytes, user_turn, write_profile

MB = 1024 * 1024
STOP_REASON = "user"
CONNECT_TIMEOUT_S = 180.0
END_TIMEOUT_S = 60.0
EMULATOR_SETTLE_S = 30.0
TICK_S = 0.1
#: busy readings start once every session has finished this many turns
SETTLED_TURNS = 2
#: the bounds :func:`verdicts` holds the readings to
LIMITS = {
    # every session's descriptors (socket, events.jsonl, transcripts, metrics.jsonl) are closed when it
    # ends, and nothing else opens any: between rounds the count is the baseline's, exactly
    "quiet_fds_growth": 0,
    # likewise every task a session started has finished
    "quiet_tasks_growth": 0,
    # RSS after warm-up, read after malloc_trim: what is left is the heap's fragmentation. It moves
    # by under a MB from round to round, but a round in which the loop stalls for seconds (a loaded
    # machine: frames pile up in the sockets' buffers) can leave a step of about 6 MB that stays
    # and does not grow. The coarse check, for large buffers: a leak of 16 KiB per session fails
    # over the 500 sessions the benchmark measures, one of 55 KiB over the test's default 150
    "quiet_rss_growth_mb": 8.0,
    # live Python blocks after warm-up (a block is one small object or buffer of up to 512 bytes),
    # the fine check: caches that fill during the first measured rounds (the SDK's per-field
    # attribute names in the interpreter's type cache, re, pluggy) take up to two thousand; the
    # soak's own readings a few dozen per round; then four per session measured: twenty leaked
    # objects per session fail
    "quiet_blocks_growth": 2_000,
    "quiet_blocks_growth_per_session": 4,
    # busy readings: the same sessions hold the same descriptors, whatever the turn's phase
    "busy_fds_spread": 0,
    # busy tasks, second half of a round against the first: the sessions answer in step, so the peaks
    # of the two halves are alike; a task left behind by each turn would add one per session per turn,
    # two or more between the halves when a round holds four or more turns
    "busy_tasks_growth_per_session": 1,
}


@dataclass
class Reading:
    """One sample of this process (and, between rounds, of the emulator's)."""

    t: float
    round: int
    kind: str  # "start" | "quiet" | "busy"
    fds: int
    tasks: int
    rss: int
    blocks: int
    live: int = 0
    emulator_fds: Optional[int] = None


@dataclass
class Figures:
    """What a soak did and measured."""

    sessions: int
    speed: float
    round_s: float
    rounds: int = 0
    sessions_run: int = 0
    sessions_clean: int = 0
    turns: int = 0
    answer_minutes: float = 0.0  # answer audio received, summed over sessions
    session_minutes: float = 0.0  # connected time, summed over sessions
    wall_minutes: float = 0.0
    errors_logged: int = 0
    reconnects: int = 0
    loop_lag_max_ms: dict[int, float] = field(default_factory=dict)  # per round
    emulator_settle_s: list[float] = field(default_factory=list)  # per round: till its sockets closed
    load_average: list[float] = field(default_factory=list)  # the machine's 1-minute load, start and end
    problems: list[str] = field(default_factory=list)  # sessions that did not end cleanly
    readings: list[Reading] = field(default_factory=list)

    def quiet(self) -> list[Reading]:
        return [r for r in self.readings if r.kind == "quiet"]

    def busy(self) -> list[Reading]:
        return [r for r in self.readings if r.kind == "busy"]

    def busy_task_growth(self) -> dict[int, int]:
        """Per round with four busy readings or more: the peak task count of its second half minus
        that of its first half."""
        growth = {}
        for number in sorted({r.round for r in self.busy()}):
            tasks = [r.tasks for r in self.busy() if r.round == number]
            if len(tasks) >= 4:
                half = len(tasks) // 2
                growth[number] = max(tasks[half:]) - max(tasks[:half])
        return growth


def _fds(pid: str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _malloc_trim() -> None:
    """Ask the C allocator (glibc) to return the free memory it holds to the system."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def read(kind: str, round_number: int, started: float, live: int = 0, emulator_pid: Optional[int] = None) -> Reading:
    if kind != "busy":
        gc.collect()
        _malloc_trim()
    return Reading(
        t=round(time.monotonic() - started, 1),
        round=round_number,
        kind=kind,
        fds=_fds(),
        tasks=len(asyncio.all_tasks()),
        rss=rss_bytes(),
        blocks=sys.getallocatedblocks(),
        live=live,
        emulator_fds=_fds(str(emulator_pid)) if emulator_pid is not None else None,
    )


class SoakSession:
    """Soak plugin: one typed question after the other; what the session did, to check how it ended."""

    def __init__(self, round_state: "Round"):
        self.round = round_state
        self.connected_at: Optional[float] = None
        self.turns = 0
        self.audio_ms = 0.0
        self.ends: list[str] = []

    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type")
        if kind == "response.audio.delta":
            self.audio_ms += len(event.get("delta") or "") * 3 / 4 / 48.0  # PCM16 24 kHz: 48 bytes a ms
        elif kind == "response.done":
            self.turns += 1
            if self.turns == SETTLED_TURNS:
                self.round.settled_one()
            self._ask(ctx)
        elif kind == "session.updated" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self.round.connected_one()
            self._ask(ctx)

    def voicepipe_session_end(self, reason: str) -> None:
        self.ends.append(reason)

    def _ask(self, ctx: Any) -> None:
        if not self.round.stopping:
            for event in user_turn():
                ctx.send(event)


class Round:
    def __init__(self, sessions: int):
        self.sessions = sessions
        self.connected = 0
        self.settled = 0
        self.all_connected = asyncio.Event()
        self.stopping = False

    def connected_one(self) -> None:
        self.connected += 1
        if self.connected >= self.sessions:
            self.all_connected.set()

    def settled_one(self) -> None:
        self.settled += 1


def _runner(profile_path: Path, run_dir: Path, plugin: SoakSession, log: Any) -> Any:
    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.profile import load_profile
    from voicepipe.runtime import SessionRunner

    profile = load_profile(profile_path)
    pm = make_plugin_manager(profile, autoload=False)
    pm.add(plugin, "soak", "soak")
    configure_plugins(pm, profile)
    run_dir.mkdir(parents=True, exist_ok=True)
    return SessionRunner(profile, pm, run_dir, log)


def _ended_cleanly(exit_code: Any, runner: Any, plugin: SoakSession) -> Optional[str]:
    """``None``, or what was wrong with how the session ended."""
    if isinstance(exit_code, BaseException):
        return f"raised {type(exit_code).__name__}: {exit_code}"
    if exit_code != 0 or runner.stop_reason != STOP_REASON:
        return f"exit code {exit_code}, reason {runner.stop_reason}"
    if plugin.ends != [STOP_REASON]:
        return f"voicepipe_session_end calls: {plugin.ends}"
    if plugin.turns == 0:
        return "not one turn completed"
    if getattr(runner, "reconnects", 0):
        return f"the connection dropped and was opened again {runner.reconnects} time(s)"
    events = runner.ctx.run_dir / "events.jsonl"
    try:
        last = json.loads(events.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)[-1])
    except (OSError, ValueError) as exc:
        return f"events.jsonl unreadable: {exc}"
    if last.get("event", {}).get("type") != "recording.finished":
        return f"events.jsonl does not end with recording.finished: {last.get('event', {}).get('type')}"
    return None


async def _round(
    number: int, sessions: int, round_s: float, interval_s: float, profile: Path, workdir: Path, log: Any,
    figures: Figures, started: float,
) -> None:
    state = Round(sessions)
    plugins = [SoakSession(state) for _ in range(sessions)]
    round_dir = workdir / f"round-{number}"
    runners = [_runner(profile, round_dir / f"session-{i}", plugin, log) for i, plugin in enumerate(plugins)]
    tasks = [asyncio.create_task(runner.run(), name=f"soak session {number}.{i}") for i, runner in enumerate(runners)]
    try:
        connected = asyncio.create_task(state.all_connected.wait())
        done, _ = await asyncio.wait(
            [connected, *tasks], timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if connected not in done:
            connected.cancel()
            ended = [r.stop_reason for r in runners if r.stop_reason]
            raise RuntimeError(
                f"round {number}: {state.connected} of {sessions} sessions connected (ended: {ended[:3]})"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + round_s
        while loop.time() < deadline:
            await asyncio.sleep(min(interval_s, max(deadline - loop.time(), 0)))
            live = sum(not task.done() for task in tasks)
            if live == 0:
                break
            if state.settled == sessions:
                figures.readings.append(read("busy", number, started, live=live))
    finally:
        state.stopping = True
        for runner in runners:
            runner.request_stop(STOP_REASON)
        _, late = await asyncio.wait(tasks, timeout=END_TIMEOUT_S)
        for task in late:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        results = [
            TimeoutError(f"still running {END_TIMEOUT_S:g} s after the stop") if task in late else result
            for task, result in zip(tasks, results)
        ]
    for index, (result, runner, plugin) in enumerate(zip(results, runners, plugins)):
        figures.sessions_run += 1
        problem = _ended_cleanly(result, runner, plugin)
        if problem is None:
            figures.sessions_clean += 1
        elif len(figures.problems) < 20:
            figures.problems.append(f"round {number} session {index}: {problem}")
        figures.turns += plugin.turns
        figures.reconnects += getattr(runner, "reconnects", 0)
        figures.answer_minutes += plugin.audio_ms / 60_000
        if plugin.connected_at is not None:
            figures.session_minutes += (time.monotonic() - plugin.connected_at) / 60
    shutil.rmtree(round_dir, ignore_errors=True)


async def _emulator_settled(pid: int, fds: int) -> float:
    """Wait until the emulator holds no more than ``fds`` descriptors, or :data:`EMULATOR_SETTLE_S`;
    the seconds waited."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while _fds(str(pid)) > fds and loop.time() < started + EMULATOR_SETTLE_S:
        await asyncio.sleep(0.1)
    return loop.time() - started


async def _tick(figures: Figures, current: list[int]) -> None:
    """Record the event loop's lag: how late a :data:`TICK_S` timer fires, the worst per round."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lag_ms = (loop.time() - due) * 1000
        number = current[0]
        if lag_ms > figures.loop_lag_max_ms.get(number, 0.0):
            figures.loop_lag_max_ms[number] = round(lag_ms, 1)


async def _soak(
    url: str, workdir: Path, emulator_pid: int, figures: Figures, minutes: float, interval_s: float
) -> None:
    from voicepipe.logsetup import configure_logging, shutdown_logging

    # at speed 1 the speaker plays on its real-time clock; faster answers would pile up unplayed in
    # it, so at other speeds it plays each write at once
    speed = figures.speed
    audio = {"input": {"backend": "null"}, "output": {"backend": "null", "realtime": speed == 1}}
    profile = write_profile(workdir / "profile", url, audio, metrics={"table": False})
    log_dir = workdir / "log"
    log = configure_logging(log_dir, console_level="CRITICAL", file_level="INFO")
    current = [0]
    ticker = asyncio.create_task(_tick(figures, current), name="soak loop-lag ticker")
    started = time.monotonic()
    figures.readings.append(read("start", 0, started, emulator_pid=emulator_pid))
    emulator_idle_fds = figures.readings[0].emulator_fds or 0
    try:
        number = 0
        while number < 2 or time.monotonic() - started < minutes * 60:
            number += 1
            current[0] = number
            await _round(number, figures.sessions, figures.round_s, interval_s, profile, workdir, log, figures, started)
            figures.emulator_settle_s.append(round(await _emulator_settled(emulator_pid, emulator_idle_fds), 1))
            figures.readings.append(read("quiet", number, started, emulator_pid=emulator_pid))
        figures.rounds = number
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        figures.wall_minutes = (time.monotonic() - started) / 60
        shutdown_logging()
    figures.errors_logged = _error_lines(log_dir / "voicepipe.log.jsonl")


def _error_lines(path: Path) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(ValueError):
                count += json.loads(line).get("level") in ("error", "critical")
    return count


def run_soak(
    sessions: int = 50, minutes: float = 3.0, round_s: float = 45.0, speed: float = 1.0, interval_s: float = 5.0
) -> Figures:
    """Run the soak (at least two rounds: a warm-up and one measured) and return its figures."""
    figures = Figures(sessions=sessions, speed=speed, round_s=round_s)
    figures.load_average.append(os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="voicepipe-soak-") as tmp, EmulatorProcess(speed=speed) as emulator, \
            benchmark_key(), quiet_stdout():
        assert emulator.proc is not None
        try:
            eventloop.run(_soak(emulator.url, Path(tmp), emulator.proc.pid, figures, minutes, interval_s))
        finally:
            figures.load_average.append(os.getloadavg()[0])
    return figures


# -- verdicts and figures ----------------------------------------------------------------------------


def verdicts(figures: Figures) -> list[tuple[str, bool, str]]:
    """(what, held, figures) for each bound in :data:`LIMITS`, and for clean endings."""
    quiet = figures.quiet()
    base = quiet[0]
    growth = {
        "fds": max(r.fds for r in quiet[1:]) - base.fds,
        "tasks": max(r.tasks for r in quiet[1:]) - base.tasks,
        "rss_mb": (max(r.rss for r in quiet[1:]) - base.rss) / MB,
        "blocks": max(r.blocks for r in quiet[1:]) - base.blocks,
        "emulator_fds": max(r.emulator_fds or 0 for r in quiet[1:]) - (base.emulator_fds or 0),
    }
    busy = figures.busy()
    busy_fds = sorted({r.fds for r in busy})
    task_growth = figures.busy_task_growth()
    tasks_limit = LIMITS["busy_tasks_growth_per_session"] * figures.sessions
    measured = figures.sessions_run - figures.sessions  # sessions after the warm-up round
    blocks_limit = LIMITS["quiet_blocks_growth"] + LIMITS["quiet_blocks_growth_per_session"] * measured
    worst = max(task_growth.values(), default=0)

    def series(attr: str) -> str:
        return " ".join(str(getattr(r, attr)) for r in quiet)

    return [
        ("sessions ended cleanly", figures.sessions_clean == figures.sessions_run and not figures.errors_logged,
         f"{figures.sessions_clean} of {figures.sessions_run}, {figures.errors_logged} error lines logged"
         + (f"; {figures.problems[0]}" if figures.problems else "")),
        ("open fds between rounds", growth["fds"] <= LIMITS["quiet_fds_growth"],
         f"{series('fds')} (growth {growth['fds']:+d}, limit {LIMITS['quiet_fds_growth']:+d})"),
        ("asyncio tasks between rounds", growth["tasks"] <= LIMITS["quiet_tasks_growth"],
         f"{series('tasks')} (growth {growth['tasks']:+d}, limit {LIMITS['quiet_tasks_growth']:+d})"),
        ("RSS between rounds", growth["rss_mb"] <= LIMITS["quiet_rss_growth_mb"],
         " ".join(f"{r.rss / MB:.1f}" for r in quiet)
         + f" MB (growth {growth['rss_mb']:+.1f} MB, limit {LIMITS['quiet_rss_growth_mb']:+g} MB)"),
        ("allocated blocks between rounds", growth["blocks"] <= blocks_limit,
         f"{series('blocks')} (growth {growth['blocks']:+d}, limit {blocks_limit:+d})"),
        ("emulator fds between rounds", growth["emulator_fds"] <= LIMITS["quiet_fds_growth"],
         f"{series('emulator_fds')} (growth {growth['emulator_fds']:+d}, limit {LIMITS['quiet_fds_growth']:+d})"),
        ("open fds during rounds", bool(busy) and busy_fds[-1] - busy_fds[0] <= LIMITS["busy_fds_spread"],
         f"{len(busy)} readings, {_span(busy_fds)} (spread limit {LIMITS['busy_fds_spread']})"),
        ("asyncio tasks during rounds", bool(task_growth) and worst <= tasks_limit,
         (" ".join(f"{g:+d}" for g in task_growth.values()) + " per round, second half's peak against the first's"
          if task_growth else "no round held four busy readings (make the rounds longer)")
         + f" (limit {tasks_limit:+d})"),
    ]


def _span(values: list[int]) -> str:
    if not values:
        return "none"
    return str(values[0]) if values[0] == values[-1] else f"{values[0]} to {values[-1]}"


def report(figures: Figures) -> str:
    start, quiet = figures.readings[0], figures.quiet()
    base, end = quiet[0], quiet[-1]
    lines = [
        f"soak: {figures.sessions} concurrent sessions x {figures.rounds} rounds of {figures.round_s:g} s "
        f"(round 1 = warm-up), emulator speed {figures.speed:g}, every built-in plugin, null audio in real time",
        f"  {figures.sessions_run} sessions, {figures.turns} turns, {figures.answer_minutes:.1f} min of answer audio, "
        f"{figures.session_minutes:.1f} session-minutes, in {figures.wall_minutes:.1f} min; "
        f"{figures.reconnects} reconnects; machine load {' -> '.join(f'{x:.1f}' for x in figures.load_average)} "
        f"on {os.cpu_count()} CPUs",
        "  event-loop lag, worst per round: "
        + " ".join(f"{figures.loop_lag_max_ms.get(n, 0.0):.0f}" for n in range(1, figures.rounds + 1)) + " ms; "
        "the emulator's sockets closed after each round within: "
        + " ".join(f"{s:g}" for s in figures.emulator_settle_s) + " s",
        "  reading                 start   after warm-up   end      growth after warm-up",
        f"  open fds                {start.fds:<7} {base.fds:<15} {end.fds:<8} {end.fds - base.fds:+d}",
        f"  asyncio tasks           {start.tasks:<7} {base.tasks:<15} {end.tasks:<8} {end.tasks - base.tasks:+d}",
        f"  RSS MB                  {start.rss / MB:<7.1f} {base.rss / MB:<15.1f} {end.rss / MB:<8.1f} "
        f"{(end.rss - base.rss) / MB:+.1f}",
        f"  allocated blocks        {start.blocks:<7} {base.blocks:<15} {end.blocks:<8} {end.blocks - base.blocks:+d}",
        f"  emulator fds            {start.emulator_fds:<7} {base.emulator_fds:<15} {end.emulator_fds:<8} "
        f"{(end.emulator_fds or 0) - (base.emulator_fds or 0):+d}",
    ]
    for what, held, detail in verdicts(figures):
        lines.append(f"  {'ok  ' if held else 'FAIL'} {what}: {detail}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions (default 100)")
    parser.add_argument("--minutes", type=float, default=6.0, help="how long to run (default 6; at least two rounds)")
    parser.add_argument("--round", dest="round_s", type=float, default=60.0, help="seconds per round (default 60)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="emulator pacing: 1 real time (default), N times faster")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between busy readings (default 5)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the figures and every reading as JSON")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed: the soak needs paced audio (a positive factor)")
    figures = run_soak(args.sessions, args.minutes, args.round_s, args.speed, args.interval)
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(figures), indent=2), encoding="utf-8")
    return 0 if all(held for _, held, _ in verdicts(figures)) else 1


if __name__ == "__main__":
    sys.exit(main())
