"""The serving process's sessions: a caller's connection runs a session like `voicepipe run`."""

import asyncio
import json

from serve_helpers import ROOT, WavCaller, served

from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.serve.host import SessionHost

DEMO = ROOT / "profiles" / "demo.yaml"


def _host(tmp_path, *profiles, **kwargs) -> SessionHost:
    return SessionHost(list(profiles), log=get_logger(), log_dir=str(tmp_path), **kwargs)


def _finished_reason(run_dir) -> str:
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return lines[-1]["event"]["reason"]


def test_a_caller_gets_an_answer_and_hanging_up_ends_the_session(tmp_path):
    configure_logging(None, console_level="WARNING", session_files=True)
    host = _host(tmp_path, served(DEMO))
    caller = WavCaller()

    async def call():
        session = asyncio.ensure_future(host.run_session(host.profiles["demo"], caller))
        for _ in range(500):  # until the answer is in the transcript
            await asyncio.sleep(0.02)
            transcripts = list(tmp_path.glob("*/transcript.txt"))
            if transcripts and "Caspian" in transcripts[0].read_text():
                break
        caller.hang_up()
        return await session

    try:
        code = asyncio.run(call())
    finally:
        shutdown_logging()
    (run_dir,) = tmp_path.iterdir()
    assert code == 0
    assert _finished_reason(run_dir) == "caller_hung_up"
    assert caller.closed_with == "caller_hung_up"
    assert host.sessions == {} and host.counters.started == 1 and host.counters.ended == {"caller_hung_up": 1}
    for name in ("transcript.txt", "events.jsonl", "metrics.json", "voicepipe.log.jsonl"):
        assert (run_dir / name).stat().st_size > 0


def test_drain_ends_the_sessions_that_outlast_the_timeout(tmp_path):
    configure_logging(None, console_level="WARNING", session_files=True)
    host = _host(tmp_path, served(DEMO))
    caller = WavCaller()  # never hangs up

    async def call():
        session = asyncio.ensure_future(host.run_session(host.profiles["demo"], caller))
        while not (host.sessions and next(iter(host.sessions.values())).runner and caller.input.sample_rate):
            await asyncio.sleep(0.01)
        assert host.ready
        await host.drain(timeout_s=0.2)
        assert not host.ready and host.refusal(host.profiles["demo"]).startswith("the server is shutting down")
        return await session

    try:
        code = asyncio.run(call())
    finally:
        shutdown_logging()
    (run_dir,) = tmp_path.iterdir()
    assert code == 0
    assert _finished_reason(run_dir) == "server_draining"
    assert caller.closed_with == "server_draining"


def test_capacity_is_per_process_and_per_profile(tmp_path):
    demo = served(DEMO, name="demo")
    demo.max_sessions = 1
    other = served(DEMO, name="other")
    host = _host(tmp_path, demo, other, max_sessions=2)
    assert host.refusal(demo) is None
    demo.active = 1
    assert host.refusal(demo) == "all lines are busy; try again in a moment"
    assert host.refusal(other) is None
