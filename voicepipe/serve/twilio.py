"""Twilio Media Streams as a transport: a Twilio phone number answered by a profile.

Routes, for a profile served as ``<name>`` (the first profile with ``backend: twilio`` also answers
at the bare ``/twilio/voice``):

``POST /<name>/twilio/voice``
    The number's voice webhook. The request must carry a valid ``X-Twilio-Signature`` (the auth
    token is ``TWILIO_AUTH_TOKEN`` in the environment); the answer is TwiML that connects the call
    to the media socket: ``<Connect><Stream url="wss://…/<name>/twilio/media">`` with a one-use
    token as a ``<Parameter>`` (a Stream URL takes no query string). When every line is busy or
    the server drains, the call is rejected as busy.
``GET /<name>/twilio/media``
    The bidirectional Media Stream: ``connected``, ``start`` (whose token is checked before a
    session starts), ``media`` (G.711 mu-law, 8 kHz), ``mark``, ``dtmf``, ``stop`` in; ``media``,
    ``mark`` and ``clear`` out.

**Played clock.** A mark is sent before each assistant item's first audio and after each chunk;
Twilio echoes a mark when its playback reaches it, so what was played of an item is the position of
the last echoed mark, as a device backend counts what its callback took. On barge-in ``clear``
empties Twilio's buffer and the truncation is at the last mark echoed *before* the clear (Twilio
echoes the remaining marks after a clear; those are ignored).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import hmac
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

from aiohttp import WSCloseCode, WSMsgType, web

from voicepipe.audio.pcm import g711_encode
from voicepipe.serve import phone
from voicepipe.serve.phone import PhoneOutput, PhoneTransport, b64, unb64

if TYPE_CHECKING:
    from voicepipe.serve.guard import Guard
    from voicepipe.serve.host import ServedProfile, SessionHost

AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
WIRE_RATE = 8000
#: messages a media socket may send before its ``start``, and how long it has for them
MAX_MESSAGES_BEFORE_START = 5
START_TIMEOUT_S = 10.0
#: the largest media payload accepted (Twilio sends 20 ms: 160 bytes of mu-law)
MAX_PAYLOAD_BYTES = 8000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
BARE_ROUTES = web.AppKey("twilio_bare_profile", str)


# Message shapes: https://www.twilio.com/docs/voice/media-streams/websocket-messages


class TwilioOutput(PhoneOutput):
    """Assistant audio as mu-law 8 kHz ``media`` messages, each followed by a ``mark``."""

    wire_rate = WIRE_RATE

    def __init__(self) -> None:
        super().__init__()
        self.stream_sid = ""
        self._marks: deque = deque()  # (name, item_id, position in frames), oldest first
        self._next_mark = 0

    def _send(self, wire_pcm: bytes, item_id: str, item: Any, frames: int) -> None:
        outbox = self.outbox
        if outbox is None:
            return
        sid = self.stream_sid
        if item.written == frames and frames:  # the item's first audio: a mark where it starts
            self._mark(item_id, 0)
        if wire_pcm:
            # {"event": "media", "streamSid": ..., "media": {"payload": <base64 mu-law>}}
            payload = b64(g711_encode(wire_pcm, "g711_ulaw"))
            outbox.send(f'{{"event":"media","streamSid":"{sid}","media":{{"payload":"{payload}"}}}}',
                        delta_at=self.delta_at, audio=True)
        if frames:
            self._mark(item_id, item.written)

    def _mark(self, item_id: str, position: int) -> None:
        # {"event": "mark", "streamSid": ..., "mark": {"name": ...}}
        self._next_mark += 1
        name = str(self._next_mark)
        self._marks.append((name, item_id, position))
        self.outbox.send(f'{{"event":"mark","streamSid":"{self.stream_sid}","mark":{{"name":"{name}"}}}}', audio=True)

    def acknowledged(self, name: str, at: float) -> None:
        """Twilio played up to the mark ``name``; marks are echoed in the order they were sent."""
        marks = self._marks
        if not any(entry[0] == name for entry in marks):
            return  # echoed after a clear, or never ours
        while marks:
            mark, item_id, position = marks.popleft()
            item = self._items.get(item_id)
            if item is not None:
                if position == 0:
                    self._started(item_id, item, at)
                else:
                    self._played(item_id, item, position, at)
            if mark == name:
                return

    def _stop_far_end(self) -> None:
        self._marks.clear()
        if self.outbox is not None:
            # {"event": "clear", "streamSid": ...}
            self.outbox.send(f'{{"event":"clear","streamSid":"{self.stream_sid}"}}')

    def _stop_pending(self) -> bool:
        return bool(self._marks)


class TwilioTransport(PhoneTransport):
    """One Twilio Media Stream (after its ``start``)."""

    kind = "twilio"
    # media payloads are always audio/x-mulaw at 8000 Hz (the start message's mediaFormat):
    # https://www.twilio.com/docs/voice/media-streams/websocket-messages
    wire_codec = "g711_ulaw"

    def __init__(self, ws: web.WebSocketResponse, log: Any, start: Mapping[str, Any]):
        super().__init__(ws, log, TwilioOutput(), WIRE_RATE)
        # it goes back into every message we send: only the characters a stream SID has
        self.stream_sid = _UNSAFE.sub("", str(start.get("streamSid") or ""))[:64]
        self.output.stream_sid = self.stream_sid
        self.call_sid = str((start.get("start") or {}).get("callSid") or "")

    def handle(self, message: dict, at: float) -> Optional[str]:
        event = message.get("event")
        if event == "media":
            media = message["media"]
            if media.get("track", "inbound") not in ("inbound", "inbound_track"):
                return None
            payload = unb64(media["payload"])
            if not payload or len(payload) > MAX_PAYLOAD_BYTES:
                raise ValueError("media payload that is not base64 audio of 1 to 8000 bytes")
            if not self.wire.push(payload, at):  # mu-law, decoded by the wire input
                raise ValueError("audio faster than real time (dropped)")
            return None
        if event == "mark":
            self.output.acknowledged(str(message["mark"]["name"]), at)
            return None
        if event == "stop":
            return "caller_hung_up"
        if event in ("dtmf", "connected", "start"):
            return None
        raise ValueError(f"unknown event {str(event)[:40]!r}")


# -- request signatures -----------------------------------------------------------------------------


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's request signature: HMAC-SHA1, keyed with the auth token, of the full URL followed
    by each POST parameter's name and value, sorted by name, base64-encoded.
    https://www.twilio.com/docs/usage/security#validating-requests"""
    data = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with or without its default port (Twilio signs the URL as it was
    configured, which a proxy may rewrite either way)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if parts.port is not None and parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=parts.hostname or "")))
    elif parts.port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.hostname}:{default}")))
    return variants


