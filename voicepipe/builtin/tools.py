"""Built-in plugin "tools": runs the function calls the model makes and sends back their outputs.

A call is run once its arguments are complete and the response that holds it is done (sending
``response.create`` earlier would collide with the response still in progress). The calls of one
response run concurrently, each through the callable bound under ``tools.handlers`` or else the
``voicepipe_tool_call`` hook, each bounded by ``tools.timeout_s``; a sync callable runs in a thread
so the event loop never waits. Arguments that are not JSON or do not match the tool's schema, an
exception and a timeout all become an ``{"error": …}`` output: the model hears what went wrong
and the conversation goes on. The outputs go back as ``function_call_output`` items in the order
of the calls, then one ``response.create``, held back while another response (a user who spoke
meanwhile) is still in progress.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Hashable, Mapping
from typing import Any, Optional

from voicepipe import hookimpl
from voicepipe.lazyimport import lazy_module
from voicepipe.pipeline import event_fields
from voicepipe.toolbind import call_handler

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

_STATE = "tools"


class _State:  # a plain class: making a dataclass costs `voicepipe validate` half a millisecond
    __slots__ = ("tools", "timeout_s", "pending", "active_responses", "create_when_idle")

    def __init__(self, tools: dict, timeout_s: float) -> None:
        self.tools = tools  # name -> voicepipe.toolbind.Tool
        self.timeout_s = timeout_s
        self.pending: dict = {}  # response id -> [(call_id, name, arguments)]
        self.active_responses: set = set()
        self.create_when_idle = False


@hookimpl
def voicepipe_session_start(ctx: Any) -> None:
    _state(ctx)


def _state(ctx: Any) -> _State:
    state = ctx.stash.get(_STATE)
    if state is None:
        from voicepipe.toolbind import session_tools, timeout_s

        state = ctx.stash[_STATE] = _State(session_tools(ctx.profile), timeout_s(ctx.profile))
    return state


@hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    event = event_fields(event)
    event_type = event.get("type")
    if event_type == "response.function_call_arguments.done":
        _state(ctx).pending.setdefault(event.get("response_id"), []).append(
            (event.get("call_id"), event.get("name"), event.get("arguments") or "{}")
        )
    elif event_type == "response.created":
        response_id = _response_id(event)
        if response_id is not None:
            _state(ctx).active_responses.add(response_id)
    elif event_type == "response.done":
        state = _state(ctx)
        response_id = _response_id(event)
        state.active_responses.discard(response_id)
        calls = state.pending.pop(response_id, None) if response_id is not None else None
        if calls and event["response"].get("status") == "completed":
            ctx.spawn(_run_calls(calls, state, ctx), name="tool calls")
        elif state.create_when_idle and not state.active_responses:
            state.create_when_idle = False
            ctx.send({"type": "response.create"})


@hookimpl
def voicepipe_reconnected(ctx: Any) -> None:
    state = ctx.stash.get(_STATE)
    if state is not None:  # responses of the lost connection will never be done
        state.active_responses.clear()


def _response_id(event: Mapping) -> Optional[Hashable]:
    response = event.get("response")
    response_id = response.get("id") if isinstance(response, Mapping) else None
    return response_id if isinstance(response_id, Hashable) else None


async def _run_calls(calls: list, state: _State, ctx: Any) -> None:
    outputs = await asyncio.gather(*(_run_one(call_id, name, arguments, state, ctx) for call_id, name, arguments in calls))
    for (call_id, _, _), output in zip(calls, outputs):
        ctx.send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": output}})
    if state.active_responses:
        state.create_when_idle = True  # the answer to the user who spoke meanwhile comes first
    else:
        ctx.send({"type": "response.create"})


async def _run_one(call_id: str, name: str, raw_arguments: str, state: _State, ctx: Any) -> str:
    try:
        arguments = json.loads(raw_arguments)
    except (ValueError, TypeError, RecursionError):  # not JSON text, or nested deeper than the parser goes
        arguments = None
    if not isinstance(arguments, dict):  # tools are promised a mapping of arguments
        ctx.log.warning("tool_arguments_not_json", tool=name, call_id=call_id)
        return _error(f"the arguments for {name} were not a JSON object")
    tool = state.tools.get(name)
    if tool is not None:
        try:
            problem = tool.argument_problem(arguments)
        except Exception as exc:  # a schema the validator cannot apply (an unresolvable $ref, say)
            ctx.log.error("tool_arguments_unchecked", tool=name, call_id=call_id, error=f"{type(exc).__name__}: {exc}")
            return _error(f"the arguments for {name} could not be checked against its parameters")
        if problem:
            ctx.log.warning("tool_arguments_invalid", tool=name, call_id=call_id, problem=problem)
            return _error(f"the arguments for {name} do not match its parameters: {problem}")
    timeout_s = state.timeout_s
    started = ctx.now()
    try:
        if tool is not None and tool.handler is not None:
            result = await asyncio.wait_for(call_handler(tool.handler, name, arguments), timeout_s)
        else:
            result = ctx.hook.voicepipe_tool_call(name=name, arguments=arguments, call_id=call_id, ctx=ctx)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout_s)
    except asyncio.TimeoutError:
        ctx.log.error("tool_timed_out", tool=name, call_id=call_id, timeout_s=timeout_s)
        return _error(f"{name} did not answer within {timeout_s:g} s")
    except Exception as exc:
        ctx.log.error("tool_failed", tool=name, call_id=call_id, error=f"{type(exc).__name__}: {exc}")
        return _error(f"{name} failed: {type(exc).__name__}")
    if result is None:
        ctx.log.warning("tool_unhandled", tool=name, call_id=call_id, hint="no plugin implements this tool")
        return _error(f"no handler for tool {name}")
    ctx.log.info("tool_called", tool=name, call_id=call_id, ms=round((ctx.now() - started) * 1000, 1))
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError) as exc:  # a circular structure, say
        ctx.log.error("tool_output_not_json", tool=name, call_id=call_id, error=str(exc))
        return _error(f"{name} returned a value that is not JSON")


def _error(message: str) -> str:
    return json.dumps({"error": message})
