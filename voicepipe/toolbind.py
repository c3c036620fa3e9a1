"""Function tools: which code runs each tool the profile declares, checked before anything connects.

A function tool in ``session.tools`` is run either by a Python callable bound to it under
``tools.handlers`` (``module:function`` or ``path/file.py:function``, sync or async, called with the
model's arguments as keyword arguments) or by a plugin's ``voicepipe_tool_call`` hook. A plugin
names the tools it runs in ``voicepipe_tools_provided`` so that a tool nothing implements is found
at validation time; a plugin that implements ``voicepipe_tool_call`` without naming its tools turns
that check off, since any tool may be its.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from voicepipe.errors import ProfileError
from voicepipe.lazyimport import lazy_module

difflib = lazy_module("difflib", globals())  # did-you-mean hints, for errors only

if TYPE_CHECKING:
    from voicepipe.profile.model import Profile

asyncio = lazy_module("asyncio", globals())  # only a session needs it: `validate` stays fast

DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Tool:
    """One function tool of a session: its argument schema and, when bound, its callable."""

    name: str
    parameters: Optional[dict]
    handler: Optional[Callable[..., Any]]
    _validator: Any = field(default=None, repr=False)

    def argument_problem(self, arguments: dict) -> Optional[str]:
        """Why ``arguments`` do not match the tool's JSON schema, or ``None``."""
        if not self.parameters:
            return None
        import jsonschema

        if self._validator is None:
            self._validator = jsonschema.validators.validator_for(self.parameters)(self.parameters)
        try:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(arguments))
        except RecursionError:
            return "nested deeper than can be checked"
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path)
        return f"{where}: {error.message}" if where else error.message


