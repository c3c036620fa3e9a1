"""An ended session leaves (almost) no cyclic garbage: reference counting frees its objects.

Objects in reference cycles wait for a full garbage collection; in a process serving many sessions
that collection has every ended session's objects to examine, and its pause is a dropout for every
caller. Each test runs a warm-up session (first-use caches, the start-up heap freeze), then one
session with the collector off, and counts what a collection finds afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from phone_helpers import AcsPhone, TwilioPhone, phone_served, speech, ulaw_speech
from serve_helpers import QUESTION, ROOT, served

from voicepipe import eventloop
from voicepipe.audio.wav import load_mono_pcm16, read_wav_info
from voicepipe.logsetup import configure_logging, get_logger, session_log_file, shutdown_logging
from voicepipe.plugins import configure_plugins, load_plugin_set, release_plugin_manager
from voicepipe.profile import load_profile
from voicepipe.runtime import SessionRunner
from voicepipe.serve import acs, phone, twilio
from voicepipe.serve.app import build_app
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import SessionHost
from voicepipe.testing import _fast_pacing

#: what a collection may find after one session. Measured: 72 objects, three small cycles of the
#: libraries (the SDK's aiohttp TraceConfig and its 16 signals, the json module's pretty-printing
#: encoder closures from writing the metrics summary, aiohttp's low-level Server and its bound
#: request factory), the same after a browser, a Twilio or an ACS call; before the session's own
#: cycles were broken, 780-810 (a phone call's own cycles: 165-180)
BOUND = 100
#: the objects whose graphs are each a session's worth: none may be left to the collector
SESSION_OBJECTS = {
    "voicepipe.plugins.VoicepipePluginManager",
    "voicepipe.runtime.SessionRunner",
    "voicepipe.runtime._Link",
    "voicepipe.pipeline.Pipeline",
    "voicepipe.context.SessionContext",
    "voicepipe.builtin.audio.AudioSession",
    "voicepipe.emulator.server.Emulator",
    "voicepipe.emulator.connection.Connection",
    "azure.ai.voicelive.aio._patch.VoiceLiveConnection",
    "aiohttp.client.ClientSession",
    "aiohttp.client_ws.ClientWebSocketResponse",
    "aiohttp.web_ws.WebSocketResponse",
    "aiohttp.web_app.Application",
    "voicepipe.serve.browser.BrowserTransport",
}
#: and a phone call's: its transport, output, outbox, input and hook plugin
PHONE_OBJECTS = {
    "voicepipe.serve.twilio.TwilioTransport",
    "voicepipe.serve.twilio.TwilioOutput",
    "voicepipe.serve.acs.AcsTransport",
    "voicepipe.serve.acs.AcsOutput",
    "voicepipe.serve.phone.Outbox",
    "voicepipe.serve.phone.WireInput",
    "voicepipe.serve.phone.TimedCallerInput",
    "voicepipe.serve.phone.TransportPlugin",
}
TWILIO_AUTH_TOKEN = "f2c6e3b9d1a4c7e8b5a2d9f6c3e0b7a4"  # made up


@contextlib.contextmanager
def collector_off(found: collections.Counter):
    """Collect, run the block with the collector off, then count (by type) what a collection
    finds; the collector's settings are restored whatever happens."""
    gc.collect()
    was_enabled, flags = gc.isenabled(), gc.get_debug()
    gc.disable()
    try:
        yield
        gc.set_debug(flags | gc.DEBUG_SAVEALL)
        gc.collect()
        found.update(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(flags)
        if was_enabled:
            gc.enable()


def _check(found: collections.Counter, forbidden: set = SESSION_OBJECTS) -> None:
    left = sorted(name for name in found if name in forbidden)
    assert not left, f"a session's objects were left to the garbage collector: {left}"
    total = sum(found.values())
    assert total <= BOUND, f"{total} objects in reference cycles after one session: {found.most_common(15)}"


def test_a_run_session_is_freed_by_reference_counting(tmp_path):
    """A session as ``voicepipe.testing.run_profile`` runs it, with the logging set up once and
    every session on one event loop, as in a process that runs many."""
    extra = ["connection.endpoint=emulator"]
    demo = ROOT / "profiles" / "demo.yaml"
    profile = load_profile(demo, _fast_pacing(load_profile(demo, extra)) + extra)
    plugins = load_plugin_set(profile, autoload=False, without=("console",))
    found: collections.Counter = collections.Counter()

    async def session(number: int) -> None:
        pm = plugins.manager()
        configure_plugins(pm, profile)
        run_dir = tmp_path / f"run-{number}"
        run_dir.mkdir()
        with session_log_file(run_dir, "DEBUG"):
            runner = SessionRunner(profile, pm, run_dir, get_logger(), duration=60)
            assert await runner.run() == 0
            assert runner.stop_reason == "input_finished"
        release_plugin_manager(pm)  # as voicepipe.testing.run_profile does

    async def scenario() -> None:
        await session(0)
        with collector_off(found):
            await session(1)

    configure_logging(None, console_level="WARNING", session_files=True)
    try:
        eventloop.run(scenario())
    finally:
        shutdown_logging()
    assert "Caspian" in (tmp_path / "run-1" / "transcript.txt").read_text(encoding="utf-8")
    _check(found)


def test_a_served_browser_session_is_freed_by_reference_counting(tmp_path):
    found: collections.Counter = collections.Counter()

    async def call(base: str) -> None:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base + "ws", protocols=("voicepipe.v1",))
            message = json.loads((await ws.receive()).data)
            while message["type"] != "ready":
                message = json.loads((await ws.receive()).data)
            rate = message["input_rate"]
            pcm = load_mono_pcm16(read_wav_info(QUESTION), rate) + bytes(rate * 2)
            step = rate // 50 * 2
            for start in range(0, len(pcm), step):  # in real time: the page's pace
                await ws.send_bytes(pcm[start : start + step])
                await asyncio.sleep(0.02)
            heard = ""
            while "Caspian" not in heard:
                message = await asyncio.wait_for(ws.receive(), 60)
                if message.type == aiohttp.WSMsgType.TEXT:
                    heard += message.data
            await ws.send_str('{"type":"hangup"}')
            while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass

    _serve_two_calls(tmp_path, served(ROOT / "profiles" / "web-demo.yaml", name="web-demo"), call, found)
    _check(found)


