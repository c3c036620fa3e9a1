"""Many callers of the browser page's WebSocket protocol, cheap enough to load a server with.

The page (``voicepipe/serve/static/app.js``) sends 20 ms PCM16 microphone frames and, while an item
plays, a ``played`` receipt about every 20 ms; it receives ``ready`` / ``item`` JSON and binary audio
frames (a little-endian u32 item number, then PCM16). Each caller here does the same, on a plain
:class:`asyncio.Protocol` speaking RFC 6455 itself, and one ticker sends for every caller.
A client on aiohttp costs about as much CPU per caller as the server it loads; this one costs a
small fraction, so on a small machine the server's share is what a step measures.

Each caller asks the question (``profiles/audio/question.wav``) at real-time pacing, then sends
silence, plays the answer on a simulated clock (from the item's first frame plus ``BUFFER_MS``),
and asks again once it has played out, or with ``ask_once`` stays on the line in silence.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import struct
import time
from pathlib import Path
from random import getrandbits
from typing import Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BUFFER_MS = 50.0
FRAME_MS = 20
ASK_AGAIN_AFTER_S = 4.0  # between the starts of two questions, at least
QUIET_BEFORE_ASKING_S = 1.0  # no answer audio for this long: the answer has played out
BENCH_TOKEN = "web-load-benchmark-token-0123456789"
PROTOCOL = "voicepipe.v1"
_ITEM = struct.Struct("<I")
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def question(rate: int) -> bytes:
    from voicepipe.audio.wav import load_mono_pcm16, read_wav_info

    return load_mono_pcm16(read_wav_info(ROOT / "profiles" / "audio" / "question.wav"), rate)


class Step:
    """What all the callers of one step record."""

    def __init__(self, sessions: int):
        self.sessions = sessions
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.window: Optional[tuple[float, float]] = None
        self.frames = 0
        self.late_frames = 0
        self.worst_ms = 0.0
        self.sends = 0
        self.late_sends = 0
        self.arrivals: dict[tuple[str, int], float] = {}  # (item_id, bytes so far) -> arrival
        self.failed: list[str] = []
        self.cpu: dict[str, float] = {}  # process -> share of a core over the window, if measured
        self.callers: list["PageCaller"] = []

    def counting(self, now: float) -> bool:
        return self.window is not None and self.window[0] <= now <= self.window[1]

    def settled(self) -> None:
        """One caller is ready or has failed."""
        self.ready += 1
        if self.ready >= self.sessions:
            self.all_ready.set()


_REPEAT: dict[int, int] = {}  # words -> the int whose every 4-byte word is 1: key * it repeats the key


def _frame(opcode: int, payload: bytes, value: Optional[int] = None) -> bytes:
    """A client frame: FIN, the opcode, masked with a fresh key (RFC 6455 section 5.3).

    ``value`` is ``int.from_bytes(payload, "little")`` when the caller keeps it (the same audio
    frames go out again and again); the mask is one XOR of two integers."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = getrandbits(32)
    if not size:
        return head + key.to_bytes(4, "little")
    words = (size + 3) // 4
    repeat = _REPEAT.get(words)
    if repeat is None:
        repeat = _REPEAT[words] = int.from_bytes(b"\1\0\0\0" * words, "little")
    if value is None:
        value = int.from_bytes(payload, "little")
    return head + key.to_bytes(4, "little") + (value ^ key * repeat).to_bytes(words * 4, "little")[:size]


@functools.lru_cache(maxsize=4)
def _microphone(rate: int) -> tuple[list[tuple[bytes, int]], tuple[bytes, int]]:
    """The question's 20 ms frames and a silent one, each with its value for :func:`_frame`."""
    frame_bytes = rate * FRAME_MS // 1000 * 2
    spoken = question(rate)
    chunks = [spoken[i : i + frame_bytes] for i in range(0, len(spoken), frame_bytes)]
    silence = bytes(frame_bytes)
    return [(chunk, int.from_bytes(chunk, "little")) for chunk in chunks], (silence, 0)


