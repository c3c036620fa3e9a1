"""``voicepipe serve --workers N``: N processes on one port under gunicorn (extra
``voicepipe-live[serve]``), each an aiohttp worker running its own :class:`SessionHost`.

gunicorn's master forks the workers and replaces one that dies. On Linux each worker listens on
the port with a socket of its own (gunicorn's ``reuse_port``: ``SO_REUSEPORT``) and the kernel
spreads connections over them by a hash of their addresses. On one socket shared by all, Linux
hands a connection to the worker that began waiting last, so the busiest worker takes most callers
until it is full ("Why does one NGINX worker take all the load?", Cloudflare, 2017): at 60
browser callers one worker had twice the other's share and stalled first. The master holds the
port bound, not listening, so that ``--port 0`` means one port for all and another server's
socket on it is a usage error, not a silent sharer.

SIGTERM to the master drains every worker (:class:`DrainingWorker`: ``/readyz``
503, then sessions run up to ``serve.drain_timeout_s``); Ctrl+C does the same, and a second Ctrl+C
(or SIGQUIT) ends the sessions at once. ``/metrics`` reads every worker's values from
``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless set), so any worker answers for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import sys
from typing import Any, Callable, Optional

from aiohttp.worker import GunicornWebWorker

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from voicepipe import eventloop
from voicepipe.serve.server import END_NOW_TIMEOUT_S, ServeOptions, cannot_listen, make_host

#: each worker listens with a socket of its own and the kernel spreads connections over them: Linux's
#: ``SO_REUSEPORT`` (BSD's and macOS's give a port's connections to one of the sockets)
SPREAD_BY_KERNEL = sys.platform.startswith("linux")

#: how much longer than the longest drain the master waits before it kills a worker
GRACE_MARGIN_S = 15.0


class DrainingWorker(GunicornWebWorker):
    """An aiohttp worker that drains its sessions before it stops."""

    host: Any = None
    _drain: Optional[asyncio.Task] = None
    _ending = False

    def init_process(self) -> None:
        """After the fork: ``GunicornWebWorker.init_process`` with the loop ``VOICEPIPE_LOOP``
        chooses (uvloop when installed) instead of asyncio's (no loop policy set: asyncio
        deprecates them)."""
        if eventloop.chosen() == "asyncio":
            return super().init_process()
        self.loop = eventloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        Worker.init_process(self)  # gunicorn's, which calls self.run()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        factory = self.wsgi

        async def application() -> Any:
            from voicepipe.serve.app import HOST_KEY

            app = await factory()
            self.host = app[HOST_KEY]
            return app

        self.wsgi = application

    def handle_exit(self, sig: int, frame: Any) -> None:  # SIGTERM
        if self.host is None:
            return super().handle_exit(sig, frame)
        self._drain_or_end()

    def handle_quit(self, sig: int, frame: Any) -> None:  # SIGINT drains like SIGTERM; SIGQUIT ends now
        if self.host is None:
            return super().handle_quit(sig, frame)
        if sig == signal.SIGINT:
            self._drain_or_end()
        else:
            self._end_now()

    def _drain_or_end(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_task(self._drain_then_stop())
        else:
            self._end_now()

    async def _drain_then_stop(self) -> None:
        await self.host.drain()
        self._stop()

    def _end_now(self) -> None:
        if self._ending:
            return
        self._ending = True
        self.host.accepting = False
        self.host.end_all("server_stopped")
        self.loop.create_task(self._stop_when_idle())

    async def _stop_when_idle(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.host.idle(), END_NOW_TIMEOUT_S)
        self._stop()

    def _stop(self) -> None:
        self.alive = False
        self._notify_waiter_done()


class _Arbiter(Arbiter):
    def handle_int(self) -> None:
        """Ctrl+C drains, as SIGTERM does (a second one still ends at once)."""
        raise StopIteration


class WorkersApplication(BaseApplication):
    """gunicorn, configured from the command line's options instead of its own."""

    def __init__(self, options: ServeOptions, drain_timeout_s: float, announce: Callable[[int], None]):
        self.port = free_port(options.host, options.port)
        self.reserved = reserve_port(options.host, self.port) if SPREAD_BY_KERNEL else None
        self.options = options
        self.drain_timeout_s = drain_timeout_s
        self.announce = announce
        super().__init__()

    def load_config(self) -> None:
        bind = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        settings = {
            "bind": [f"{bind}:{self.port}"],
            "workers": self.options.workers,
            "worker_class": DrainingWorker,
            "graceful_timeout": math.ceil(self.drain_timeout_s + GRACE_MARGIN_S),
            "timeout": 30,
            "proc_name": "voicepipe-serve",
            "accesslog": None,
            "loglevel": "warning",
            "control_socket_disable": True,
            "reuse_port": SPREAD_BY_KERNEL,
            "child_exit": _child_exit,
            "when_ready": self._ready,
            "post_fork": self._forked,
        }
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def _ready(self, arbiter: Any) -> None:
        """The master is up: if it listens itself (one socket shared by the workers), it says where."""
        if arbiter.LISTENERS:
            self.announce(arbiter.LISTENERS[0].sock.getsockname()[1])

    def _forked(self, arbiter: Any, worker: Any) -> None:
        """In a new worker, its own socket listening: the first one spawned says where the server
        is (callers who come now wait in its backlog, not refused)."""
        if self.reserved is not None:
            self.reserved.close()
            if worker.age == 1:
                self.announce(self.port)

    def load(self) -> Callable:
        options = self.options

        async def application() -> Any:
            from voicepipe.logsetup import get_logger
            from voicepipe.serve.app import build_app

            host, guard = make_host(options, get_logger())
            return build_app(host, guard)

        return application

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        finally:
            if self.reserved is not None:
                self.reserved.close()


def free_port(host: str, port: int) -> int:
    """``port`` (0: a free one) if nothing holds it on ``host``; a usage error if anything does.

    The bind has no ``SO_REUSEPORT``, so that it fails on any socket there, another ``reuse_port``
    server's included."""
    with _bound(host, port, reuse_port=False) as probe:
        return probe.getsockname()[1]


def reserve_port(host: str, port: int) -> socket.socket:
    """``host:port`` bound, not listening, with ``SO_REUSEPORT``: the workers' sockets join it."""
    return _bound(host, port, reuse_port=True)


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc) from None
    return sock


def _child_exit(arbiter: Any, worker: Any) -> None:
    from voicepipe.serve.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def run_workers(options: ServeOptions, drain_timeout_s: float, announce: Callable[[int], None]) -> int:
    """Run gunicorn until it stops; its exit code."""
    try:
        WorkersApplication(options, drain_timeout_s, announce).run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
