"""voicepipe: a plugin-based event pipeline for the Azure AI Voice Live realtime API.

Plugins implement hooks marked with :data:`hookimpl`; see :mod:`voicepipe.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("voicepipe")

__all__ = ["hookimpl", "tool", "SessionContext", "__version__"]


def __getattr__(name: str):
    # imported on first use, so that `import voicepipe` stays cheap
    if name == "SessionContext":
        from voicepipe.context import SessionContext

        return SessionContext
    if name == "tool":
        from voicepipe.functiontools import tool

        return tool
    raise AttributeError(f"module 'voicepipe' has no attribute {name!r}")
