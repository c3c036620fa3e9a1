"""The sessions one serving process runs: admission, one session per caller, drain.

:class:`SessionHost` holds the served profiles (each loaded, validated and with its plugins imported
once, at start) and the sessions in progress. A route that accepted a caller's media connection
calls :meth:`SessionHost.run_session` with a :class:`voicepipe.serve.transport.Transport`; the
session then runs exactly as ``voicepipe run`` would (its own plugin manager, run folder,
transcript, events, metrics and log file), with the caller's connection as its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from voicepipe.errors import VoicepipeError
from voicepipe.serve.settings import DEFAULT_DRAIN_TIMEOUT_S, DEFAULT_MAX_SESSIONS, ServeSettings

if TYPE_CHECKING:
    from voicepipe.plugins import PluginSet
    from voicepipe.profile.model import Profile
    from voicepipe.runtime import SessionRunner
    from voicepipe.serve.transport import Transport

__all__ = ["DEFAULT_DRAIN_TIMEOUT_S", "DEFAULT_MAX_SESSIONS", "LiveSession", "ServedProfile", "SessionHost"]


@dataclass
class ServedProfile:
    """A profile as the server offers it, at ``/<name>/``."""

    name: str
    profile: Profile
    plugins: PluginSet
    #: the transports its callers may use (``web``, ``acs``, ``twilio``)
    transports: frozenset
    max_sessions: int = DEFAULT_MAX_SESSIONS
    active: int = 0
    #: its ``serve:`` section (read from the profile when not given)
    settings: Optional[ServeSettings] = None

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = ServeSettings.of(self.profile)
            if "max_sessions" in self.profile.section("serve"):
                self.max_sessions = self.settings.max_sessions


@dataclass
class LiveSession:
    """A session in progress."""

    number: int
    served: ServedProfile
    transport: Transport
    runner: Optional[SessionRunner] = None
    run_dir: Optional[Path] = None


@dataclass
class HostCounters:
    """What ``/metrics`` reports of the sessions."""

    started: int = 0
    ended: dict = field(default_factory=dict)  # reason -> count
    refused: dict = field(default_factory=dict)  # reason -> count


class SessionHost:
    """Admits callers within the limits and runs their sessions."""

    def __init__(
        self,
        profiles: list[ServedProfile],
        *,
        log: Any,
        log_dir: Optional[str] = None,
        max_sessions: Optional[int] = None,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
        metrics: Any = None,
    ):
        self.profiles = {served.name: served for served in profiles}
        self.log = log
        self.log_dir = log_dir
        self.max_sessions = max_sessions if max_sessions is not None else sum(p.max_sessions for p in profiles)
        self.drain_timeout_s = drain_timeout_s
        self.sessions: dict[int, LiveSession] = {}
        self.counters = HostCounters()
        #: a :class:`voicepipe.serve.metrics.ServeMetrics`, or None (``/metrics`` then has nothing)
        self.metrics = metrics
        self.accepting = True
        self._numbers = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    # -- admission -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether a new caller would be admitted: not draining and below capacity."""
        return self.accepting and len(self.sessions) < self.max_sessions

    def refusal(self, served: ServedProfile) -> Optional[str]:
        """Why a new caller of ``served`` would be refused now, or ``None``."""
        if not self.accepting:
            return "the server is shutting down; try again in a moment"
        if len(self.sessions) >= self.max_sessions or served.active >= served.max_sessions:
            return "all lines are busy; try again in a moment"
        return None

    def refused(self, reason: str, profile: Optional[str] = None) -> None:
        """Count a refusal (``capacity``, ``draining``, ``origin``, ``unauthorized``, ...)."""
        self.counters.refused[reason] = self.counters.refused.get(reason, 0) + 1
        if self.metrics is not None:
            self.metrics.refused(profile or "", reason)

    # -- sessions ------------------------------------------------------------------------------

    async def run_session(self, served: ServedProfile, transport: Transport) -> int:
        """Run one session of ``served`` with ``transport`` as its audio; the exit code."""
        from voicepipe.logsetup import get_logger, session_log_file
        from voicepipe.plugins import configure_plugins, release_plugin_manager
        from voicepipe.rundir import make_run_dir
        from voicepipe.runtime import SessionRunner

        live = LiveSession(next(self._numbers), served, transport)
        self.sessions[live.number] = live
        served.active += 1
        self._idle.clear()
        self.counters.started += 1
        if self.metrics is not None:
            self.metrics.session_started(served.name)
        reason = "error"
        pm = None
        try:
            pm = served.plugins.manager()
            if transport.plugin is not None:
                pm.add(transport.plugin, f"{transport.kind}-transport", "voicepipe serve")
            if self.metrics is not None:
                pm.add(self.metrics.session_plugin(), "serve-metrics", "voicepipe serve")
            configure_plugins(pm, served.profile)
            live.run_dir = make_run_dir(served.profile, base=self.log_dir)
            settings = served.profile.logging
            with session_log_file(live.run_dir, settings.get("file_level", "DEBUG")):
                runner = live.runner = SessionRunner(
                    served.profile, pm, live.run_dir, get_logger(), transport=transport
                )
                self.log.info("session_started", profile=served.name, transport=transport.kind, run_dir=str(live.run_dir))
                code = await self._converse(runner, transport)
                reason = runner.stop_reason or "error"
                return code
        except VoicepipeError as exc:
            self.log.error("session_failed", profile=served.name, error=str(exc))
            return exc.exit_code
        finally:
            with contextlib.suppress(Exception):
                await transport.close(reason)
            if pm is not None:
                release_plugin_manager(pm)
            served.active -= 1
            del self.sessions[live.number]
            self.counters.ended[reason] = self.counters.ended.get(reason, 0) + 1
            if self.metrics is not None:
                self.metrics.session_ended(served.name, reason)
            self.log.info("session_ended", profile=served.name, reason=reason, run_dir=str(live.run_dir))
            if not self.sessions:
                self._idle.set()

    async def serve_caller(self, served: ServedProfile, transport: Transport) -> int:
        """:meth:`run_session` for a request handler: the session is shielded from the handler's
        cancellation. aiohttp cancels a handler whose connection is lost (its test server always,
        a server run with ``handler_cancellation=True``, and every handler at shutdown); the session
        still ends the way the call did (the caller's socket is gone: ``caller_hung_up``) with
        complete files, and the cancellation is passed on afterwards."""
        session = asyncio.ensure_future(self.run_session(served, transport))
        try:
            return await asyncio.shield(session)
        except asyncio.CancelledError:
            if not session.done():
                with contextlib.suppress(BaseException):
                    await session
            raise

    async def _converse(self, runner: SessionRunner, transport: Transport) -> int:
        """The session and the caller's connection side by side: when the caller hangs up the
        session ends; when the session ends the connection is closed."""
        session = asyncio.ensure_future(runner.run())
        caller = asyncio.ensure_future(transport.run())
        try:
            await asyncio.wait({session, caller}, return_when=asyncio.FIRST_COMPLETED)
            if caller.done() and not session.done():
                why = caller.result() if not caller.cancelled() and caller.exception() is None else "caller_error"
                runner.request_stop(why or "caller_hung_up")
            return await session
        finally:
            if not caller.done():
                caller.cancel()
                with contextlib.suppress(BaseException):
                    await caller

    # -- draining ------------------------------------------------------------------------------

    async def drain(self, timeout_s: Optional[float] = None) -> None:
        """Stop admitting callers, let the sessions in progress run up to ``timeout_s``, then end
        the rest (their files complete) and wait for them."""
        self.accepting = False
        timeout = self.drain_timeout_s if timeout_s is None else timeout_s
        if self.sessions:
            self.log.info("draining", sessions=len(self.sessions), timeout_s=timeout)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        self.end_all("server_draining")
        await self._idle.wait()

    async def idle(self) -> None:
        """Wait until no session is in progress."""
        await self._idle.wait()

    def end_all(self, reason: str) -> None:
        """Ask every session in progress to end now."""
        for live in list(self.sessions.values()):
            if live.runner is not None:
                live.runner.request_stop(reason)
