"""The browser transport: the page at ``/<profile>/`` and its media WebSocket at ``/<profile>/ws``.

The WebSocket protocol (subprotocol ``voicepipe.v1``; a media token, when the server needs one,
is offered as a second subprotocol ``voicepipe.token.<token>``, read by the page from its URL
fragment ``#token=...`` so it never appears in a URL that is sent or logged):

Page -> server
    *binary*: PCM16 little-endian mono at the session's input rate, any whole number of samples
    per frame (the page sends 20 ms). Nothing else is binary.
    *text*, JSON objects:

    ``{"type": "played", "item_id": "...", "ms": 1234.5}``
        playback receipt: how much of that assistant item the page's playback worklet has
        actually rendered so far (cumulative; it only grows). This is the played clock.
    ``{"type": "hangup"}``
        the caller ends the call.

Server -> page
    *binary*: assistant audio, PCM16 mono at the session's output rate, after a 4-byte header:
    the item's number (uint32 little-endian) from an ``item`` message sent before its first audio.
    *text*, JSON objects with a ``type``:

    ``ready {input_rate, output_rate}``
        the session is open: start capturing at ``input_rate``, play at ``output_rate``.
    ``item {n, item_id}``
        binary frames headed ``n`` are audio of ``item_id``.
    ``clear``
        a barge-in: stop playback now and drop everything queued (then send a last receipt).
    ``transcript {role: user|assistant, item_id, delta}`` / ``{..., text, final: true}``
        live transcript text; a final one replaces what the deltas built.
    ``interrupted {item_id, played_ms}``
        that answer was cut where the listener stopped hearing it (the page greys out the text
        whose audio came after ``played_ms``: each delta is placed at the item's audio received
        before it).
    ``state {state: listening|user_speaking|thinking|speaking}``
    ``latency {response_id, voice_to_voice_ms, server_first_audio_ms, playout_delay_ms, ...}``
        one answered turn, from the metrics plugin.
    ``error {message}``
        something the caller should know (an error from the service); the call may go on.
    ``ended {reason}``
        the session is over; the socket closes next with ``reason`` as its close reason.

Anything else from the page (odd-sized or oversized frames, unknown or malformed messages, audio
faster than real time, message floods) is dropped, counted and logged a bounded number of times:
a misbehaving page never ends the session or the server.

The output's played clock is the page's receipts, the same rule as a sound card's callback
counter: a barge-in truncates the answer at what the listener heard, never at what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections import deque
from typing import Any, Callable, Optional

from aiohttp import WSMsgType, web

import voicepipe
from voicepipe.audio.base import AudioOutput, ItemPlayback
from voicepipe.audio.pcm import SAMPLE_WIDTH
from voicepipe.cycles import release_websocket
from voicepipe.logsetup import get_logger
from voicepipe.pipeline import event_fields
from voicepipe.serve.transport import CallerInput, Transport

PROTOCOL = "voicepipe.v1"
TOKEN_PROTOCOL_PREFIX = "voicepipe.token."
#: text messages a page may send per second (receipts come ~50 a second while audio plays)
TEXT_RATE = 200.0
TEXT_BURST = 400.0
#: audio a page may send ahead of real time before frames are dropped
AUDIO_AHEAD_S = 1.0
#: how much faster than real time a page's audio may arrive over a long stretch
AUDIO_RATE_SLACK = 1.25
#: problems of one kind logged per session (then only counted, in the summary at the end)
MAX_PROBLEM_LOGS = 5
#: messages waiting to be sent to a page that does not read them; beyond it the call is ended
MAX_OUTBOX = 5000
#: how long close() lets queued messages go out before closing the socket
CLOSE_FLUSH_S = 1.0

_HEADER = struct.Struct("<I")


# -- routes ------------------------------------------------------------------------------------------


def add_routes(app: web.Application, served: Any, host: Any, guard: Any) -> None:
    """The page, its files and the media WebSocket of ``served``."""
    from voicepipe.serve.app import static_dir

    base = f"/{served.name}/"
    page = (static_dir() / "index.html").read_bytes()

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", headers={"Cache-Control": "no-cache"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(base)

    async def media(request: web.Request) -> web.StreamResponse:
        refusal = await guard.admit(request, served)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(
            protocols=(PROTOCOL,), max_msg_size=guard.max_frame_bytes, compress=False, heartbeat=20.0
        )
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {"error": f"this is the media WebSocket; open the page at {base} to talk"}, status=426
            )
        await ws.prepare(request)
        await host.serve_caller(served, BrowserTransport(ws))
        return ws

    app.router.add_get(f"/{served.name}", redirect)
    app.router.add_get(base, index)
    app.router.add_get(base + "ws", media)
    app.router.add_static(base + "static/", static_dir(), append_version=False)


# -- the transport -----------------------------------------------------------------------------------


class BrowserTransport(Transport):
    """One page's media WebSocket as a session's audio, plus the events the page shows."""

    kind = "web"

    def __init__(self, ws: web.WebSocketResponse, clock: Callable[[], float] = time.monotonic):
        self.ws = ws
        self.clock = clock
        self.log = get_logger()
        self.input = CallerInput()
        self.output = BrowserOutput(self)
        self.plugin = PagePlugin(self)
        #: messages waiting behind a send the socket made wait (or queued before run())
        self._outbox: deque = deque()
        self._started = False
        #: the task finishing a send that had to wait and the messages queued behind it
        self._sender: Optional[asyncio.Future] = None
        self._closing: Optional[str] = None
        self._hung_up = False
        self._text_budget = TEXT_BURST
        self._text_at = clock()
        self._audio_start: Optional[float] = None
        self._audio_bytes = 0
        self.problems: dict[str, int] = {}

    # -- to the page ---------------------------------------------------------------------------

    def send(self, message: dict) -> None:
        """Queue a JSON message for the page (never blocks)."""
        self._queue(json.dumps(message, separators=(",", ":")))

    def send_frame(self, frame: bytes) -> None:
        self._queue(frame)

    def _queue(self, message: Any) -> None:
        if self._closing is not None or self.ws.closed:
            return
        if self._sender is None or self._sender.done():
            if self._outbox or self._started is False:
                self._outbox.append(message)
                return
            self._write_now(message)
            return
        if len(self._outbox) >= MAX_OUTBOX:
            self._problem("page_not_reading", "the page stopped reading; ending the call")
            self._closing = "caller_not_reading"
            self._outbox.clear()
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"not reading"))
            return
        self._outbox.append(message)

    def _write_now(self, message: Any) -> None:
        """Write ``message`` to the socket now, without a trip through the event loop: an
        uncompressed frame is written before the send's first await, which only waits when the
        socket is backed up. Then the rest of that send, and every message queued meanwhile, is
        finished by a task, in order."""
        send = self.ws.send_bytes(message) if type(message) is bytes else self.ws.send_str(message)
        try:
            waiting = send.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the socket is closing: the reader sees the end
            self._problem("send_failed", f"{type(exc).__name__}: {exc}")
            return
        self._sender = asyncio.ensure_future(self._finish(send, waiting))

    async def _finish(self, send: Any, waiting: Any) -> None:
        try:
            while True:  # drive the send that is waiting for the socket to drain
                await waiting
                try:
                    waiting = send.send(None)
                except StopIteration:
                    break
        except Exception as exc:
            self._problem("send_failed", f"{type(exc).__name__}: {exc}")
            return
        await self._finish_queued()

    async def _finish_queued(self) -> None:
        try:
            while self._outbox:
                message = self._outbox.popleft()
                if type(message) is bytes:
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_str(message)
        except Exception as exc:  # the socket is closing: the reader sees the end
            self._outbox.clear()
            self._problem("send_failed", f"{type(exc).__name__}: {exc}")

    async def _announce_ready(self) -> None:
        input_rate = await self.input.rate()
        output_rate = await self.output.rate()
        self.send({"type": "ready", "input_rate": input_rate, "output_rate": output_rate})

    # -- from the page -------------------------------------------------------------------------

    async def run(self) -> str:
        self._started = True
        if self._outbox:
            self._sender = asyncio.ensure_future(self._finish_queued())
        ready = asyncio.ensure_future(self._announce_ready())
        try:
            async for message in self.ws:
                if message.type == WSMsgType.BINARY:
                    self._on_audio(message.data)
                elif message.type == WSMsgType.TEXT:
                    self._on_text(message.data)
                    if self._hung_up:
                        break
                elif message.type == WSMsgType.ERROR:
                    self._problem("socket_error", str(self.ws.exception()))
                    return "caller_error"
            return "caller_hung_up"
        finally:
            ready.cancel()
            self.input.end()
            self.output.connection_lost()

    def _on_audio(self, data: bytes) -> None:
        size = len(data)
        if size & 1 or not size:
            self._problem("bad_audio_frame", f"{size} bytes is not a whole number of 16-bit samples")
            return
        rate = self.input.sample_rate
        if rate is not None:
            now = self.clock()
            if self._audio_start is None:
                self._audio_start = now
            allowed = ((now - self._audio_start) * AUDIO_RATE_SLACK + AUDIO_AHEAD_S) * rate * SAMPLE_WIDTH
            if self._audio_bytes + size > allowed:
                self._problem("audio_too_fast", "audio arrives faster than real time; dropping")
                return
            self._audio_bytes += size
        self.input.feed(data)

    def _on_text(self, data: str) -> None:
        now = self.clock()
        self._text_budget = min(TEXT_BURST, self._text_budget + (now - self._text_at) * TEXT_RATE)
        self._text_at = now
        if self._text_budget < 1.0:
            self._problem("message_flood", f"more than {TEXT_RATE:.0f} messages a second; dropping")
            return
        self._text_budget -= 1.0
        try:
            message = json.loads(data)
        except ValueError:
            self._problem("bad_message", "not JSON")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "played":
            item_id, ms = message.get("item_id"), message.get("ms")
            if (
                type(item_id) is not str
                or type(ms) not in (int, float)
                or not 0 <= ms < 1e9
                or not self.output.receipt(item_id, float(ms))
            ):
                self._problem("bad_receipt", "a played receipt with a bad or unknown item_id or ms")
        elif kind == "hangup":
            self._hung_up = True
        else:
            self._problem("unknown_message", f"unknown message type {str(kind)[:40]!r}")

    def _problem(self, kind: str, detail: str) -> None:
        count = self.problems[kind] = self.problems.get(kind, 0) + 1
        if count <= MAX_PROBLEM_LOGS:
            self.log.warning("web_caller_problem", problem=kind, detail=detail, count=count)

    # -- the end -------------------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """The session has ended: say why, close the socket, then :meth:`release`."""
        try:
            await self._close(reason)
        finally:
            self.release()

    async def _close(self, reason: str) -> None:
        if self._closing is None:
            self._closing = reason
            if not self.ws.closed:
                # what is queued (the last transcript, `ended`) goes out first, briefly
                message = json.dumps({"type": "ended", "reason": reason})
                if self._sender is None or self._sender.done():
                    self._outbox.append(message)
                    self._sender = asyncio.ensure_future(self._finish_queued())
                else:
                    self._outbox.append(message)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(self._sender), CLOSE_FLUSH_S)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(BaseException):
                await self._sender
        self.output.connection_lost()
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=1000, message=reason.encode()[:120])
        if self.problems:
            self.log.info("web_caller_problems", **self.problems)

    def release(self) -> None:
        """Once the call is over (its session ended, the socket closed): cut the references back to
        this transport (from its output, its page plugin, its last sender task) and the socket's
        own cycle, so that reference counting frees the call's objects, not a full collection."""
        self.output.transport = self.plugin.transport = None
        self._sender = None
        release_websocket(self.ws)


