"""Soak: many concurrent sessions in one process for minutes; descriptors, tasks and memory stay flat.

Excluded from the default run (``-m "not soak and not fuzz"`` in pyproject.toml); run it with::

    ./dev test -m soak          # add -s to see the figures

It runs :func:`benchmarks.soak.run_soak` (see that module for what is measured and
:data:`benchmarks.soak.LIMITS` for the bounds and why they are what they are): rounds of concurrent
sessions against the emulator in its own process, over loopback WebSockets through the official
SDK, every built-in plugin on, null audio paced in real time, each session asking one question
after the other until its round ends. The size is set from the environment:

``VOICEPIPE_SOAK_SESSIONS``  concurrent sessions (default 50)
``VOICEPIPE_SOAK_MINUTES``   how long to run (default 3; the soak stops by itself after the round
                             that reaches it, and runs at least a warm-up round and one measured)
``VOICEPIPE_SOAK_ROUND_S``   seconds per round (default 45: about five answers per session; at least
                             30, so that the readings taken once every session is in its stride
                             span a few turns)
``VOICEPIPE_SOAK_SPEED``     emulator pacing (default 1, real time)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside voicepipe, not inside it

from benchmarks.soak import report, run_soak, verdicts  # noqa: E402

pytestmark = pytest.mark.soak


def setting(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise pytest.UsageError(f"{name}: expected a number, got {value!r}") from None


@contextlib.contextmanager
def pytest_log_capture_detached() -> Iterator[None]:
    """pytest keeps every log record of a test phase in memory, to show them if the test fails:
    over a soak that is a hundred thousand records, which the readings would count as a leak. Its
    handlers are taken off the root logger while the soak runs, and put back after."""
    root = logging.getLogger()
    detached = [handler for handler in root.handlers if type(handler).__module__.startswith("_pytest")]
    for handler in detached:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in detached:
            root.addHandler(handler)


@pytest.fixture(scope="module")
def soak():
    sessions = int(setting("VOICEPIPE_SOAK_SESSIONS", 50))
    round_s = setting("VOICEPIPE_SOAK_ROUND_S", 45.0)
    if round_s < 30:
        raise pytest.UsageError(f"VOICEPIPE_SOAK_ROUND_S: at least 30 s, got {round_s:g}")
    interval_s = round_s / 12  # four readings or more per round once every session is in its stride
    with pytest_log_capture_detached():
        figures = run_soak(
            sessions=sessions,
            minutes=setting("VOICEPIPE_SOAK_MINUTES", 3.0),
            round_s=round_s,
            speed=setting("VOICEPIPE_SOAK_SPEED", 1.0),
            interval_s=interval_s,
        )
    print("\n" + report(figures))
    return figures


def test_the_soak_ran_what_it_was_asked_to(soak):
    assert soak.rounds >= 2  # a warm-up and at least one measured round
    assert soak.sessions_run == soak.sessions * soak.rounds
    assert soak.turns >= soak.sessions_run  # every session answered at least once
    assert len(soak.quiet()) == soak.rounds
    assert soak.busy(), "no reading was taken while every session was in its stride"


def test_sessions_ended_cleanly(soak):
    assert soak.problems == []
    assert soak.sessions_clean == soak.sessions_run
    assert soak.reconnects == 0
    assert soak.errors_logged == 0


@pytest.mark.parametrize(
    "what",
    [
        "open fds between rounds",
        "asyncio tasks between rounds",
        "RSS between rounds",
        "allocated blocks between rounds",
        "emulator fds between rounds",
        "open fds during rounds",
        "asyncio tasks during rounds",
    ],
)
def test_readings_stay_flat(soak, what):
    results = {name: (held, detail) for name, held, detail in verdicts(soak)}
    held, detail = results[what]
    assert held, f"{what}: {detail}\n{report(soak)}"

