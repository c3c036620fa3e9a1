"""Finding, loading and checking plugins.

Load order: the built-ins (less those the profile disables: ``disable:``, or ``enabled: false`` in
the built-in's section), installed plugins (entry-point group
``voicepipe``; ``VOICEPIPE_DISABLE_PLUGIN_AUTOLOAD=1`` skips them), then the profile's ``plugins:``
list. Every function named ``voicepipe_*`` in a plugin is taken as a hook implementation, marked or
not, so that a misspelt hook name fails loudly instead of being silently dead.

Every session has a plugin manager of its own. Loading (imports, files, entry points) happens once
per profile, in a :class:`PluginSet`; :meth:`PluginSet.manager` then builds a session's manager: a
module plugin is registered as it is (shared, so it must keep no state of its own), a class plugin
is instantiated, so each session gets a fresh object (see :mod:`voicepipe.hookspecs`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Optional

import pluggy

from voicepipe import hookspecs
from voicepipe.errors import UsageError
from voicepipe.functiontools import TypedToolsPlugin, typed_tools
from voicepipe.pyfiles import import_file, resolve_file
from voicepipe.lazyimport import lazy_module

difflib = lazy_module("difflib", globals())  # did-you-mean hints, for errors only

if TYPE_CHECKING:
    from voicepipe.profile.model import Profile

#: built-in plugin name -> module; the order is the registration order
BUILTINS: dict[str, str] = {
    "audio": "voicepipe.builtin.audio",
    "tools": "voicepipe.builtin.tools",
    "recorder": "voicepipe.builtin.recorder",
    "transcript": "voicepipe.builtin.transcript",
    "metrics": "voicepipe.builtin.metrics",
    "console": "voicepipe.builtin.console",
}
ENTRY_POINT_GROUP = "voicepipe"
HOOK_PREFIX = "voicepipe_"


class PluginInfo(NamedTuple):  # not a dataclass: making one costs `voicepipe validate` half a millisecond
    """What ``voicepipe plugins`` shows about one loaded plugin."""

    name: str
    source: str  # "built-in", "entry point <dist>", a file path or a module name
    hooks: list[str]


#: what in a module's namespace can carry a ``@hookimpl`` marker for pluggy
_MARKABLE = (FunctionType, MethodType, staticmethod, classmethod)


class VoicepipePluginManager(pluggy.PluginManager):
    """A pluggy manager that treats every ``voicepipe_*`` function as a hook implementation."""

    def __init__(self) -> None:
        super().__init__("voicepipe")
        self.add_hookspecs(hookspecs)
        self.sources: dict[str, str] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str):  # type: ignore[override]
        if type(plugin) is ModuleType and not name.startswith(HOOK_PREFIX):
            if not isinstance(plugin.__dict__.get(name), _MARKABLE):
                # a module's constant, class or submodule: pluggy would find no hook either, after
                # a static lookup of the name (inspect.getattr_static) that costs more, for the
                # built-ins' few hundred names, than the rest of their registration
                return None
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(HOOK_PREFIX):
            if callable(getattr(plugin, name, None)):
                return {}
        return opts

    def add(self, plugin: Any, name: str, source: str) -> None:
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"{source}: {_validation_problem(exc)}") from None
        except ValueError as exc:  # already registered under that name
            raise UsageError(f"{source}: plugin name {name!r} is already taken ({exc})") from None
        self.sources[name] = source

    def describe(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            hooks = sorted(
                hc.name for hc in (self.get_hookcallers(plugin) or []) if hc.name.startswith(HOOK_PREFIX)
            )
            infos.append(PluginInfo(name, self.sources.get(name, "?"), hooks))
        return infos


def _validation_problem(exc: pluggy.PluginValidationError) -> str:
    """pluggy's message, without the plugin's object id and with the hook's real arguments."""
    text = str(exc)
    hook = re.search(r"for hook '(\w+)'", text)
    extra = re.search(r"Argument\(s\) (\{.*?\})", text)
    if hook and extra:
        caller = getattr(hookspecs, hook.group(1), None)
        offered = ", ".join(inspect.signature(caller).parameters) if caller else "?"
        return (
            f"{hook.group(1)}() takes no argument(s) {extra.group(1)}; "
            f"the hook offers: {offered} (take any subset, by these names)"
        )
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _plugin_object(module: ModuleType) -> Any:
    """A module may expose its hooks itself or through a ``plugin`` object (or class)."""
    return getattr(module, "plugin", module)


