"""The emulator against the documented protocol, round 2: pacing and both barge-in paths,
``response.create`` options, item order, word timestamps, the older agent query form, semantic end
of utterance, tool choice and preambles, and the scenario position of a re-seeded conversation."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from emulator_helpers import (
    RATE,
    append_audio,
    audio_of,
    recv,
    recv_until,
    rms_dbfs,
    run,
    scenario,
    sdk_session,
    speech_pcm,
    types,
    update_session,
)
from voicepipe.emulator import Emulator
from voicepipe.emulator.pacing import SERVICE, Pacing, pacing_for
from voicepipe.emulator.voice import split_pieces, synthesize
from voicepipe.errors import UsageError

STORY = (
    "Once upon a time there was a small voice pipeline that streamed audio all day long, and it kept on "
    "talking and talking about lakes, rivers, mountains and the sea, without ever pausing for breath, "
    "until somebody finally interrupted it."
)
SHORT = "Sure, I will stop now, and I will not tell you any more of the story today."

BARGE_IN = f"""
response_delay_ms: 0
turns:
  - user: Tell me a story.
    assistant: {json.dumps(STORY)}
  - user: Stop please.
    assistant: {json.dumps(SHORT)}
  - user: Wait.
    assistant: Yes?
"""

LAKES = """
turns:
  - user: What is the largest lake in the world?
    assistant: The Caspian Sea is the largest lake in the world.
  - user: And the deepest?
    assistant: Lake Baikal is the deepest.
"""

TOOLS = """
turns:
  - user: What time is it in Tokyo, and is the Louvre open?
    preamble: Let me check.
    tool:
      - {name: get_current_time, arguments: {timezone: Asia/Tokyo}}
      - {name: get_opening_hours, arguments: {place: Louvre}}
    assistant: "Here you go: {tool_output}"
