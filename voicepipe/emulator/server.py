"""The emulator's HTTP side: ``/voice-live/realtime`` over WebSocket, auth, start/stop, the CLI.

Auth works as on the service: an ``api-key`` header, an ``Authorization: Bearer …`` header, or
an ``api-key`` query parameter (as browsers must). With an expected key configured the credential
must match it; otherwise any non-empty credential is accepted. A missing or wrong credential gets
HTTP 401 before the WebSocket upgrade, which the SDK reports as a ``ConnectionError`` naming 401.

A connection with ``agent-name`` (the SDK's ``connect(agent_name=…, project_name=…)``) is a Foundry
agent session: ``session.created`` carries ``agent`` (name, an ``asst_…`` id derived from project and
name, and the ``conversation-id`` as ``thread_id``, or a new ``thread_…`` id) and the agent's
instructions. The older query form of the agents quickstart, ``agent-id`` + ``agent-project-name``
(+ ``agent-access-token``), is one too: the agent is named by its id. ``agent-version``, in either
form, is shown as the agent's ``version``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import signal
import sys
import weakref
from typing import Optional, Union

from voicepipe import eventloop
from voicepipe.emulator import defaults
from voicepipe.emulator.connection import Connection
from voicepipe.emulator.record import ConnectionRecord
from voicepipe.emulator.faults import FaultPlan, http_status_fault
from voicepipe.emulator.pacing import pacing_for
from voicepipe.emulator.scenario import Scenario, load_scenario
from voicepipe.errors import UsageError
from voicepipe.heap import freeze_startup_heap

log = logging.getLogger(__name__)

PATHS = ("/voice-live/realtime", "/voice-agent/realtime")  # the second is an older alias
MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # the service takes appends of up to 15 MiB
CLOSE_TIMEOUT_S = 2.0


def _credential(request) -> str:
    key = request.headers.get("api-key", "").strip()
    if key:
        return key
    authorization = request.headers.get("Authorization", "").strip()
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.query.get("api-key", "").strip()


def _agent(request) -> Optional[dict]:
    """The session's ``agent`` for a Foundry agent connection (``agent-name`` or ``agent-id``
    given), else ``None``. The access token of the older form is never kept in the session."""
    query = request.query
    name = query.get("agent-name", "").strip()
    agent_id = query.get("agent-id", "").strip()
    if not name and not agent_id:
        return None
    return defaults.agent_config(
        name or agent_id,
        query.get("agent-project-name", "").strip() or None,
        query.get("conversation-id", "").strip() or None,
        agent_id=agent_id or None,
        version=query.get("agent-version", "").strip() or None,
    )


class Emulator:
    """A local Voice Live service on a loopback port, for the official SDK unchanged.

    ``scenario`` is a :class:`Scenario`, a path to a scenario YAML file, or ``None`` (default
    answers). ``api_key``: the only key accepted (``None``: any non-empty credential). Pacing (see
    :mod:`~voicepipe.emulator.pacing`): by default service-like (a burst, then faster than real
    time); ``speed`` alone: 1.0 streams answers in real time, N times faster for N, 0 as fast as the
    client reads; ``burst_ms`` (with or without ``speed``): service-like with that burst. Answers
    stream in 100 ms ``response.audio.delta`` chunks of PCM16 (24 kHz unless the session's
    ``output_audio_format`` says otherwise), each preceded by the transcript words that start in
    it. ``port`` 0 picks a free port. After :meth:`start`, :attr:`url` is what to pass to
    ``connect(endpoint=…)`` and :attr:`connections` holds one
    :class:`~voicepipe.emulator.record.ConnectionRecord` per accepted connection; with
    ``keep_records`` false (the ``voicepipe emulator`` command, which never reads them) records keep
    no events and are dropped when their connection closes, so a long-running emulator's memory
    does not grow with every connection it has served (:attr:`served` counts them).
    """

    def __init__(
        self,
        scenario: Union[Scenario, str, os.PathLike, None] = None,
        *,
        api_key: Optional[str] = None,
        speed: Optional[float] = None,
        burst_ms: Optional[float] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_records: bool = True,
    ):
        if scenario is None:
            scenario = Scenario()
        elif not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        try:
            self.pacing = pacing_for(speed, burst_ms)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.scenario = scenario
        self.api_key = api_key
        self.host = host
        self.port = port
        self.connections: list[ConnectionRecord] = []
        self.keep_records = keep_records
        self.served = 0
        self._attempts = itertools.count(1)
        self._live: set[Connection] = set()
        self._runner = None
        self._stopping = False

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` once started (the SDK turns it into ``ws://…/voice-live/realtime``)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving (port 0: a free port, see :attr:`url`)."""
        from aiohttp import web

        if self._runner is not None:
            return
        # aiohttp's low-level server, not an Application: with one route there is nothing for a
        # router to do, and an Application is a reference cycle (its signals refer back to it)
        runner = web.ServerRunner(web.Server(_handler_of(self), access_log=None), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(f"emulator: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        if runner.addresses:
            self.port = runner.addresses[0][1]  # the port actually bound (port 0 = a free one)
        self._runner = runner
        self._stopping = False

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        live = list(self._live)
        if live:
            await asyncio.gather(*(conn.close(1001, "going away") for conn in live), return_exceptions=True)
            await asyncio.gather(
                *(asyncio.wait_for(conn.record.closed.wait(), CLOSE_TIMEOUT_S + 1) for conn in live),
                return_exceptions=True,
            )
        await runner.cleanup()

    async def __aenter__(self) -> "Emulator":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    async def _handle(self, request):
        from aiohttp import web

        number = next(self._attempts)
        fault = http_status_fault(self.scenario.faults, number)
        if fault is not None:
            status = fault.params["status"]
            return web.Response(status=status, text=fault.params["message"] or f"{status} (scenario fault)")
        credential = _credential(request)
        if not credential:
            return web.Response(status=401, text="Missing credentials: send an api-key header or a bearer token.")
        if self.api_key is not None and not hmac.compare_digest(credential.encode(), self.api_key.encode()):
            return web.Response(status=401, text="Access denied: invalid API key or token.")
        if self._stopping:
            return web.Response(status=503, text="The emulator is shutting down.")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_S, autoping=True)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="Expected a WebSocket upgrade.", headers={"Upgrade": "websocket"})
        await ws.prepare(request)
        record = ConnectionRecord(number, dict(request.query), keep_events=self.keep_records)  # never logged
        self.served += 1
        if self.keep_records:
            self.connections.append(record)
        conn = Connection(
            ws,
            record,
            self.scenario,
            self.pacing,
            FaultPlan(self.scenario.faults, number),
            model=request.query.get("model"),
            agent=_agent(request),
        )
        self._live.add(conn)
        agent = conn.session.get("agent")
        if agent is not None:
            version = f" version {agent['version']}" if agent.get("version") else ""
            log.info("connection #%s opened (agent %s%s)", number, agent["name"], version)
        else:
            log.info("connection #%s opened (%s)", number, request.query.get("model") or "-")
        try:
            await conn.run()
        finally:
            self._live.discard(conn)
            log.info("connection #%s closed (code %s)", number, record.close_code)
        return ws


