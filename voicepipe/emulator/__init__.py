"""A local Azure AI Voice Live service: the offline default and the test backbone.

The official SDK connects to it unchanged::

    from voicepipe.emulator import Emulator

    async with Emulator("scenario.yaml", speed=0) as emulator:
        async with connect(endpoint=emulator.url, credential=AzureKeyCredential("any")) as conn:
            ...

``Emulator`` (in-process server), ``serve`` (the blocking ``voicepipe emulator`` command),
``Scenario`` / ``load_scenario`` (turns, tool calls and faults from YAML). The server imports
aiohttp and numpy, so it is loaded only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicepipe.emulator.scenario import Scenario, load_scenario, parse_scenario

if TYPE_CHECKING:
    from voicepipe.emulator.server import Emulator, serve

__all__ = ["Emulator", "Scenario", "load_scenario", "parse_scenario", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Emulator", "serve"):
        from voicepipe.emulator import server

        return getattr(server, name)
    raise AttributeError(f"module 'voicepipe.emulator' has no attribute {name!r}")
