"""Running ``voicepipe serve``: the host and guard built from the options, and one process serving
them with its own signal handling (``--workers N`` runs N of these under gunicorn instead:
:mod:`voicepipe.serve.workers`).

Signals: the first SIGTERM or Ctrl+C drains (``/readyz`` turns 503, callers are refused with
"shutting down", sessions in progress run up to ``serve.drain_timeout_s``, then end with complete
files); a second one ends the sessions at once (their end hooks still run, for up to
:data:`END_NOW_TIMEOUT_S`) and the process exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from voicepipe.errors import UsageError
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import SessionHost

#: after a second signal, how long sessions get to run their end hooks
END_NOW_TIMEOUT_S = 5.0
EXIT_INTERRUPTED = 130


@dataclass
class ServeOptions:
    """What ``voicepipe serve`` was asked for."""

    profiles: list
    overrides: list = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_dir: Optional[str] = None
    max_sessions: Optional[int] = None


def make_host(options: ServeOptions, log: Any, *, metrics: bool = True) -> tuple[SessionHost, Guard]:
    """Load and check every profile, then the host and its guard; any problem is a usage error
    (a profile, a credential, a missing token) before anything listens."""
    from voicepipe.connection import resolve_target
    from voicepipe.serve.app import load_served

    served = load_served(options.profiles, options.overrides)
    for profile in served:
        resolve_target(profile.profile)
    host = SessionHost(
        served,
        log=log,
        log_dir=options.log_dir,
        max_sessions=options.max_sessions,
        drain_timeout_s=max(s.settings.drain_timeout_s for s in served),
    )
    guard = Guard(host)
    if metrics:
        from voicepipe.serve.metrics import open_metrics

        host.metrics = open_metrics(host.profiles, host.max_sessions)
    return host, guard


def describe(host: SessionHost, guard: Guard, bind: str, port: int) -> list[str]:
    """The lines ``voicepipe serve`` prints once it listens: where each profile is, who may call."""
    shown = f"[{bind}]" if ":" in bind else bind
    lines = []
    for name, served in host.profiles.items():
        if name in guard.open_profiles:
            why = "serve.auth: none" if served.settings.auth == "none" else "emulator, no token set"
            who = f"anyone may call: {why}"
        else:
            who = f"callers present the token in {served.settings.token_env}"
        lines.append(f"serving {served.profile.path} at http://{shown}:{port}/{name}/ ({who})")
    lines.append(f"health: http://{shown}:{port}/healthz /readyz /metrics; SIGTERM or Ctrl+C drains, twice ends at once")
    if guard.metrics_token_env:
        lines.append(f"/metrics needs 'Authorization: Bearer <token>' with the token in {guard.metrics_token_env}")
    else:
        lines.append("/metrics is open to anyone who reaches this port (session counts, latency): set "
                     "serve.metrics_token_env to require a bearer token, or keep the port private")
    return lines


def cannot_listen(host: str, port: int, exc: OSError) -> UsageError:
    return UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --host/--port)")


async def serve(host: SessionHost, guard: Guard, bind: str, port: int, announce: Callable[[int], None]) -> int:
    """Serve until signalled; the exit code (0 drained, 130 ended at once by a second signal)."""
    from aiohttp import web

    from voicepipe.serve.app import build_app

    app = build_app(host, guard)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=END_NOW_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bind, port)
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen(bind, port, exc) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        announce(sockets[0].getsockname()[1] if sockets else port)
        return await _until_signalled(host)
    finally:
        await runner.cleanup()


async def _until_signalled(host: SessionHost) -> int:
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue = asyncio.Queue()
    handled = (signal.SIGINT, signal.SIGTERM)
    for signum in handled:
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    try:
        first = await signals.get()
        host.log.info("serve_stopping", signal=signal.Signals(first).name, sessions=len(host.sessions),
                      drain_timeout_s=host.drain_timeout_s)
        drain = asyncio.ensure_future(host.drain())
        second = asyncio.ensure_future(signals.get())
        await asyncio.wait({drain, second}, return_when=asyncio.FIRST_COMPLETED)
        if drain.done():
            second.cancel()
            drain.result()
            return 0
        host.log.warning("serve_ending_now", sessions=len(host.sessions))
        host.end_all("server_stopped")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(drain), END_NOW_TIMEOUT_S)
        if not drain.done():
            drain.cancel()
        return EXIT_INTERRUPTED
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stdout)
    sys.stdout.flush()
