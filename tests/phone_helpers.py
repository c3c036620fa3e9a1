"""The far ends of a phone call, for tests and the phone benchmark: Twilio's and ACS's side of a
media WebSocket, speaking each protocol as documented, and playing what they receive in real time
(or ``speed`` times faster) the way the service's buffer does.

Twilio: https://www.twilio.com/docs/voice/media-streams/websocket-messages
ACS: https://learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from pathlib import Path
from typing import Any, Optional

import aiohttp
from aiohttp.test_utils import TestServer

from voicepipe.audio.pcm import g711_encode
from voicepipe.audio.wav import load_mono_pcm16, read_wav_info
from voicepipe.plugins import load_plugin_set
from voicepipe.profile import load_profile
from voicepipe.serve.app import build_app
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import ServedProfile, SessionHost

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "profiles" / "audio" / "question.wav"
DEMO = ROOT / "profiles" / "demo.yaml"
FRAME_S = 0.02
#: how far ahead of real time a far end sends its first audio (the server takes up to 2 s)
LEAD_S = 0.5


def phone_served(kind: str, *overrides: str, profile: Path = DEMO, name: Optional[str] = None, speed: float = 0) -> ServedProfile:
    """``profile`` served to ``kind`` callers (``acs`` / ``twilio``), against the embedded emulator."""
    loaded = load_profile(
        profile,
        [
            "connection.endpoint=emulator",
            f"connection.emulator.speed={speed}",
            f"audio.input.backend={kind}",
            f"audio.output.backend={kind}",
            "metrics.table=false",
            *overrides,
        ],
    )
    plugins = load_plugin_set(loaded, autoload=False, without=("console",))
    return ServedProfile(name or loaded.name, loaded, plugins, frozenset({kind}))


@contextlib.asynccontextmanager
async def serving(host: SessionHost):
    """The app on 127.0.0.1 (an ephemeral port) and an HTTP client session; yields (base_url, http)."""
    server = TestServer(build_app(host, Guard(host)), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield str(server.make_url("")).rstrip("/"), http
    finally:
        await server.close()


def speech(rate: int, wav: Path = QUESTION) -> bytes:
    return load_mono_pcm16(read_wav_info(wav), rate)


def _on_grid(t: float, step: float) -> float:
    """The latest multiple of ``step`` not after ``t``."""
    return t - t % step


class FarEnd:
    """What both far ends share: a microphone that sends frames in real time (speech when there
    is some, silence otherwise) and a player that plays received audio at ``speed`` times real time.

    Both keep to one 20 ms grid (10 ms for the player) shared by every far end of the process, as
    the browser load client's single ticker does (:mod:`benchmarks.page_client`): a server loaded
    by many far ends then wakes once per tick for all of them, whichever protocol they speak, and
    the phone benchmark compares the transports' work rather than how the far ends are scheduled.
    """

    frame_bytes = 0
    silence_frame = b""
    rate = 8000
    bytes_per_frame = 1  # per audio sample on the wire

    def __init__(self, http: aiohttp.ClientSession, url: str, speed: float = 1.0):
        self.http = http
        self.url = url
        self.speed = speed
        self.ws: Any = None
        self.received: list[dict] = []
        self.queue: deque = deque()  # ("audio", samples) | ("mark", name)
        self.played_samples = 0
        self.received_samples = 0
        self._script: deque = deque()
        self._tasks: list[asyncio.Task] = []
        self.closed = asyncio.Event()
        self.close_code: Optional[int] = None
        #: headers of the WebSocket upgrade request
        self.headers: dict = {}

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.url, headers=self.headers)
        await self.opening()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._microphone()), loop.create_task(self._reader()), loop.create_task(self._player())]

    async def opening(self) -> None:
        """Messages sent once the socket is open."""

    def say(self, wire_audio: bytes) -> None:
        for start in range(0, len(wire_audio), self.frame_bytes):
            frame = wire_audio[start : start + self.frame_bytes]
            self._script.append(frame + self.silence_frame[len(frame) :])

    @property
    def speaking(self) -> bool:
        return bool(self._script)

    async def _microphone(self) -> None:
        started = _on_grid(time.monotonic(), FRAME_S) - LEAD_S
        sent = 0
        while not self.ws.closed:
            frame = self._script.popleft() if self._script else self.silence_frame
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.send_audio(frame)
            sent += 1
            delay = started + sent * FRAME_S - time.monotonic()
            await asyncio.sleep(max(delay, 0))

    async def _reader(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            self.received.append(message)
            self.on_message(message)
        self.close_code = self.ws.close_code
        self.closed.set()

    async def _player(self) -> None:
        last = time.monotonic()
        budget = 0.0
        tick = FRAME_S / 2
        while not self.ws.closed:
            await asyncio.sleep(_on_grid(last, tick) + tick - last)
            now = time.monotonic()
            budget += (now - last) * self.rate * self.speed
            last = now
            while self.queue:
                kind, value = self.queue[0]
                if kind == "mark":
                    self.queue.popleft()
                    await self.reached(value)
                    continue
                take = min(value, int(budget))
                if take <= 0:
                    break
                budget -= take
                self.played_samples += take
                if take == value:
                    self.queue.popleft()
                else:
                    self.queue[0] = ("audio", value - take)
            if not self.queue:
                budget = 0.0  # the player idles: silence is not saved up

    async def reached(self, name: str) -> None:
        """The player reached a mark."""

    def on_message(self, message: dict) -> None:
        raise NotImplementedError

    async def send_audio(self, frame: bytes) -> None:
        raise NotImplementedError

    def _cancel_tasks(self) -> None:
        """Cancelled and forgotten: a cancelled task keeps its coroutine's frame, which holds this far end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()

    async def hang_up(self) -> None:
        self._cancel_tasks()
        await self.ws.close()

    async def stop(self) -> None:
        self._cancel_tasks()
        with contextlib.suppress(Exception):
            await self.ws.close()


