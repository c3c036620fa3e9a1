"""voicepipe.serverevents builds exactly the typed events the SDK's recv() builds, for less CPU."""

import asyncio
import json
import math
import re
from typing import Any

import pytest
from azure.ai.voicelive.aio import ConnectionClosed
from azure.ai.voicelive.aio import ConnectionError as SDKConnectionError
from azure.ai.voicelive.models import ServerEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from voicepipe.serverevents import EventParser, receive

AUDIO_DELTA = {"type": "response.audio.delta", "event_id": "e1", "response_id": "r1", "item_id": "i1",
               "output_index": 0, "content_index": 0, "delta": "AAAA"}


def sdk(payload: Any) -> Any:
    return ServerEvent._deserialize(json.loads(json.dumps(payload)), [])


def frame(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def assert_same(event: Any, expected: Any) -> None:
    assert type(event) is type(expected)
    assert list(event._data.items()) == list(expected._data.items())  # the same fields in the same order
    assert vars(event).keys() == vars(expected).keys()
    assert event == expected and event.as_dict() == expected.as_dict()


def test_a_flat_event_is_built_the_short_way_after_the_first_and_is_the_same():
    parser = EventParser()
    first = parser.parse(frame(AUDIO_DELTA))
    second = parser.parse(frame({**AUDIO_DELTA, "event_id": "e2", "extra": None}))
    assert_same(first, sdk(AUDIO_DELTA))
    assert_same(second, sdk({**AUDIO_DELTA, "event_id": "e2", "extra": None}))
    plan = parser._plans[type(second)]
    assert plan.checked and plan.fast
    # typed access works as on the SDK's own events: the audio decodes, fields read
    assert second.delta == b"\x00\x00\x00" and second.item_id == "i1" and second["type"] == "response.audio.delta"


@pytest.mark.parametrize("payload", [
    {"type": "response.done", "event_id": "e", "response": {"id": "r", "status": "completed", "output": [
        {"id": "i", "type": "message", "role": "assistant", "content": [{"type": "audio", "transcript": "hi"}]}]}},
    {"type": "session.updated", "session": {"id": "s", "voice": {"name": "x", "type": "azure-standard"}}},
    {"type": "conversation.item.created", "item": {"id": "i", "type": "message", "role": "user", "content": []}},
    {"type": "rate_limits.updated", "rate_limits": [{"name": "requests", "limit": 5}]},
    {"type": "some.future.event", "value": 1.5, "flag": True, "nothing": None},
    {"type": "input_audio_buffer.speech_started", "audio_start_ms": 1200, "item_id": "u1"},
    {"type": "error", "error": {"message": "slow down", "code": "rate_limited"}},
    {"type": "response.audio.delta", "delta": ["not", "text"]},
    {"type": 7, "delta": "AAAA"},
    {"type": None},
    {"no_type": True},
])
def test_every_event_is_the_sdks_the_first_time_and_after(payload):
    parser = EventParser()
    for _ in range(3):
        assert_same(parser.parse(frame(payload)), sdk(payload))


def test_a_class_the_sdk_builds_differently_keeps_going_through_the_sdk(monkeypatch):
    from azure.ai.voicelive.models import ServerEventResponseAudioDelta

    original = ServerEventResponseAudioDelta.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self["echo"] = f"of {self.get('event_id')}"  # what a future SDK might do that the shortcut would not

    monkeypatch.setattr(ServerEventResponseAudioDelta, "__init__", init)
    parser = EventParser()
    events = [parser.parse(frame({**AUDIO_DELTA, "event_id": f"e{n}"})) for n in range(3)]
    assert [event["echo"] for event in events] == ["of e0", "of e1", "of e2"]
    plan = parser._plans[ServerEventResponseAudioDelta]
    assert plan.checked and not plan.fast


def test_what_a_class_sets_in_its_init_is_set_the_short_way_too(monkeypatch):
    from azure.ai.voicelive.models import ServerEventResponseAudioDelta

    original = ServerEventResponseAudioDelta.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self["marked"] = True  # a constant, like the type every event class sets

    monkeypatch.setattr(ServerEventResponseAudioDelta, "__init__", init)
    parser = EventParser()
    payload = {key: value for key, value in AUDIO_DELTA.items() if key != "event_id"}
    for _ in range(3):
        assert_same(parser.parse(frame(payload)), ServerEvent._deserialize(dict(payload), []))
    plan = parser._plans[ServerEventResponseAudioDelta]
    assert plan.fast and ("marked", True) in plan.sets


def test_a_frame_that_is_not_json_is_the_sdks_parse_error():
    parser = EventParser()
    for raw in (b"{not json", b"\xff\xfe", b"[1, 2"):
        with pytest.raises(SDKConnectionError) as failure:
            parser.parse(raw)
        assert str(failure.value).startswith("Failed to parse message: ")


def test_a_frame_that_is_json_but_not_an_object_fails_as_in_the_sdk():
    parser = EventParser()
    for payload in ([1, 2], "text", 3):
        try:
            sdk(payload)
        except Exception as exc:  # whatever the SDK raises, the parser raises too
            expected: Any = type(exc) if not isinstance(exc, (ValueError, TypeError)) else SDKConnectionError
        else:
            expected = None
        if expected is None:
            parser.parse(frame(payload))
        else:
            with pytest.raises(expected):
                parser.parse(frame(payload))


def test_an_sdk_without_the_internals_goes_through_the_sdk_for_every_frame(monkeypatch):
    monkeypatch.delattr(ServerEvent, "__mapping__", raising=False)
    parser = EventParser()
    assert not parser.enabled
    monkeypatch.undo()
    assert_same(parser.parse(frame(AUDIO_DELTA)), sdk(AUDIO_DELTA))
    assert parser._plans == {}


class FakeConnection:
    def __init__(self, *frames: bytes):
        self.frames = list(frames)

    async def recv_bytes(self) -> bytes:
        return self.frames.pop(0)


def test_receive_reads_frames_and_an_empty_one_closes_as_in_the_sdk():
    async def scenario():
        connection = FakeConnection(frame(AUDIO_DELTA), b"")
        event = await receive(connection)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(connection)
        return event, closed.value

    event, closed = asyncio.run(scenario())
    assert_same(event, sdk(AUDIO_DELTA))
    assert closed.code == 1006


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
values = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=3),
                                                          st.dictionaries(st.text(max_size=5), children, max_size=3)),
                      max_leaves=5)
