"""The event loop a voicepipe process runs on: uvloop when it is installed (the extra
``voicepipe-live[fast]``), asyncio's own otherwise.

``VOICEPIPE_LOOP`` chooses: ``asyncio`` (asyncio's loop even where uvloop is installed), ``uvloop``
(uvloop, or a usage error where it is not installed) or ``auto`` (the same as unset). Sessions
(``voicepipe run``, ``replay``, ``test``, the pytest plugin), the emulator and ``voicepipe serve``
(its gunicorn workers too) start their loop through :func:`run` or :func:`new_event_loop`.
"""

from __future__ import annotations

import os
from typing import Any, Coroutine, Mapping, Optional, TypeVar

from voicepipe.errors import UsageError

ENV = "VOICEPIPE_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


def chosen(environ: Optional[Mapping[str, str]] = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop ``VOICEPIPE_LOOP`` (and what is installed) asks for."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise UsageError(f"{ENV}={value}: unknown event loop; use asyncio, uvloop or auto (or leave it unset)")
    if value == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if value == "uvloop":
            raise UsageError(f"{ENV}=uvloop: uvloop is not installed; pip install 'voicepipe-live[fast]' "
                             f"or set {ENV}=asyncio") from None
        return "asyncio"
    return "uvloop"


def new_event_loop() -> Any:
    """A new event loop of the chosen kind (not set as the thread's current loop)."""
    if chosen() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    import asyncio

    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on the chosen loop."""
    try:
        kind = chosen()
    except UsageError:
        coro.close()  # never started: no "coroutine was never awaited" warning
        raise
    if kind == "uvloop":
        import uvloop

        return uvloop.run(coro)
    import asyncio

    return asyncio.run(coro)