class PageCaller(asyncio.Protocol):
    """One caller: the handshake, then the page's messages both ways."""

    def __init__(self, step: Step, url: str, keep_arrivals: bool, ask_once: bool):
        self.step = step
        self.url = urlsplit(url)
        self.keep_arrivals = keep_arrivals
        self.ask_once = ask_once
        self.transport: Optional[asyncio.Transport] = None
        self.key = base64.b64encode(os.urandom(16))
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = False
        self.hanging_up = False
        self.items: dict[int, str] = {}
        self.received: dict[str, int] = {}  # item_id -> frames received
        self.first: dict[str, float] = {}  # item_id -> first frame's arrival, while it plays
        self.played: dict[str, int] = {}
        self.quoted: dict[str, str] = {}  # item_id -> as JSON
        self.receipts = 0  # sent, as the page counts them
        self.in_rate = self.out_rate = 0
        self.last_audio = 0.0
        self.asked_at = -1e9
        self.asking: list[tuple[bytes, int]] = []
        self.chunks: list[tuple[bytes, int]] = []
        self.silence = (b"", 0)

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {PROTOCOL}, voicepipe.token.{BENCH_TOKEN}\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc or 'by the server'}"))
        elif not self.hanging_up:
            self.step.failed.append(f"the call ended before the caller hung up: {exc or 'closed by the server'}")
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        buffer = self.buffer
        at = 0
        while len(buffer) - at >= 2:
            opcode, size = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            head = 2
            if size == 126:
                if len(buffer) - at < 4:
                    break
                size, head = struct.unpack_from("!H", buffer, at + 2)[0], 4
            elif size == 127:
                if len(buffer) - at < 10:
                    break
                size, head = struct.unpack_from("!Q", buffer, at + 2)[0], 10
            if len(buffer) - at < head + size:
                break
            if opcode == 0 or not buffer[at] & 0x80:
                self._fail("a fragmented message (the page's server sends whole ones)")
                return
            payload = bytes(buffer[at + head : at + head + size])
            at += head + size
            if opcode == 2:
                self._audio(payload, now)
            elif opcode == 1:
                self._message(json.loads(payload))
            elif opcode == 9:
                self.transport.write(_frame(10, payload))
            elif opcode == 8:
                self.transport.close()
        del buffer[:at]

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        if not head[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != accept:
            self._fail(f"the server refused: {head[0]}")
            return False
        self.upgraded = True
        return True

    def _fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        else:
            self.step.failed.append(why)
        self.transport.close()

    # -- what the server sends -----------------------------------------------------------------

    def _message(self, m: dict) -> None:
        if m["type"] == "item":
            self.items[m["n"]] = m["item_id"]
        elif m["type"] == "ready":
            self.in_rate, self.out_rate = m["input_rate"], m["output_rate"]
            self.chunks, self.silence = _microphone(self.in_rate)
            self.ready = True
            if not self.opened.done():
                self.opened.set_result(None)

    def _audio(self, data: bytes, now: float) -> None:
        step = self.step
        item_id = self.items.get(_ITEM.unpack_from(data)[0], "")
        size = (len(data) - 4) // 2
        before = self.received.get(item_id, 0)
        self.received[item_id] = before + size
        start = self.first.setdefault(item_id, now)
        self.last_audio = now
        if self.keep_arrivals:
            step.arrivals[(item_id, (before + size) * 2)] = now
        if step.counting(now):
            step.frames += 1
            lag_ms = (now - start) * 1000.0 - before * 1000.0 / self.out_rate
            if lag_ms > BUFFER_MS:
                step.late_frames += 1
                step.worst_ms = max(step.worst_ms, lag_ms)

    # -- what the page sends, every 20 ms ------------------------------------------------------

    def speak(self, now: float) -> None:
        """The microphone's next 20 ms frame."""
        if self.transport.is_closing():
            return
        if not self.asking and now - self.asked_at > ASK_AGAIN_AFTER_S and now - self.last_audio > QUIET_BEFORE_ASKING_S \
                and not self.first and not (self.ask_once and self.asked_at > 0):
            self.asked_at = now
            self.asking = self.chunks[::-1]
        self.transport.write(_frame(2, *(self.asking.pop() if self.asking else self.silence)))

    def report(self, now: float) -> None:
        """The receipts of what the simulated speaker has played (the page sends them from its
        playback clock, apart from the microphone's frames: so does this, half a frame later)."""
        if self.transport.is_closing():
            return
        for item_id, start in list(self.first.items()):
            frames = min(self.received[item_id], int((now - start - BUFFER_MS / 1000) * self.out_rate))
            if frames > self.played.get(item_id, 0):
                self.played[item_id] = frames
                ms = frames * 1000 / self.out_rate
                quoted = self.quoted.get(item_id) or self.quoted.setdefault(item_id, json.dumps(item_id))
                self.transport.write(_frame(1, f'{{"type":"played","item_id":{quoted},"ms":{ms!r}}}'.encode()))
                self.receipts += 1
            elif frames >= self.received[item_id]:
                del self.first[item_id]

    async def hang_up(self) -> None:
        self.hanging_up = True
        if not self.transport.is_closing():
            self.transport.write(_frame(1, b'{"type":"hangup"}') + _frame(8, struct.pack("!H", 1000)))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 10)
        except asyncio.TimeoutError:
            self.transport.abort()


