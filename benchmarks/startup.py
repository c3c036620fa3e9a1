"""Start-up: ``voicepipe --help`` and ``voicepipe validate profiles/ava.yaml`` against ``python -c pass``.

Each command runs the same number of times, interleaved, so that load on a shared machine hits all
three alike; the ratios to the bare interpreter are what to read. The commands run with byte-code
caches, as an installed package has them: ``PYTHONDONTWRITEBYTECODE`` is removed from their
environment and each runs once before the measured rounds (without caches every start compiled
voicepipe from source).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from voicepipe.metrics_stats import percentile

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "voicepipe --help": [sys.executable, "-m", "voicepipe", "--help"],
    "voicepipe validate profiles/ava.yaml": [sys.executable, "-m", "voicepipe", "validate", "profiles/ava.yaml"],
}


def run(rounds: int = 15) -> list[dict]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    for command in COMMANDS.values():  # writes the byte-code caches
        subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - started)
    base = percentile(sorted(times["python -c pass"]), 50)
    rows = []
    for name, samples in times.items():
        p50 = percentile(sorted(samples), 50)
        rows.append({"benchmark": "start-up", "case": name, "p50_ms": round(p50 * 1000, 1), "ratio": round(p50 / base, 2)})
    return rows
