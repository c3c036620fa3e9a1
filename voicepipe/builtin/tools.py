"""Built-in plugin "tools": runs function calls through the ``voicepipe_tool_call`` hook.

The model's calls are collected as their arguments complete and run once the response that holds
them is done (sending ``response.create`` earlier would collide with the response still in
progress). Every output goes back as a ``function_call_output`` item, then one ``response.create``
asks the model to carry on.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Hashable, Mapping
from typing import Any

from voicepipe import hookimpl
from voicepipe.pipeline import event_fields

_PENDING = "tools.pending"


def _calls(ctx: Any) -> dict:
    return ctx.stash.setdefault(_PENDING, {})


@hookimpl
def voicepipe_event(event: Any, ctx: Any) -> None:
    event = event_fields(event)
    event_type = event.get("type")
    if event_type == "response.function_call_arguments.done":
        _calls(ctx).setdefault(event.get("response_id"), []).append(
            (event.get("call_id"), event.get("name"), event.get("arguments") or "{}")
        )
    elif event_type == "response.done":
        response = event.get("response") or {}
        response_id = response.get("id") if isinstance(response, Mapping) else None
        calls = _calls(ctx).pop(response_id, None) if isinstance(response_id, Hashable) else None
        if calls and response.get("status") == "completed":
            ctx.spawn(_run_calls(calls, ctx), name="tool calls")


async def _run_calls(calls: list, ctx: Any) -> None:
    for call_id, name, raw_arguments in calls:
        output = await _run_one(call_id, name, raw_arguments, ctx)
        ctx.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
    ctx.send({"type": "response.create"})


async def _run_one(call_id: str, name: str, raw_arguments: str, ctx: Any) -> str:
    try:
        arguments = json.loads(raw_arguments)
    except (ValueError, TypeError, RecursionError):  # not JSON text, or nested deeper than the parser goes
        arguments = None
    if not isinstance(arguments, dict):  # the hook promises tools a mapping of arguments
        ctx.log.warning("tool_arguments_not_json", tool=name, call_id=call_id)
        return json.dumps({"error": f"arguments for {name} were not a valid JSON object"})
    started = ctx.now()
    try:
        result = ctx.hook.voicepipe_tool_call(name=name, arguments=arguments, call_id=call_id, ctx=ctx)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        ctx.log.error("tool_failed", tool=name, call_id=call_id, error=f"{type(exc).__name__}: {exc}")
        return json.dumps({"error": f"{name} failed: {type(exc).__name__}"})
    if result is None:
        ctx.log.warning("tool_unhandled", tool=name, call_id=call_id, hint="no plugin implements this tool")
        return json.dumps({"error": f"no handler for tool {name}"})
    ctx.log.info("tool_called", tool=name, call_id=call_id, ms=round((ctx.now() - started) * 1000, 1))
    return result if isinstance(result, str) else json.dumps(result, default=str)
