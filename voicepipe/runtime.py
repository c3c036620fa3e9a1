"""One live session: connect, configure, dispatch every server event to the plugins, stop cleanly.

Three tasks share the connection: the reader dispatches server events in arrival order, the writer
sends client events from one ordered queue, and the session waits for a reason to stop (a signal,
``q`` + Enter, the ``--duration``, a plugin's ``ctx.stop``, the server closing). However the session
ends, ``voicepipe_session_end`` runs exactly once and the connection is closed with code 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Optional

from voicepipe.connection import Target, connect, open_credential, resolve_target
from voicepipe.errors import SessionError, VoicepipeError
from voicepipe.pipeline import Pipeline

if TYPE_CHECKING:
    from voicepipe.plugins import VoicepipePluginManager
    from voicepipe.profile import Profile

DEFAULT_SESSION_TIMEOUT_S = 15.0
_CLOSE = object()
#: stop reasons that end the process with exit code 0
CLEAN_REASONS = {"user", "duration", "input_finished", "server_closed", "replay_finished"}


class SessionRunner:
    """Runs one session of ``profile`` with the plugins in ``pm``; :meth:`run` returns the exit code."""

    def __init__(
        self,
        profile: Profile,
        pm: VoicepipePluginManager,
        run_dir: Path,
        log: Any,
        *,
        duration: Optional[float] = None,
        handle_signals: bool = False,
        watch_stdin: bool = False,
    ):
        self.profile = profile
        self.log = log
        self.duration = duration if duration is not None else profile.runtime.get("duration_s")
        self.handle_signals = handle_signals
        self.watch_stdin = watch_stdin
        self.pipeline = Pipeline(profile, pm, run_dir, log, send=self._enqueue, stop=self.request_stop)
        self.ctx = self.pipeline.ctx
        self.stop_reason: Optional[str] = None
        self.close_code: Optional[int] = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._session_ready = asyncio.Event()
        self._interrupts = 0

    # -- what plugins and controls call ----------------------------------------------------------

    def _enqueue(self, event: Any) -> None:
        if not isinstance(event, Mapping):
            event = event.as_dict()  # an SDK ClientEvent model
        elif not isinstance(event, dict):
            event = dict(event)
        self._queue.put_nowait(event)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.log.info("stopping", reason=reason)
        self._stopped.set()

    # -- the session -----------------------------------------------------------------------------

    async def run(self) -> int:
        from voicepipe.profile import build_request_session

        target = resolve_target(self.profile)
        session = build_request_session(self.profile)
        self.pipeline.call("voicepipe_session_config", "session_config", profile=self.profile, session=session)
        try:
            async with self._endpoint(target) as endpoint_url, open_credential(target) as credential:
                self.log.info("connecting", target=target.describe())
                async with connect(target, endpoint_url, credential) as connection:
                    await self._converse(connection, session, target)
        except VoicepipeError as exc:
            self.stop_reason = self.stop_reason or "error"
            await self.pipeline.end("error")
            raise exc
        except BaseException:
            self.stop_reason = self.stop_reason or "error"
            await self.pipeline.end("error")
            raise
        if self.stop_reason == "server_closed" and self.close_code not in (None, 1000):
            raise SessionError(f"the server closed the connection (code {self.close_code})")
        return 0 if self.stop_reason in CLEAN_REASONS else 1

    async def _converse(self, connection: Any, session: Any, target: Target) -> None:
        writer = asyncio.create_task(self._write(connection), name="voicepipe writer")
        self._enqueue({"type": "session.update", "session": session.as_dict()})
        self.log.info("connected", target=target.describe())
        reader = asyncio.create_task(self._read(connection), name="voicepipe reader")
        watchdog = asyncio.create_task(self._watch_session_update(), name="voicepipe session watchdog")
        controls = self._install_controls()
        try:
            await self.pipeline.start()
            await self._stopped.wait()
        finally:
            watchdog.cancel()
            self._remove_controls(controls)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await self.pipeline.end(self.stop_reason or "error")
            self._queue.put_nowait(_CLOSE)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2)
            writer.cancel()
            with contextlib.suppress(Exception):
                await connection.close(code=1000)

    async def _read(self, connection: Any) -> None:
        from azure.ai.voicelive.aio import ConnectionClosed, ConnectionError

        pipeline, ctx = self.pipeline, self.ctx
        while True:
            try:
                event = await connection.recv()
            except ConnectionClosed as exc:
                self.close_code = exc.code
                self.log.info("server_closed", code=exc.code, reason=exc.reason or None)
                self.request_stop("server_closed")
                return
            except ConnectionError as exc:
                self.log.warning("malformed_server_frame", error=str(exc))
                continue
            event_type = event.get("type")
            if event_type == "session.created":
                ctx.session_id = (event.get("session") or {}).get("id")
                _bind_session(ctx.session_id)
                self.log.info("session_created", session_id=ctx.session_id)
            elif event_type == "session.updated":
                ctx.session = dict(event.get("session") or {})
                self._session_ready.set()
            elif event_type == "error":
                error = event.get("error") or {}
                self.log.error("server_error", code=error.get("code"), message=error.get("message"), param=error.get("param"))
            pending = pipeline.dispatch(event)
            if pending:
                for plugin_name, awaitable in pending:
                    try:
                        await awaitable
                    except Exception as exc:
                        pipeline._plugin_failed(plugin_name, "voicepipe_event", event_type or "?", exc)

    async def _write(self, connection: Any) -> None:
        from azure.ai.voicelive.aio import ConnectionError

        client_event = self.pipeline.client_event
        while True:
            event = await self._queue.get()
            if event is _CLOSE:
                return
            client_event(event)
            try:
                await connection.send(event)
            except ConnectionError as exc:
                self.log.warning("send_failed", event_type=event.get("type"), error=str(exc))
                self.request_stop("server_closed")
                return

    async def _watch_session_update(self) -> None:
        timeout = float(self.profile.connection.get("session_timeout_s", DEFAULT_SESSION_TIMEOUT_S))
        try:
            await asyncio.wait_for(self._session_ready.wait(), timeout)
        except asyncio.TimeoutError:
            self.log.error(
                "no_session_updated",
                message=f"the server did not answer session.update within {timeout:g} s",
                hint="raise connection.session_timeout_s if the service is slow",
            )
            self.request_stop("error")

    @contextlib.asynccontextmanager
    async def _endpoint(self, target: Target) -> AsyncIterator[str]:
        if not target.is_emulator:
            yield target.endpoint
            return
        from voicepipe.emulator import Emulator

        scenario = target.emulator.get("scenario")
        if scenario is not None:
            scenario = str(self.profile.base_dir / scenario)
        emulator = Emulator(scenario, speed=float(target.emulator.get("speed", 1.0)))
        async with emulator:
            yield emulator.url

    # -- stop controls ---------------------------------------------------------------------------

    def _install_controls(self) -> list:
        loop = asyncio.get_running_loop()
        installed: list = []
        if self.duration:
            installed.append(("timer", loop.call_later(float(self.duration), self.request_stop, "duration")))
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(("signal", sig))
        if self.watch_stdin and _stdin_kind() in ("tty", "pipe"):
            with contextlib.suppress(Exception):
                loop.add_reader(sys.stdin.fileno(), self._on_stdin)
                installed.append(("reader", sys.stdin.fileno()))
        return installed

    def _remove_controls(self, installed: list) -> None:
        loop = asyncio.get_running_loop()
        for kind, value in installed:
            with contextlib.suppress(Exception):
                if kind == "timer":
                    value.cancel()
                elif kind == "signal":
                    loop.remove_signal_handler(value)
                elif kind == "reader":
                    loop.remove_reader(value)

    def _on_signal(self, sig: int) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            # files are flushed line by line, so leaving at once loses nothing already written
            os._exit(130)
        self.request_stop("user")

    def _on_stdin(self) -> None:
        line = sys.stdin.readline()
        if line == "":  # end of input from a pipe
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            self.request_stop("user")
        elif line.strip().lower() in ("q", "quit", "exit"):
            self.request_stop("user")


def _stdin_kind() -> str:
    try:
        if sys.stdin is None or sys.stdin.closed:
            return "none"
        if sys.stdin.isatty():
            return "tty"
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return "none"
    return "pipe" if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else "other"


def _bind_session(session_id: Optional[str]) -> None:
    try:
        from voicepipe.logsetup import bind_session
    except ImportError:
        return
    bind_session(session_id=session_id)
