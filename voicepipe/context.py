"""What a plugin holds of the running session: the ``ctx`` argument of the hooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Mapping, Optional

from voicepipe.lazyimport import lazy_module

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

    from voicepipe.profile.model import Profile


class SessionContext:
    """One voice session as plugins see it.

    ``send`` and ``spawn`` are the only ways a plugin acts on the session: outgoing client events
    go through one ordered queue, and background work is owned (and cancelled) by the session.
    ``stash`` is a dict where plugins may leave state for each other, keyed by plugin name.
    """

    def __init__(
        self,
        profile: Profile,
        run_dir: Path,
        log: Any,
        *,
        send: Callable[[Mapping[str, Any]], None],
        stop: Callable[[str], None],
        notify_playback: Callable[[Mapping[str, Any]], None] = lambda event: None,
        clock: Callable[[], float] = time.monotonic,
        transport: Any = None,
    ):
        self.profile = profile
        self.run_dir = Path(run_dir)
        #: the session's logger (structlog): ``ctx.log.info("event_name", key=value)``; lines go to
        #: the run folder's log and carry the session id
        self.log: BoundLogger = log
        self.session_id: Optional[str] = None
        self.session: dict[str, Any] = {}
        self.stash: dict[str, Any] = {}
        self.now = clock
        #: the caller's media connection under ``voicepipe serve`` (see :mod:`voicepipe.serve`);
        #: ``None`` under ``voicepipe run``
        self.transport = transport
        #: the pluggy hook relay, for plugins that call hooks themselves
        self.hook: Any = None
        self._send = send
        self._stop = stop
        self._notify_playback = notify_playback
        self._tasks: set[asyncio.Task] = set()
        #: the first :meth:`fail` message: the session ends as a usage error (exit code 2)
        self.usage_failure: Optional[str] = None
        #: why the session is ending, when it ends as a failure: one line, set before ``voicepipe_session_end``
        self.end_message: Optional[str] = None
        #: the session's handler of a run-folder write the disk refused (see voicepipe.diskwrite)
        self._on_write_failure: Optional[Callable[[OSError], None]] = None

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue a client event (a dict or an SDK ``ClientEvent``); events leave in queue order.

        An event JSON cannot carry (bytes, a set, NaN, a cycle) raises ``TypeError`` here, so it is
        reported against the plugin that sent it and the connection carries on."""
        self._send(event)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: Optional[str] = None) -> asyncio.Task:
        """Run ``coro`` in the background for the life of the session.

        The task is cancelled when the session ends; an exception it raises is logged with
        ``name`` and does not end the session.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def notify_playback(self, event: Mapping[str, Any]) -> None:
        """Report a playback milestone to every plugin (``voicepipe_playback``)."""
        self._notify_playback(event)

    def stop(self, reason: str = "plugin") -> None:
        """Ask the session to end; ``voicepipe_session_end`` receives ``reason``."""
        self._stop(reason)

    def fail(self, message: str) -> None:
        """End the session over something the user must fix (a device that does not exist, a
        file that cannot be opened): ``message``, one line naming the profile key, is what
        ``voicepipe run`` prints, with exit code 2. The end hooks run as for any stop (reason
        ``"error"``), so files are complete."""
        if self.usage_failure is None:
            self.usage_failure = message
        self._stop("error")

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._on_write_failure is not None and isinstance(exc, OSError):
            from voicepipe.diskwrite import is_write_failure

            if is_write_failure(exc):
                self._on_write_failure(exc)
                return
        if exc is not None:
            self.log.error("background_task_failed", task=task.get_name(), error=repr(exc))

    def _release(self) -> None:
        """The session has ended: ``send``, ``stop`` and ``notify_playback`` do nothing from now
        on, and the context lets go of the runtime's methods and of the plugins' state in
        ``stash``, which refer back to it (cycles that would keep the whole session for a full
        garbage collection)."""
        self._send = self._stop = self._notify_playback = _ended
        self._on_write_failure = None
        self.stash.clear()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)


def _ended(*args: Any) -> None:
    """What an ended session's ``send``, ``stop`` and ``notify_playback`` do: nothing."""