def _handler_of(emulator: Emulator):
    """The server's one handler: ``emulator._handle`` for a GET (or HEAD) of one of
    :data:`PATHS`, 404 or 405 otherwise. It holds ``emulator`` weakly: aiohttp's server refers to
    itself (a reference cycle), and what it holds strongly would wait for a full garbage collection
    after the emulator has stopped (with the emulator embedded in each session, every connection
    and conversation it served)."""
    from aiohttp import web

    emulator_ref = weakref.ref(emulator)

    async def handle(request):
        if request.path not in PATHS:
            return web.Response(status=404, text="404: Not Found")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": "GET,HEAD"})
        emulator = emulator_ref()
        if emulator is None:
            return web.Response(status=503, text="The emulator is shutting down.")
        return await emulator._handle(request)

    return handle


def serve(
    host: str,
    port: int,
    scenario: Optional[str],
    api_key: Optional[str],
    speed: Optional[float] = None,
    burst_ms: Optional[float] = None,
) -> int:
    """Run the emulator until Ctrl+C or SIGTERM (the ``voicepipe emulator`` command); exit code."""
    emulator = Emulator(scenario, api_key=api_key, speed=speed, burst_ms=burst_ms, host=host, port=port,
                        keep_records=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await emulator.start()
        freeze_startup_heap()  # a long-lived server of many connections: shorter collection pauses
        try:
            auth = "the configured API key" if api_key else "any non-empty API key or token"
            pacing = emulator.pacing.describe()
            print(f"voicepipe emulator listening on {emulator.url}", flush=True)
            print(
                f"  connect(endpoint={emulator.url!r}, ...) with {auth}; {pacing}"
                + (f"; scenario {scenario}" if scenario else ""),
                flush=True,
            )
            print("  Ctrl+C stops", flush=True)
            await stop.wait()
        finally:
            await emulator.stop()
            print(f"voicepipe emulator stopped ({emulator.served} connection(s) served)", flush=True)

    package_log = logging.getLogger("voicepipe.emulator")
    if not package_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        package_log.addHandler(handler)
        package_log.setLevel(logging.INFO)
    try:
        eventloop.run(main())
    except KeyboardInterrupt:
        pass
    return 0
