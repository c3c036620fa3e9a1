"""What the two phone transports (:mod:`voicepipe.serve.acs`, :mod:`voicepipe.serve.twilio`) share.

- :class:`WireInput`: the caller's audio as it arrives on the socket (PCM16 at the wire's rate),
  converted to the session's input rate (soxr, :mod:`voicepipe.audio.resample`) and fed to a
  :class:`TimedCallerInput`, which remembers when each chunk's audio arrived.
- :class:`Outbox`: the one writer of a media WebSocket; the messages go out in order, and queued
  audio that was not sent yet is dropped on barge-in.
- :class:`PhoneOutput`: the assistant's audio, converted to the wire's rate and format and sent as
  it comes, with per-item accounting; subclasses say what has been *played* (Twilio's acknowledged
  marks, ACS's sent audio less the buffering it is assumed to hold).
- :class:`TransportPlugin`: the transport's own latency (socket in -> ``input_audio_buffer.append``
  sent; audio delta received -> the audio written to the socket), written to ``metrics.json`` as
  its ``transport`` section.
- :class:`Misbehaviour`: bounded, logged handling of bad input from the far end.
- :func:`public_url`, :func:`sign_media_token`, :func:`check_media_token`: the URLs handed to the
  phone service, and the one-use tokens that let only the call we answered open a media socket.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from typing import Any, Callable, Optional

from aiohttp import WSCloseCode, WSMsgType, web

import voicepipe
from voicepipe.audio.base import AudioOutput, ItemPlayback
from voicepipe.audio.pcm import SAMPLE_WIDTH, g711_decode
from voicepipe.cycles import release_websocket
from voicepipe.serve.transport import MAX_PENDING_S, CallerInput, Transport

#: where the phone service reaches this server (``https://voice.example.com``); without it the
#: request's forwarded host (``X-Forwarded-Proto`` / ``X-Forwarded-Host``) or its own host is used
PUBLIC_URL_ENV = "VOICEPIPE_PUBLIC_URL"
#: the key media tokens are signed with, the same for every worker; see :func:`media_secret`
MEDIA_SECRET_ENV = "VOICEPIPE_MEDIA_SECRET"
#: how long after the call was answered its media socket may connect
MEDIA_TOKEN_TTL_S = 120.0
#: bad messages logged one by one before only every hundredth is
LOGGED_BAD_MESSAGES = 5
#: bad messages after which the caller's connection is closed
MAX_BAD_MESSAGES = 200
#: audio a caller may send ahead of real time before the excess is dropped (a flood)
MAX_AHEAD_S = MAX_PENDING_S
#: latency samples kept per direction (about an hour of 20 ms chunks); beyond it they are counted only
MAX_SAMPLES = 200_000

_DELTA_TYPES = frozenset({"response.audio.delta", "response.output_audio.delta"})


# -- input ------------------------------------------------------------------------------------------


class TimedCallerInput(CallerInput):
    """A :class:`CallerInput` that also knows when the audio of each chunk it yields arrived on
    the socket: the arrival of the chunk's last byte, queued in :attr:`arrivals` for the transport
    plugin to match with the ``input_audio_buffer.append`` that carries the chunk."""

    def __init__(self) -> None:
        super().__init__()
        self._fed_until: deque = deque()  # (position of the end of a feed in the fed stream, arrival)
        self._fed = 0
        self._yielded = 0
        #: arrival time of each yielded chunk, oldest first, until its append is sent
        self.arrivals: deque = deque(maxlen=1000)

    def feed_at(self, pcm: bytes, at: float, leave: Optional[bool] = None) -> None:
        """:meth:`feed` ``pcm`` that arrived at ``at``."""
        if self._ended or self._closed or not pcm:
            return
        self._fed += len(pcm)
        self._fed_until.append((self._fed, at))
        if len(self._fed_until) > 4096:  # nobody reads (the session has not opened its input)
            self._fed_until.popleft()
        self.feed(pcm, leave)

    async def __aiter__(self):  # type: ignore[override]
        fed_until = self._fed_until
        async for chunk in super().__aiter__():
            self._yielded += len(chunk)
            end = self._yielded + self.dropped_bytes  # dropped audio left the stream from the front
            at = None
            while fed_until and fed_until[0][0] <= end:
                at = fed_until.popleft()[1]
            if at is None and fed_until:
                at = fed_until[0][1]
            if at is not None:
                self.arrivals.append(at)
            yield chunk


class WireInput:
    """The caller's audio from the socket (mono at ``wire_rate``: PCM16, or G.711 ``codec`` bytes)
    into the session's input, converted to PCM16 at the session's input rate.

    Until the session has opened its input (its rate is not known yet) up to ``MAX_PENDING_S`` of
    wire audio waits here. A caller sending faster than real time beyond ``MAX_AHEAD_S`` is
    flooding: the excess is dropped and reported.

    With the input's :attr:`~voicepipe.audio.base.AudioInput.batcher` set, its rules are applied
    here, frame by frame, to the wire audio as it arrives (quiet judged on the wire samples: for
    G.711 a byte lookup, no decoding): frames that may wait are kept as they came and converted
    together when one must leave, so the steady middle of a call costs one decoding and one
    resampling per batch instead of per 20 ms frame. The edges leave at once as for any input; a
    frame that is not one input chunk long leaves at once too. The resampler is exact
    (:class:`~voicepipe.audio.resample.StreamResampler`), so the session receives the same bytes
    however the frames were grouped."""

    def __init__(self, target: TimedCallerInput, wire_rate: int, clock: Callable[[], float] = time.monotonic,
                 codec: Optional[str] = None):
        self.target = target
        self.wire_rate = int(wire_rate)
        self.clock = clock
        self.codec = codec
        self.width = 1 if codec else SAMPLE_WIDTH  # wire bytes per sample
        self._resampler: Any = None
        self._rate: Optional[int] = None
        self._early: list[tuple[bytes, float]] = []
        self._early_bytes = 0
        self._started: Optional[float] = None
        self._received_s = 0.0
        self._gate: Any = None  # the input's batcher, when its rules are applied here
        self._frame_bytes = 0  # wire bytes of one input chunk
        self._quiet_codes = b""
        self._held: list[bytes] = []
        #: wire audio dropped as a flood (seconds)
        self.flooded_s = 0.0

    def set_wire_rate(self, rate: int) -> None:
        """The far end said which rate it sends (ACS's ``AudioMetadata``)."""
        if int(rate) != self.wire_rate:
            self._release(self.clock())  # held audio was at the old rate
            self.wire_rate = int(rate)
            self._rate = None  # the converter is rebuilt for the new rate

    def push(self, wire: bytes, at: float) -> bool:
        """Add wire audio received at ``at``; ``False`` when it was dropped as a flood."""
        seconds = len(wire) / self.width / self.wire_rate
        if self._started is None:
            self._started = at
        self._received_s += seconds
        if self._received_s - (at - self._started) > MAX_AHEAD_S:
            self._received_s -= seconds
            self.flooded_s += seconds
            return False
        rate = self.target.sample_rate
        if rate is None:
            self._early.append((wire, at))
            self._early_bytes += len(wire)
            limit = int(MAX_PENDING_S * self.wire_rate) * self.width
            while self._early_bytes > limit:
                self._early_bytes -= len(self._early.pop(0)[0])
            return True
        if rate != self._rate:
            self._setup(rate)
        if self._early:
            early, self._early = self._early, []
            self._early_bytes = 0
            self._convert([part for part, _ in early], early[-1][1], True if self._gate is not None else None)
        gate = self._gate
        if gate is None:
            self._convert([wire], at, None)
            return True
        if len(wire) == self._frame_bytes and gate.decide(self._quiet(wire)):
            self._held.append(wire)
            return True
        held = self._held
        held.append(wire)
        self._held = []
        self._convert(held, at, True)
        return True

    def _setup(self, rate: int) -> None:
        self._rate = rate
        self._resampler = None
        if rate != self.wire_rate:
            from voicepipe.audio.resample import StreamResampler

            self._resampler = StreamResampler(self.wire_rate, rate, exact=True)
        batcher = self.target.batcher
        self._gate = batcher if batcher is not None and getattr(batcher, "enabled", False) else None
        if self._gate is not None:
            frames = self.wire_rate * batcher.chunk_ms / 1000
            self._frame_bytes = int(frames) * self.width if frames == int(frames) else -1
            if self.codec:
                from voicepipe.audio.pcm import g711_quiet_codes

                self._quiet_codes = g711_quiet_codes(self.codec, batcher.peak)

    def _quiet(self, wire: bytes) -> bool:
        if self.codec:
            return not wire.translate(None, self._quiet_codes)
        return self._gate.is_quiet(wire)

    def _convert(self, parts: list, at: float, leave: Optional[bool]) -> None:
        wire = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.codec:
            wire = g711_decode(wire, self.codec)
        pcm = self._resampler.process(wire) if self._resampler is not None else wire
        self.target.feed_at(pcm, at, leave)

    def _release(self, at: float) -> None:
        """Convert and hand on what the batcher's rules kept waiting."""
        if self._held:
            held, self._held = self._held, []
            self._convert(held, at, True)

    def end(self) -> None:
        self._release(self.clock())
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail:
                self.target.feed_at(tail, self.clock(), True if self._gate is not None else None)
        self.target.end()


# -- output -----------------------------------------------------------------------------------------


class Outbox:
    """Messages to the far end, sent in order by one task. ``audio`` messages carry the time their
    audio delta reached the session, so the time to the socket is measured when each is sent; they
    can be dropped while still queued (:meth:`drop_audio`)."""

    def __init__(self, ws: web.WebSocketResponse, latency: "LatencyLog"):
        self.ws = ws
        self.latency = latency
        self._queue: deque = deque()  # (text, delta_at or None, is_audio)
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self.closed = False
        self.sent_messages = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="voicepipe phone outbox")

    def send(self, text: str, delta_at: Optional[float] = None, audio: bool = False) -> None:
        if self.closed:
            return
        self._queue.append((text, delta_at, audio))
        self._wake.set()

    def drop_audio(self) -> int:
        """Drop the queued audio (and marks) not sent yet; how many messages were dropped."""
        kept = deque(entry for entry in self._queue if not entry[2])
        dropped = len(self._queue) - len(kept)
        self._queue = kept
        return dropped

    async def _run(self) -> None:
        clock = time.monotonic
        try:
            while True:
                while self._queue:
                    text, delta_at, _ = self._queue.popleft()
                    await self.ws.send_str(text)
                    self.sent_messages += 1
                    if delta_at is not None:
                        self.latency.output(clock() - delta_at)
                if self.closed:
                    return
                self._wake.clear()
                await self._wake.wait()
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            self.closed = True  # the caller is gone: nothing more to send

    async def close(self, flush_s: float = 1.0) -> None:
        """Send what is queued (within ``flush_s``), then stop."""
        self.closed = True
        self._wake.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), flush_s)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()