def check_signature(auth_token: str, url: str, params: Mapping[str, str], given: Optional[str]) -> bool:
    if not given:
        return False
    return any(hmac.compare_digest(signature(auth_token, variant, params), given) for variant in _url_variants(url))


# -- routes -----------------------------------------------------------------------------------------


def add_routes(app: web.Application, served: ServedProfile, host: SessionHost, guard: Guard) -> None:
    """``/<name>/twilio/voice`` and ``/<name>/twilio/media``; the first Twilio profile also at
    ``/twilio/voice``."""
    prefix = f"/{served.name}/twilio"
    voice = _voice_handler(served, host)
    app.router.add_post(f"{prefix}/voice", voice)
    app.router.add_get(f"{prefix}/media", _media_handler(served, host, guard))
    if BARE_ROUTES not in app:
        app[BARE_ROUTES] = served.name
        app.router.add_post("/twilio/voice", voice)


def _voice_handler(served: ServedProfile, host: SessionHost) -> Any:
    async def voice(request: web.Request) -> web.Response:
        auth_token = os.environ.get(AUTH_TOKEN_ENV, "")
        if not auth_token:
            host.log.error("twilio_not_configured", message=f"{AUTH_TOKEN_ENV} is not set: every Twilio request is refused")
            return web.Response(status=503, text=f"{AUTH_TOKEN_ENV} is not set on the server\n")
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        url = phone.public_url(request) + request.path_qs
        given = request.headers.get("X-Twilio-Signature")
        if not check_signature(auth_token, url, params, given):
            host.log.warning(
                "twilio_request_refused",
                problem="no X-Twilio-Signature" if not given else "an X-Twilio-Signature that does not match",
                url=url,
                remote=request.remote,
                hint=f"check {phone.PUBLIC_URL_ENV} (the URL Twilio calls) and {AUTH_TOKEN_ENV}",
            )
            return web.Response(status=403, text="request signature missing or wrong\n")
        if host.refusal(served) is not None:
            host.refused("capacity" if host.accepting else "draining")
            return _twiml('<Reject reason="busy"/>')
        token = phone.sign_media_token(phone.media_secret(auth_token), f"twilio:{served.name}")
        stream_url = phone.websocket_url(phone.public_url(request)) + f"/{served.name}/twilio/media"
        host.log.info("twilio_call", profile=served.name, call_sid=params.get("CallSid"))
        # Nothing follows </Connect>, so closing the media socket from here ends the call: Twilio
        # runs the TwiML after <Connect><Stream> only once our server closes the WebSocket
        # (https://www.twilio.com/docs/voice/twiml/stream), and with no action URL and no further
        # verb "Twilio will end the phone call" (https://www.twilio.com/docs/voice/twiml/connect).
        # Unlike ACS (see acs.hang_up_call), no REST hang-up is needed when the session ends first.
        return _twiml(
            f"<Connect><Stream url={quoteattr(stream_url)}>"
            f'<Parameter name="token" value={quoteattr(token)}/></Stream></Connect>'
        )

    return voice


