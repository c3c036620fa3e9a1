"""Who may start a session: the checks a caller passes before a media connection is accepted.

Every refusal is an HTTP response sent *before* the WebSocket upgrade (so a refused caller never
holds a socket open), with a status and a one-line reason that names what to fix and never a
secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from aiohttp import web

if TYPE_CHECKING:
    from voicepipe.serve.host import ServedProfile, SessionHost

#: the largest WebSocket message a caller may send
MAX_FRAME_BYTES = 256 * 1024


class Guard:
    """Admission checks for one serving process."""

    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, host: SessionHost):
        self.host = host

    async def admit(self, request: web.Request, served: ServedProfile) -> Optional[web.Response]:
        """``None`` when the caller may start a session of ``served``, else the refusal to send."""
        reason = self.host.refusal(served)
        if reason is not None:
            self.host.refused("capacity" if self.host.accepting else "draining")
            return refuse(503, reason)
        return None


def refuse(status: int, reason: str) -> web.Response:
    """A refusal the page can show as it is: ``{"error": reason}``."""
    return web.json_response({"error": reason}, status=status, headers={"Retry-After": "5"} if status == 503 else None)
