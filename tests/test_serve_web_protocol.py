"""The browser transport's WebSocket protocol without a browser: a hostile page cannot end the
session, and the played clock is the page's receipts."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web
from serve_helpers import QUESTION, ROOT, served

from voicepipe.audio.wav import load_mono_pcm16, read_wav_info
from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.serve.app import build_app
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import SessionHost

WEB_DEMO = ROOT / "profiles" / "web-demo.yaml"


async def _serve(tmp_path):
    host = SessionHost([served(WEB_DEMO, name="web-demo")], log=get_logger(), log_dir=str(tmp_path))
    runner = web.AppRunner(build_app(host, Guard(host)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return host, runner, f"http://127.0.0.1:{runner.addresses[0][1]}/web-demo/"


def test_the_page_and_its_files_are_served_and_a_plain_get_of_the_socket_says_what_it_is(tmp_path):
    async def scenario():
        host, runner, base = await _serve(tmp_path)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base) as page:
                    assert page.status == 200 and "static/app.js" in await page.text()
                for name in ("app.js", "capture-worklet.js", "playback-worklet.js", "style.css"):
                    async with http.get(base + "static/" + name) as response:
                        assert response.status == 200, name
                async with http.get(base + "ws") as plain:
                    assert plain.status == 426 and "open the page" in (await plain.json())["error"]
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_garbage_from_the_page_is_dropped_and_the_call_goes_on_with_the_receipts_as_its_clock(tmp_path):
    configure_logging(None, console_level="WARNING", session_files=True)

    async def scenario():
        host, runner, base = await _serve(tmp_path)
        seen: list = []
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(base + "ws", protocols=("voicepipe.v1",))
                assert ws.protocol == "voicepipe.v1"
                ready = json.loads((await ws.receive()).data)
                while ready["type"] != "ready":
                    ready = json.loads((await ws.receive()).data)
                rate = ready["input_rate"]
                # hostile input first: none of it may end the call
                await ws.send_bytes(b"\x01\x02\x03")  # not whole samples
                for junk in ("not json", "[1,2]", '{"type":"surprise"}', '{"type":"played","item_id":"nope","ms":5}',
                             '{"type":"played","item_id":7,"ms":"x"}', '{"type":"played","item_id":"x","ms":-1}'):
                    await ws.send_str(junk)
                for _ in range(1000):  # a flood of messages
                    await ws.send_str('{"type":"surprise"}')
                speech = load_mono_pcm16(read_wav_info(QUESTION), rate) + bytes(rate * 2 * 2)
                step = rate // 50 * 2
                for start in range(0, len(speech), step):
                    await ws.send_bytes(speech[start : start + step])
                    await asyncio.sleep(0.02)
                # receive the answer; acknowledge 300 ms of its first item only
                items, acknowledged = {}, None
                while acknowledged is None or "Caspian" not in json.dumps(seen):
                    message = await asyncio.wait_for(ws.receive(), 60)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        item_id = items[int.from_bytes(message.data[:4], "little")]
                        if acknowledged is None:
                            acknowledged = item_id
                            await ws.send_str(json.dumps({"type": "played", "item_id": item_id, "ms": 300.0}))
                    else:
                        m = json.loads(message.data)
                        seen.append(m)
                        if m["type"] == "item":
                            items[m["n"]] = m["item_id"]
                session = next(iter(host.sessions.values()))
                output = session.transport.output
                for _ in range(100):
                    if output.played_ms(acknowledged) > 0:
                        break
                    await asyncio.sleep(0.01)
                assert output.played_ms(acknowledged) == 300.0  # the receipt, not what was sent
                problems = dict(session.transport.problems)
                await ws.send_str('{"type":"hangup"}')
                await ws.receive()
                await ws.close()
            for _ in range(500):
                if not host.sessions:
                    break
                await asyncio.sleep(0.01)
            return problems
        finally:
            await runner.cleanup()

    try:
        problems = asyncio.run(scenario())
    finally:
        shutdown_logging()
    assert problems["bad_audio_frame"] == 1
    assert problems["bad_message"] == 1 and problems["bad_receipt"] == 3
    assert problems["message_flood"] > 0 and problems["unknown_message"] >= 1
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert lines[-1]["event"]["reason"] == "caller_hung_up"
    assert any(line["event"].get("type") == "playback.started" for line in lines if line["direction"] == "local")


def _drop_abruptly(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The caller's connection vanishes mid-call: no close frame, a TCP reset (SO_LINGER 0)."""
    import socket
    import struct

    transport = ws._writer.transport  # noqa: SLF001 - the client API offers no way to reset
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def test_a_page_that_drops_its_connection_mid_answer_leaves_complete_files_and_an_ended_session(tmp_path):
    from voicepipe.serve.metrics import open_metrics

    configure_logging(None, console_level="WARNING", session_files=True)

    async def scenario():
        host = SessionHost([served(WEB_DEMO, name="web-demo")], log=get_logger(), log_dir=str(tmp_path))
        host.metrics = open_metrics(host.profiles, host.max_sessions)
        # aiohttp cancels the handler of a connection that is lost when handler_cancellation is on
        # (its TestServer always; any server at shutdown): the session must survive that
        runner = web.AppRunner(build_app(host, Guard(host)), access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(base + "/web-demo/ws", protocols=("voicepipe.v1",))
                ready = json.loads((await ws.receive()).data)
                while ready["type"] != "ready":
                    ready = json.loads((await ws.receive()).data)
                rate = ready["input_rate"]
                speech = load_mono_pcm16(read_wav_info(QUESTION), rate) + bytes(rate * 2 * 2)
                step = rate // 50 * 2
                for start in range(0, len(speech), step):
                    await ws.send_bytes(speech[start : start + step])
                    await asyncio.sleep(0.02)
                heard = 0
                while heard < 5:  # a few frames into the answer's audio
                    message = await asyncio.wait_for(ws.receive(), 60)
                    heard += message.type == aiohttp.WSMsgType.BINARY
                _drop_abruptly(ws)
                for _ in range(3000):
                    if not host.sessions:
                        break
                    await asyncio.sleep(0.01)
                assert not host.sessions, "the session did not end"
                async with http.get(base + "/metrics") as response:
                    exposition = await response.text()
            return host, exposition
        finally:
            await runner.cleanup()

    try:
        host, exposition = asyncio.run(scenario())
    finally:
        shutdown_logging()
    assert host.counters.ended == {"caller_hung_up": 1}
    assert 'voicepipe_serve_sessions_ended_total{profile="web-demo",reason="caller_hung_up"} 1.0' in exposition
    assert 'voicepipe_serve_active_sessions{profile="web-demo"} 0.0' in exposition
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["reason"] == "caller_hung_up"
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert lines[-1]["event"]["reason"] == "caller_hung_up"
    assert "Caspian" in (run_dir / "transcript.txt").read_text()  # the question and the answer so far