class PluginSet:  # a plain class: making a dataclass costs `voicepipe validate` half a millisecond
    """The plugins a profile loads, imported once; :meth:`manager` makes a session's manager."""

    def __init__(self, profile: Optional[Profile]) -> None:
        self.profile = profile
        #: ``(name, module or object or class, source)`` in registration order
        self.entries: list[tuple[str, Any, str]] = []

    def manager(self) -> VoicepipePluginManager:
        """A new plugin manager: shared module plugins, and a new instance of each class plugin."""
        pm = VoicepipePluginManager()
        for name, plugin, source in self.entries:
            pm.add(_instance(plugin, self.profile, source) if inspect.isclass(plugin) else plugin, name, source)
        check_hooks(pm)
        return pm


def _instance(cls: type, profile: Optional[Profile], source: str) -> Any:
    """A class plugin's object for one session: ``cls(profile=...)`` when it takes a profile."""
    try:
        takes_profile = "profile" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_profile = False
    try:
        return cls(profile=profile) if takes_profile else cls()
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{source}: {cls.__name__}() failed: {type(exc).__name__}: {exc}") from None


def load_plugin_set(
    profile: Optional[Profile] = None, *, autoload: Optional[bool] = None, without: Iterable[str] = ()
) -> PluginSet:
    """Import the plugins of ``profile`` (built-ins only when ``profile`` is ``None``);
    ``without`` names built-ins to leave out on top of those the profile disables."""
    plugins = PluginSet(profile)
    taken: set[str] = set()

    def add(name: str, plugin: Any, source: str) -> None:
        if name in taken:
            raise UsageError(f"{source}: plugin name {name!r} is already taken")
        taken.add(name)
        plugins.entries.append((name, plugin, source))

    disabled = set(without) | (set(profile.disable) if profile is not None else set()) | _switched_off(profile)
    for name, module_name in BUILTINS.items():
        if name in disabled:
            continue
        add(name, _plugin_object(importlib.import_module(module_name)), "built-in")
    if autoload is None:
        autoload = os.environ.get("VOICEPIPE_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    if autoload:
        for name, plugin, source in _entry_point_plugins(taken):
            add(name, plugin, source)
    if profile is not None:
        for index, spec in enumerate(profile.plugins):
            folder = profile.dir_of("plugins", index) if hasattr(profile, "dir_of") else profile.base_dir
            name, plugin, source = load_plugin(spec, folder)
            add(name, plugin, source)
            tools = typed_tools(plugin)
            if tools:  # the module's @voicepipe.tool functions
                add(f"{name}.tools", TypedToolsPlugin(tools), source)
    return plugins


def _switched_off(profile: Optional[Profile]) -> set[str]:
    """Built-ins whose section says ``enabled: false`` (``transcript: {enabled: false}``)."""
    section = getattr(profile, "section", None)
    if section is None:
        return set()
    return {name for name in BUILTINS if section(name).get("enabled") is False}


def make_plugin_manager(
    profile: Optional[Profile] = None, *, autoload: Optional[bool] = None, without: Iterable[str] = ()
) -> VoicepipePluginManager:
    """The plugin manager of one session of ``profile`` (see :func:`load_plugin_set`)."""
    return load_plugin_set(profile, autoload=autoload, without=without).manager()


def _entry_point_plugins(taken: set[str]) -> list[tuple[str, Any, str]]:
    if "importlib.metadata" not in sys.modules and not _may_declare_entry_points(ENTRY_POINT_GROUP):
        return []
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in taken:
            continue
        dist = getattr(ep, "dist", None)
        source = f"entry point {dist.name} {dist.version}" if dist else f"entry point {ep.value}"
        try:
            loaded = ep.load()
        except Exception as exc:
            raise UsageError(f"installed plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from None
        if all(ep.name != name for name, _, _ in found):
            found.append((ep.name, _plugin_object(loaded) if isinstance(loaded, ModuleType) else loaded, source))
    return found


def _may_declare_entry_points(group: str) -> bool:
    """Whether an installed distribution may declare entry points in ``group``, found without
    importing :mod:`importlib.metadata` (with ``email``, ``zipfile``, ``csv``: a third of what
    ``voicepipe validate`` imports). Looks where its default finder looks, the ``*.dist-info`` and
    ``*.egg-info`` folders of the ``sys.path`` folders, for an ``entry_points.txt`` with a
    ``[group]`` section; anything it cannot read that way (a zip on the path, a finder of another
    kind that lists distributions) counts as a maybe."""
    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and getattr(finder, "__module__", "") != "_frozen_importlib_external":
            return True
    section = re.compile(r"^\s*\[\s*" + re.escape(group) + r"\s*\]\s*$", re.MULTILINE)
    for folder in sys.path:
        folder = folder or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8", errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                if section.search(text):
                    return True
    return False


def plugin_name(spec: str) -> str:
    """The name a ``plugins:`` entry registers under (and the profile section it may read)."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        return Path(spec).stem
    return spec.rsplit(".", 1)[-1]


def load_plugin(spec: str, base_dir: Path) -> tuple[str, Any, str]:
    """Load one ``plugins:`` entry: a built-in name, a file path or a dotted module name."""
    if spec in BUILTINS:
        raise UsageError(f"plugin {spec!r} is built in and always loaded; list it under 'disable:' to turn it off")
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = resolve_file(spec, base_dir)
        return plugin_name(spec), _plugin_object(import_file(path, spec)), spec
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            hint = difflib.get_close_matches(spec, list(BUILTINS), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else " (a built-in name, a dotted module or a .py path)"
            raise UsageError(f"unknown plugin {spec!r}{suffix}") from None
        raise UsageError(f"plugin {spec!r} failed to import: {exc}") from None
    except Exception as exc:
        raise UsageError(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
    return plugin_name(spec), _plugin_object(module), spec


def check_hooks(pm: VoicepipePluginManager) -> None:
    """Fail on hook implementations that match no hook (``check_pending``), with a did-you-mean."""
    known = sorted(name for name in dir(hookspecs) if name.startswith(HOOK_PREFIX))
    problems = []
    for name, plugin in pm.list_name_plugin():
        for hook_caller in pm.get_hookcallers(plugin) or []:
            if hook_caller.spec is None:
                hint = difflib.get_close_matches(hook_caller.name, known, n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else f" (known hooks: {', '.join(known)})"
                problems.append(f"{pm.sources.get(name, name)}: unknown hook {hook_caller.name!r}{suffix}")
    if problems:
        raise UsageError("\n".join(problems))


def release_plugin_manager(pm: pluggy.PluginManager) -> None:
    """Let reference counting free ``pm``, and the plugin objects it holds, once its session has
    ended and no hook is to be called any more (``pm.hook`` is empty afterwards).

    Each of pluggy's hook callers refers back to its manager (its ``_hookexec`` is the manager's
    bound method), so a manager would otherwise wait, with all it refers to, for a full garbage
    collection; in a process serving many sessions such a collection stalls every caller's audio.
    Emptying the hook relay drops the hook callers, and with them that cycle.
    """
    vars(pm.hook).clear()


def configure_plugins(pm: VoicepipePluginManager, profile: Profile) -> None:
    """Call ``voicepipe_configure``, then check that the profile's function tools have an
    implementation; a plugin's ``UsageError`` stays a configuration error."""
    try:
        pm.hook.voicepipe_configure.call_historic(kwargs={"profile": profile})
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"a plugin failed to configure: {type(exc).__name__}: {exc}") from None
    if pm.has_plugin("tools"):
        from voicepipe.toolbind import check_tools

        check_tools(profile, pm)


def plugin_names(specs: Iterable[str]) -> list[str]:
    return [plugin_name(s) for s in specs]
