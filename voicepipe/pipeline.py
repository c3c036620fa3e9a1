"""Hook dispatch for one session, with fault isolation: the part of the runtime that needs no network.

The live runtime feeds it events from the WebSocket; ``voicepipe replay`` feeds it events from a
recording. Each plugin's implementation is called on its own, so a plugin that raises is reported
with its name and the event type while the others still see the event; a plugin that keeps raising
is disabled; an implementation slower than ``runtime.slow_hook_ms`` is logged.

Server events are shared, not copied: the built-ins see each event first, and a server event that
another plugin changes (a field added, removed or given another value) is put back before the next
plugin sees it and reported as that plugin's error. The guard costs about 0.4 µs per event for each
plugin that is not a built-in (a copy and a comparison of the event's top-level fields; parsing
the frame costs about 8 µs); a session with the built-ins alone pays nothing.

Events are the hot path: their hooks are called through a list of ``(plugin, callable(event,
ctx))`` built once per hook, with one clock reading per implementation, and the event's type is
read only when a report needs it. :func:`event_fields` gives plugins cheap reads of an event.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from voicepipe.context import SessionContext
from voicepipe.diskwrite import is_write_failure

if TYPE_CHECKING:
    import pluggy

    from voicepipe.profile.model import Profile

DEFAULT_SLOW_HOOK_MS = 50.0
#: an awaitable a hook returns is cancelled after this long; a plain hook that ran this long counts
#: as an error of its plugin (it held up every other plugin and the connection)
DEFAULT_HOOK_TIMEOUT_S = 5.0
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
        transport: Any = None,
    ):
        runtime = profile.runtime
        self.pm = pm
        self.log = log
        self.slow_hook_s = float(runtime.get("slow_hook_ms", DEFAULT_SLOW_HOOK_MS)) / 1000
        self.max_errors = int(runtime.get("max_plugin_errors", DEFAULT_MAX_PLUGIN_ERRORS))
        self.hook_timeout_s = float(runtime.get("hook_timeout_s", DEFAULT_HOOK_TIMEOUT_S))
        self.ctx = SessionContext(
            profile,
            run_dir,
            log,
            send=send,
            stop=stop,
            notify_playback=self.notify_playback,
            clock=clock,
            transport=transport,
        )
        self.ctx.hook = pm.hook
        self.errors: dict[str, int] = {}
        self.disabled: set[str] = set()
        self._impls: dict[str, list] = {}
        self._callers: dict[str, list] = {}
        self._ended = False

    # -- calling -------------------------------------------------------------------------------

    def _implementations(self, hook_name: str) -> list:
        impls = self._impls.get(hook_name)
        if impls is None:
            hook = getattr(self.pm.hook, hook_name)
            # pluggy calls the most recently registered first; keep its order, but the built-ins
            # first: what another plugin does to an event cannot reach the audio, the recording,
            # the transcript or the metrics
            impls = [i for i in reversed(hook.get_hookimpls()) if not i.hookwrapper and not i.wrapper]
            impls = [i for i in impls if i.plugin_name not in self.disabled]
            impls = _builtins_first(impls)
            self._impls[hook_name] = impls
        return impls

    def _event_callers(self, hook_name: str) -> list:
        """``(plugin name, callable(event, ctx))`` for each implementation of an ``event, ctx`` hook."""
        callers = self._callers.get(hook_name)
        if callers is None:
            callers = [
                (i.plugin_name, _event_caller(i.function, tuple(i.argnames)) if _is_builtin(i) or hook_name != "voicepipe_event"
                 else _guarded(_event_caller(i.function, tuple(i.argnames))))
                for i in self._implementations(hook_name)
            ]
            self._callers[hook_name] = callers
        return callers

    def _call_event(self, hook_name: str, event: Any) -> Optional[list]:
        """:meth:`call` for the hooks that take ``event`` and ``ctx``; ``None`` when no result."""
        results = None
        ctx = self.ctx
        slow = self.slow_hook_s
        clock = time.perf_counter
        callers = self._callers.get(hook_name)
        if callers is None:
            callers = self._event_callers(hook_name)
        started = clock()
        for plugin_name, function in callers:
            try:
                result = function(event, ctx)
            except Exception as exc:  # a plugin's fault must not end the session
                self._plugin_failed(plugin_name, hook_name, _event_type(event), exc)
                started = clock()
                continue
            now = clock()
            if now - started > slow:
                self._slow_hook(plugin_name, hook_name, _event_type(event), now - started)
            started = now
            if result is not None:
                if results is None:
                    results = []
                results.append((plugin_name, result))
        return results

    def _slow_hook(self, plugin_name: str, hook_name: str, what: str, elapsed: float) -> None:
        self.log.warning("slow_hook", plugin=plugin_name, hook=hook_name, event_type=what, ms=round(elapsed * 1000, 1))
        if elapsed > self.hook_timeout_s:
            self._plugin_failed(plugin_name, hook_name, what, TimeoutError(
                f"the hook blocked the event loop for {elapsed:.1f} s (runtime.hook_timeout_s is "
                f"{self.hook_timeout_s:g}); move slow work to ctx.spawn"))

    async def await_results(self, pending: list, hook_name: str, what: str) -> list:
        """Await the awaitables hooks returned, in hook order, each for at most ``hook_timeout_s``:
        one that takes longer is cancelled and counted as an error of its plugin."""
        import asyncio

        results = []
        for plugin_name, awaitable in pending:
            if not inspect.isawaitable(awaitable):
                results.append(awaitable)
                continue
            try:
                results.append(await asyncio.wait_for(awaitable, self.hook_timeout_s))
            except asyncio.TimeoutError:
                self._plugin_failed(plugin_name, hook_name, what, TimeoutError(
                    f"its awaitable was still running after {self.hook_timeout_s:g} s (runtime.hook_timeout_s) "
                    "and was cancelled; use ctx.spawn for work that may take longer"))
            except Exception as exc:
                self._plugin_failed(plugin_name, hook_name, what, exc)
        return results

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
                self._slow_hook(impl.plugin_name, hook_name, what, elapsed)
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def call_and_await(self, hook_name: str, what: str = "", **kwargs: Any) -> list:
        """Like :meth:`call`, then await the results that are awaitable (each isolated)."""
        return await self.await_results(self.call(hook_name, what, **kwargs), hook_name, what)

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
        on_write_failure = self.ctx._on_write_failure
        if on_write_failure is not None and is_write_failure(exc):
            on_write_failure(exc)  # the disk, not the plugin: the session ends, the plugin stays
            return
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
            self._callers.clear()
            self.log.warning("plugin_disabled", plugin=plugin_name, errors=count)

    # -- the session's life ----------------------------------------------------------------------

    async def prepare(self) -> None:
        await self.call_and_await("voicepipe_session_prepare", "session_prepare", ctx=self.ctx)

    async def start(self) -> None:
        await self.call_and_await("voicepipe_session_start", "session_start", ctx=self.ctx)

    def dispatch(self, event: Any) -> Optional[list]:
        """Hand one server event to every plugin. Returns ``(plugin, awaitable)`` pairs to await, or ``None``."""
        results = self._call_event("voicepipe_event", event)
        if results is None:
            return None
        pending = [(name, r) for name, r in results if inspect.isawaitable(r)]
        return pending or None

    async def dispatch_and_wait(self, event: Any) -> None:
        pending = self.dispatch(event)
        if pending:
            await self.await_results(pending, "voicepipe_event", _event_type(event))

    def client_event(self, event: Mapping[str, Any]) -> None:
        self._call_event("voicepipe_client_event", event)

    def notify_playback(self, event: Mapping[str, Any]) -> None:
        self._call_event("voicepipe_playback", event)

    async def end(self, reason: str, timeout: float = 10.0) -> None:
        """Run ``voicepipe_session_end`` once, then cancel the session's background tasks.

        The awaitables the implementations return are awaited in hook order, each for at most
        ``timeout`` seconds: one that hangs is cancelled and reported, and the others still run.
        """
        if self._ended:
            return
        self._ended = True
        import asyncio

        for plugin_name, result in self.call("voicepipe_session_end", "session_end", ctx=self.ctx, reason=reason):
            if not inspect.isawaitable(result):
                continue
            try:
                await asyncio.wait_for(result, timeout)
            except asyncio.TimeoutError:
                self.log.warning("session_end_timeout", plugin=plugin_name, seconds=timeout)
            except Exception as exc:
                self._plugin_failed(plugin_name, "voicepipe_session_end", "session_end", exc)
        await self.ctx._cancel_tasks()

    def release(self) -> None:
        """Once the session has ended (after :meth:`end`): drop the context's references back to
        the runtime and the plugins' state, which close reference cycles over the whole session,
        so that reference counting frees it instead of a full garbage collection (whose pause, in
        a process of many sessions, is a dropout for every caller). The plugin manager is its
        maker's to release (:func:`voicepipe.plugins.release_plugin_manager`): it may still call
        hooks of its own."""
        self.ctx._release()
        self._impls.clear()
        self._callers.clear()


def event_fields(event: Any) -> Mapping[str, Any]:
    """The fields of a server event as a read-only mapping whose lookups cost what a dict's do.

    An SDK typed event is a mapping whose ``get`` runs Python code on every lookup (about ten
    times a dict's, more for a missing key); its ``keys()`` is a view of the dict that holds the
    JSON fields, and that view's ``mapping`` a read-only proxy of it. The values are those of
    ``event.get``, except that a list a plugin has already read through a typed attribute holds
    the SDK models it was turned into (mappings too) instead of dicts. Any other mapping is
    returned as it is.
    """
    if type(event) is dict or type(event) is MappingProxyType:
        return event
    try:
        mapping = event.keys().mapping
    except AttributeError:
        return event
    return mapping if type(mapping) is MappingProxyType else event


def _builtins_first(impls: list) -> list:
    """``impls`` in calling order with the built-ins ahead of the others, except that tryfirst and
    trylast implementations keep their places at the ends."""
    first = [i for i in impls if i.tryfirst]
    last = [i for i in impls if i.trylast and not i.tryfirst]
    middle = [i for i in impls if not i.tryfirst and not i.trylast]
    return first + [i for i in middle if _is_builtin(i)] + [i for i in middle if not _is_builtin(i)] + last


def _is_builtin(impl: Any) -> bool:
    return str(getattr(impl.plugin, "__name__", "") or type(impl.plugin).__module__).startswith("voicepipe.builtin")


class EventChanged(Exception):
    """A plugin changed a server event it was given (it was put back for the other plugins)."""


def _guarded(caller: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``caller`` for a plugin that is not a built-in: a server event it changes (a field added,
    removed or given another scalar value) is put back as it was before the next plugin sees it,
    and the change is reported as the plugin's error. What a field holds (an object, a list) is
    the plugin's to leave alone: the SDK itself turns those into models when they are read."""

    def call(event: Any, ctx: Any) -> Any:
        raw = event if type(event) is dict else getattr(event, "_data", None)
        if type(raw) is not dict:  # not an event whose fields we can see: nothing to guard
            return caller(event, ctx)
        before = raw.copy()
        result = caller(event, ctx)
        if raw != before and _scalars_changed(raw, before):  # equal dicts: one C comparison
            raw.clear()
            raw.update(before)
            raise EventChanged(f"it changed the {before.get('type')!r} event it was given; the event was put back "
                               "for the other plugins (copy an event before changing it)")
        return result

    return call


def _scalars_changed(fields: Mapping[str, Any], before: dict) -> bool:
    if len(fields) != len(before):
        return True
    for key, value in before.items():
        now = fields.get(key, _GONE)
        if now is not value and (now is _GONE or not isinstance(value, (dict, list))):
            return True
    return False


_GONE = object()


def _event_type(event: Any) -> str:
    """An event's type for a report (``?`` when it has none)."""
    try:
        return event.get("type") or "?"
    except Exception:
        return "?"


def _event_caller(function: Callable, argnames: tuple) -> Callable[[Any, Any], Any]:
    """``function`` as a callable of ``(event, ctx)``, for an implementation that takes ``argnames``
    (pluggy lets it take any subset of the hook's arguments, in any order)."""
    if argnames == ("event", "ctx"):
        return function
    if argnames == ("event",):
        return lambda event, ctx: function(event)
    if argnames == ("ctx",):
        return lambda event, ctx: function(ctx)
    if not argnames:
        return lambda event, ctx: function()
    return lambda event, ctx: function(*[{"event": event, "ctx": ctx}[name] for name in argnames])
