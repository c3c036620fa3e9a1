"""Standard modules a module needs only once a session runs, imported on first use.

``voicepipe validate`` imports the built-in plugins (their hooks check the profile), and they use
:mod:`asyncio` only in a session; importing it costs as much as the rest of ``validate`` (it brings
``ssl``, ``concurrent.futures`` and ``logging``). ``asyncio = lazy_module("asyncio", globals())``
binds a stand-in that imports the module on the first attribute read and then puts the module
itself in its place, so every later read is the module's (no indirection, and patching the module
works as usual).
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("_name", "_globals", "_alias")

    def __init__(self, name: str, owner: dict, alias: str):
        self._name = name
        self._globals = owner
        self._alias = alias

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self._name)
        if self._globals.get(self._alias) is self:
            self._globals[self._alias] = module
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str, owner: dict, alias: str = "") -> Any:
    """A stand-in for module ``name``, bound as ``alias`` (default: the name's last part) in the
    module whose ``globals()`` is ``owner``."""
    return _LazyModule(name, owner, alias or name.rpartition(".")[2])
