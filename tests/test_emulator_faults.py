"""Scenario faults: delay, close, error, malformed frames, stop answering, per-connection faults."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.ai.voicelive.aio import ConnectionClosed
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError

from emulator_helpers import recv, recv_until, run, scenario, sdk_session, types, update_session
from voicepipe.emulator import Emulator


def text_turn(text: str) -> dict:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


async def ask(conn, text: str = "hello") -> None:
    await conn.send(text_turn(text))
    await conn.send({"type": "response.create"})


def test_close_after_a_server_event_with_a_code():
    faults = scenario(
        "faults:\n  - after: {event: response.audio.delta, count: 2}\n    action: close\n    code: 4002\n    reason: injected\n"
    )

    async def main():
        async with Emulator(faults, speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"])
                await ask(conn)
                seen = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        seen.append(await recv(conn))
            return closed.value, seen, emulator.connections[0]

    closed, seen, record = run(main())
    assert closed.code == 4002
    assert types(seen).count("response.audio.delta") == 2
    assert seen[-1]["type"] == "response.audio.delta"  # nothing after the trigger
    assert record.close_code == 4002 and record.closed.is_set()


def test_close_only_on_the_first_connection():
    faults = scenario(
        "faults:\n  - connection: 1\n    after: {event: session.created}\n    action: close\n    code: 1011\n"
    )

    async def main():
        async with Emulator(faults, speed=0) as emulator:
            async with sdk_session(emulator) as first:
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(first)
            async with sdk_session(emulator) as second:
                await ask(second)
                done = await recv_until(second, "response.done")
            return closed.value.code, done[-1]

    code, done = run(main())
    assert code == 1011
    assert done["response"]["status"] == "completed"


def test_fault_without_trigger_fires_at_open():
    async def main():
        async with Emulator(scenario("faults:\n  - action: close\n    code: 1013\n"), speed=0) as emulator:
            from azure.ai.voicelive.aio import connect
            from azure.core.credentials import AzureKeyCredential

            async with connect(endpoint=emulator.url, credential=AzureKeyCredential("k")) as conn:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(conn.recv(), 10)
            return closed.value.code, emulator.connections[0].server_events

    code, sent = run(main())
    assert code == 1013
    assert sent == []  # closed before session.created


def test_error_event_after_a_client_event():
    faults = scenario(
        "faults:\n  - after_client: {event: session.update, count: 2}\n    action: error\n"
        "    code: rate_limit_exceeded\n    message: Slow down.\n"
    )

    async def main():
        async with Emulator(faults, speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, instructions="one")
                await conn.send({"type": "session.update", "session": {"instructions": "two"}})
                second = [await recv(conn), await recv(conn)]
                await ask(conn)
                done = await recv_until(conn, "response.done")
            return second, done

    second, done = run(main())
    assert types(second) == ["session.updated", "error"]
    assert second[1]["error"] == {
        "type": "server_error",
        "code": "rate_limit_exceeded",
        "message": "Slow down.",
        "param": None,
        "event_id": None,
    }
    assert done[-1]["response"]["status"] == "completed"  # the connection lives on


def test_malformed_frames():
    faults = scenario(
        "faults:\n  - after: {event: session.updated}\n    action: malformed\n"
        "  - after: {event: response.created}\n    action: malformed\n    kind: wrong_shape\n"
    )

    async def main():
        async with Emulator(faults, speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await conn.send({"type": "session.update", "session": {"modalities": ["text"]}})
                updated = await recv(conn)
                with pytest.raises(VoiceLiveConnectionError) as not_json:
                    await recv(conn)
                await ask(conn)
                events = await recv_until(conn, "response.done", count=2)
            return updated, str(not_json.value), events

    updated, not_json, events = run(main())
    assert updated["type"] == "session.updated"
    assert "parse" in not_json.lower()
    assert types(events)[:3] == ["conversation.item.created", "response.created", "response.done"]
    assert events[2]["response"] == "???"  # the wrong-shaped frame, right after response.created
    assert events[-1]["response"]["status"] == "completed"


def test_delay_after_n_events():
    async def main():
        async with Emulator(
            scenario("faults:\n  - after_events: 2\n    action: delay\n    ms: 400\n"), speed=0
        ) as emulator:
            async with sdk_session(emulator) as conn:
                await conn.send({"type": "session.update", "session": {"modalities": ["text"]}})
                await recv(conn)  # session.updated: the second event
                await ask(conn)
                started = time.monotonic()
                first = await recv(conn)
                waited = time.monotonic() - started
                done = await recv_until(conn, "response.done")
            return first, waited, done

    first, waited, done = run(main())
    assert first["type"] == "conversation.item.created"
    assert waited >= 0.35  # held back by the fault (a lower bound only)
    assert done[-1]["response"]["status"] == "completed"


def test_stop_answering_keeps_the_connection_silent():
    faults = scenario("faults:\n  - after: {event: session.updated}\n    action: stop_answering\n")

    async def main():
        async with Emulator(faults, speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                await ask(conn)
                record = emulator.connections[0]

                async def received_by_server() -> None:
                    while "response.create" not in [e["type"] for e in record.client_events]:
                        await asyncio.sleep(0.01)

                await asyncio.wait_for(received_by_server(), 10)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.recv(), 0.5)
                return [e["type"] for e in record.server_events], record.closed.is_set()

    sent, closed = run(main())
    assert sent == ["session.created", "session.updated"]
    assert not closed
