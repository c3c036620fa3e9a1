"""The shape guard in front of the plugins: sound events pass, contradicting ones are named."""

import pytest
import yaml
from session_script import cassette_dir

from voicepipe.eventshape import malformed


def recorded_server_events() -> list[dict]:
    events = []
    for cassette in sorted(cassette_dir().glob("test_*.yaml")):
        for interaction in yaml.safe_load(cassette.read_text())["interactions"]:
            if interaction.get("direction") == "received" and isinstance(interaction.get("data"), dict):
                events.append(interaction["data"])
    return events


def test_every_event_of_the_recorded_sessions_passes():
    events = recorded_server_events()
    assert len(events) > 100
    assert [(e["type"], malformed(e)) for e in events if malformed(e)] == []


@pytest.mark.parametrize(
    "event, problem",
    [
        ({"type": "response.done", "response": "???"}, "response.done.response is text, not an object"),
        ({"type": "session.updated", "session": [1]}, "session.updated.session is a list, not an object"),
        ({"type": "session.created", "session": {"id": 7}}, "session.created.session.id is a number, not text"),
        ({"type": "response.audio.delta", "delta": 42}, "response.audio.delta.delta is a number, not text"),
        ({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": "9"},
         "input_audio_buffer.speech_stopped.audio_end_ms is text, not a number"),
        ({"type": "input_audio_buffer.speech_started", "audio_start_ms": True},
         "input_audio_buffer.speech_started.audio_start_ms is a boolean, not a number"),
        ({"type": "rate_limits.updated", "item_id": {"x": 1}}, "rate_limits.updated.item_id is an object, not text"),
        ({"type": None}, "'type' is null, not text"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(event, problem):
    assert malformed(event) == problem


def test_absent_and_null_fields_and_unknown_types_pass():
    assert malformed({"type": "response.done"}) is None
    assert malformed({"type": "response.done", "response": None}) is None
    assert malformed({"type": "something.new", "payload": [1, 2]}) is None
