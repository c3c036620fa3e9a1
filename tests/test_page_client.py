"""The load client of the browser benchmarks speaks the page's protocol well enough that the server
takes its audio, its receipts and its hang-up: a client the server quietly rejected would measure
nothing."""

from __future__ import annotations

import asyncio

from aiohttp import web
from serve_helpers import ROOT, served

from benchmarks.page_client import BENCH_TOKEN, Step, call
from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.serve.app import build_app
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import SessionHost

WEB_DEMO = ROOT / "profiles" / "web-demo.yaml"


def test_callers_are_heard_answered_send_receipts_the_server_accepts_and_hang_up(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEPIPE_SERVE_TOKEN", BENCH_TOKEN)
    configure_logging(None, console_level="ERROR", session_files=True)

    async def scenario():
        host = SessionHost([served(WEB_DEMO, "serve.auth=token", name="web-demo")],
                           log=get_logger(), log_dir=str(tmp_path))
        runner = web.AppRunner(build_app(host, Guard(host)), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"ws://127.0.0.1:{runner.addresses[0][1]}/web-demo/ws"
        step, stop = Step(2), asyncio.Event()
        step.window = (0.0, float("inf"))
        calling = asyncio.ensure_future(call([url], step, stop, ask_once=True, arrive_every_s=0))
        try:
            for _ in range(300):
                if len(step.callers) == 2 and all(each.receipts >= 3 for each in step.callers):
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await calling
            await asyncio.wait_for(host.idle(), 10)
            await runner.cleanup()
        return step, host

    try:
        step, host = asyncio.run(scenario())
    finally:
        shutdown_logging()
    assert step.failed == []
    assert all(each.receipts >= 3 for each in step.callers), [each.receipts for each in step.callers]
    assert step.frames > 0 and step.late_frames == 0
    assert host.counters.ended == {"caller_hung_up": 2}
    logs = [run / "voicepipe.log.jsonl" for run in tmp_path.iterdir()]
    assert len(logs) == 2
    for log in logs:  # a frame the server could not read would be a logged problem
        assert "web_caller_problem" not in log.read_text()
