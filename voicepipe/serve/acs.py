"""Azure Communication Services (ACS) Call Automation as a transport: an ACS phone number answered
by a profile, with bidirectional media streaming.

Routes, for a profile served as ``<name>`` (the first profile with ``backend: acs`` also answers at
the bare ``/acs/events``):

``POST /<name>/acs/events``
    The Event Grid webhook of the ACS resource (Event Grid schema). It answers the
    ``SubscriptionValidationEvent`` handshake, and answers each ``IncomingCall`` with
    ``azure-communication-callautomation`` (``pip install 'voicepipe-live[acs]'``): media streaming over
    a WebSocket to ``/<name>/acs/media`` with a one-use token, bidirectional, PCM16 mono at 24 kHz
    (16 kHz when the session's ``input_audio_sampling_rate`` is 16000), started at once. When
    ``VOICEPIPE_ACS_EVENTS_KEY`` is set the webhook URL must carry ``?key=<that value>``.
    Credentials come from the environment only: ``AZURE_COMMUNICATION_CONNECTION_STRING``, or
    ``AZURE_COMMUNICATION_ENDPOINT`` with an Entra ID credential (``DefaultAzureCredential``).
``POST /<name>/acs/callbacks``
    Call Automation's mid-call events (``CallConnected``, ``MediaStreamingStarted``, ...): logged.
``GET /<name>/acs/media?token=…``
    The media socket: ``AudioMetadata`` and ``AudioData`` in, ``AudioData`` and ``StopAudio`` out.

**Hanging up.** Closing the media socket does not end an ACS call (the caller would stay on a
silent line), so when the session ends from this side (the service closed it, a time limit, a
drain, a failing plugin) the call is hung up for everyone through Call Automation, once; not when
the caller hung up first (ACS then closed the media socket). The call is the one named by the
socket's ``x-ms-call-connection-id`` header, or else the one this process answered with the
socket's media token. A hang-up that fails is logged (``acs_hang_up_failed``), never raised.

**Played clock.** ACS sends no playback receipts. The assumption, stated once here: ACS plays the
audio it receives in order and in real time, starting ``PLAYOUT_DELAY_S`` after we send it (the
network and its jitter buffer), and ``StopAudio`` drops everything it has not played yet. So an
item has been played up to where that model's clock is; on barge-in the truncation is there.
``tests/test_serve_acs.py`` measures the error against a far end whose real delay differs.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Optional

from aiohttp import web

from voicepipe.serve import phone
from voicepipe.serve.phone import PhoneOutput, PhoneTransport, b64, unb64

if TYPE_CHECKING:
    from voicepipe.serve.guard import Guard
    from voicepipe.serve.host import ServedProfile, SessionHost

CONNECTION_STRING_ENV = "AZURE_COMMUNICATION_CONNECTION_STRING"
ENDPOINT_ENV = "AZURE_COMMUNICATION_ENDPOINT"
EVENTS_KEY_ENV = "VOICEPIPE_ACS_EVENTS_KEY"
#: the assumed delay between sending audio and ACS playing it (see the module docstring)
PLAYOUT_DELAY_S = 0.1
WIRE_RATES = (24000, 16000)
#: the most audio one AudioData message may carry (ACS sends 20 ms)
MAX_FRAME_S = 1.0
#: events one Event Grid delivery may hold (it batches up to 5000; calls come one by one)
MAX_EVENTS = 100
BARE_ROUTES = web.AppKey("acs_bare_profile", str)
#: how long a hang-up request may take before it is given up (and logged)
HANG_UP_TIMEOUT_S = 10.0
#: the header ACS names the call with when it opens the media socket; see
#: https://learn.microsoft.com/azure/communication-services/how-tos/call-automation/secure-webhook-endpoint
#: ("x-ms-call-correlation-id and x-ms-call-connection-id ... sent when Azure Communication Services
#: tries to connect to your endpoint")
CALL_CONNECTION_HEADER = "x-ms-call-connection-id"
_CALL_CONNECTION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: calls this process answered, by their media token's nonce (for a socket without the header)
_answered: "OrderedDict[str, str]" = OrderedDict()
MAX_ANSWERED = 1000

# Message shapes: https://learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart
#   in:  {"kind": "AudioMetadata", "audioMetadata": {"subscriptionId", "encoding": "PCM", "sampleRate", "channels", "length"}}
#        {"kind": "AudioData", "audioData": {"timestamp", "participantRawID", "data": <base64 PCM16>, "silent": bool}}
#   out: {"Kind": "AudioData", "AudioData": {"Data": <base64 PCM16>}, "StopAudio": null}
#        {"Kind": "StopAudio", "AudioData": null, "StopAudio": {}}
_STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'


class AcsOutput(PhoneOutput):
    """Assistant audio as ``AudioData`` messages; played by the model clock above."""

    def __init__(self, wire_rate: int, playout_delay_s: float = PLAYOUT_DELAY_S):
        super().__init__()
        self.wire_rate = wire_rate
        self.playout_delay_s = playout_delay_s
        self._segments: deque = deque()  # [item_id, starts (monotonic), frames, frames played]
        self._tail = 0.0  # when the audio sent so far will have played, by the model

    def _send(self, wire_pcm: bytes, item_id: str, item: Any, frames: int) -> None:
        if self.outbox is None:
            return
        if wire_pcm:
            self.outbox.send(f'{{"Kind":"AudioData","AudioData":{{"Data":"{b64(wire_pcm)}"}},"StopAudio":null}}',
                             delta_at=self.delta_at, audio=True)
        if not frames:
            return
        now = time.monotonic()
        starts = max(self._tail, now + self.playout_delay_s)
        self._tail = starts + frames / self.rate
        self._segments.append([item_id, starts, frames, 0])
        loop = self._loop
        if loop is not None:  # wake at the segment's start (a first sample) and its end
            if item.started_at is None and item.written == frames:
                loop.call_at(loop.time() + (starts - now), self._advance)
            loop.call_at(loop.time() + (self._tail - now), self._advance)

    def _advance(self) -> None:
        segments = self._segments
        if not segments:
            return
        now = time.monotonic()
        while segments:
            segment = segments[0]
            item_id, starts, frames, done = segment
            if now < starts:
                break
            item = self._items.get(item_id)
            reached = min(frames, int((now - starts) * self.rate))
            if item is not None:
                if item.started_at is None:
                    self._started(item_id, item, starts)
                if reached > done:
                    self._played(item_id, item, item.played + reached - done, min(now, starts + frames / self.rate))
            segment[3] = reached
            if reached < frames:
                break
            segments.popleft()

    def _stop_far_end(self) -> None:
        self._segments.clear()
        self._tail = 0.0
        if self.outbox is not None:
            self.outbox.send(_STOP_AUDIO)

    def _stop_pending(self) -> bool:
        return self._tail > time.monotonic()

    def _drain_poll_s(self) -> float:
        return max(min(self._tail - time.monotonic(), 0.5), 0.005)


class AcsTransport(PhoneTransport):
    """One ACS media stream."""

    kind = "acs"

    def __init__(self, ws: web.WebSocketResponse, log: Any, wire_rate: int,
                 call_connection_id: Optional[str] = None, media_nonce: Optional[str] = None):
        super().__init__(ws, log, AcsOutput(wire_rate), wire_rate)
        self.wire_rate = wire_rate
        self.frame_bytes = wire_rate // 50 * 2
        self.call_connection_id = call_connection_id
        self.media_nonce = media_nonce
        #: the far end closed the media socket: the caller hung up (the call is over already)
        self.far_end_hung_up = False
        self.hung_up_call = False

    async def run(self) -> str:
        why = await super().run()
        if why == "caller_hung_up":
            self.far_end_hung_up = True
        return why

    async def close(self, reason: str) -> None:
        first = not self._closed
        answered = _answered.pop(self.media_nonce, None) if first and self.media_nonce else None
        await super().close(reason)
        if first and not self.far_end_hung_up and not self.hung_up_call:
            self.hung_up_call = True
            await hang_up_call(self.call_connection_id or answered, self.log, reason)

    def handle(self, message: dict, at: float) -> Optional[str]:
        kind = message.get("kind")
        if kind == "AudioData":
            data = message["audioData"]
            pcm = unb64(data.get("data") or "")
            if pcm is None or len(pcm) % 2 or len(pcm) > MAX_FRAME_S * self.wire_rate * 2:
                raise ValueError("AudioData that is not base64 PCM16 of at most 1 s")
            if data.get("silent") is True:
                # silence is still audio time for the session's clock
                pcm = bytes(len(pcm) or self.frame_bytes)
            if not pcm:
                raise ValueError("AudioData without audio")
            if not self.wire.push(pcm, at):
                raise ValueError("audio faster than real time (dropped)")
            return None
        if kind == "AudioMetadata":
            meta = message["audioMetadata"]
            rate, channels, encoding = meta.get("sampleRate"), meta.get("channels", 1), meta.get("encoding", "PCM")
            if rate not in WIRE_RATES or channels != 1 or encoding != "PCM":
                raise ValueError(f"AudioMetadata for audio this server did not ask for ({encoding} {rate} Hz x{channels})")
            self.wire_rate = rate
            self.frame_bytes = int(meta.get("length") or rate // 50 * 2)
            self.wire.set_wire_rate(rate)
            return None
        if kind in ("DtmfData", "TranscriptionMetadata", "TranscriptionData"):
            return None
        raise ValueError(f"unknown kind {str(kind)[:40]!r}")


# -- routes -----------------------------------------------------------------------------------------


def add_routes(app: web.Application, served: ServedProfile, host: SessionHost, guard: Guard) -> None:
    """``/<name>/acs/events``, ``/<name>/acs/callbacks``, ``/<name>/acs/media``; the first ACS
    profile also at ``/acs/events``."""
    prefix = f"/{served.name}/acs"
    events = _events_handler(served, host)
    app.router.add_post(f"{prefix}/events", events)
    app.router.add_post(f"{prefix}/callbacks", _callbacks_handler(served, host))
    app.router.add_get(f"{prefix}/media", _media_handler(served, host, guard))
    if BARE_ROUTES not in app:
        app[BARE_ROUTES] = served.name
        app.router.add_post("/acs/events", events)


def wire_rate_for(served: ServedProfile) -> int:
    """24 kHz, or 16 kHz for a session whose input runs at 16 kHz."""
    return 16000 if served.profile.session.get("input_audio_sampling_rate") == 16000 else 24000


def _secret() -> bytes:
    connection = os.environ.get(CONNECTION_STRING_ENV, "")
    key = next((part.split("=", 1)[1] for part in connection.split(";") if part.lower().startswith("accesskey=")), None)
    return phone.media_secret(key)


def _events_handler(served: ServedProfile, host: SessionHost) -> Any:
    async def events(request: web.Request) -> web.Response:
        expected = os.environ.get(EVENTS_KEY_ENV)
        if expected and not hmac.compare_digest(request.query.get("key", ""), expected):
            host.log.warning("acs_events_refused", problem="no key or a wrong key in the URL", remote=request.remote)
            return web.Response(status=403, text="wrong key\n")
        try:
            batch = await request.json()
        except ValueError:
            host.log.warning("acs_bad_event", problem="not JSON", remote=request.remote)
            return web.Response(status=400, text="expected an Event Grid JSON array\n")
        if isinstance(batch, dict):
            batch = [batch]
        if not isinstance(batch, list) or len(batch) > MAX_EVENTS:
            host.log.warning("acs_bad_event", problem="not an Event Grid array of events", remote=request.remote)
            return web.Response(status=400, text="expected an Event Grid JSON array\n")
        for event in batch:
            if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
                host.log.warning("acs_bad_event", problem="an event without data")
                continue
            kind = event.get("eventType")
            # https://learn.microsoft.com/azure/event-grid/webhook-event-delivery
            if kind == "Microsoft.EventGrid.SubscriptionValidationEvent":
                code = event["data"].get("validationCode")
                if not isinstance(code, str):
                    return web.Response(status=400, text="validation event without a code\n")
                host.log.info("acs_subscription_validated", profile=served.name)
                return web.json_response({"validationResponse": code})
            # https://learn.microsoft.com/azure/event-grid/communication-services-voice-video-events
            if kind == "Microsoft.Communication.IncomingCall":
                await _answer(request, served, host, event["data"])
            else:
                host.log.info("acs_event_ignored", event_type=str(kind)[:80])
        return web.Response(status=200)

    return events


async def _answer(request: web.Request, served: ServedProfile, host: SessionHost, data: dict) -> None:
    context = data.get("incomingCallContext")
    if not isinstance(context, str) or not context:
        host.log.warning("acs_bad_event", problem="IncomingCall without incomingCallContext")
        return
    if host.refusal(served) is not None:
        host.refused("capacity" if host.accepting else "draining")
        host.log.warning("acs_call_not_answered", reason=host.refusal(served))
        return
    try:
        from azure.communication.callautomation import (
            AudioFormat,
            MediaStreamingAudioChannelType,
            MediaStreamingContentType,
            MediaStreamingOptions,
            StreamingTransportType,
        )
        from azure.communication.callautomation.aio import CallAutomationClient
    except ImportError:
        host.log.error("acs_not_installed", message="answering ACS calls needs: pip install 'voicepipe-live[acs]'")
        return
    base = phone.public_url(request)
    token = phone.sign_media_token(_secret(), f"acs:{served.name}")
    rate = wire_rate_for(served)
    streaming = MediaStreamingOptions(
        transport_url=f"{phone.websocket_url(base)}/{served.name}/acs/media?token={token}",
        transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO,
        audio_channel_type=MediaStreamingAudioChannelType.MIXED,
        start_media_streaming=True,
        enable_bidirectional=True,
        audio_format=AudioFormat.PCM24_K_MONO if rate == 24000 else AudioFormat.PCM16_K_MONO,
    )
    try:
        async with _client(CallAutomationClient) as client:
            if client is None:
                host.log.error("acs_not_configured",
                               message=f"set {CONNECTION_STRING_ENV}, or {ENDPOINT_ENV} with an Entra ID credential")
                return
            result = await client.answer_call(
                incoming_call_context=context,
                callback_url=f"{base}/{served.name}/acs/callbacks",
                media_streaming=streaming,
                operation_context=f"voicepipe:{served.name}",
            )
        call_connection_id = getattr(result, "call_connection_id", None)
        if isinstance(call_connection_id, str) and call_connection_id:
            _answered[token.split(".")[1]] = call_connection_id
            while len(_answered) > MAX_ANSWERED:
                _answered.popitem(last=False)
        host.log.info("acs_call_answered", profile=served.name, call_connection_id=call_connection_id)
    except Exception as exc:  # the SDK's errors carry the service's message, never the key
        host.log.error("acs_answer_failed", profile=served.name, error=f"{type(exc).__name__}: {str(exc)[:300]}")


async def hang_up_call(call_connection_id: Optional[str], log: Any, reason: str) -> None:
    """End the call for everyone: ``POST {endpoint}/calling/callConnections/{id}:terminate``
    (the SDK's ``hang_up(is_for_everyone=True)``); a failure is one logged line."""
    if not call_connection_id:
        log.warning("acs_hang_up_failed", reason=reason,
                    error=f"the media connection named no call ({CALL_CONNECTION_HEADER}) and this process did not answer it")
        return
    try:
        from azure.communication.callautomation.aio import CallAutomationClient

        async with _client(CallAutomationClient) as client:
            if client is None:
                log.warning("acs_hang_up_failed", call_connection_id=call_connection_id, reason=reason,
                            error=f"set {CONNECTION_STRING_ENV}, or {ENDPOINT_ENV} with an Entra ID credential")
                return
            call = client.get_call_connection(call_connection_id)
            await asyncio.wait_for(call.hang_up(is_for_everyone=True), HANG_UP_TIMEOUT_S)
        log.info("acs_call_hung_up", call_connection_id=call_connection_id, reason=reason)
    except asyncio.TimeoutError:
        log.warning("acs_hang_up_failed", call_connection_id=call_connection_id, reason=reason,
                    error=f"no answer within {HANG_UP_TIMEOUT_S:g} s")
    except Exception as exc:  # the SDK's errors carry the service's message, never the key
        log.warning("acs_hang_up_failed", call_connection_id=call_connection_id, reason=reason,
                    error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


class _client:
    """The Call Automation client from the environment (``None`` when nothing is configured)."""

    def __init__(self, cls: Any):
        self.cls = cls
        self.client: Any = None
        self.credential: Any = None

    async def __aenter__(self) -> Any:
        connection = os.environ.get(CONNECTION_STRING_ENV)
        # a CA bundle named by SSL_CERT_FILE (a TLS-inspecting proxy's) is honoured even though
        # aiohttp made its default TLS context before the variable could be read
        options = {"connection_verify": os.environ["SSL_CERT_FILE"]} if os.environ.get("SSL_CERT_FILE") else {}
        if connection:
            self.client = self.cls.from_connection_string(connection, **options)
        elif os.environ.get(ENDPOINT_ENV):
            from azure.identity.aio import DefaultAzureCredential

            self.credential = DefaultAzureCredential()
            self.client = self.cls(os.environ[ENDPOINT_ENV], self.credential, **options)
        if self.client is not None:
            await self.client.__aenter__()
        return self.client

    async def __aexit__(self, *exc: Any) -> None:
        if self.client is not None:
            await self.client.__aexit__(*exc)
        if self.credential is not None:
            await self.credential.close()


def _callbacks_handler(served: ServedProfile, host: SessionHost) -> Any:
    async def callbacks(request: web.Request) -> web.Response:
        try:
            batch = await request.json()
        except ValueError:
            return web.Response(status=400)
        for event in batch if isinstance(batch, list) else [batch]:
            if isinstance(event, dict):
                data = event.get("data") if isinstance(event.get("data"), dict) else {}
                host.log.info("acs_call_event", profile=served.name, event_type=str(event.get("type"))[:80],
                              call_connection_id=str(data.get("callConnectionId"))[:80])
        return web.Response(status=200)

    return callbacks


def _media_handler(served: ServedProfile, host: SessionHost, guard: Guard) -> Any:
    async def media(request: web.Request) -> web.StreamResponse:
        problem = phone.check_media_token(_secret(), f"acs:{served.name}", request.query.get("token"))
        if problem is not None:
            host.log.warning("acs_media_refused", problem=problem, remote=request.remote)
            return web.json_response({"error": "not a call this server answered"}, status=403)
        refusal = await guard.admit(request, served)
        if refusal is not None:
            return refusal
        named = request.headers.get(CALL_CONNECTION_HEADER, "").strip()
        call_connection_id = named if _CALL_CONNECTION_ID.fullmatch(named) else None
        ws = web.WebSocketResponse(max_msg_size=guard.max_frame_bytes)
        await ws.prepare(request)
        transport = AcsTransport(ws, host.log, wire_rate_for(served), call_connection_id=call_connection_id,
                                 media_nonce=request.query["token"].split(".")[1])
        await host.serve_caller(served, transport)
        return ws

    return media

