"""voicepipe: a plugin-based event pipeline for the Azure AI Voice Live realtime API.

Plugins implement hooks marked with :data:`hookimpl`; see :mod:`voicepipe.hookspecs`.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    from voicepipe.context import SessionContext
    from voicepipe.functiontools import tool

    hookimpl: pluggy.HookimplMarker

__all__ = ["hookimpl", "tool", "SessionContext", "__version__"]


def __getattr__(name: str):
    # imported on first use, so that `import voicepipe` stays cheap: pluggy (with inspect) is half
    # of what `voicepipe --help` would import
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("voicepipe")  # one marker, kept
        return marker
    if name == "SessionContext":
        from voicepipe.context import SessionContext

        return SessionContext
    if name == "tool":
        from voicepipe.functiontools import tool

        return tool
    raise AttributeError(f"module 'voicepipe' has no attribute {name!r}")
