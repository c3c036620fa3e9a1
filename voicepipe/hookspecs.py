"""The hooks a voicepipe plugin can implement. These docstrings are the reference documentation.

A plugin is any module or object with functions named after these hooks and marked with
``@voicepipe.hookimpl``. Every hook is called with keyword arguments, and an implementation may
accept only the ones it needs (pluggy's opt-in arguments), so hooks can grow without breaking
plugins.

Hooks run on the event loop thread, one implementation after another, and the contract for slow
work is:

* A hook returns quickly. One slower than ``runtime.slow_hook_ms`` (default 50) is logged with its
  plugin's name; one that blocked the loop longer than ``runtime.hook_timeout_s`` (default 5) also
  counts as an error of its plugin (``runtime.max_plugin_errors`` of them disable it). A plain
  function cannot be interrupted, so this is found out afterwards: do not block.
* Where the hook says so, it may return an awaitable. The runtime awaits it before the next event
  reaches any plugin, so event order holds, for at most ``runtime.hook_timeout_s``: past that it
  is cancelled and counted as an error of its plugin, and the session carries on.
* Work that may take longer (the network, a model, an upload) goes to ``ctx.spawn(coro)``: it runs
  beside the session, never holds up events, and is cancelled when the session ends.

Where a hook receives ``ctx`` it is the :class:`voicepipe.context.SessionContext` of the running
session: ``ctx.send(event)``, ``ctx.spawn(coro)``, ``ctx.stop(reason)``, ``ctx.fail(message)``
(end the session over something the user must fix: exit code 2), ``ctx.log``, ``ctx.profile``,
``ctx.run_dir``, ``ctx.session_id``, ``ctx.session``, ``ctx.now()``, ``ctx.stash`` (state plugins
share with each other) and ``ctx.transport`` (the caller's connection under ``voicepipe serve``).

**One session or many.** ``voicepipe serve`` runs many sessions in one process, each with a plugin
manager of its own, so a plugin keeps its state per session in one of two forms:

- *A class*: a module whose ``plugin`` attribute is a class (or an entry point naming a class) gets
  a new instance for every session, registered in that session's manager only. ``__init__`` may
  take ``profile`` (keyword) to read its settings, and may raise
  :class:`voicepipe.errors.UsageError` for bad ones; hooks are methods::

      class KeywordAlert:
          def __init__(self, profile):
              self.keywords = profile.section("keyword_alert").get("keywords", [])

          @hookimpl
          def voicepipe_event(self, event, ctx): ...

      plugin = KeywordAlert

- *A module*: hooks are module-level functions, and the module is shared by every session. It
  must keep no state in module globals; what it needs per session it creates in
  :func:`voicepipe_session_start` and keeps on ``ctx`` (``ctx.stash["my_plugin"] = ...``), as the
  built-in plugins do. A module that holds no state at all works unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Iterable, Mapping

import pluggy

if TYPE_CHECKING:
    from azure.ai.voicelive.models import RequestSession, ServerEvent

    from voicepipe.audio.base import AudioInput, AudioOutput
    from voicepipe.context import SessionContext
    from voicepipe.profile.model import Profile

hookspec = pluggy.HookspecMarker("voicepipe")


@hookspec(historic=True)
def voicepipe_configure(profile: Profile) -> None:
    """Called once, after the profile has validated and every plugin is loaded.

    Read your own settings here: a plugin's settings live under a top-level profile key named
    after the plugin (``profile.section("keyword_alert")``). Historic: a plugin registered later
    still receives the call. Raise :class:`voicepipe.errors.UsageError` for bad settings; it is
    reported as a configuration error (exit code 2) before anything connects.
    """


@hookspec
def voicepipe_session_config(profile: Profile, session: RequestSession) -> None:
    """Called before ``session.update`` is sent, with the SDK ``RequestSession`` built from the
    profile's ``session:`` section.

    Mutate ``session`` in place to add tools, extend the instructions or set fields the profile
    does not know about (``session["field"] = value`` works for any field). Keys never set stay
    out of the JSON; setting a field to ``None`` sends an explicit ``null``.
    """


@hookspec
def voicepipe_session_prepare(ctx: SessionContext) -> Awaitable[None] | None:
    """Called once before connecting, when the run folder exists (not on replay).

    Check what the session needs on this machine (a microphone, a speaker, a file) so that a
    problem ends the session before a connection, which the service bills, is made: call
    ``ctx.fail(message)`` with one line naming the profile key. ``ctx.session_id`` is ``None`` and
    ``ctx.send`` drops events. May return an awaitable; the runtime awaits it before connecting.
    """


@hookspec
def voicepipe_session_start(ctx: SessionContext) -> Awaitable[None] | None:
    """Called once the connection is open and ``session.update`` has been queued, before the
    first server event is dispatched.

    Start timers, open files, announce yourself. May return an awaitable; the runtime awaits it
    before dispatching events.
    """


@hookspec
def voicepipe_event(event: ServerEvent, ctx: SessionContext) -> Awaitable[None] | None:
    """Called for every server event, in arrival order. The hot path: keep it cheap.

    ``event`` is the SDK's typed event (a mapping: ``event["type"]``, ``event.get("item_id")``).
    Dispatch on the type *string*: event types the SDK does not know (``conversation.item.done``,
    ``rate_limits.updated`` …) arrive as plain ``ServerEvent`` objects and still reach this hook.
    Typed attribute access decodes audio (``event.delta`` is bytes on ``response.audio.delta``);
    mapping access returns the base64 text.

    May return an awaitable; the runtime awaits it before the next event is dispatched, so use
    that only for short work that must stay ordered, and ``ctx.spawn`` for everything else.
    """


@hookspec
def voicepipe_client_event(event: Mapping[str, Any], ctx: SessionContext) -> None:
    """Called for every client event, as a plain JSON-ready dict, just before it is sent.

    For observation only (recording, metrics); do not mutate ``event``. Audio appends go through
    here too, so an implementation must stay cheap for ``input_audio_buffer.append``.
    """


@hookspec
def voicepipe_playback(event: Mapping[str, Any], ctx: SessionContext) -> None:
    """Called when the output audio backend's own clock reaches a milestone for an assistant item.

    ``event["type"]`` is one of ``playback.started`` (first sample of the item played),
    ``playback.finished`` (last written sample played) or ``playback.interrupted`` (cleared by a
    barge-in). Fields: ``item_id``, ``response_id``, ``played_ms`` (from the backend's playback
    counter), ``generated_ms`` (audio received for the item so far), ``at`` (``ctx.now()`` time
    of the milestone). Used by the transcript and metrics plugins; yours may use it too.
    """


@hookspec(firstresult=True)
def voicepipe_audio_backend(
    name: str, direction: str, options: Mapping[str, Any], ctx: SessionContext
) -> AudioInput | AudioOutput | None:
    """Return an audio backend instance, or ``None`` to let another plugin answer.

    ``name`` is the ``backend:`` the profile names under ``audio.input`` or ``audio.output``,
    ``direction`` is ``"input"`` or ``"output"``, ``options`` the rest of that profile section,
    ``ctx`` the session (a transport backend takes the caller's connection from ``ctx.transport``).
    The first non-``None`` answer wins. Must be synchronous (an ``async def`` implementation would
    always win). The contract the returned object must follow is in :mod:`voicepipe.audio.base`.
    """


@hookspec(firstresult=True)
def voicepipe_tool_call(
    name: str, arguments: Mapping[str, Any], call_id: str, ctx: SessionContext
) -> Any:
    """Run a function tool the model called; the first non-``None`` answer wins.

    Called once the response that holds the call is done. ``arguments`` is the parsed JSON the
    model sent. Return a JSON-serialisable value (or a string), or an awaitable of one: it is sent
    back as the ``function_call_output`` and a new response is requested. Return ``None``
    (synchronously) for tools you do not own. The tool itself is declared in the profile's
    ``session.tools`` (or added to the session in :func:`voicepipe_session_config`).

    Never block here: do slow work in the awaitable, or in a thread
    (``asyncio.to_thread``). The runtime bounds the wait by ``tools.timeout_s``; an exception or
    a timeout is sent to the model as ``{"error": …}`` and the conversation goes on. Calls of one
    response run concurrently.
    """


@hookspec
def voicepipe_tools_provided() -> Iterable[str]:
    """Return the names of the function tools this plugin runs in :func:`voicepipe_tool_call`.

    Lets ``voicepipe validate`` report a tool the profile declares that nothing implements. A
    plugin that implements ``voicepipe_tool_call`` without this hook is taken to run any tool,
    which turns that check off.
    """


@hookspec
def voicepipe_disconnected(ctx: SessionContext, code: int | None, reason: str | None, reconnecting: bool) -> None:
    """Called when the connection drops without a stop being asked for.

    ``code`` and ``reason`` are the WebSocket close code and reason when the server sent them
    (``None`` for a lost network). ``reconnecting`` says whether the runtime will try to connect
    again (``connection.reconnect.attempts`` in the profile); if not, the session ends next.
    Until :func:`voicepipe_reconnected`, ``ctx.send`` drops client events (captured audio is
    buffered up to ``connection.reconnect.buffer_audio_s``) and no server event arrives: close
    what was in flight, such as an answer that will never finish.
    """


@hookspec
def voicepipe_reconnected(
    ctx: SessionContext, attempts: int, gap_s: float, seeded_item_ids: list[str], buffered_audio_s: float
) -> None:
    """Called when a new connection is up after a drop, before its first server event.

    By then the session configuration has been sent again and the conversation re-seeded from
    :func:`voicepipe_history`. ``attempts`` counts the connection attempts this took, ``gap_s``
    the seconds without a connection, ``seeded_item_ids`` are the ids of the re-sent items (their
    ``conversation.item.created`` events follow: history, not new turns), ``buffered_audio_s`` the
    captured audio kept from the gap, which the new connection receives first. The service starts a new session: ``session.created``
    (with a new ``ctx.session_id``) and ``session.updated`` follow, and its audio timeline
    (``audio_start_ms``, ``audio_end_ms``) starts again at zero.
    """


@hookspec(firstresult=True)
def voicepipe_history(ctx: SessionContext) -> list[Mapping[str, str]] | None:
    """Return the conversation so far, oldest first, to re-seed a new connection after a drop.

    Each entry is ``{"role": "user" | "assistant", "text": "..."}``, with an interrupted answer
    cut to what the user heard. The built-in transcript plugin answers from its transcript; a
    plugin with its own memory of the conversation can answer first. The runtime keeps only the
    newest entries within ``connection.reconnect.history_items`` and ``history_chars``.
    """


@hookspec
def voicepipe_session_end(ctx: SessionContext, reason: str) -> Awaitable[None] | None:
    """Called exactly once when the session ends, however it ends.

    ``reason`` is one of ``"user"`` (q, Ctrl+C, SIGTERM), ``"duration"``, ``"input_finished"``,
    ``"server_closed"``, ``"error"`` or a reason a plugin passed to ``ctx.stop``. Also called when
    connecting failed (then ``ctx.session_id`` is ``None``). Flush and close files here, print
    summaries. May return an awaitable; it is awaited with a bounded timeout.
    """


@hookspec
def voicepipe_judge_turn(
    turn: Mapping[str, Any], criteria: Any, conversation: str
) -> bool | tuple[bool, str] | Mapping[str, Any] | Awaitable[Any] | None:
    """Grade one turn of a conversation test (``voicepipe test``, or a conversation file under pytest).

    Called after the conversation's session has ended, once for every turn whose ``expect`` has a
    ``judge`` key, on every plugin of that session. ``criteria`` is the value of that key, as
    written (a sentence such as ``"polite, and names the opening hours"``, or any mapping your
    judge understands). ``conversation`` is the conversation's name. ``turn`` holds what the turn
    did: ``turn`` (1-based), ``label``, ``user_text`` (what the caller said or typed, as the
    service transcribed it), ``answer`` (the words of the answer), ``tool_calls`` (``name``,
    ``arguments``, ``call_id`` each), ``interrupted``, ``voice_to_voice_ms`` (or ``None``),
    ``statuses`` (of its responses), ``errors`` and ``failure`` (why it has no complete answer, or
    ``None``).

    Return ``None`` when this plugin does not judge these criteria, otherwise a verdict: ``True`` /
    ``False``, a ``(passed, reason)`` pair, or ``{"passed": bool, "reason": str}``; the reason is
    printed next to the turn. May return an awaitable (a judge that asks a model), which is awaited.
    The turn fails when any verdict fails, or when no plugin returns one. voicepipe ships no judge:
    one that calls a network service belongs in your own plugin, with its own timeout.
    """