class TwilioPhone(FarEnd):
    """Twilio's side of a bidirectional Media Stream."""

    frame_bytes = 160  # 20 ms of mu-law at 8 kHz
    silence_frame = b"\xff" * 160
    rate = 8000

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str, speed: float = 1.0):
        super().__init__(http, url, speed)
        self.token = token
        self.sequence = 0
        self.chunk = 0
        self.sid = "MZ18ad3ab5a668481ce02b83e7395059f0"
        #: (mark name, samples played when it was echoed)
        self.echoed: list[tuple[str, int]] = []
        #: samples played when each clear arrived, and the marks echoed before it
        self.clears: list[tuple[int, int]] = []

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    async def opening(self) -> None:
        await self.ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await self.ws.send_str(json.dumps({
            "event": "start",
            "sequenceNumber": self._next(),
            "start": {
                "accountSid": "AC00000000000000000000000000000000",
                "streamSid": self.sid,
                "callSid": "CA00000000000000000000000000000000",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"token": self.token},
            },
            "streamSid": self.sid,
        }))

    async def send_audio(self, frame: bytes) -> None:
        self.chunk += 1
        await self.ws.send_str(json.dumps({
            "event": "media",
            "sequenceNumber": self._next(),
            "media": {"track": "inbound", "chunk": str(self.chunk), "timestamp": str(self.chunk * 20),
                      "payload": base64.b64encode(frame).decode()},
            "streamSid": self.sid,
        }))

    def on_message(self, message: dict) -> None:
        event = message["event"]
        assert message["streamSid"] == self.sid
        if event == "media":
            samples = len(base64.b64decode(message["media"]["payload"]))
            self.received_samples += samples
            self.queue.append(("audio", samples))
        elif event == "mark":
            self.queue.append(("mark", message["mark"]["name"]))
        elif event == "clear":
            self.clears.append((self.played_samples, len(self.echoed)))
            remaining = [value for kind, value in self.queue if kind == "mark"]
            self.queue.clear()
            for name in remaining:  # Twilio echoes the marks a clear dropped
                asyncio.ensure_future(self._echo(name, record=False))
        else:
            raise AssertionError(f"unexpected message {message}")

    async def reached(self, name: str) -> None:
        await self._echo(name)

    async def _echo(self, name: str, record: bool = True) -> None:
        if record:
            self.echoed.append((name, self.played_samples))
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.send_str(json.dumps({"event": "mark", "sequenceNumber": self._next(), "streamSid": self.sid,
                                               "mark": {"name": name}}))

    async def hang_up(self) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.send_str(json.dumps({"event": "stop", "sequenceNumber": self._next(), "streamSid": self.sid,
                                               "stop": {"accountSid": "AC0", "callSid": "CA0"}}))
        await super().hang_up()


def ulaw_speech(wav: Path = QUESTION) -> bytes:
    return g711_encode(speech(8000, wav), "g711_ulaw")


class AcsPhone(FarEnd):
    """ACS's side of a bidirectional media stream: ``AudioMetadata`` first, then ``AudioData``
    every 20 ms (silent frames flagged, with their data), playing received audio after a
    ``playout_delay_s`` jitter buffer; ``StopAudio`` drops what it has not played."""

    bytes_per_frame = 2

    def __init__(self, http: aiohttp.ClientSession, url: str, rate: int = 24000, playout_delay_s: float = 0.1,
                 silent_flag: bool = True, call_connection_id: Optional[str] = None):
        super().__init__(http, url, 1.0)
        if call_connection_id is not None:  # ACS names the call when it opens the media socket
            self.headers["x-ms-call-connection-id"] = call_connection_id
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.silence_frame = bytes(self.frame_bytes)
        self.playout_delay_s = playout_delay_s
        self.silent_flag = silent_flag
        #: samples played when each StopAudio arrived
        self.stops: list[int] = []
        self._generation = 0

    def _playable(self, samples: int, generation: int) -> None:
        if generation == self._generation:
            self.queue.append(("audio", samples))

    async def opening(self) -> None:
        await self.ws.send_str(json.dumps({
            "kind": "AudioMetadata",
            "audioMetadata": {"subscriptionId": "89e8cb59-b991-48b0-b154-1c7e6a84f2ba", "encoding": "PCM",
                              "sampleRate": self.rate, "channels": 1, "length": self.frame_bytes},
        }))

    async def send_audio(self, frame: bytes) -> None:
        silent = self.silent_flag and not any(frame)
        await self.ws.send_str(json.dumps({
            "kind": "AudioData",
            "audioData": {"timestamp": "2024-11-07T19:25:03.145Z", "participantRawID": "4:+14255550123",
                          "data": base64.b64encode(frame).decode(), "silent": silent},
        }))

    def on_message(self, message: dict) -> None:
        kind = message["Kind"]
        if kind == "AudioData":
            samples = len(base64.b64decode(message["AudioData"]["Data"])) // 2
            self.received_samples += samples
            # the jitter buffer: audio is playable playout_delay_s after it arrived
            asyncio.get_running_loop().call_later(self.playout_delay_s, self._playable, samples, self._generation)
        elif kind == "StopAudio":
            self.stops.append(self.played_samples)
            self.queue.clear()
            self._generation += 1  # and what is still in the jitter buffer
        else:
            raise AssertionError(f"unexpected message {message}")
