"""voicepipe: a plugin-based event pipeline for the Azure AI Voice Live realtime API.

Plugins implement hooks marked with :data:`hookimpl`; see :mod:`voicepipe.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("voicepipe")

__all__ = ["hookimpl", "__version__"]