class _Host(SessionHost):
    """Tells when a caller's session is over, its transport closed and released."""

    async def serve_caller(self, served, transport):
        try:
            return await super().serve_caller(served, transport)
        finally:
            self.handled.set()


def _serve_two_calls(tmp_path, profile, call, found: collections.Counter) -> None:
    """Serve ``profile`` (on the server's own app, as ``voicepipe serve`` does) to two calls made
    by ``call(base_url)``, the second with the collector off, counting into ``found``."""

    async def handled_call(host: _Host, server: web.Server, base: str) -> None:
        host.handled = asyncio.Event()
        await call(base)
        await host.handled.wait()
        for _ in range(500):  # and the HTTP connection is over
            if not server.connections:
                break
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        host = _Host([profile], log=get_logger(), log_dir=str(tmp_path))
        runner = web.AppRunner(build_app(host, Guard(host)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/{profile.name}/"
        try:
            await handled_call(host, runner.server, base)
            with collector_off(found):
                await handled_call(host, runner.server, base)
            assert not runner.server.connections
        finally:
            await runner.cleanup()

    configure_logging(None, console_level="WARNING", session_files=True)
    try:
        eventloop.run(scenario())
    finally:
        shutdown_logging()
    run_dirs = [d for d in Path(tmp_path).iterdir() if d.is_dir()]
    assert len(run_dirs) == 2
    assert all("Caspian" in (d / "transcript.txt").read_text(encoding="utf-8") for d in run_dirs)


async def _until(predicate) -> None:
    for _ in range(3000):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call did not get there")


@pytest.fixture
def phone_env(monkeypatch):
    for name in ("VOICEPIPE_PUBLIC_URL", "VOICEPIPE_MEDIA_SECRET", "AZURE_COMMUNICATION_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN)


def test_a_served_twilio_call_is_freed_by_reference_counting(tmp_path, phone_env):
    """Answered through the voice webhook, the whole answer played and its marks echoed, then the
    caller hangs up (``stop``, then the socket closes: the server's close finds it closing)."""
    found: collections.Counter = collections.Counter()
    form = {"CallSid": "CA00000000000000000000000000000000", "From": "+14155550100", "To": "+14155550199"}

    async def call(base: str) -> None:
        async with aiohttp.ClientSession() as http:
            url = base + "twilio/voice"
            headers = {"X-Twilio-Signature": twilio.signature(TWILIO_AUTH_TOKEN, url, form)}
            async with http.post(url, data=form, headers=headers) as response:
                twiml = await response.text()
            stream = re.search(r'<Stream url="([^"]+)"><Parameter name="token" value="([^"]+)"/>', twiml)
            assert stream, twiml
            caller = TwilioPhone(http, stream.group(1), stream.group(2), speed=4)
            await caller.connect()
            caller.say(ulaw_speech())
            await _until(lambda: caller.received_samples > 8000 and len(caller.echoed) >= 3
                         and not caller.queue and not caller.speaking)
            await caller.hang_up()
            caller._tasks.clear()  # the far end's cancelled tasks hold it (their tracebacks): not the server's

    _serve_two_calls(tmp_path, phone_served("twilio", name="demo"), call, found)
    _check(found, SESSION_OBJECTS | PHONE_OBJECTS)


def test_a_served_acs_call_is_freed_by_reference_counting(tmp_path, phone_env):
    """The media socket of a call this server answered (its token), the answer played, then the
    caller hangs up (ACS closes the socket; no hang-up request is made)."""
    found: collections.Counter = collections.Counter()

    async def call(base: str) -> None:
        async with aiohttp.ClientSession() as http:
            token = phone.sign_media_token(acs._secret(), "acs:demo")
            caller = AcsPhone(http, base.replace("http://", "ws://") + f"acs/media?token={token}")
            await caller.connect()
            caller.say(speech(24000))
            await _until(lambda: caller.received_samples > 24000 and not caller.queue and not caller.speaking)
            await caller.hang_up()
            caller._tasks.clear()

    _serve_two_calls(tmp_path, phone_served("acs", name="demo"), call, found)
    _check(found, SESSION_OBJECTS | PHONE_OBJECTS)
