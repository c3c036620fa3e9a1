"""A server event's text is exactly ``json.dumps(event)``, also when its audio is appended unscanned."""

from __future__ import annotations

import base64
import json

from voicepipe.emulator.frames import Base64Text, b64text, event_text
from voicepipe.emulator.voice import spoken


def test_the_text_is_json_dumps_character_for_character():
    audio = b64text(bytes(range(256)) * 20)
    assert audio == base64.b64encode(bytes(range(256)) * 20).decode("ascii") and type(audio) is Base64Text
    events = [
        {"event_id": "event_1", "type": "response.audio.delta", "response_id": "resp_1", "item_id": "item_1",
         "output_index": 0, "content_index": 0, "delta": audio},
        {"delta": audio},
        {"type": "x", "d\u00e9j\u00e0 \"vu\"": "caf\u00e9 \u2603 \"quoted\" \\ \n", "delta": audio},
        {"type": "x", "delta": audio, "after": 1},  # not last: written by json.dumps
        {"type": "x", "delta": str(audio)},  # a plain str: written by json.dumps
        {"type": "x", "\u00e9\"": audio},
        {},
    ]
    for event in events:
        assert event_text(event) == json.dumps(event)
        assert json.loads(event_text(event)) == event


def test_the_emulators_audio_deltas_take_the_unscanned_path():
    answer = spoken("Hello there, this is a test.", "pcm16")
    steps = [step for step in answer.steps if step.audio_b64]
    assert steps and all(type(step.audio_b64) is Base64Text for step in steps)
