"""One live session: connect, configure, dispatch every server event to the plugins, stop cleanly.

Three tasks share the connection: the reader dispatches server events in arrival order, the writer
sends client events from one ordered queue, and the session waits for a reason to stop (a signal,
``q`` + Enter, the ``--duration``, a plugin's ``ctx.stop``, the server closing). However the session
ends, ``voicepipe_session_end`` runs exactly once and the connection is closed with code 1000.

A connection that drops without a stop being asked for (any close but 1000, a lost network) is
opened again within ``connection.reconnect``'s bounds (see :mod:`voicepipe.reconnect`): the plugins
are told, the session configuration is sent again and the conversation re-seeded, and the plugins
carry on across the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Optional, Sequence

from voicepipe import diskwrite
from voicepipe.clientevents import AudioAppend, FrameSender
from voicepipe.connection import Target, connect, open_credential, resolve_target
from voicepipe.errors import SessionError, UsageError
from voicepipe.eventshape import malformed
from voicepipe.heap import freeze_startup_heap
from voicepipe.pipeline import Pipeline, event_fields
from voicepipe.reconnect import AttemptBudget, AudioGap, ReconnectPolicy, seed_events
from voicepipe.serverbounds import bounded_session
from voicepipe.serverevents import INCOMING_TOO_BIG, receive

if TYPE_CHECKING:
    from voicepipe.plugins import VoicepipePluginManager
    from voicepipe.profile.model import Profile

DEFAULT_SESSION_TIMEOUT_S = 15.0
#: the longest line typed at the terminal that is sent as a message (longer ones are dropped)
MAX_TYPED_BYTES = 4096
#: a response in progress with no server event for this long is a lost connection
DEFAULT_RESPONSE_TIMEOUT_S = 30.0
DEFAULT_INPUT_RATE = 24000
_CLOSE = object()
_OVERLONG = b"\x00overlong"
#: stop reasons that end the process with exit code 0
CLEAN_REASONS = {"user", "duration", "input_finished", "server_closed", "replay_finished", "caller_hung_up", "server_draining"}


class _Link:
    """One WebSocket connection and the tasks that serve it."""

    def __init__(self, connection: Any, stack: contextlib.AsyncExitStack):
        self.connection = connection
        self.sender = FrameSender(connection)
        self.stack = stack
        self.queue: asyncio.Queue = asyncio.Queue()
        self.ready = asyncio.Event()  # session.updated received
        self.writer: Optional[asyncio.Task] = None
        self.reader: Optional[asyncio.Task] = None
        self.watchdog: Optional[asyncio.Task] = None
        self.stall_watch: Optional[asyncio.Task] = None
        self.responding = False  # a response.created without its response.done yet
        self.last_event_at = 0.0  # loop time of the last server event

    def forget_tasks(self) -> None:
        """Once the link is torn down: a cancelled task keeps its exception, whose traceback holds
        the task's frame, which holds this link (a cycle that would keep the connection for a full
        garbage collection)."""
        self.writer = self.reader = self.watchdog = self.stall_watch = None


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
        transport: Any = None,
        on_connected: Optional[Callable[[], None]] = None,
    ):
        self.profile = profile
        self.on_connected = on_connected
        self.log = log
        self.duration = duration if duration is not None else profile.runtime.get("duration_s")
        self.handle_signals = handle_signals
        self.watch_stdin = watch_stdin
        self.policy = ReconnectPolicy.from_profile(profile)
        self._budget = AttemptBudget(self.policy)
        self.pipeline = Pipeline(
            profile, pm, run_dir, log, send=self._enqueue, stop=self.request_stop, transport=transport
        )
        self.ctx = self.pipeline.ctx
        self.stop_reason: Optional[str] = None
        self.close_code: Optional[int] = None
        #: how many times the connection was opened again after a drop
        self.reconnects = 0
        #: whether a connection was ever open
        self.connected = False
        self._link: Optional[_Link] = None
        self._gap: Optional[AudioGap] = None  # set while disconnected
        self._dropped_events: dict[str, int] = {}
        self._drop: Optional[tuple[Optional[int], Optional[str]]] = None
        self._failure = ""  # why the session failed, for the one-line error
        self._write_failure: Optional[str] = None  # a run-folder write the disk refused
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.ctx._on_write_failure = self._write_failed
        self._session_update: dict = {}
        self._malformed = RepeatedWarning(self.log)
        self._stop_requested = asyncio.Event()
        self._wake = asyncio.Event()  # a stop was asked for, or the connection dropped
        self._interrupts = 0
        self._stdin_partial = b""

    # -- what plugins and controls call ----------------------------------------------------------

    def _enqueue(self, event: Any) -> None:
        """``ctx.send``: queue ``event``. One that cannot be sent as JSON raises ``TypeError`` here,
        in the plugin that sent it, instead of failing the connection when its turn to leave comes."""
        if type(event) is not AudioAppend:  # the audio plugin's appends: the hot path, sendable by make
            if type(event) is not dict:  # isinstance(x, typing.Mapping) is slow
                if not isinstance(event, Mapping):
                    event = event.as_dict()  # an SDK ClientEvent model
                elif not isinstance(event, dict):
                    event = dict(event)
            if event.get("type") != "input_audio_buffer.append" or not _all_text(event):
                check_sendable(event)  # other appends that are all text skip this too
        link = self._link
        if link is not None:
            link.queue.put_nowait(event)
        elif self._gap is not None and event.get("type") == "input_audio_buffer.append":
            self._gap.add(event)
        else:
            event_type = str(event.get("type"))
            self._dropped_events[event_type] = self._dropped_events.get(event_type, 0) + 1

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.log.info("stopping", reason=reason)
        self._stop_requested.set()
        self._wake.set()

    def _write_failed(self, exc: OSError) -> None:
        """The disk refused a write to the run folder: end the session now, as a failure."""
        if self._write_failure is not None:
            return
        self._write_failure = self._failure = (
            f"{diskwrite.describe(exc)} in the run folder {self.ctx.run_dir}; the session was ended "
            "(free space on that disk, or choose another logging.dir or --log-dir)"
        )
        self.log.info("run_folder_write_failed", error=diskwrite.describe(exc))
        self.request_stop("error")

    def _write_failed_anywhere(self, exc: OSError) -> None:
        """:meth:`_write_failed` for the technical log, which may be written from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._write_failed(exc)
        else:
            loop.call_soon_threadsafe(self._write_failed, exc)

    def _connection_dropped(self, code: Optional[int], reason: Optional[str]) -> None:
        if self._drop is None and not self._stop_requested.is_set():
            self._drop = (code, reason)
            self._wake.set()

    # -- the session -----------------------------------------------------------------------------

    async def run(self) -> int:
        _new_log_scope()
        self._loop = asyncio.get_running_loop()
        stop_listening = diskwrite.listen(self._write_failed_anywhere)
        try:
            return await self._run()
        finally:
            stop_listening()
            self.pipeline.release()

    async def _run(self) -> int:
        from voicepipe.profile import build_request_session

        target = resolve_target(self.profile)
        session = build_request_session(self.profile)
        self.pipeline.call("voicepipe_session_config", "session_config", profile=self.profile, session=session)
        self._session_update = {"type": "session.update", "session": session.as_dict()}
        # from here on: a signal while the emulator starts or the connection opens is a stop too
        controls = self._install_controls()
        try:
            await self.pipeline.prepare()
            if self.ctx.usage_failure:  # a local problem: no connection is made
                self.stop_reason = "error"
                await self.pipeline.end("error")
                raise UsageError(self.ctx.usage_failure)
            async with self._endpoint(target) as endpoint_url, open_credential(target) as credential:
                self.log.info("connecting", target=target.describe())

                async def reopen() -> _Link:
                    return await self._open_link(target, endpoint_url, credential)

                opening = asyncio.ensure_future(reopen())
                if await self._unless_stopped(opening):
                    await self._converse(opening.result(), reopen, target)
                else:  # stopped before the connection opened: the end hooks run all the same
                    await self.pipeline.end(self.stop_reason or "user")
        except BaseException:
            self.stop_reason = self.stop_reason or "error"
            await self.pipeline.end("error")
            raise
        finally:
            # only now: a second Ctrl+C during the end hooks must still leave at once
            self._remove_controls(controls)
        if self._write_failure is not None:
            raise SessionError(self._write_failure)
        if self.ctx.usage_failure:
            raise UsageError(self.ctx.usage_failure)
        if self.stop_reason in ("connection_lost", "error") and self._failure:
            raise SessionError(self._failure)
        if self.stop_reason == "server_closed" and self.close_code not in (None, 1000):
            raise SessionError(f"the server closed the connection (code {self.close_code})")
        return 0 if self.stop_reason in CLEAN_REASONS else 1

    async def _open_link(self, target: Target, endpoint_url: str, credential: Any) -> _Link:
        stack = contextlib.AsyncExitStack()
        try:
            connection = await stack.enter_async_context(connect(target, endpoint_url, credential))
        except BaseException:
            await stack.aclose()
            raise
        return _Link(connection, stack)

    async def _converse(self, link: _Link, reopen: Any, target: Target) -> None:
        timer = self._install_timer()
        current: Optional[_Link] = link
        try:
            self._attach(link)
            self.connected = True
            self.log.info("connected", target=target.describe())
            if self.on_connected is not None:
                self.on_connected()
            await self.pipeline.start()
            while current is not None:
                await self._wake.wait()
                self._wake.clear()
                if self._stop_requested.is_set() or self._drop is None:
                    break
                code, reason = self._drop
                self._drop = None
                current = await self._recover(current, code, reason, reopen)
        finally:
            self._remove_controls(timer)
            await self._finish(current)

    def _attach(self, link: _Link, seeds: Sequence[dict] = ()) -> None:
        """Make ``link`` the connection: configure the session, re-seed, send what the gap kept."""
        link.writer = asyncio.create_task(self._write(link), name="voicepipe writer")
        link.queue.put_nowait(self._session_update)
        for event in seeds:
            link.queue.put_nowait(event)
        if self._gap is not None:
            for event in self._gap.take():
                link.queue.put_nowait(event)
        self._gap = None
        self._link = link
        link.reader = asyncio.create_task(self._read(link), name="voicepipe reader")
        link.watchdog = asyncio.create_task(self._watch_session_update(link), name="voicepipe session watchdog")
        link.stall_watch = asyncio.create_task(self._watch_response(link), name="voicepipe response watchdog")

    async def _recover(self, lost: _Link, code: Optional[int], reason: Optional[str], reopen: Any) -> Optional[_Link]:
        """Connect again after a drop; the new link, or ``None`` when the session is to end.

        A new connection counts as recovered once the service has answered ``session.update``;
        one that drops before that is a failed attempt like a refused one.
        """
        attempts = self.policy.attempts
        loop = asyncio.get_running_loop()
        attempt = self._budget.take(loop.time()) if attempts > 0 else 0
        await self._lose(lost, code, reason, reconnecting=attempt > 0)
        if attempts == 0:
            self.close_code = code
            self.request_stop("server_closed")
            return None
        lost_at = loop.time()
        last_error = _describe_close(code, reason)
        while attempt > 0:
            delay = self.policy.delay(attempt)
            self.log.info("reconnecting", attempt=attempt, attempts=attempts, delay_s=round(delay, 2))
            if await self._stop_within(delay):
                return None
            opening = asyncio.ensure_future(reopen())
            if not await self._unless_stopped(opening):
                return None
            error = opening.exception()
            if isinstance(error, SessionError):
                last_error = str(error)
                self.log.warning("reconnect_failed", attempt=attempt, error=last_error)
                attempt = self._budget.take(loop.time())
                continue
            if error is not None:
                raise error
            link = self._resume(opening.result(), attempt, loop.time() - lost_at)
            await self._unless_stopped(asyncio.ensure_future(_first_of(link.ready, self._wake)))
            if link.ready.is_set() or self._stop_requested.is_set() or self._drop is None:
                return link
            self._wake.clear()
            code, reason = self._drop
            self._drop = None
            last_error = f"the new connection closed before the session was configured ({_describe_close(code, reason)})"
            self.log.warning("reconnect_failed", attempt=attempt, error=last_error)
            attempt = self._budget.take(loop.time())
            await self._lose(link, code, reason, reconnecting=attempt > 0)
        self.close_code = code
        window = f"{self.policy.window_s:g} s"
        self._failure = (
            f"the connection was lost and {attempts} reconnect attempt(s) within {window} did not keep it; "
            f"last: {last_error} (raise connection.reconnect.attempts to keep trying longer)"
        )
        self.log.error("reconnect_gave_up", attempts=attempts, window_s=self.policy.window_s, error=last_error)
        self.request_stop("connection_lost")
        return None

    async def _lose(self, link: _Link, code: Optional[int], reason: Optional[str], *, reconnecting: bool) -> None:
        """Forget a dropped link, start buffering, and tell the plugins."""
        self.log.warning("connection_lost", code=code, reason=reason or None, reconnecting=reconnecting)
        rate = int((self.ctx.session or {}).get("input_audio_sampling_rate") or DEFAULT_INPUT_RATE)
        self._link = None
        self._gap = AudioGap(self.policy.buffer_audio_s, rate)
        self._dropped_events = {}
        await self._discard(link)
        self.pipeline.call(
            "voicepipe_disconnected", "disconnected", ctx=self.ctx, code=code, reason=reason, reconnecting=reconnecting
        )

    async def _unless_stopped(self, task: asyncio.Future) -> bool:
        """Wait for ``task``; if a stop is asked for first, cancel it and return ``False``."""
        stopping = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return True
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False

    def _resume(self, link: _Link, attempts: int, gap_s: float) -> _Link:
        self.reconnects += 1
        history = self.pipeline.first_result("voicepipe_history", "history", ctx=self.ctx) or []
        seeds = seed_events(history, self.policy, self.reconnects)
        gap = self._gap
        buffered_s = gap.kept_s if gap is not None else 0.0
        if gap is not None:
            self.log.info("audio_gap", kept_s=round(buffered_s, 3), dropped_s=round(gap.dropped_s, 3))
        if self._dropped_events:
            self.log.warning("events_dropped_while_disconnected", counts=dict(self._dropped_events))
        self._attach(link, seeds)
        self.log.info("reconnected", attempts=attempts, gap_s=round(gap_s, 3), seeded_items=len(seeds))
        self.pipeline.call(
            "voicepipe_reconnected",
            "reconnected",
            ctx=self.ctx,
            attempts=attempts,
            gap_s=gap_s,
            seeded_item_ids=[event["item"]["id"] for event in seeds],
            buffered_audio_s=buffered_s,
        )
        return link

    async def _stop_within(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` as soon as a stop is asked for."""
        try:
            await asyncio.wait_for(self._stop_requested.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _discard(self, link: _Link) -> None:
        """Tear down a link that has dropped: its tasks, its socket, its unsent events."""
        for task in (link.reader, link.writer, link.watchdog, link.stall_watch):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        while not link.queue.empty():
            self._enqueue(link.queue.get_nowait())
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(link.stack.aclose(), 2)
        link.forget_tasks()

    async def _finish(self, link: Optional[_Link]) -> None:
        """End the session: stop reading, run the end hooks, send what they queued, close with 1000."""
        if link is not None:
            for task in (link.watchdog, link.stall_watch):
                if task is not None:
                    task.cancel()
        if link is not None and link.reader is not None:
            link.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.reader
        self._malformed.summary()
        if self.stop_reason in ("connection_lost", "error"):
            self.ctx.end_message = self.ctx.usage_failure or self._failure or None
        await self.pipeline.end(self.stop_reason or "error")
        if link is None:
            return
        link.queue.put_nowait(_CLOSE)
        if link.writer is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(link.writer, 2)
            link.writer.cancel()
        self._link = None
        with contextlib.suppress(Exception):
            await link.connection.close(code=1000)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(link.stack.aclose(), 5)
        link.forget_tasks()

    async def _read(self, link: _Link) -> None:
        from azure.ai.voicelive.aio import ConnectionClosed, ConnectionError

        pipeline, ctx, connection = self.pipeline, self.ctx, link.connection
        clock = asyncio.get_running_loop().time
        while True:
            try:
                event = await receive(connection)  # connection.recv(), for less CPU per frame
                link.last_event_at = clock()
            except ConnectionClosed as exc:
                self.log.info("server_closed", code=exc.code, reason=exc.reason or None)
                if exc.code == 1000:
                    self.close_code = exc.code
                    self.request_stop("server_closed")
                elif exc.code == 1009:  # the same message would be too big again: not transient
                    self._message_too_big(exc.reason or "")
                else:
                    self._connection_dropped(exc.code, exc.reason or None)
                return
            except ConnectionError as exc:
                if _is_malformed_frame(exc):
                    self._malformed.warn("malformed_server_frame", error=str(exc)[:200])
                    continue
                self._connection_dropped(None, str(exc))
                return
            except RecursionError:  # a frame nested too deeply for the SDK to take apart
                self._malformed.warn("malformed_server_frame", error="nested too deeply")
                continue
            problem = malformed(event)
            if problem is not None:
                self._malformed.warn("malformed_server_event", event_type=str(event.get("type"))[:80], problem=problem)
                continue
            event_type = event_fields(event).get("type")
            if event_type == "session.created":
                ctx.session_id = (event.get("session") or {}).get("id")
                _bind_session(ctx.session_id)
                self.log.info("session_created", session_id=ctx.session_id)
            elif event_type == "session.updated":
                ctx.session = bounded_session(event, self._session_update.get("session") or {}, self.log)
                link.ready.set()
            elif event_type == "response.created":
                link.responding = True
            elif event_type == "response.done":
                link.responding = False
            elif event_type == "error":
                error = event.get("error") or {}
                self.log.error("server_error", code=error.get("code"), message=error.get("message"), param=error.get("param"))
            pending = pipeline.dispatch(event)
            if pending:
                await pipeline.await_results(pending, "voicepipe_event", event_type or "?")

    def _message_too_big(self, reason: str) -> None:
        self.close_code = 1009
        if reason == INCOMING_TOO_BIG:
            what = "the server sent a message larger than the client accepts (4 MiB, the SDK's limit)"
        else:
            what = "the server closed the connection because a message was too big (close code 1009" + (
                f": {reason})" if reason else ")")
        self._failure = self._failure or (
            f"{what}; reconnecting would not help (check what is sent: a tool output, instructions or "
            "history larger than the service takes)"
        )
        self.log.error("message_too_big", reason=reason or None)
        self.request_stop("error")

    async def _write(self, link: _Link) -> None:
        from azure.ai.voicelive.aio import ConnectionError

        freeze_startup_heap()  # the first connection is open: what is alive now is here for good
        client_event = self.pipeline.client_event
        send = link.sender.send  # connection.send, or the append's frame as text (clientevents)
        while True:
            event = await link.queue.get()
            if event is _CLOSE:
                return
            client_event(event)
            try:
                await send(event)
            except ConnectionError as exc:
                if isinstance(exc.__cause__, (TypeError, ValueError, RecursionError)):
                    # the event, not the connection (a plugin changed it after ctx.send checked it)
                    self.log.error("client_event_not_sent", event_type=str(event.get("type")), error=str(exc))
                    continue
                self.log.warning("send_failed", event_type=event.get("type"), error=str(exc))
                self._connection_dropped(None, str(exc))
                return

    async def _watch_session_update(self, link: _Link) -> None:
        timeout = float(self.profile.connection.get("session_timeout_s", DEFAULT_SESSION_TIMEOUT_S))
        try:
            await asyncio.wait_for(link.ready.wait(), timeout)
        except asyncio.TimeoutError:
            message = f"the server did not answer session.update within {timeout:g} s"
            hint = "raise connection.session_timeout_s if the service is slow"
            self.log.error("no_session_updated", message=message, hint=hint)
            self._failure = self._failure or f"{message} ({hint})"
            self.request_stop("error")

    async def _watch_response(self, link: _Link) -> None:
        """A response in progress from which nothing arrives for ``connection.response_timeout_s``
        is a lost connection (a server can stall while still answering pings)."""
        timeout = float(self.profile.connection.get("response_timeout_s", DEFAULT_RESPONSE_TIMEOUT_S))
        loop = asyncio.get_running_loop()
        while True:
            silent = loop.time() - link.last_event_at
            if link.responding and silent >= timeout:
                message = f"nothing arrived for {timeout:g} s during a response"
                self.log.warning("response_stalled", message=message,
                                 hint="raise connection.response_timeout_s if the service is this slow")
                self._connection_dropped(None, message)
                return
            await asyncio.sleep(timeout - silent if link.responding and silent < timeout else timeout / 4)

    @contextlib.asynccontextmanager
    async def _endpoint(self, target: Target) -> AsyncIterator[str]:
        if not target.is_emulator:
            yield target.endpoint
            return
        from voicepipe.emulator import Emulator

        scenario = target.emulator.get("scenario")
        if scenario is not None:
            scenario = str(self.profile.dir_of("connection", "emulator", "scenario") / scenario)
        emulator = Emulator(scenario, speed=target.emulator.get("speed"), burst_ms=target.emulator.get("burst_ms"))
        async with emulator:
            yield emulator.url

    # -- stop controls ---------------------------------------------------------------------------

    def _install_timer(self) -> list:
        """The ``--duration`` timer, counted from the connection being open."""
        if not self.duration:
            return []
        return [("timer", asyncio.get_running_loop().call_later(float(self.duration), self.request_stop, "duration"))]

    def _install_controls(self) -> list:
        """Signals and ``q`` + Enter: installed before connecting, so a stop while connecting is heard."""
        loop = asyncio.get_running_loop()
        installed: list = []
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
            # files are written line by line, so leaving at once loses nothing already written
            # (but the recorder's last fraction of a second of microphone-append lines)
            os._exit(130)
        self.request_stop("user")

    def _on_stdin(self) -> None:
        # the raw descriptor, not sys.stdin: its buffer would hide lines that arrived together
        fd = sys.stdin.fileno()
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # end of input from a pipe
            asyncio.get_running_loop().remove_reader(fd)
            self.request_stop("user")
            return
        *lines, partial = (self._stdin_partial + data).split(b"\n")
        # an overlong line is dropped whole: its rest arrives marked, and is dropped too
        self._stdin_partial = partial if len(partial) <= MAX_TYPED_BYTES else _OVERLONG
        for line in lines:
            if line.startswith(_OVERLONG):
                continue
            typed = line.strip()
            if typed.lower() in (b"q", b"quit", b"exit"):
                self.request_stop("user")
                return
            if typed and len(typed) <= MAX_TYPED_BYTES:
                self._say(typed.decode("utf-8", "replace"))

    def _say(self, text: str) -> None:
        """A line typed at the terminal: a user message, then an answer to it."""
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        self._enqueue({"type": "conversation.item.create", "item": item})
        self._enqueue({"type": "response.create"})


class RepeatedWarning:
    """Warnings a hostile peer could repeat without end (malformed frames): the first
    :attr:`FIRST` of each kind are logged, then one in :attr:`EVERY` with the count so far, and
    the total once at the end."""

    FIRST = 10
    EVERY = 1000

    def __init__(self, log: Any):
        self.log = log
        self.counts: dict[str, int] = {}

    def warn(self, event: str, **fields: Any) -> None:
        count = self.counts.get(event, 0) + 1
        self.counts[event] = count
        if count <= self.FIRST:
            self.log.warning(event, **fields)
        elif count % self.EVERY == 0:
            self.log.warning(event, repeated=count, **fields)

    def summary(self) -> None:
        for event, count in self.counts.items():
            if count > self.FIRST:
                self.log.warning(f"{event}s_total", count=count, logged=self.FIRST + count // self.EVERY)


def _all_text(event: dict) -> bool:
    for value in event.values():
        if type(value) is not str:
            return False
    return True


def check_sendable(event: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` naming the event type when ``event`` cannot be sent as JSON (a value
    JSON has no form for, NaN or infinity, a cycle, nesting too deep for the encoder)."""
    import json

    try:
        json.dumps(event, default=_sdk_default(), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        kind = event.get("type")
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise TypeError(f"ctx.send: the {kind!r} event cannot be sent as JSON: {problem}") from None


@functools.lru_cache(maxsize=None)
def _sdk_default() -> Any:
    """The SDK's encoder for the SDK models a client event may hold (its send uses the same)."""
    try:
        from azure.ai.voicelive.aio._patch import _json_default
    except ImportError:  # a later SDK: then only plain JSON values are known to be sendable
        return None
    return _json_default


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


async def _first_of(*events: asyncio.Event) -> None:
    """Return when any of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _describe_close(code: Optional[int], reason: Optional[str]) -> str:
    if code is not None:
        return f"close code {code}" + (f": {reason}" if reason else "")
    return reason or "connection lost"


def _is_malformed_frame(exc: BaseException) -> bool:
    """The SDK raises its ConnectionError for a frame it cannot parse (the socket is still fine)
    and for failures of the socket itself."""
    return str(exc).startswith("Failed to parse message")


def _new_log_scope() -> None:
    """Give this session its own session id / turn tags in the log (sessions may share a process)."""
    try:
        from voicepipe.logsetup import session_scope
    except ImportError:
        return
    session_scope()


def _bind_session(session_id: Optional[str]) -> None:
    try:
        from voicepipe.logsetup import bind_session
    except ImportError:
        return
    bind_session(session_id=session_id)
