"""Fidelity: the emulator answers the recorded client side of real sessions like the service did.

For every recorded real Voice Live session in ``tests/vectors/voicelive-recorded/``, the recorded
client events are sent to the emulator through the official SDK (``conn.send(dict)``), each one
only once the server events the recording shows before it have arrived (waiting on the last
non-delta event type before it). The server side is then compared with the recording.

Inputs derived from the recording:

* The scenario: one turn per recorded ``response.done`` that ends in a message, with the recorded
  answer text as ``assistant``, the recorded function call (name and arguments) as ``tool`` when a
  function-call response precedes it, and the recorded input transcript as ``user``.
* Audio: the recordings' appended audio was replaced by zeros when they were scrubbed, so the
  emulator would (rightly) detect no speech in it. Each recorded ``input_audio_buffer.append`` is
  sent, in the same number and order, carrying the matching slice of synthesized speech (1 s of
  silence, the recorded user transcript spoken by the emulator's voice, 1.5 s of silence): the
  client side keeps its shape, and the emulator's voice detection produces the speech events
  itself.

Comparison rules:

1. Event order. The server events are split into two streams, because the service produces them
   concurrently: input transcription (``conversation.item.input_audio_transcription.*``) and
   everything else. In each stream every maximal run of consecutive ``*.delta`` events is
   collapsed into one token, the set of delta types in the run (the number of deltas follows the
   text and the audio length, and transcript/audio deltas interleave freely on the service). The
   token sequences must be equal. In addition, each transcription event must come after the
   ``conversation.item.created`` of the item it transcribes. A missing event, an extra event, a
   missing delta type or two swapped non-delta events all fail (``test_comparison_is_strict``
   proves it on mutated recordings).
2. Field names. Each event is reduced to its recursive set of key paths (list elements merged as
   ``[]``). Non-delta events are paired by type and occurrence (the n-th ``response.done`` with the
   n-th ``response.done``) and their key sets must be equal; every delta event must have the key
   set the recorded deltas of its type have. The one tolerance: ``session.greeting`` and
   ``session.handoff``, which the newest recording's service version added to the session, may
   appear in the emulator's session events where an older recording lacks them.
3. Structural values. Values of keys named ``type``, ``role``, ``status`` and ``object`` anywhere
   in the paired events must be equal (item kinds, roles, part types, statuses).

Ids, audio, text, timings and token counts differ by design and are not compared.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import yaml

from emulator_helpers import recv, run, sdk_session
from voicepipe.emulator import Emulator, Scenario
from voicepipe.emulator.scenario import ToolCall, Turn
from voicepipe.emulator.voice import synthesize

VECTORS = Path(__file__).resolve().parent / "vectors" / "voicelive-recorded"
RECORDINGS = sorted(VECTORS.glob("test_*.yaml"))
TRANSCRIPTION_PREFIX = "conversation.item.input_audio_transcription."
NEWER_SERVICE_PATHS = {".session.greeting", ".session.handoff"}
STRUCTURAL_KEYS = ("type", "role", "status", "object")


def load(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]


def is_delta(event_type: str) -> bool:
    return event_type.endswith(".delta")


# -- deriving the emulator's inputs from a recording ------------------------------------------


def scenario_for(interactions: list[dict]) -> Scenario:
    received = [i["data"] for i in interactions if i["direction"] == "received"]
    user_transcripts = [e["transcript"] for e in received if e["type"] == TRANSCRIPTION_PREFIX + "completed"]
    turns, pending_tool = [], None
    for event in received:
        if event["type"] != "response.done":
            continue
        item = event["response"]["output"][0]
        if item["type"] == "function_call":
            pending_tool = ToolCall(item["name"], item["arguments"])
            continue
        part = item["content"][0]
        answer = part.get("transcript") or part.get("text") or ""
        user = user_transcripts[len(turns)] if len(turns) < len(user_transcripts) else None
        turns.append(Turn(user=user, assistant=answer, tool=pending_tool))
        pending_tool = None
    return Scenario(turns=turns, response_delay_ms=0)


def substituted_audio(interactions: list[dict], scenario: Scenario) -> list[str]:
    """One base64 audio payload per recorded append: silence, the user's words, silence."""
    appends = sum(
        1 for i in interactions if i["direction"] == "sent" and i["data"]["type"] == "input_audio_buffer.append"
    )
    if not appends:
        return []
    said = next((t.user for t in scenario.turns if t.user), "Hello, how are you?")
    rate = 24000
    signal = np.concatenate(
        [np.zeros(rate, np.int16), synthesize(said, rate).samples, np.zeros(rate * 3 // 2, np.int16)]
    ).astype("<i2")
    return [base64.b64encode(part.tobytes()).decode("ascii") for part in np.array_split(signal, appends)]


def client_plan(interactions: list[dict]) -> list[tuple[dict, Optional[tuple[str, int]]]]:
    """Each recorded client event with the server event (type, occurrence) to wait for first."""
    plan, counts = [], {}
    anchor: Optional[tuple[str, int]] = None
    for interaction in interactions:
        data = interaction["data"]
        if interaction["direction"] == "received":
            counts[data["type"]] = counts.get(data["type"], 0) + 1
            if not is_delta(data["type"]) and not data["type"].startswith(TRANSCRIPTION_PREFIX):
                anchor = (data["type"], counts[data["type"]])
        else:
            plan.append((data, anchor))
    return plan


def final_anchor(interactions: list[dict]) -> tuple[str, int]:
    received = [i["data"]["type"] for i in interactions if i["direction"] == "received"]
    last = received[-1]
    return last, received.count(last)


async def replay(interactions: list[dict]) -> list[dict]:
    """Drive the emulator with the recorded client side; return the server events it sent."""
    scenario = scenario_for(interactions)
    audio = iter(substituted_audio(interactions, scenario))
    events: list[dict] = []
    counts: dict[str, int] = {}

    async def until(anchor: Optional[tuple[str, int]], conn) -> None:
        while anchor is not None and counts.get(anchor[0], 0) < anchor[1]:
            event = await recv(conn)
            events.append(event)
            counts[event["type"]] = counts.get(event["type"], 0) + 1

    async with Emulator(scenario, speed=0) as emulator:
        async with sdk_session(emulator) as conn:
            events.append(emulator.connections[0].server_events[0])  # session.created, read by sdk_session
            counts["session.created"] = 1
            for data, anchor in client_plan(interactions):
                await until(anchor, conn)
                if data["type"] == "input_audio_buffer.append":
                    data = {**data, "audio": next(audio)}
                await conn.send(data)
            await until(final_anchor(interactions), conn)
            # a sentinel: everything the emulator sends before its answer belongs to the session
            await conn.send({"type": "input_audio_buffer.clear"})
            while True:
                event = await recv(conn)
                if event["type"] == "input_audio_buffer.cleared":
                    break
                events.append(event)
    return events


# -- comparison -------------------------------------------------------------------------------


def stream_tokens(types: list[str]) -> dict[str, list]:
    """Per stream, the event types with each run of consecutive deltas collapsed to its type set."""
    streams: dict[str, list] = {"transcription": [], "main": []}
    for event_type in types:
        tokens = streams["transcription" if event_type.startswith(TRANSCRIPTION_PREFIX) else "main"]
        if is_delta(event_type):
            if tokens and isinstance(tokens[-1], frozenset):
                tokens[-1] = tokens[-1] | {event_type}
            else:
                tokens.append(frozenset({event_type}))
        else:
            tokens.append(event_type)
    return streams


def transcription_anchored(events: list[dict]) -> bool:
    created: set[str] = set()
    for event in events:
        if event["type"] == "conversation.item.created":
            created.add(event["item"]["id"])
        elif event["type"].startswith(TRANSCRIPTION_PREFIX) and event["item_id"] not in created:
            return False
    return True


def key_paths(value: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            paths.add(f"{prefix}.{key}")
            paths |= key_paths(child, f"{prefix}.{key}")
    elif isinstance(value, list):
        for child in value:
            paths |= key_paths(child, f"{prefix}[]")
    return paths


def structural_values(value: Any, prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}"
            if key in STRUCTURAL_KEYS and isinstance(child, str):
                found.add((path, child))
            found |= structural_values(child, path)
    elif isinstance(value, list):
        for child in value:
            found |= structural_values(child, f"{prefix}[]")
    return found


def differences(recorded: list[dict], emulated: list[dict]) -> list[str]:
    """Every way ``emulated`` departs from ``recorded`` under the rules in the module docstring."""
    problems: list[str] = []
    want, got = stream_tokens([e["type"] for e in recorded]), stream_tokens([e["type"] for e in emulated])
    for stream in want:
        if want[stream] != got[stream]:
            problems.append(f"{stream} stream order differs:\n  recorded {want[stream]}\n  emulated {got[stream]}")
    if not transcription_anchored(emulated):
        problems.append("an input transcription event came before its item was created")

    def by_type(events: list[dict]) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for event in events:
            grouped.setdefault(event["type"], []).append(event)
        return grouped

    recorded_by_type, emulated_by_type = by_type(recorded), by_type(emulated)
    for event_type, emulated_events in emulated_by_type.items():
        recorded_events = recorded_by_type.get(event_type)
        if not recorded_events:
            continue  # already reported as an order difference
        if is_delta(event_type):
            expected = key_paths(recorded_events[0])
            for event in emulated_events:
                if key_paths(event) != expected:
                    problems.append(f"{event_type}: keys {sorted(key_paths(event) ^ expected)} differ")
                    break
            continue
        for index, (want_event, got_event) in enumerate(zip(recorded_events, emulated_events)):
            want_keys, got_keys = key_paths(want_event), key_paths(got_event)
            extra = got_keys - want_keys - NEWER_SERVICE_PATHS
            lacking = want_keys - got_keys
            if extra or lacking:
                problems.append(f"{event_type}[{index}]: missing {sorted(lacking)}, unexpected {sorted(extra)}")
            want_values = {v for v in structural_values(want_event) if v[0] != ".type"}
            got_values = {v for v in structural_values(got_event) if v[0] != ".type"}
            if want_values != got_values:
                problems.append(f"{event_type}[{index}]: values {sorted(want_values ^ got_values)} differ")
    return problems


# -- tests ------------------------------------------------------------------------------------


def test_recordings_are_present():
    assert len(RECORDINGS) >= 5
    assert (VECTORS / "LICENSE").is_file()


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_emulator_matches_recorded_session(path: Path):
    interactions = load(path)
    recorded = [i["data"] for i in interactions if i["direction"] == "received"]
    # the rules hold for the recording itself
    assert transcription_anchored(recorded)
    for event_type in {e["type"] for e in recorded if is_delta(e["type"])}:
        assert len({frozenset(key_paths(e)) for e in recorded if e["type"] == event_type}) == 1

    emulated = run(replay(interactions))

    assert differences(recorded, emulated) == []


def test_comparison_is_strict():
    """Dropping, adding or swapping events, or a renamed field, is caught."""
    interactions = load(VECTORS / "test_audio_in_server_vad_turn.yaml")
    recorded = [i["data"] for i in interactions if i["direction"] == "received"]
    assert differences(recorded, recorded) == []

    def index_of(event_type: str) -> int:
        return next(i for i, e in enumerate(recorded) if e["type"] == event_type)

    dropped = [e for e in recorded if e["type"] != "conversation.item.done"]
    assert differences(recorded, dropped)
    no_transcript_deltas = [e for e in recorded if e["type"] != "response.audio_transcript.delta"]
    assert differences(recorded, no_transcript_deltas)
    no_transcription = [e for e in recorded if e["type"] != TRANSCRIPTION_PREFIX + "completed"]
    assert differences(recorded, no_transcription)
    swapped = list(recorded)
    a, b = index_of("input_audio_buffer.committed"), index_of("input_audio_buffer.speech_stopped")
    swapped[a], swapped[b] = swapped[b], swapped[a]
    assert differences(recorded, swapped)
    extra = recorded + [recorded[-1]]
    assert differences(recorded, extra)
    early = list(recorded)
    t = index_of(TRANSCRIPTION_PREFIX + "delta")
    early.insert(1, early.pop(t))
    assert differences(recorded, early)
    renamed = [dict(e) for e in recorded]
    done = next(e for e in renamed if e["type"] == "response.done")
    done["response"] = {("state" if k == "status" else k): v for k, v in done["response"].items()}
    assert differences(recorded, renamed)
    wrong_role = [dict(e) for e in recorded]
    item_created = next(e for e in wrong_role if e["type"] == "conversation.item.created")
    item_created["item"] = {**item_created["item"], "role": "assistant"}
    assert differences(recorded, wrong_role)


def test_audio_substitution_keeps_the_client_shape():
    interactions = load(VECTORS / "test_audio_in_server_vad_turn.yaml")
    scenario = scenario_for(interactions)
    payloads = substituted_audio(interactions, scenario)
    recorded = [
        i for i in interactions if i["direction"] == "sent" and i["data"]["type"] == "input_audio_buffer.append"
    ]
    assert len(payloads) == len(recorded) > 1
    assert all(base64.b64decode(p) for p in payloads)
    assert scenario.turns[0].user and scenario.turns[0].assistant


def test_replay_waits_for_the_recorded_anchors():
    plan = client_plan(load(VECTORS / "test_tool_call_round.yaml"))
    anchors = [(data["type"], anchor) for data, anchor in plan]
    assert anchors[0] == ("session.update", ("session.created", 1))
    assert ("conversation.item.create", ("response.output_item.done", 1)) in anchors
    assert anchors[-1] == ("response.create", ("response.done", 1))
