"""voicepipe.clientevents: the microphone's append frame from a template, through the SDK's own socket
only once the SDK has been seen to write exactly that frame there."""

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from azure.ai.voicelive.aio import ConnectionError as SDKConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection

from voicepipe.clientevents import AudioAppend, FrameSender, append_frame

QUESTION = Path(__file__).resolve().parent.parent / "profiles" / "audio" / "question.wav"
PROFILE = """\
connection: {{endpoint: "{url}", model: gpt-realtime, connect_timeout_s: 5}}
session: {{instructions: Answer briefly., modalities: [text, audio]}}
audio:
  input: {{backend: wav, file: "{question}", realtime: false, trailing_silence_ms: 1500}}
  output: {{backend: null}}
console: {{quiet: true}}
metrics: {{table: false}}
"""
PCM = bytes(range(256)) * 4  # every byte value: every base64 character


class Socket:
    """What the SDK writes to: aiohttp's ClientWebSocketResponse, reduced to send_str."""

    def __init__(self, fail: BaseException | None = None):
        self.texts: list[str] = []
        self.fail = fail

    async def send_str(self, data: str, compress: int | None = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.texts.append(data)


def sdk_connection(socket: Socket) -> VoiceLiveConnection:
    return VoiceLiveConnection(None, socket)  # type: ignore[arg-type]


def send_all(sender: FrameSender, events: list) -> None:
    async def go() -> None:
        for event in events:
            await sender.send(event)

    asyncio.run(go())


def test_an_append_is_the_plain_dict_the_sdk_would_encode():
    event = AudioAppend(PCM)
    assert event == {"type": "input_audio_buffer.append", "audio": __import__("base64").b64encode(PCM).decode()}
    assert list(event) == ["type", "audio"] and isinstance(event, dict)
    assert append_frame(event) == json.dumps(dict(event))


def test_after_the_first_append_the_frames_skip_the_sdks_send_and_are_the_same_text(monkeypatch):
    socket = Socket()
    connection = sdk_connection(socket)
    calls = []
    original = VoiceLiveConnection.send

    async def counted(self, event):
        calls.append(event.get("type"))
        await original(self, event)

    monkeypatch.setattr(VoiceLiveConnection, "send", counted)
    sender = FrameSender(connection)
    events = [{"type": "session.update", "session": {}}] + [AudioAppend(PCM[n:]) for n in range(5)]
    events.append({"type": "response.create"})
    send_all(sender, events)
    assert socket.texts == [json.dumps(dict(event)) for event in events]
    assert sender.raw
    # the session.update, the first append (the probe) and the response.create went through send
    assert calls == ["session.update", "input_audio_buffer.append", "response.create"]
    assert connection._connection is socket


@pytest.mark.parametrize("change", ["separators", "event_id", "send_json"])
def test_an_sdk_that_writes_appends_otherwise_keeps_every_event_on_its_send(monkeypatch, change):
    socket = Socket()
    calls = []

    async def send(self, event):
        calls.append(event["type"])
        if change == "separators":
            await self._connection.send_str(json.dumps(dict(event), separators=(",", ":")))
        elif change == "event_id":
            await self._connection.send_str(json.dumps({**event, "event_id": "evt_1"}))
        else:  # written some other way than send_str
            socket.texts.append(json.dumps(dict(event)))

    monkeypatch.setattr(VoiceLiveConnection, "send", send)
    sender = FrameSender(sdk_connection(socket))
    send_all(sender, [AudioAppend(PCM[n:]) for n in range(4)])
    assert calls == ["input_audio_buffer.append"] * 4
    assert not sender.raw and len(socket.texts) == 4


def test_a_connection_without_the_sdks_socket_gets_every_event_through_send():
    class Double:
        def __init__(self):
            self.sent = []

        async def send(self, event):
            self.sent.append(event)

    double = Double()
    sender = FrameSender(double)
    events = [AudioAppend(PCM[n:]) for n in range(3)]
    send_all(sender, events)
    assert double.sent == events and not sender.raw


def test_an_append_an_observer_changed_goes_through_the_sdks_send():
    socket = Socket()
    sender = FrameSender(sdk_connection(socket))
    first, changed = AudioAppend(PCM), AudioAppend(PCM[1:])
    changed["event_id"] = "mine"
    send_all(sender, [first, changed])
    assert sender.raw
    assert [json.loads(text) for text in socket.texts] == [dict(first), dict(changed)]


def test_a_failed_write_on_the_short_way_is_the_sdks_connection_error():
    socket = Socket()
    sender = FrameSender(sdk_connection(socket))
    send_all(sender, [AudioAppend(PCM)])
    socket.fail = aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    with pytest.raises(SDKConnectionError, match="Failed to send event: Cannot write"):
        send_all(sender, [AudioAppend(PCM)])


def test_a_session_sends_its_microphone_through_the_short_way(voicelive_emulator, voicepipe_run, tmp_path, monkeypatch):
    """End to end through the SDK against the emulator: the probe passes on the real SDK, the
    emulator hears every append, and the recorder records every one."""
    import voicepipe.clientevents as clientevents

    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "test-key-0123456789")
    senders = []
    original = clientevents.FrameSender.__init__

    def init(self, connection):
        original(self, connection)
        senders.append(self)

    monkeypatch.setattr(clientevents.FrameSender, "__init__", init)
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.format(url=voicelive_emulator.url, question=QUESTION))
    result = voicepipe_run(profile, emulator=False)
    assert result.exit_code == 0 and result.reason == "input_finished"
    assert len(senders) == 1 and senders[0].raw
    received = [e for e in voicelive_emulator.connections[0].client_events if e["type"] == "input_audio_buffer.append"]
    sent = [e for e in result.client_events if e["type"] == "input_audio_buffer.append"]
    assert len(sent) > 10 and len(received) == len(sent)
    lines = [json.loads(line) for line in result.read("events.jsonl").splitlines()]
    recorded = [line for line in lines if line["direction"] == "client"
                and line["event"]["type"] == "input_audio_buffer.append"]
    assert len(recorded) == len(sent)