def schema_problem(parameters: dict) -> Optional[str]:
    """Why ``parameters`` is not a usable JSON schema, or ``None``."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(parameters).check_schema(parameters)
    except RecursionError:
        return "not a valid JSON schema: nested deeper than can be checked"
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        return f"not a valid JSON schema: {where + ': ' if where else ''}{exc.message}"
    return None


def function_tools(profile: Profile) -> list[tuple[int, dict]]:
    """``(index, tool)`` for each ``type: function`` entry of ``session.tools``."""
    tools = profile.session.get("tools") or []
    return [(i, tool) for i, tool in enumerate(tools) if isinstance(tool, dict) and tool.get("type", "function") == "function"]


def timeout_s(profile: Profile) -> float:
    """How long a tool may run (``tools.timeout_s``)."""
    return float(profile.section("tools").get("timeout_s", DEFAULT_TIMEOUT_S))


def session_tools(profile: Profile) -> dict[str, Tool]:
    """The profile's function tools by name, their handlers imported (already checked by
    :func:`check_tools`)."""
    handlers = profile.section("tools").get("handlers") or {}
    tools = {}
    for _, tool in function_tools(profile):
        name = tool["name"]
        handler = resolve_handler(handlers[name], profile.dir_of("tools", "handlers", name)) if name in handlers else None
        tools[name] = Tool(name, tool.get("parameters"), handler)
    return tools


def check_tools(profile: Profile, pm: Any) -> None:
    """Every problem with the profile's function tools, at once, as a :class:`ProfileError`: a
    handler that does not import or does not take the declared arguments, a handler for a tool
    the session does not declare, a declared tool nothing implements."""
    handlers = profile.section("tools").get("handlers") or {}
    declared = {tool["name"]: index for index, tool in function_tools(profile)}
    problems = []
    for name, target in handlers.items():
        where = f"{profile.location('tools', 'handlers', name)}: tools.handlers.{name}"
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (declare it under session.tools first)"
            problems.append(f"{where}: no function tool named {name!r} in session.tools{hint}")
            continue
        try:
            handler = resolve_handler(target, profile.dir_of("tools", "handlers", name))
        except HandlerError as exc:
            problems.append(f"{where}: {exc}")
            continue
        tool = profile.session["tools"][declared[name]]
        problem = _signature_problem(handler, tool.get("parameters") or {})
        if problem:
            problems.append(f"{where}: {target} {problem}")
    provided = _provided_by_plugins(pm)
    if provided is not None:
        for name, index in declared.items():
            if name not in handlers and name not in provided:
                problems.append(
                    f"{profile.location('session', 'tools', index)}: session.tools[{index}]: function tool {name!r} has "
                    "no implementation (bind a callable under tools.handlers, or load a plugin that provides it)"
                )
    if problems:
        raise ProfileError(problems)


def _provided_by_plugins(pm: Any) -> Optional[set[str]]:
    """The tool names plugins say they run; ``None`` when some plugin runs tools without saying which."""
    callers = {impl.plugin_name for impl in pm.hook.voicepipe_tool_call.get_hookimpls()}
    namers = {impl.plugin_name for impl in pm.hook.voicepipe_tools_provided.get_hookimpls()}
    if callers - namers:
        return None
    names: set[str] = set()
    for result in pm.hook.voicepipe_tools_provided():
        names.update(result or ())
    return names


class HandlerError(Exception):
    """A ``tools.handlers`` entry that does not lead to a callable."""


def resolve_handler(target: str, base_dir: Path) -> Callable[..., Any]:
    """The callable ``target`` names: ``package.module:function`` or ``path/file.py:function``
    (a relative path is taken from ``base_dir``, then the working directory)."""
    from voicepipe.errors import UsageError
    from voicepipe.pyfiles import import_file, resolve_file

    module_name, _, attribute = target.rpartition(":")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = resolve_file(module_name, base_dir, what="file").resolve()
            module = import_file(path, module_name, namespace="voicepipe.tools", reuse=True)
        else:
            module = importlib.import_module(module_name)
    except UsageError as exc:
        raise HandlerError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise HandlerError(f"cannot import {module_name!r} ({exc})") from None
    except Exception as exc:
        raise HandlerError(f"{module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    handler = getattr(module, attribute, None)
    if handler is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(attribute, names, n=1)
        raise HandlerError(f"{module_name!r} has no {attribute!r}{f' (did you mean {close[0]!r}?)' if close else ''}")
    if not callable(handler):
        raise HandlerError(f"{target} is not callable (it is a {type(handler).__name__})")
    return handler


def _signature_problem(handler: Callable[..., Any], parameters: dict) -> Optional[str]:
    """Whether ``handler(**arguments)`` can take every argument the schema declares."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return None
    accepted = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted):
        return None
    by_keyword = {p.name for p in accepted if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    properties = parameters.get("properties") if isinstance(parameters.get("properties"), dict) else {}
    missing = [name for name in properties if name not in by_keyword]
    if missing:
        return f"does not take the argument{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} declared in its parameters"
    required = set(parameters.get("required") or ()) if isinstance(parameters.get("required"), list) else set()
    unfilled = [p.name for p in accepted if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and (p.kind is p.POSITIONAL_ONLY or p.name not in required)]
    if unfilled:
        return (f"needs {', '.join(map(repr, unfilled))}, which the parameters do not make required "
                "(give it a default, or list it under required)")
    return None


async def call_handler(handler: Callable[..., Any], name: str, arguments: dict) -> Any:
    """Await an async handler; run a sync one in a daemon thread, which a handler that never
    returns cannot keep alive past the session (a thread pool's workers would hold up exit)."""
    if inspect.iscoroutinefunction(handler):
        return await handler(**arguments)
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result: Any, exc: Optional[BaseException]) -> None:
        if future.done():  # timed out already
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, exc = handler(**arguments), None
        except BaseException as error:  # handed to the awaiting task, which reports it
            result, exc = None, error
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:  # the loop is gone: the session ended meanwhile
            pass

    threading.Thread(target=work, name=f"tool {name}", daemon=True).start()
    result = await future
    return await result if inspect.isawaitable(result) else result