"""

TIME_TOOL = {"type": "function", "name": "get_current_time", "parameters": {"type": "object"}}
HOURS_TOOL = {"type": "function", "name": "get_opening_hours", "parameters": {"type": "object"}}


def text_turn(text: str, **event) -> dict:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item, **event}


def assistant_item(text: str) -> dict:
    item = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}


def transcript(events: list[dict], response_id: str | None = None) -> str:
    return "".join(
        e["delta"]
        for e in events
        if e["type"] == "response.audio_transcript.delta" and response_id in (None, e["response_id"])
    )


def call_output(call_id: str, output: str) -> dict:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return {"type": "conversation.item.create", "item": item}


# -- 1. pacing -----------------------------------------------------------------------------------


def test_pacing_defaults_to_the_service_and_keeps_the_older_modes():
    assert Emulator().pacing == SERVICE
    assert SERVICE.burst_ms > 0 and SERVICE.speed > 1 and SERVICE.timescale == 1
    assert SERVICE.audio_due_s(SERVICE.burst_ms) == 0  # the burst goes out at once
    assert SERVICE.audio_due_s(SERVICE.burst_ms + 1000) == pytest.approx(1 / SERVICE.speed)
    assert pacing_for(1) == Pacing(speed=1, burst_ms=0, timescale=1)  # real time, exactly
    assert pacing_for(3).audio_due_s(300) == pytest.approx(0.1)  # 3x faster, no burst
    unpaced = pacing_for(0)
    assert unpaced.audio_due_s(60_000) == 0 and unpaced.latency_s(200) == 0 and unpaced.timescale == 0
    assert pacing_for(2, 500) == Pacing(speed=2, burst_ms=500, timescale=1)
    with pytest.raises(UsageError, match="burst_ms"):
        Emulator(burst_ms=-1)


def test_both_barge_in_paths_streaming_cancelled_and_finished_truncated():
    """A barge-in while the answer still streams cancels it; one after the answer finished
    generating, while the listener still plays it, cancels nothing and truncates it."""

    async def main():
        # the short answer fits in the burst; the story streams on at real time after it
        async with Emulator(scenario(BARGE_IN), speed=1, burst_ms=8000) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn, modalities=["text", "audio"], turn_detection={"type": "server_vad", "auto_truncate": True}
                )
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                first = await recv_until(conn, "response.audio.delta")
                await append_audio(conn, speech_pcm("Stop please."))
                streaming = await recv_until(conn, "response.done", count=2)
                await append_audio(conn, speech_pcm("Wait."))
                finished = await recv_until(conn, "response.done")
                return first + streaming, finished

    streaming, finished = run(main())
    story_id, short_id = [e["response"]["id"] for e in streaming if e["type"] == "response.created"]
    dones = {e["response"]["id"]: e["response"] for e in streaming if e["type"] == "response.done"}
    assert dones[story_id]["status"] == "cancelled"
    assert dones[story_id]["status_details"]["reason"] == "turn_detected"
    assert dones[short_id]["status"] == "completed"
    short_item = dones[short_id]["output"][0]
    short_ms = synthesize(SHORT).duration_ms

    # path 2: generation had finished (response.done above), playback had not: truncated, not cancelled
    started = types(finished).index("input_audio_buffer.speech_started")
    truncated = [e for e in finished if e["type"] == "conversation.item.truncated"]
    assert [e["item_id"] for e in truncated] == [short_item["id"]]
    assert types(finished).index("conversation.item.truncated") == started + 1
    # generated in one burst, so the listener had heard little of it (real time: nearly all)
    assert short_ms > 3000 and 0 <= truncated[0]["audio_end_ms"] < short_ms / 2
    assert not [e for e in finished if e["type"] == "response.done" and e["response"]["status"] == "cancelled"]
    assert finished[-1]["response"]["status"] == "completed"  # the barge-in became the next turn


def test_a_response_finished_before_playback_can_be_truncated_by_the_client():
    async def main():
        async with Emulator(scenario(BARGE_IN), burst_ms=60_000) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                done = (await recv_until(conn, "response.done"))[-1]["response"]
                item_id = done["output"][0]["id"]
                await conn.send(
                    {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1500}
                )
                return done, (await recv_until(conn, "conversation.item.truncated"))[-1]

    done, truncated = run(main())
    assert done["status"] == "completed"
    assert truncated["audio_end_ms"] == 1500


# -- 2. response.create options ------------------------------------------------------------------


def test_pre_generated_assistant_message_is_spoken_and_kept():
    message = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Welcome to the museum."}]}

    async def main():
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                await conn.send({"type": "response.create", "response": {"pre_generated_assistant_message": message}})
                events = await recv_until(conn, "response.done")
                item_id = events[-1]["response"]["output"][0]["id"]
                await conn.send({"type": "conversation.item.retrieve", "item_id": item_id})
                return events, (await recv(conn))

    events, retrieved = run(main())
    assert transcript(events) == "Welcome to the museum."
    assert len(audio_of(events)) / 48 == pytest.approx(synthesize("Welcome to the museum.").duration_ms, abs=1)
    assert "conversation.item.created" in types(events)
    assert retrieved["type"] == "conversation.item.retrieved"
    assert retrieved["item"]["content"][0]["transcript"] == "Welcome to the museum."


def test_commit_false_keeps_the_answer_out_of_the_conversation():
    async def main():
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                await conn.send(text_turn("What is the largest lake in the world?"))
                await recv(conn)
                await conn.send({"type": "response.create", "response": {"commit": False}})
                draft = await recv_until(conn, "response.done")
                item_id = draft[-1]["response"]["output"][0]["id"]
                await conn.send({"type": "conversation.item.retrieve", "item_id": item_id})
                missing = await recv(conn)
                await conn.send({"type": "response.create"})
                kept = await recv_until(conn, "response.done")
                return draft, missing, kept

    draft, missing, kept = run(main())
    assert "conversation.item.created" not in types(draft)
    assert transcript(draft) == "The Caspian Sea is the largest lake in the world."
    assert missing["type"] == "error" and missing["error"]["code"] == "item_not_found"
    assert "conversation.item.created" in types(kept)
    assert transcript(kept) == "The Caspian Sea is the largest lake in the world."  # the turn was not used up


def test_append_input_items_join_the_conversation_before_the_answer():
    async def main():
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                item = text_turn("What is the largest lake in the world?")["item"]
                await conn.send({"type": "response.create", "response": {"append_input_items": [item]}})
                events = await recv_until(conn, "response.done")
                await conn.send({"type": "response.create", "response": {"append_input_items": [{"type": "nope"}]}})
                return events, await recv(conn)

    events, error = run(main())
    assert types(events)[:2] == ["conversation.item.created", "response.created"]
    assert events[0]["item"]["role"] == "user"
    assert transcript(events) == "The Caspian Sea is the largest lake in the world."
    assert error["error"]["param"] == "response.append_input_items[0].type"


def test_a_second_response_create_cancels_the_first_by_default():
    async def main():
        async with Emulator(scenario(BARGE_IN), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                await recv_until(conn, "response.audio.delta")
                await conn.send({"type": "response.create", "response": {"modalities": ["text"]}})
                return await recv_until(conn, "response.done", count=2)

    events = run(main())
    first, second = [e["response"] for e in events if e["type"] == "response.done"]
    assert first["status"] == "cancelled" and first["status_details"]["reason"] == "client_cancelled"
    assert second["status"] == "completed" and second["modalities"] == ["text"]
    assert types(events).index("response.done") < [i for i, t in enumerate(types(events)) if t == "response.created"][-1]


def test_an_out_of_band_response_runs_beside_the_conversation():
    async def main():
        async with Emulator(scenario(BARGE_IN), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection=None)
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                await recv_until(conn, "response.audio.delta")
                side = {
                    "conversation": "none",
                    "modalities": ["text"],
                    "metadata": {"topic": "summary"},
                    "input": [text_turn("Summarize the story.")["item"]],
                }
                await conn.send({"type": "response.create", "response": side})
                events: list[dict] = []
                while True:
                    event = await recv(conn)
                    events.append(event)
                    if event["type"] == "response.done" and event["response"]["metadata"] == {"topic": "summary"}:
                        break
                await conn.send({"type": "response.cancel"})
                return events + await recv_until(conn, "response.done")

    events = run(main())
    created = [e["response"] for e in events if e["type"] == "response.created"]
    assert created[0]["conversation_id"] is None and created[0]["metadata"] == {"topic": "summary"}
    side_id = created[0]["id"]
    side_events = [e for e in events if e.get("response_id") == side_id]
    assert "".join(e["delta"] for e in side_events if e["type"] == "response.text.delta").endswith(
        "Summarize the story."
    )
    side_item = next(e for e in side_events if e["type"] == "response.output_item.added")["item"]
    assert not [e for e in events if e["type"] == "conversation.item.created" and e["item"]["id"] == side_item["id"]]
    # the conversation's own response kept streaming, and was still there to cancel
    assert events[-1]["response"]["status"] == "cancelled" and events[-1]["response"]["id"] != side_id


# -- 3. item order -------------------------------------------------------------------------------


def test_previous_item_id_places_items_and_an_unknown_one_is_refused():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                got = []
                for event in (
                    text_turn("a", event_id="a"),
                    text_turn("b"),
                    text_turn("c", previous_item_id=None),
                ):
                    await conn.send(event)
                    got.append(await recv(conn))
                a, b, c = (e["item"]["id"] for e in got)
                await conn.send(text_turn("after a", previous_item_id=a))
                middle = await recv(conn)
                await conn.send(text_turn("first", previous_item_id="root"))
                first = await recv(conn)
                await conn.send(text_turn("end"))
                end = await recv(conn)
                bad = text_turn("lost", previous_item_id="item_nope", event_id="bad")
                bad["item"]["id"] = "item_lost"
                await conn.send(bad)
                error = await recv(conn)
                await conn.send({"type": "conversation.item.retrieve", "item_id": "item_lost"})
                return (a, b, c), middle, first, end, error, await recv(conn)

    (a, b, c), middle, first, end, error, retrieved = run(main())
    assert middle["previous_item_id"] == a
    assert first["previous_item_id"] is None
    assert end["previous_item_id"] == c  # the middle and first items did not move the end
    assert error["type"] == "error"
    assert error["error"]["code"] == "item_not_found"
    assert error["error"]["param"] == "previous_item_id" and error["error"]["event_id"] == "bad"
    assert retrieved["type"] == "error"  # the item was not added


# -- 4. word timestamps --------------------------------------------------------------------------


def test_word_timestamps_follow_the_synthesized_audio():
    answer = "The Caspian Sea is the largest lake in the world."

    async def main(types_wanted):
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn, modalities=["text", "audio"], turn_detection=None, output_audio_timestamp_types=types_wanted
                )
                await conn.send(text_turn("What is the largest lake in the world?"))
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done")

    events = run(main(["word"]))
    stamps = [e for e in events if e["type"] == "response.audio_timestamp.delta"]
    assert [s["text"] for s in stamps] == [p.strip() for p in split_pieces(answer)]
    assert {s["timestamp_type"] for s in stamps} == {"word"}
    speech = synthesize(answer)
    assert [s["audio_offset_ms"] for s in stamps] == [round(t) for t in speech.starts_ms]
    samples = np.frombuffer(audio_of(events), dtype="<i2")
    for stamp in stamps:
        start = stamp["audio_offset_ms"] * RATE // 1000
        end = (stamp["audio_offset_ms"] + stamp["audio_duration_ms"]) * RATE // 1000
        assert stamp["audio_duration_ms"] > 0 and end <= len(samples)
        assert rms_dbfs(samples[start:end].tobytes()) > -30  # the word is sounding there
    # the sentence end is silent: the last word's timing does not run into its pause
    last_end = (stamps[-1]["audio_offset_ms"] + stamps[-1]["audio_duration_ms"]) * RATE // 1000
    assert rms_dbfs(samples[last_end + RATE // 100 :].tobytes()) < -60
    order = types(events)
    assert order.index("response.audio_timestamp.done") == order.index("response.audio.done") - 1
    first_stamp = order.index("response.audio_timestamp.delta")
    assert order[first_stamp - 1] == "response.audio_transcript.delta"

    plain = run(main(None))
    assert not [e for e in plain if e["type"].startswith("response.audio_timestamp.")]


def test_an_unknown_timestamp_type_is_refused():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await conn.send({"type": "session.update", "session": {"output_audio_timestamp_types": ["viseme"]}})
                return await recv(conn)

    error = run(main())
    assert error["error"]["param"] == "session.output_audio_timestamp_types"


# -- 5. agents -----------------------------------------------------------------------------------


def test_the_older_agent_query_form_and_the_agent_version():
    async def main():
        async with Emulator(speed=0) as emulator:
            older = {
                "agent-id": "asst_Older123",
                "agent-project-name": "my-project",
                "agent-access-token": "secret-agent-token",
                "agent-version": "7",
            }
            async with sdk_session(emulator, model=None, query=older) as conn:
                await conn.send({"type": "session.update", "session": {"voice": "alloy"}})
                first = (await recv(conn))["session"]
            async with sdk_session(
                emulator, model=None, agent_name="helper", project_name="my-project", agent_version="2"
            ) as conn:
                await conn.send({"type": "session.update", "session": {"voice": "alloy"}})
                second = (await recv(conn))["session"]
            return first, second, emulator.connections

    first, second, records = run(main())
    assert first["agent"]["agent_id"] == "asst_Older123" and first["agent"]["name"] == "asst_Older123"
    assert first["agent"]["version"] == "7" and first["agent"]["thread_id"].startswith("thread_")
    assert first["instructions"].startswith("You are asst_Older123")
    assert "secret-agent-token" not in json.dumps(first)
    assert records[0].query["agent-access-token"] == "secret-agent-token"  # it arrived, and stayed out of the session
    assert second["agent"]["name"] == "helper" and second["agent"]["version"] == "2"


# -- 6. turn detection ---------------------------------------------------------------------------


def paused_sentence(pause_ms: int) -> bytes:
    """'What is the largest lake, in the world?' with ``pause_ms`` of silence after the comma."""
    head = synthesize("What is the largest lake,").samples
    tail = synthesize("in the world?").samples
    lead = np.zeros(RATE * 300 // 1000, dtype=np.int16)
    pause = np.zeros(RATE * pause_ms // 1000, dtype=np.int16)
    end = np.zeros(RATE, dtype=np.int16)
    return np.concatenate([lead, head, pause, tail, end]).astype("<i2").tobytes()


PAUSED = """
turns:
  - user: What is the largest lake, in the world?
    assistant: The Caspian Sea.
  - user: Really?
    assistant: Yes.