TYPES = ["response.audio.delta", "response.audio_transcript.delta", "response.text.delta", "response.done",
         "input_audio_buffer.speech_started", "conversation.item.truncated", "response.function_call_arguments.done",
         "session.created", "error", "unknown.type", "response.audio.done"]
FIELDS = ["event_id", "item_id", "response_id", "delta", "audio_start_ms", "audio_end_ms", "content_index",
          "output_index", "call_id", "name", "arguments", "response", "item", "error", "session", "x"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
def test_any_payload_gives_the_sdks_event_or_the_sdks_error(kind, fields):
    payload = {"type": kind, **fields}
    parser = EventParser()
    try:
        expected = sdk(payload)
    except Exception as exc:
        with pytest.raises(SDKConnectionError if isinstance(exc, (ValueError, TypeError)) else type(exc)):
            parser.parse(frame(payload))
        return
    flat = {"type": kind, **{k: v for k, v in fields.items() if not isinstance(v, (dict, list))}}
    parser.parse(frame(flat))  # the class's first flat event: checked against the SDK
    assert_same(parser.parse(frame(payload)), expected)  # then the short way when it is flat


def test_numbers_json_allows_stay_as_the_sdk_keeps_them():
    parser = EventParser()
    payload = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 10**30, "item_id": "u"}
    for _ in range(2):
        assert_same(parser.parse(frame(payload)), sdk(payload))
    raw = b'{"type": "input_audio_buffer.speech_started", "audio_start_ms": NaN}'
    event = parser.parse(raw)
    assert math.isnan(event["audio_start_ms"])


# -- nested objects: the response, its items, their parts -------------------------------------------

