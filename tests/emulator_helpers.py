"""Driving the Voice Live emulator through the official SDK, for the emulator's tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import AsyncIterator, Iterable, Optional

import numpy as np
from azure.ai.voicelive.aio import connect
from azure.core.credentials import AzureKeyCredential

from voicepipe.emulator import Emulator, parse_scenario
from voicepipe.emulator.voice import synthesize

RATE = 24000
TIMEOUT_S = 20.0


def run(coro, timeout: float = 60.0):
    """Run a coroutine to completion with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def scenario(text: str):
    return parse_scenario(text, "test-scenario.yaml")


@contextlib.asynccontextmanager
async def sdk_session(emulator: Emulator, *, key: str = "test-key", **kwargs) -> AsyncIterator:
    """An SDK connection to the emulator, after ``session.created`` was read."""
    kwargs.setdefault("model", "gpt-realtime")
    async with connect(endpoint=emulator.url, credential=AzureKeyCredential(key), **kwargs) as conn:
        created = await recv(conn)
        assert created["type"] == "session.created"
        yield conn


async def recv(conn, timeout: float = TIMEOUT_S) -> dict:
    """The next server event as the plain dict that was sent."""
    event = await asyncio.wait_for(conn.recv(), timeout)
    return event.as_dict()


async def recv_until(conn, event_type: str, count: int = 1, timeout: float = TIMEOUT_S) -> list[dict]:
    """Every event up to and including the ``count``-th of ``event_type``."""
    events: list[dict] = []
    seen = 0

    async def read() -> None:
        nonlocal seen
        while seen < count:
            event = await recv(conn, timeout)
            events.append(event)
            seen += event["type"] == event_type

    await asyncio.wait_for(read(), timeout)
    return events


async def update_session(conn, **session) -> dict:
    await conn.send({"type": "session.update", "session": session})
    events = await recv_until(conn, "session.updated")
    assert [e["type"] for e in events] == ["session.updated"], events
    return events[-1]["session"]


def speech_pcm(
    text: str = "Hello there, how are you today?", lead_ms: int = 300, tail_ms: int = 900, rate: int = RATE
) -> bytes:
    """Synthesized speech with silence around it, as PCM16 bytes."""
    speech = synthesize(text, rate).samples
    lead = np.zeros(rate * lead_ms // 1000, dtype=np.int16)
    tail = np.zeros(rate * tail_ms // 1000, dtype=np.int16)
    return np.concatenate([lead, speech, tail]).astype("<i2").tobytes()


def chunks(pcm: bytes, chunk_ms: int = 100, rate: int = RATE) -> Iterable[bytes]:
    size = rate * chunk_ms // 1000 * 2
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


async def append_audio(conn, pcm: bytes, chunk_ms: int = 100, rate: int = RATE) -> None:
    for chunk in chunks(pcm, chunk_ms, rate):
        await conn.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode("ascii")})


def types(events: Iterable[dict]) -> list[str]:
    return [e["type"] for e in events]


def audio_of(events: Iterable[dict], response_id: Optional[str] = None) -> bytes:
    """The PCM of all ``response.audio.delta`` events (of one response if given)."""
    return b"".join(
        base64.b64decode(e["delta"])
        for e in events
        if e["type"] == "response.audio.delta" and (response_id is None or e["response_id"] == response_id)
    )


def rms_dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if not len(samples):
        return float("-inf")
    return 20 * np.log10(max(np.sqrt(np.mean(samples**2)), 1e-9) / 32768.0)


@contextlib.contextmanager
def served_emulator(scenario_source=None, *, api_key: Optional[str] = None):
    """An emulator (speed 0) served from its own thread, for sessions that connect to it by URL as
    they would to Azure. On the way out it lets the connections finish closing (the client's close
    handshake) before it stops, so that their close codes are the client's, not its own 1001."""
    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="served-emulator", daemon=True)
    thread.start()
    emulator = Emulator(scenario_source, api_key=api_key, speed=0)
    asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(timeout=10)

    async def settle() -> None:
        waits = (asyncio.wait_for(record.closed.wait(), 10) for record in emulator.connections)
        await asyncio.gather(*waits, return_exceptions=True)

    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(settle(), loop).result(timeout=15)
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