async def connect(step: Step, url: str, keep_arrivals: bool = False, ask_once: bool = False) -> Optional[PageCaller]:
    """One caller, connected and told the session's rates; None (and the reason in ``step``) if not."""
    where = urlsplit(url)
    loop = asyncio.get_running_loop()
    try:
        _, caller = await loop.create_connection(
            lambda: PageCaller(step, url, keep_arrivals, ask_once), where.hostname, where.port or 80)
        await asyncio.wait_for(caller.opened, 120)
        return caller
    except Exception as exc:
        step.failed.append(f"{type(exc).__name__}: {exc}")
        return None
    finally:
        step.settled()


async def call(urls: list[str], step: Step, stop: asyncio.Event, keep_arrivals: bool = False,
               ask_once: bool = False, arrive_every_s: float = 0.05) -> None:
    """``step.sessions`` callers, arriving ``arrive_every_s`` apart, on the line until ``stop``
    (``step.callers``: those connected)."""
    callers = step.callers

    async def one(url: str) -> None:
        caller = await connect(step, url, keep_arrivals, ask_once)
        if caller is not None:
            callers.append(caller)

    async def arrive() -> None:
        pending = []
        try:
            for index in range(step.sessions):
                pending.append(asyncio.ensure_future(one(urls[index % len(urls)])))
                await asyncio.sleep(arrive_every_s)
            await asyncio.gather(*pending)
        finally:
            for each in pending:
                each.cancel()

    async def ticker() -> None:
        """Every 10 ms, by turns: every caller's microphone frame, then every caller's receipts."""
        due = time.monotonic()
        live: list[PageCaller] = []
        speaking = False
        while not stop.is_set():
            due += FRAME_MS / 2000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if len(live) != len(callers):
                live = list(callers)
            speaking = not speaking
            if not speaking:
                for each in live:
                    if each.ready:
                        each.report(now)
                continue
            for each in live:
                if each.ready:
                    each.speak(now)
            if step.counting(now):
                step.sends += len(live)
                if (now - due) * 1000 > BUFFER_MS:
                    step.late_sends += len(live)

    arriving = asyncio.ensure_future(arrive())
    sending = asyncio.ensure_future(ticker())
    try:
        await stop.wait()
    finally:
        arriving.cancel()
        await asyncio.gather(arriving, return_exceptions=True)
        await sending
        await asyncio.gather(*(each.hang_up() for each in callers), return_exceptions=True)