def _twiml(body: str) -> web.Response:
    # https://www.twilio.com/docs/voice/twiml/stream
    return web.Response(
        text=f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', content_type="text/xml"
    )


def _media_handler(served: ServedProfile, host: SessionHost, guard: Guard) -> Any:
    async def media(request: web.Request) -> web.StreamResponse:
        refusal = await guard.admit(request, served)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(max_msg_size=guard.max_frame_bytes)
        await ws.prepare(request)
        start = await _read_start(ws, host.log)
        if start is None:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"expected connected and start")
            return ws
        params = (start.get("start") or {}).get("customParameters") or {}
        secret = phone.media_secret(os.environ.get(AUTH_TOKEN_ENV))
        problem = phone.check_media_token(secret, f"twilio:{served.name}", params.get("token") if isinstance(params, dict) else None)
        if problem is not None:
            host.log.warning("twilio_media_refused", problem=problem, remote=request.remote)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"not a call this server answered")
            return ws
        await host.serve_caller(served, TwilioTransport(ws, host.log, start))
        return ws

    return media


async def _read_start(ws: web.WebSocketResponse, log: Any) -> Optional[dict]:
    """The ``start`` message (after ``connected``), or ``None`` when it does not come in time."""
    for _ in range(MAX_MESSAGES_BEFORE_START):
        try:
            msg = await ws.receive(timeout=START_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("twilio_media_refused", problem=f"no start message within {START_TIMEOUT_S:g} s")
            return None
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            message = json.loads(msg.data)
        except ValueError:
            log.warning("twilio_bad_message", problem="not JSON before start")
            continue
        if isinstance(message, dict) and message.get("event") == "start" and isinstance(message.get("start"), dict):
            return message
    log.warning("twilio_media_refused", problem="no start message")
    return None