# -- the output: the page's played clock -------------------------------------------------------------


class _Item:
    __slots__ = ("number", "header", "written", "played", "started_at", "finished_at", "cleared")

    def __init__(self, number: int):
        self.number = number
        self.header = _HEADER.pack(number)
        self.written = 0  # frames sent
        self.played = 0  # frames the page reported played
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.cleared = False


class BrowserOutput(AudioOutput):
    """Sends assistant audio to the page; ``played_ms`` is what the page's receipts say it played."""

    #: items remembered; older ones are forgotten
    MAX_ITEMS = 256

    def __init__(self, transport: BrowserTransport):
        self.transport = transport
        self.sample_rate = 0
        self._items: dict[str, _Item] = {}
        self._numbers = 0
        self._opened = asyncio.Event()
        self._progress = asyncio.Event()
        self._gone = False

    async def open(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self._opened.set()

    async def rate(self) -> int:
        await self._opened.wait()
        return self.sample_rate

    def write(self, pcm: bytes, item_id: str) -> None:
        if len(pcm) & 1:
            pcm = pcm[:-1]
        if not pcm or self._gone:
            return
        item = self._items.get(item_id)
        if item is None:
            self._numbers += 1
            item = self._items[item_id] = _Item(self._numbers)
            if len(self._items) > self.MAX_ITEMS:
                del self._items[next(iter(self._items))]
            self.transport.send({"type": "item", "n": item.number, "item_id": item_id})
        item.written += len(pcm) // SAMPLE_WIDTH
        item.finished_at = None
        item.cleared = False
        self.transport.send_frame(item.header + pcm)

    def played_ms(self, item_id: str) -> float:
        item = self._items.get(item_id)
        return item.played * 1000.0 / self.sample_rate if item is not None and self.sample_rate else 0.0

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        item = self._items.get(item_id)
        return self._snapshot(item_id, item) if item is not None else None

    def clear(self) -> Optional[ItemPlayback]:
        head = None
        for item_id, item in self._items.items():
            if item.played < item.written and not item.cleared:
                if head is None:
                    head = self._snapshot(item_id, item)
                item.cleared = True
        if head is not None:  # by the receipts the page has nothing queued otherwise
            self.transport.send({"type": "clear"})
            self._progress.set()
        return head

    async def drain(self) -> None:
        while not self._gone and any(i.played < i.written and not i.cleared for i in self._items.values()):
            self._progress.clear()
            await self._progress.wait()

    async def close(self) -> None:
        self.connection_lost()

    def connection_lost(self) -> None:
        self._gone = True
        self._progress.set()

    def receipt(self, item_id: str, ms: float) -> bool:
        """The page played ``ms`` of ``item_id`` so far; whether the receipt names a known item."""
        item = self._items.get(item_id)
        if item is None or not self.sample_rate:
            return False
        frames = min(int(ms * self.sample_rate / 1000.0 + 0.5), item.written)
        if frames <= item.played:
            return True
        now = self.transport.clock()
        item.played = frames
        self._progress.set()
        notify = self.on_playback
        if item.started_at is None:
            item.started_at = now
            if notify is not None:
                notify("started", item_id)
        if frames >= item.written and not item.cleared:
            item.finished_at = now
            if notify is not None:
                notify("finished", item_id)
        return True

    def _snapshot(self, item_id: str, item: _Item) -> ItemPlayback:
        rate = self.sample_rate or 1
        return ItemPlayback(
            item_id=item_id,
            written_ms=item.written * 1000.0 / rate,
            played_ms=item.played * 1000.0 / rate,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )


# -- what the page shows: server events as page messages ---------------------------------------------


_USER_DELTA = "conversation.item.input_audio_transcription.delta"
_USER_DONE = "conversation.item.input_audio_transcription.completed"
_ASSISTANT_DELTAS = frozenset(
    {"response.audio_transcript.delta", "response.output_audio_transcript.delta", "response.text.delta", "response.output_text.delta"}
)
_ASSISTANT_DONE = frozenset(
    {"response.audio_transcript.done", "response.output_audio_transcript.done", "response.text.done", "response.output_text.done"}
)
_SHOWN = frozenset(
    {_USER_DELTA, _USER_DONE, "input_audio_buffer.committed", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "response.done", "error"}
    | _ASSISTANT_DELTAS
    | _ASSISTANT_DONE
)
#: the metrics the page shows of each turn
LATENCY_FIELDS = ("voice_to_voice_ms", "server_first_audio_ms", "playout_delay_ms", "interrupted")


class PagePlugin:
    """Hook implementations registered in the session's plugin manager: forward transcript, state
    and latency to the page."""

    def __init__(self, transport: BrowserTransport):
        self.transport = transport
        self.speaking: set = set()

    def _state(self, state: str) -> None:
        self.transport.send({"type": "state", "state": state})

    @voicepipe.hookimpl(trylast=True)
    def voicepipe_session_start(self, ctx: Any) -> None:
        metrics = getattr(ctx, "stash", {}).get("metrics")
        sinks = getattr(metrics, "sinks", None)
        if isinstance(sinks, list):
            sinks.append(_LatencySink(self.transport))
        self._state("listening")

    @voicepipe.hookimpl
    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        fields = event_fields(event)
        kind = fields.get("type")
        if kind not in _SHOWN:  # every audio delta passes here: one set lookup
            return
        send = self.transport.send
        if kind in _ASSISTANT_DELTAS:
            send({"type": "transcript", "role": "assistant", "item_id": fields.get("item_id"), "delta": fields.get("delta") or ""})
        elif kind in _ASSISTANT_DONE:
            text = fields.get("transcript") if "transcript" in fields else fields.get("text")
            send({"type": "transcript", "role": "assistant", "item_id": fields.get("item_id"), "text": text or "", "final": True})
        elif kind == _USER_DELTA:
            send({"type": "transcript", "role": "user", "item_id": fields.get("item_id"), "delta": fields.get("delta") or ""})
        elif kind == _USER_DONE:
            send({"type": "transcript", "role": "user", "item_id": fields.get("item_id"), "text": fields.get("transcript") or "", "final": True})
        elif kind == "input_audio_buffer.committed":  # the user's line, in order, before its text
            send({"type": "transcript", "role": "user", "item_id": fields.get("item_id"), "delta": ""})
        elif kind == "input_audio_buffer.speech_started":
            self._state("user_speaking")
        elif kind == "input_audio_buffer.speech_stopped":
            self._state("thinking")
        elif kind == "response.done":
            if not self.speaking:
                self._state("listening")
        elif kind == "error":
            error = fields.get("error") or {}
            message = error.get("message") if hasattr(error, "get") else None
            send({"type": "error", "message": str(message or "the service reported an error")[:300]})

    @voicepipe.hookimpl
    def voicepipe_playback(self, event: Any, ctx: Any) -> None:
        kind, item_id = event.get("type"), event.get("item_id")
        if kind == "playback.started":
            self.speaking.add(item_id)
            self._state("speaking")
            return
        self.speaking.discard(item_id)
        if kind == "playback.interrupted":
            self.transport.send({"type": "interrupted", "item_id": item_id, "played_ms": event.get("played_ms")})
        elif not self.speaking:
            self._state("listening")


class _LatencySink:
    """A metrics exporter that shows each turn's latency on the page."""

    def __init__(self, transport: BrowserTransport):
        self.transport = transport

    def observe(self, record: dict) -> None:
        message = {"type": "latency", "response_id": record.get("response_id")}
        for name in LATENCY_FIELDS:
            message[name] = record.get(name)
        self.transport.send(message)

    def close(self) -> None:
        pass