part = st.fixed_dictionaries(
    {"type": st.sampled_from(["audio", "text", "input_text", "input_audio", "weird", 5])},
    optional={"transcript": scalars, "text": scalars, "audio": scalars, "x": values},
)
item = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "mcp_call", "other", None])},
    optional={"id": scalars, "role": st.sampled_from(["assistant", "user", "system", 3]), "status": scalars,
              "content": st.one_of(st.lists(st.one_of(part, st.none(), scalars), max_size=3), scalars, part),
              "call_id": scalars, "name": scalars, "arguments": scalars, "output": scalars},
)
usage = st.fixed_dictionaries({}, optional={
    "total_tokens": scalars, "input_tokens": scalars,
    "input_token_details": st.one_of(st.fixed_dictionaries({}, optional={"cached_tokens": scalars, "text_tokens": scalars}), scalars),
    "output_token_details": values})
response = st.fixed_dictionaries({}, optional={
    "id": scalars, "object": scalars, "status": scalars,
    "status_details": st.one_of(st.fixed_dictionaries({}, optional={"type": scalars, "reason": scalars}), scalars),
    "output": st.one_of(st.lists(st.one_of(item, st.none(), scalars), max_size=3), item, scalars),
    "usage": st.one_of(usage, scalars), "voice": values, "extra": values})
nested_events = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["response.done", "response.created"])},
                          optional={"event_id": scalars, "response": st.one_of(response, scalars, st.lists(scalars))}),
    st.fixed_dictionaries({"type": st.sampled_from(["conversation.item.created", "response.output_item.added",
                                                    "response.output_item.done", "conversation.item.retrieved"])},
                          optional={"event_id": scalars, "previous_item_id": scalars, "output_index": scalars,
                                    "item": st.one_of(item, scalars)}),
    st.fixed_dictionaries({"type": st.sampled_from(["response.content_part.added", "response.content_part.done"])},
                          optional={"item_id": scalars, "part": st.one_of(part, scalars)}),
)


def deeply_same(a: Any, b: Any) -> bool:
    """Class, data in order and attributes, all the way down. The SDK turns text where it expects a
    list into the text of a generator object (its address differs from one call to the next)."""
    if type(a) is not type(b):
        return False
    if hasattr(b, "_attr_to_rest_field"):
        return vars(a).keys() == vars(b).keys() and list(a._data) == list(b._data) and all(
            deeply_same(a._data[key], b._data[key]) for key in b._data)
    if type(b) is list:
        return len(a) == len(b) and all(deeply_same(x, y) for x, y in zip(a, b))
    if type(b) is dict:
        return list(a) == list(b) and all(deeply_same(a[key], b[key]) for key in b)
    if type(b) is str:
        return re.sub(r" at 0x[0-9a-f]+>", ">", a) == re.sub(r" at 0x[0-9a-f]+>", ">", b)
    return a is b or a == b


def assert_deeply_same(event: Any, expected: Any) -> None:
    assert deeply_same(event, expected), (event, expected)


@settings(max_examples=400, deadline=None)
@given(st.lists(nested_events, min_size=1, max_size=4))
def test_nested_events_are_the_sdks_all_the_way_down(payloads):
    parser = EventParser()  # fresh: the first instance of each class is checked, later ones are built short
    for payload in payloads + payloads:
        try:
            expected = sdk(payload)
        except Exception as exc:
            with pytest.raises(SDKConnectionError if isinstance(exc, (ValueError, TypeError)) else type(exc)):
                parser.parse(frame(payload))
            continue
        assert_deeply_same(parser.parse(frame(payload)), expected)


def test_a_recorded_answer_is_built_the_short_way_and_reads_as_the_sdks():
    parser = EventParser()
    done = {"type": "response.done", "event_id": "e9", "response": {
        "id": "r1", "object": "realtime.response", "status": "completed",
        "output": [{"id": "i1", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "audio", "transcript": "Hello there."}]},
                   {"id": "i2", "type": "function_call", "call_id": "c1", "name": "clock", "arguments": "{}"}],
        "usage": {"total_tokens": 12, "input_tokens": 5, "output_tokens": 7,
                  "input_token_details": {"cached_tokens": 0, "text_tokens": 5, "audio_tokens": 0}}}}
    for _ in range(3):
        event = parser.parse(frame(done))
        assert_deeply_same(event, sdk(done))
    assert all(plan.fast for plan in parser._plans.values())
    assert event.response.output[0].content[0].transcript == "Hello there."
    assert event.response.output[1].name == "clock" and event.response.usage.total_tokens == 12
    assert type(event.response.output[1]).__name__ == type(sdk(done).response.output[1]).__name__
