"""Hook dispatch for one session, with fault isolation: the part of the runtime that needs no network.

The live runtime feeds it events from the WebSocket; ``voicepipe replay`` feeds it events from a
recording. Each plugin's implementation is called on its own, so a plugin that raises is reported
with its name and the event type while the others still see the event; a plugin that keeps raising
is disabled; an implementation slower than ``runtime.slow_hook_ms`` is logged.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from voicepipe.context import SessionContext

if TYPE_CHECKING:
    import pluggy

    from voicepipe.profile import Profile

DEFAULT_SLOW_HOOK_MS = 50.0
DEFAULT_MAX_PLUGIN_ERRORS = 20


class Pipeline:
    """Calls the plugins' hooks for one session, one implementation at a time."""

    def __init__(
        self,
        profile: Profile,
        pm: pluggy.PluginManager,
        run_dir: Path,
        log: Any,
        *,
        send: Callable[[Mapping[str, Any]], None],
        stop: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        runtime = profile.runtime
        self.pm = pm
        self.log = log
        self.slow_hook_s = float(runtime.get("slow_hook_ms", DEFAULT_SLOW_HOOK_MS)) / 1000
        self.max_errors = int(runtime.get("max_plugin_errors", DEFAULT_MAX_PLUGIN_ERRORS))
        self.ctx = SessionContext(
            profile, run_dir, log, send=send, stop=stop, notify_playback=self.notify_playback, clock=clock
        )
        self.ctx.hook = pm.hook
        self.errors: dict[str, int] = {}
        self.disabled: set[str] = set()
        self._impls: dict[str, list] = {}
        self._ended = False

    # -- calling -------------------------------------------------------------------------------

    def _implementations(self, hook_name: str) -> list:
        impls = self._impls.get(hook_name)
        if impls is None:
            hook = getattr(self.pm.hook, hook_name)
            # pluggy calls the most recently registered first; keep its order
            impls = [i for i in reversed(hook.get_hookimpls()) if not i.hookwrapper and not i.wrapper]
            impls = [i for i in impls if i.plugin_name not in self.disabled]
            self._impls[hook_name] = impls
        return impls

    def call(self, hook_name: str, what: str = "", **kwargs: Any) -> list:
        """Call every implementation of ``hook_name``; return the non-``None`` results.

        ``what`` names the occasion in error reports (usually the event type).
        """
        results = []
        slow = self.slow_hook_s
        for impl in self._implementations(hook_name):
            args = [kwargs[name] for name in impl.argnames]
            started = time.perf_counter()
            try:
                result = impl.function(*args)
            except Exception as exc:  # a plugin's fault must not end the session
                self._plugin_failed(impl.plugin_name, hook_name, what, exc)
                continue
            elapsed = time.perf_counter() - started
            if elapsed > slow:
                self.log.warning(
                    "slow_hook", plugin=impl.plugin_name, hook=hook_name, event_type=what, ms=round(elapsed * 1000, 1)
                )
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def call_and_await(self, hook_name: str, what: str = "", **kwargs: Any) -> list:
        """Like :meth:`call`, then await the results that are awaitable (each isolated)."""
        results = []
        for plugin_name, result in self.call(hook_name, what, **kwargs):
            if inspect.isawaitable(result):
                try:
                    result = await result
                except Exception as exc:
                    self._plugin_failed(plugin_name, hook_name, what, exc)
                    continue
            results.append(result)
        return results

    def first_result(self, hook_name: str, what: str = "", **kwargs: Any) -> Any:
        """The first non-``None`` answer of a firstresult hook, with isolation like :meth:`call`."""
        for impl in self._implementations(hook_name):
            args = [kwargs[name] for name in impl.argnames]
            try:
                result = impl.function(*args)
            except Exception as exc:
                self._plugin_failed(impl.plugin_name, hook_name, what, exc)
                continue
            if result is not None:
                return result
        return None

    def _plugin_failed(self, plugin_name: str, hook_name: str, what: str, exc: BaseException) -> None:
        count = self.errors.get(plugin_name, 0) + 1
        self.errors[plugin_name] = count
        self.log.error(
            "plugin_error",
            plugin=plugin_name,
            hook=hook_name,
            event_type=what or None,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        if count >= self.max_errors and plugin_name not in self.disabled:
            self.disabled.add(plugin_name)
            self._impls.clear()
            self.log.warning("plugin_disabled", plugin=plugin_name, errors=count)

    # -- the session's life ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.call_and_await("voicepipe_session_start", "session_start", ctx=self.ctx)

    def dispatch(self, event: Any) -> Optional[list]:
        """Hand one server event to every plugin. Returns ``(plugin, awaitable)`` pairs to await, or ``None``."""
        event_type = event.get("type") or "?"
        results = self.call("voicepipe_event", event_type, event=event, ctx=self.ctx)
        pending = [(name, r) for name, r in results if inspect.isawaitable(r)]
        return pending or None

    async def dispatch_and_wait(self, event: Any) -> None:
        pending = self.dispatch(event)
        if pending:
            event_type = event.get("type") or "?"
            for plugin_name, awaitable in pending:
                try:
                    await awaitable
                except Exception as exc:
                    self._plugin_failed(plugin_name, "voicepipe_event", event_type, exc)

    def client_event(self, event: Mapping[str, Any]) -> None:
        self.call("voicepipe_client_event", event.get("type", "?"), event=event, ctx=self.ctx)

    def notify_playback(self, event: Mapping[str, Any]) -> None:
        self.call("voicepipe_playback", event.get("type", "?"), event=event, ctx=self.ctx)

    async def end(self, reason: str, timeout: float = 10.0) -> None:
        """Run ``voicepipe_session_end`` once, then cancel the session's background tasks."""
        if self._ended:
            return
        self._ended = True
        import asyncio

        try:
            await asyncio.wait_for(
                self.call_and_await("voicepipe_session_end", "session_end", ctx=self.ctx, reason=reason), timeout
            )
        except asyncio.TimeoutError:
            self.log.warning("session_end_timeout", seconds=timeout)
        await self.ctx._cancel_tasks()