"""


@pytest.mark.parametrize(
    ("detection", "pause_ms", "turns"),
    [
        ({"type": "server_vad", "silence_duration_ms": 200}, 300, 2),  # exact: any 200 ms silence ends it
        ({"type": "azure_semantic_vad", "silence_duration_ms": 200}, 300, 2),  # no end-of-utterance model
        (
            {
                "type": "azure_semantic_vad",
                "silence_duration_ms": 200,
                "end_of_utterance_detection": {"model": "semantic_detection_v1", "timeout_ms": 1000},
            },
            300,
            1,
        ),
        (
            {
                "type": "azure_semantic_vad_multilingual",
                "silence_duration_ms": 200,
                "end_of_utterance_detection": {"model": "semantic_detection_v1_multilingual", "timeout_ms": 600},
            },
            900,
            2,  # longer than the timeout: the pause still ends the turn
        ),
    ],
)
def test_semantic_end_of_utterance_waits_for_the_sentence(detection, pause_ms, turns):
    async def main():
        async with Emulator(scenario(PAUSED), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn,
                    modalities=["text", "audio"],
                    input_audio_transcription={"model": "whisper-1"},
                    turn_detection={**detection, "create_response": False},
                )
                await append_audio(conn, paused_sentence(pause_ms))
                await conn.send({"type": "input_audio_buffer.clear"})
                return await recv_until(conn, "input_audio_buffer.cleared")

    events = run(main())
    stops = [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
    assert len(stops) == turns
    if turns == 1:
        head = synthesize("What is the largest lake,").duration_ms
        assert stops[0]["audio_end_ms"] > 300 + head + pause_ms  # after the second part
        said = [e["transcript"] for e in events if e["type"].endswith("input_audio_transcription.completed")]
        assert said in ([], ["What is the largest lake, in the world?"])


# -- 7. tools ------------------------------------------------------------------------------------


async def _tool_session(emulator, **session):
    session.setdefault("tools", [TIME_TOOL, HOURS_TOOL])
    conn_cm = sdk_session(emulator)
    conn = await conn_cm.__aenter__()
    await update_session(conn, modalities=["text", "audio"], turn_detection=None, **session)
    await conn.send(text_turn("What time is it in Tokyo, and is the Louvre open?"))
    await recv(conn)
    return conn_cm, conn


def calls_of(done: dict) -> list[dict]:
    return [item for item in done["output"] if item["type"] == "function_call"]


def test_a_preamble_and_the_calls_share_one_response():
    async def main():
        async with Emulator(scenario(TOOLS), speed=0) as emulator:
            conn_cm, conn = await _tool_session(emulator)
            try:
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done")
            finally:
                await conn_cm.__aexit__(None, None, None)

    events = run(main())
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert [item["type"] for item in done["output"]] == ["message", "function_call", "function_call"]
    assert done["output"][0]["content"][0]["transcript"] == "Let me check."
    assert transcript(events) == "Let me check." and audio_of(events)
    added = [(e["output_index"], e["item"]["type"]) for e in events if e["type"] == "response.output_item.added"]
    assert added == [(0, "message"), (1, "function_call"), (2, "function_call")]
    order = types(events)
    # the message is closed before the first call is announced
    assert order.index("response.audio.done") < order.index("response.function_call_arguments.delta")
    args = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["name"]) for e in args] == [(1, "get_current_time"), (2, "get_opening_hours")]


def test_parallel_tool_calls_false_makes_one_call_per_response():
    async def main():
        async with Emulator(scenario(TOOLS), speed=0) as emulator:
            conn_cm, conn = await _tool_session(emulator, parallel_tool_calls=False)
            try:
                dones = []
                await conn.send({"type": "response.create"})
                for output in ("12:00", "9 to 6", None):
                    dones.append((await recv_until(conn, "response.done"))[-1]["response"])
                    if output is None:
                        break
                    (call,) = calls_of(dones[-1])
                    await conn.send(call_output(call["call_id"], output))
                    await conn.send({"type": "response.create"})
                return dones
            finally:
                await conn_cm.__aexit__(None, None, None)

    first, second, answer = run(main())
    assert [c["name"] for c in calls_of(first)] == ["get_current_time"]
    assert [c["name"] for c in calls_of(second)] == ["get_opening_hours"]
    assert answer["output"][0]["content"][0]["transcript"] == "Here you go: 12:00; 9 to 6"


@pytest.mark.parametrize(
    ("where", "choice", "expected"),
    [
        ("session", "none", []),
        ("session", {"type": "function", "name": "get_opening_hours"}, ["get_opening_hours"]),
        ("response", {"type": "function", "function": {"name": "get_opening_hours"}}, ["get_opening_hours"]),
        ("response", "none", []),
    ],
)
def test_tool_choice_is_honoured(where, choice, expected):
    async def main():
        async with Emulator(scenario(TOOLS), speed=0) as emulator:
            session = {"tool_choice": choice} if where == "session" else {}
            conn_cm, conn = await _tool_session(emulator, **session)
            try:
                params = {"tool_choice": choice} if where == "response" else {}
                await conn.send({"type": "response.create", "response": params})
                return (await recv_until(conn, "response.done"))[-1]["response"]
            finally:
                await conn_cm.__aexit__(None, None, None)

    done = run(main())
    assert [c["name"] for c in calls_of(done)] == expected
    if not expected:
        assert done["output"][0]["type"] == "message"


def test_tool_choice_required_calls_a_tool_on_a_turn_without_one():
    async def main():
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, turn_detection=None, tools=[HOURS_TOOL], tool_choice="required")
                await conn.send(text_turn("What is the largest lake in the world?"))
                await conn.send({"type": "response.create"})
                return (await recv_until(conn, "response.done"))[-1]["response"]

    (call,) = calls_of(run(main()))
    assert call["name"] == "get_opening_hours" and call["arguments"] == "{}"


# -- 8. scenario position ------------------------------------------------------------------------


def test_a_reseeded_conversation_continues_the_scenario():
    async def main():
        async with Emulator(scenario(LAKES), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn, modalities=["text", "audio"], input_audio_transcription={"model": "whisper-1"}
                )
                await append_audio(conn, speech_pcm("What is the largest lake in the world?"))
                first = await recv_until(conn, "response.done")
            async with sdk_session(emulator) as conn:  # a new connection, re-seeded with the history
                await update_session(
                    conn, modalities=["text", "audio"], input_audio_transcription={"model": "whisper-1"}
                )
                await conn.send(text_turn("What is the largest lake in the world?"))
                await conn.send(assistant_item("The Caspian Sea is the largest lake in the world."))
                await recv_until(conn, "conversation.item.created", count=2)
                await append_audio(conn, speech_pcm("And the deepest?"))
                second = await recv_until(conn, "response.done")
            async with sdk_session(emulator) as conn:  # a fresh conversation starts at the beginning
                await update_session(conn, modalities=["text", "audio"])
                await append_audio(conn, speech_pcm("What is the largest lake in the world?"))
                fresh = await recv_until(conn, "response.done")
            return first, second, fresh

    first, second, fresh = run(main())
    assert transcript(first) == "The Caspian Sea is the largest lake in the world."
    said = [e["transcript"] for e in second if e["type"].endswith("input_audio_transcription.completed")]
    assert said == ["And the deepest?"]
    assert transcript(second) == "Lake Baikal is the deepest."
    assert transcript(fresh) == "The Caspian Sea is the largest lake in the world."


def test_cancelled_and_finished_paths_do_not_leak_tasks():
    """Connections with side responses and cancellations close cleanly (no task left running)."""

    async def main():
        async with Emulator(scenario(BARGE_IN), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"], turn_detection=None)
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                await conn.send({"type": "response.create", "response": {"conversation": "none"}})
                await recv_until(conn, "response.text.delta")
        await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if "Response._stream" in repr(t.get_coro()) and not t.done()]

    assert run(main()) == []
