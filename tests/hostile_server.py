"""A Voice Live server of our own on loopback, scripted per connection, for the hostile-server tests.

Each WebSocket connection runs ``script(peer)``; :class:`Peer` has what a script needs: send a
frame, wait for a client event, answer ``session.update`` with a session of its choosing. A
session runs against it with ``run_against(server, tmp_path, ...)``, in a thread of its own with a
generous deadline, so that a client that freezes its event loop fails the test instead of hanging
the suite.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from voicepipe.testing import RunResult, run_profile

DEADLINE_S = 60.0


class Peer:
    """One connection as the server sees it."""

    def __init__(self, ws: Any, number: int):
        self.ws = ws
        self.number = number  # 1 for the first connection
        self.received: list[dict] = []

    async def send(self, event: dict) -> None:
        await self.ws.send_str(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def next_event(self, event_type: Optional[str] = None) -> Optional[dict]:
        """The next client event (of ``event_type``), or ``None`` once the client has closed."""
        from aiohttp import WSMsgType

        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            self.received.append(event)
            if event_type is None or event.get("type") == event_type:
                return event
        return None

    async def configure(self, **changes: Any) -> dict:
        """``session.created``, then answer the client's ``session.update`` with its session plus ``changes``."""
        await self.send({"type": "session.created", "event_id": "ev_0", "session": {"id": f"sess_{self.number}"}})
        update = await self.next_event("session.update")
        session = {"id": f"sess_{self.number}", **((update or {}).get("session") or {}), **changes}
        await self.send({"type": "session.updated", "event_id": "ev_1", "session": session})
        return session

    async def drain(self) -> None:
        """Read client events until the client closes."""
        while await self.next_event() is not None:
            pass

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())


class HostileServer:
    """Serves ``script`` on a free loopback port from its own thread (a context manager)."""

    def __init__(self, script: Callable[[Peer], Awaitable[None]], max_msg_size: int = 4 * 1024 * 1024):
        self.script = script
        self.max_msg_size = max_msg_size
        self.peers: list[Peer] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-server", daemon=True)
        self._runner: Any = None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse(max_msg_size=self.max_msg_size)
        await ws.prepare(request)
        peer = Peer(ws, len(self.peers) + 1)
        self.peers.append(peer)
        try:
            await self.script(peer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        if not ws.closed:
            await ws.close()
        return ws

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def write_profile(tmp_path: Path, url: str, extra: str = "", reconnect: str = "{attempts: 0}") -> Path:
    profile = tmp_path / "hostile.yaml"
    profile.write_text(
        textwrap.dedent(
            f"""\
            connection:
              endpoint: {url}
              model: gpt-realtime
              auth: api-key
              reconnect: {reconnect}
            session:
              modalities: [text, audio]
              voice: {{name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}}
            audio:
              input: {{backend: null}}
              output: {{backend: null, realtime: false}}
            console: {{quiet: true}}
            metrics: {{table: false}}
            """
        )
        + textwrap.dedent(extra)
    )
    return profile


def run_against(
    server: HostileServer,
    tmp_path: Path,
    monkeypatch: Any,
    *,
    extra: str = "",
    reconnect: str = "{attempts: 0}",
    overrides: tuple = (),
    plugins: tuple = (),
    duration: Optional[float] = None,
    name: str = "run",
) -> RunResult:
    """Run a session against ``server``; a failure of the session (an exception) is re-raised here."""
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "hostile-test-key")
    profile = write_profile(tmp_path, server.url, extra, reconnect)
    return within_deadline(
        lambda: run_profile(
            profile, run_dir=tmp_path / name, overrides=overrides, plugins=plugins, duration=duration, emulator=False
        )
    )


def within_deadline(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread of its own; a test failure if it has not returned within the deadline
    (a stuck session then fails its test instead of hanging the suite). Its exception is re-raised."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="session-under-test", daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"the session did not end within {DEADLINE_S:g} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def log_records(run_dir: Path, event: str) -> list[dict]:
    path = run_dir / "voicepipe.log.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if record.get("event") == event]
