"""The SDK internals voicepipe relies on, checked against whatever azure-ai-voicelive is installed.

``voicepipe.serverevents`` builds the SDK's typed events without the SDK's per-field code, and
``voicepipe.clientevents`` writes the microphone's append frames through the SDK's socket. Both
check themselves at run time and fall back to the SDK's public way, so a release that changes
those internals would not break a session, but it would quietly make voicepipe slower (or, if a
check missed something, different). These tests replay every server frame of the recorded real
sessions in ``tests/vectors/voicelive-recorded`` through the parser and the SDK and require the
same events, built the short way; and require the append probe to pass on the SDK's own
``VoiceLiveConnection``.

They are marked ``sdk_latest`` and left out of the default run: ``./dev sdk-latest`` installs the
newest release of azure-ai-voicelive into a scratch virtual environment and runs just these, so
that a new release is tried before users get it (``./dev test -m sdk_latest`` runs them against
the SDK of ``.venv``).
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.sdk_latest

VECTORS = Path(__file__).resolve().parent / "vectors" / "voicelive-recorded"
RECORDINGS = sorted(VECTORS.glob("test_*.yaml"))


def server_frames(path: Path) -> list[bytes]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [json.dumps(entry["data"]).encode("utf-8") for entry in data["interactions"]
            if entry.get("kind") == "message" and entry.get("direction") == "received"]


def deeply_same(short: Any, made: Any, where: str = "event") -> None:
    assert type(short) is type(made), f"{where}: {type(short).__name__} != {type(made).__name__}"
    if hasattr(made, "_data") and hasattr(made, "_attr_to_rest_field"):
        assert vars(short).keys() == vars(made).keys(), where
        assert list(short._data) == list(made._data), where
        for key in made._data:
            deeply_same(short._data[key], made._data[key], f"{where}.{key}")
    elif type(made) is list:
        assert len(short) == len(made), where
        for index, (a, b) in enumerate(zip(short, made)):
            deeply_same(a, b, f"{where}[{index}]")
    elif type(made) is dict:
        assert list(short) == list(made), where
        for key in made:
            deeply_same(short[key], made[key], f"{where}.{key}")
    else:
        assert short is made or short == made, where


def test_the_recorded_sessions_are_there():
    assert len(RECORDINGS) >= 5, f"recorded sessions missing from {VECTORS}"
    assert all(server_frames(path) for path in RECORDINGS)


@pytest.mark.parametrize("recording", RECORDINGS, ids=[path.stem for path in RECORDINGS])
def test_the_parser_builds_the_sdks_events_the_short_way(recording):
    from azure.ai.voicelive.models import ServerEvent

    from voicepipe.serverevents import EventParser

    parser = EventParser()
    assert parser.enabled, f"azure-ai-voicelive {version('azure-ai-voicelive')} lacks the internals the parser uses"
    for number, raw in enumerate(server_frames(recording) * 2):  # the first of a class is checked, then short
        expected = ServerEvent._deserialize(json.loads(raw), [])
        deeply_same(parser.parse(raw), expected, f"frame {number} ({json.loads(raw).get('type')})")
    slow = sorted(plan.cls.__name__ for plan in parser._plans.values() if not plan.fast)
    assert not slow, (f"with azure-ai-voicelive {version('azure-ai-voicelive')} the parser no longer builds "
                      f"these the short way (the SDK builds them differently now): {slow}")


def test_the_append_frames_go_through_the_sdks_socket_as_the_sdk_writes_them():
    from azure.ai.voicelive.aio import VoiceLiveConnection

    from voicepipe.clientevents import AudioAppend, FrameSender

    class Socket:
        def __init__(self) -> None:
            self.texts: list[str] = []

        async def send_str(self, data: str, compress: Any = None) -> None:
            self.texts.append(data)

    socket = Socket()
    sender = FrameSender(VoiceLiveConnection(None, socket))  # type: ignore[arg-type]
    events = [AudioAppend(bytes([n]) * 960) for n in range(3)]

    async def go() -> None:
        for event in events:
            await sender.send(event)

    asyncio.run(go())
    assert socket.texts == [json.dumps(dict(event)) for event in events]
    assert sender.raw, (f"with azure-ai-voicelive {version('azure-ai-voicelive')} the SDK no longer writes an "
                        "append as voicepipe's template does: every append goes through its send again")
