"""A stand-in media transport for the serving tests: a WebSocket at ``/<name>/call`` whose caller
is the question WAV (:class:`serve_helpers.WavCaller`); the client only watches and hangs up.

The server says ``started`` once the session has opened its input; the client's text messages
pass the guard's rate limit, ``bye`` hangs up; an oversized message is cut off as the guard says.
Registered in ``TRANSPORT_ROUTES`` by the tests (and by ``serve_process.py`` in a subprocess).
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web
from serve_helpers import WavCaller

from voicepipe.serve import guard as guards


class SocketCaller(WavCaller):
    def __init__(self, ws: web.WebSocketResponse, served, guard):
        super().__init__()
        self.ws, self.served, self.guard = ws, served, guard
        self.limiter = guard.rate_limiter(served)

    async def run(self) -> str:
        speaking = asyncio.ensure_future(super().run())
        try:
            await self.input.rate()
            await self.ws.send_str("started")
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    if not self.limiter.allow():
                        await self.ws.close(code=guards.CLOSE_POLICY, message=self.limiter.reason.encode())
                        break
                    if message.data == "bye":
                        break
                elif message.type == WSMsgType.ERROR:
                    self.guard.violation(self.served, "message_size")
                    break
            return "caller_hung_up"
        finally:
            self.hang_up()
            await speaking

    async def close(self, reason: str) -> None:
        await super().close(reason)
        if not self.ws.closed:
            await self.ws.close(message=reason.encode())


def add_routes(app: web.Application, served, host, guard) -> None:
    async def call(request: web.Request) -> web.StreamResponse:
        refusal = await guard.admit(request, served)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(protocols=(guards.PROTOCOL,), max_msg_size=guard.max_frame_bytes)
        await ws.prepare(request)
        await host.run_session(served, SocketCaller(ws, served, guard))
        return ws

    app.router.add_get(f"/{served.name}/call", call)