class _Item:
    __slots__ = ("written", "played", "started_at", "finished_at")

    def __init__(self) -> None:
        self.written = 0  # frames at the session's output rate
        self.played = 0
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None


class PhoneOutput(AudioOutput):
    """The assistant's audio to the caller: converted to the wire (rate and encoding), sent as it
    comes (the phone service buffers and plays it in real time), counted per item at the session's
    rate. Subclasses send it (:meth:`_send`), move :attr:`_items`' ``played`` counters from what
    they learn of the far end's playback, and stop the far end's playback on :meth:`clear`."""

    #: the rate the far end takes
    wire_rate = 24000

    def __init__(self) -> None:
        self.outbox: Optional[Outbox] = None  # set by the transport once the socket is open
        self.rate = 0
        self._resampler: Any = None
        self._items: dict[str, _Item] = {}
        self._order: deque = deque()  # item ids with audio not played yet, oldest first
        self._current: Optional[str] = None
        self._closed = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._announced: list = []
        self._played_out = asyncio.Event()
        #: set by the transport plugin when an audio delta reaches the session
        self.delta_at: Optional[float] = None
        self.sent_ms = 0.0
        self.clears = 0

    # -- the contract ---------------------------------------------------------------------------

    async def open(self, sample_rate: int) -> None:
        self.rate = int(sample_rate)
        self._loop = asyncio.get_running_loop()
        if self.rate != self.wire_rate:
            from voicepipe.audio.resample import StreamResampler

            self._resampler = StreamResampler(self.rate, self.wire_rate)

    def write(self, pcm: bytes, item_id: str) -> None:
        if self._closed or self.rate == 0:
            return
        pcm = bytes(pcm)
        frames = len(pcm) // SAMPLE_WIDTH
        if not frames:
            return
        if item_id != self._current:
            self._flush_resampler()
            self._current = item_id
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            if len(self._items) > 256:
                del self._items[next(iter(self._items))]
        if not self._order or self._order[-1] != item_id:
            self._order.append(item_id)
        item.written += frames
        item.finished_at = None
        self._played_out.clear()
        wire = self._resampler.process(pcm) if self._resampler is not None else pcm
        self.sent_ms += frames * 1000.0 / self.rate
        self._send(wire, item_id, item, frames)

    def played_ms(self, item_id: str) -> float:
        self._advance()
        item = self._items.get(item_id)
        return item.played * 1000.0 / self.rate if item is not None and self.rate else 0.0

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        self._advance()
        item = self._items.get(item_id)
        return self._snapshot(item_id, item) if item is not None else None

    def clear(self) -> Optional[ItemPlayback]:
        """Stop the far end's playback; the playback of the item that was playing (or next)."""
        self._advance()
        head = next((i for i in self._order if self._items.get(i) and self._items[i].played < self._items[i].written), None)
        snapshot = self._snapshot(head, self._items[head]) if head is not None else None
        if self._resampler is not None:
            self._resampler.flush()  # what it held is not sent: the answer stops here
        self._current = None
        self._order.clear()
        if self.outbox is not None:
            self.outbox.drop_audio()
        if snapshot is not None or self._stop_pending():
            self.clears += 1
            self._stop_far_end()
        self._played_out.set()
        return snapshot

    async def drain(self) -> None:
        self._flush_resampler()
        while not self._closed and not (self.outbox is not None and self.outbox.closed):
            self._advance()
            if not self._order:
                return
            self._played_out.clear()
            try:
                await asyncio.wait_for(self._played_out.wait(), self._drain_poll_s())
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        self._closed = True
        self._played_out.set()

    def hang_up(self) -> None:
        """The caller is gone: nothing more is sent or played."""
        self._closed = True
        self._played_out.set()

    # -- for subclasses -------------------------------------------------------------------------

    def _send(self, wire_pcm: bytes, item_id: str, item: _Item, frames: int) -> None:
        raise NotImplementedError

    def _stop_far_end(self) -> None:
        raise NotImplementedError

    def _stop_pending(self) -> bool:
        """Whether the far end may still hold audio to stop although no item is unplayed."""
        return False

    def _advance(self) -> None:
        """Bring the played counters up to now (a modelled clock moves here)."""

    def _drain_poll_s(self) -> float:
        return 0.5

    def _flush_resampler(self) -> None:
        if self._resampler is not None and self._current is not None:
            tail = self._resampler.flush()
            if tail and not self._closed:
                item = self._items.get(self._current)
                if item is not None:
                    self._send(tail, self._current, item, 0)

    def _played(self, item_id: str, item: _Item, played: int, at: float, started_at: Optional[float] = None) -> None:
        """``item`` has now been played up to ``played`` frames (read at ``at``)."""
        if played <= item.played:
            return
        item.played = min(played, item.written)
        if item.started_at is None:
            item.started_at = started_at if started_at is not None else at
            self._announce("started", item_id)
        if item.played >= item.written:
            item.finished_at = at
            self._announce("finished", item_id)
            while self._order and self._fully_played(self._order[0]):
                self._order.popleft()
            if not self._order:
                self._played_out.set()

    def _started(self, item_id: str, item: _Item, at: float) -> None:
        if item.started_at is None:
            item.started_at = at
            self._announce("started", item_id)

    def _fully_played(self, item_id: str) -> bool:
        item = self._items.get(item_id)
        return item is None or item.played >= item.written

    def _announce(self, kind: str, item_id: str) -> None:
        # never from inside one of the audio plugin's own calls: on the next loop iteration
        if self.on_playback is not None and self._loop is not None:
            if not self._announced:
                self._loop.call_soon(self._deliver)
            self._announced.append((kind, item_id))

    def _deliver(self) -> None:
        milestones, self._announced = self._announced, []
        for kind, item_id in milestones:
            if self.on_playback is not None:
                self.on_playback(kind, item_id)

    def _snapshot(self, item_id: str, item: _Item) -> ItemPlayback:
        return ItemPlayback(
            item_id=item_id,
            written_ms=item.written * 1000.0 / self.rate,
            played_ms=item.played * 1000.0 / self.rate,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> Optional[bytes]:
    """Base64 text as bytes, or ``None`` when it is not base64."""
    if not isinstance(text, str):
        return None
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        return None


# -- latency and the metrics section ----------------------------------------------------------------


class LatencyLog:
    """The transport's own latency samples, in seconds."""

    def __init__(self) -> None:
        self.inbound: list[float] = []  # socket in -> input_audio_buffer.append sent
        self.outbound: list[float] = []  # audio delta received -> written to the socket
        self.inbound_count = 0
        self.outbound_count = 0

    def input(self, seconds: float) -> None:
        self.inbound_count += 1
        if len(self.inbound) < MAX_SAMPLES:
            self.inbound.append(seconds)

    def output(self, seconds: float) -> None:
        self.outbound_count += 1
        if len(self.outbound) < MAX_SAMPLES:
            self.outbound.append(seconds)


class TransportPlugin:
    """Hooks of one phone call's session: the transport's latency, and its section of
    ``metrics.json`` (``transport``: the kind, the latency of each direction as count/p50/p90/
    p99/max in ms, what was dropped and how often the far end misbehaved)."""

    def __init__(self, transport: Any):
        self.transport = transport

    @voicepipe.hookimpl(tryfirst=True)
    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else getattr(event, "type", None)
        if kind in _DELTA_TYPES:
            self.transport.output.delta_at = time.monotonic()

    @voicepipe.hookimpl
    def voicepipe_client_event(self, event: Any, ctx: Any) -> None:
        if event.get("type") == "input_audio_buffer.append":
            arrivals = self.transport.input.arrivals
            if arrivals:
                self.transport.latency.input(time.monotonic() - arrivals.popleft())

    @voicepipe.hookimpl
    def voicepipe_reconnected(self, ctx: Any) -> None:
        self.transport.input.arrivals.clear()  # appends from before the gap were dropped or re-sent

    @voicepipe.hookimpl
    def voicepipe_session_end(self, ctx: Any, reason: str) -> None:
        # runs before the metrics plugin writes metrics.json (it runs last)
        metrics = ctx.stash.get("metrics")
        sections = getattr(metrics, "sections", None)
        if isinstance(sections, dict):
            sections["transport"] = self.transport.metrics_section  # called when the file is written

    @staticmethod
    def summary(latency: LatencyLog) -> dict:
        from voicepipe.metrics_stats import summarize

        def ms(values: list[float]) -> dict:
            return summarize([round(v * 1000.0, 3) for v in values])

        return {
            "socket_in_to_append_ms": ms(latency.inbound),
            "delta_to_socket_out_ms": ms(latency.outbound),
            "samples": {"inbound": latency.inbound_count, "outbound": latency.outbound_count},
        }


# -- bad input --------------------------------------------------------------------------------------


class Misbehaviour:
    """Counts bad messages from the far end, logs the first few and then every hundredth (never the
    message itself beyond a short preview), and says when the connection should be closed."""

    def __init__(self, log: Any, kind: str):
        self.log = log
        self.kind = kind
        self.count = 0
        self.by_problem: dict[str, int] = {}

    def bad(self, problem: str, preview: Any = None) -> bool:
        """Record one bad message; ``True`` when the caller has sent too many and must go."""
        self.count += 1
        self.by_problem[problem] = self.by_problem.get(problem, 0) + 1
        if self.count <= LOGGED_BAD_MESSAGES or self.count % 100 == 0:
            text = repr(preview)[:80] if preview is not None else None
            self.log.warning(f"{self.kind}_bad_message", problem=problem, count=self.count, preview=text)
        return self.count >= MAX_BAD_MESSAGES


async def close_hostile(ws: web.WebSocketResponse, log: Any, kind: str) -> None:
    log.warning(f"{kind}_caller_closed", reason=f"more than {MAX_BAD_MESSAGES} bad messages")
    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many bad messages")


# -- URLs and tokens --------------------------------------------------------------------------------


def public_url(request: web.Request) -> str:
    """Where the phone service reaches this server: ``VOICEPIPE_PUBLIC_URL``, else the forwarded
    host of a proxy in front, else the request's own scheme and host (no trailing slash)."""
    configured = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip() or "http"
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


def websocket_url(base: str) -> str:
    """``https://h/p`` -> ``wss://h/p`` (``http`` -> ``ws``)."""
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    return base


_PROCESS_SECRET = secrets.token_bytes(32)
_used_nonces: dict[str, float] = {}


def media_secret(*fallbacks: Optional[str]) -> bytes:
    """The key media tokens are signed with: ``VOICEPIPE_MEDIA_SECRET``, else the first secret the
    transport already has from the environment (the Twilio auth token, the ACS access key), else a
    key of this process (fine for one worker; set ``VOICEPIPE_MEDIA_SECRET`` for several)."""
    for value in (os.environ.get(MEDIA_SECRET_ENV), *fallbacks):
        if value:
            return hashlib.sha256(b"voicepipe media token\0" + value.encode("utf-8")).digest()
    return _PROCESS_SECRET


def sign_media_token(secret: bytes, scope: str, now: Optional[float] = None) -> str:
    """A token for one media connection of ``scope`` (``"twilio:demo"``), valid ``MEDIA_TOKEN_TTL_S``."""
    expires = int((now if now is not None else time.time()) + MEDIA_TOKEN_TTL_S)
    nonce = secrets.token_urlsafe(12)
    mac = hmac.new(secret, f"{scope}|{expires}|{nonce}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{expires}.{nonce}.{mac}"


def check_media_token(secret: bytes, scope: str, token: Any, now: Optional[float] = None) -> Optional[str]:
    """``None`` when ``token`` is a valid, unused token of ``scope``, else why not (never the token)."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 200:
        return "no media token"
    expires, nonce, mac = token.split(".")
    want = hmac.new(secret, f"{scope}|{expires}|{nonce}".encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(want, mac):
        return "a media token that does not match"
    now = now if now is not None else time.time()
    if not expires.isdigit() or int(expires) < now:
        return "an expired media token"
    for old in [n for n, until in _used_nonces.items() if until < now]:
        del _used_nonces[old]
    if nonce in _used_nonces:
        return "a media token that was already used"
    _used_nonces[nonce] = float(expires)
    return None


# -- the transport ----------------------------------------------------------------------------------


class PhoneTransport(Transport):
    """A phone call's media WebSocket: the read loop, bad-input handling and the end of the call.
    Subclasses handle each message of their protocol in :meth:`handle`."""

    output: PhoneOutput
    #: the G.711 format of the caller's audio on the wire (``g711_ulaw``), or None for PCM16
    wire_codec: Optional[str] = None

    def __init__(self, ws: web.WebSocketResponse, log: Any, output: PhoneOutput, wire_rate: int):
        self.ws = ws
        self.log = log
        self.input = TimedCallerInput()
        self.wire = WireInput(self.input, wire_rate, codec=self.wire_codec)
        self.output = output
        self.latency = LatencyLog()
        self.outbox = Outbox(ws, self.latency)
        output.outbox = self.outbox
        self.misbehaviour = Misbehaviour(log, self.kind)
        self.plugin = TransportPlugin(self)
        self.messages = 0
        self._closed = False

    def handle(self, message: dict, at: float) -> Optional[str]:
        """One message from the far end; a reason when it ends the call. Raise ``ValueError``
        (or ``KeyError``, ``TypeError``) for a message that does not follow the protocol."""
        raise NotImplementedError

    async def run(self) -> str:
        self.outbox.start()
        bad = self.misbehaviour.bad
        loads = json.loads
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    at = time.monotonic()
                    self.messages += 1
                    try:
                        message = loads(msg.data)
                        if not isinstance(message, dict):
                            raise ValueError("not a JSON object")
                        ended = self.handle(message, at)
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        ended = None
                        if bad(type(exc).__name__ + ": " + str(exc)[:60], msg.data[:40]):
                            await close_hostile(self.ws, self.log, self.kind)
                            return "caller_error"
                    if ended:
                        return ended
                elif msg.type == WSMsgType.BINARY:
                    if bad("a binary message", len(msg.data)):
                        await close_hostile(self.ws, self.log, self.kind)
                        return "caller_error"
                elif msg.type == WSMsgType.ERROR:
                    self.log.warning(f"{self.kind}_socket_error", error=str(self.ws.exception())[:200])
                    return "caller_error"
            return "caller_hung_up"
        finally:
            self.wire.end()
            self.output.hang_up()

    async def close(self, reason: str) -> None:
        """The session has ended: send what is queued, close the socket, then :meth:`release`."""
        if self._closed:
            return
        self._closed = True
        try:
            self.output.hang_up()
            await self.outbox.close()
            if not self.ws.closed:
                await self.ws.close(code=WSCloseCode.OK if reason != "caller_error" else WSCloseCode.POLICY_VIOLATION,
                                    message=reason.encode()[:100])
        finally:
            self.release()

    def release(self) -> None:
        """Once the call is over (its session ended, the socket closed): cut the reference back to
        this transport from its plugin, and the socket's own cycle (a close that failed because the
        caller had gone, Twilio's case after its ``stop``), so that reference counting frees the
        call's objects, not a full collection."""
        self.plugin.transport = None
        release_websocket(self.ws)

    def metrics_section(self) -> dict:
        section = {"kind": self.kind, **TransportPlugin.summary(self.latency)}
        section.update(
            messages_in=self.messages,
            messages_out=self.outbox.sent_messages,
            bad_messages=self.misbehaviour.by_problem,
            input_dropped_ms=round(self.input.dropped_bytes / SAMPLE_WIDTH / (self.input.sample_rate or 24000) * 1000, 1),
            flood_dropped_ms=round(self.wire.flooded_s * 1000, 1),
            sent_ms=round(self.output.sent_ms, 1),
            clears=self.output.clears,
        )
        return section
