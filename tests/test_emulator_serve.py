"""``voicepipe emulator``: serves until Ctrl+C, prints its URL, reports bad scenarios clearly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from azure.core.credentials import AzureKeyCredential

from emulator_helpers import recv, run

ROOT = Path(__file__).resolve().parents[1]


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "voicepipe", "emulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_serves_until_interrupted():
    process = start(
        "--speed",
        "0",
        "--scenario",
        "voicepipe/emulator/example_scenario.yaml",
        "--api-key-env",
        "EMU_KEY",
        env={"EMU_KEY": "s3cret-key"},
    )
    try:
        first = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)

        async def talk() -> str:
            from azure.ai.voicelive.aio import connect

            async with connect(endpoint=url, credential=AzureKeyCredential("s3cret-key"), model="gpt-realtime") as conn:
                return (await recv(conn))["type"]

        assert run(talk()) == "session.created"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped (1 connection(s) served)" in out
    assert "s3cret-key" not in out + err + first
    assert "Traceback" not in err


def test_bad_scenario_is_one_clear_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("turns:\n  - usr: hello\n")
    process = start("--scenario", str(bad))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"{bad}:2: turns[0].usr: unknown key (did you mean 'user'?)" in err
    assert "Traceback" not in err


def test_a_negative_burst_is_one_clear_line():
    process = start("--burst-ms", "-5")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "emulator burst_ms: expected 0 or a positive number, got -5.0" in err
    assert "Traceback" not in err


def test_the_command_keeps_no_records_of_what_it_served():
    """A long-running ``voicepipe emulator`` keeps no per-event records and forgets closed
    connections (tests' in-process emulators keep both)."""
    from emulator_helpers import sdk_session
    from voicepipe.emulator import Emulator

    async def main(keep: bool):
        async with Emulator(speed=0, keep_records=keep) as emulator:
            for _ in range(2):
                async with sdk_session(emulator) as conn:
                    await conn.send({"type": "input_audio_buffer.append", "audio": "AAAA"})
                    await conn.send({"type": "input_audio_buffer.clear"})
                    assert (await recv(conn))["type"] == "input_audio_buffer.cleared"
                    (live,) = [each.record for each in emulator._live]
                    assert bool(live.client_events) == keep and bool(live.server_events) == keep
            return emulator.served, emulator.connections

    served, records = run(main(False))
    assert served == 2 and records == []
    served, records = run(main(True))
    assert served == 2 and len(records) == 2
    assert [e["type"] for e in records[0].client_events] == ["input_audio_buffer.append", "input_audio_buffer.clear"]
