"""The emulator speaks the Voice Live protocol to the official SDK over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from azure.ai.voicelive.aio import ConnectionClosed

from emulator_helpers import (
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
from voicepipe.emulator.voice import synthesize

SPOKEN_TURN = """
turns:
  - user: What is the largest lake in the world?
    assistant: The Caspian Sea is the largest lake in the world.
  - user: And the deepest?
    assistant: Lake Baikal, in Siberia, is the deepest lake in the world, more than one and a half kilometres deep.
"""

LONG_ANSWER = """
response_delay_ms: 0
turns:
  - user: Tell me a story.
    assistant: >-
      Once upon a time there was a small voice pipeline that streamed audio all day long, and it
      kept on talking and talking about lakes, rivers, mountains and the sea, without ever pausing
      for breath, until somebody finally interrupted it.
  - user: Stop please.
    assistant: Sure, I will stop.
"""

RESPONSE_SEQUENCE = [
    "response.created",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "DELTAS",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


def collapse(event_types: list[str], keep: tuple = ()) -> list[str]:
    """Types with runs of deltas (and the given interleaved types) folded into one ``DELTAS``."""
    out: list[str] = []
    for event_type in event_types:
        if event_type.endswith(".delta") or event_type in keep:
            if not out or out[-1] != "DELTAS":
                out.append("DELTAS")
        else:
            out.append(event_type)
    return out


def text_turn(text: str) -> dict:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


def call_output(call_id: str, output: str) -> dict:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return {"type": "conversation.item.create", "item": item}


# -- a full spoken turn ------------------------------------------------------------------------


def test_full_spoken_turn_with_transcription_and_audible_answer():
    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                session = await update_session(
                    conn,
                    modalities=["text", "audio"],
                    input_audio_transcription={"model": "whisper-1"},
                    turn_detection={"type": "server_vad"},
                )
                assert session["turn_detection"]["silence_duration_ms"] == 500
                await append_audio(conn, speech_pcm("What is the largest lake in the world?"))
                return await recv_until(conn, "response.done")

    events = run(main())
    transcription = [e for e in events if e["type"].startswith("conversation.item.input_audio_transcription.")]
    assert collapse(types(events), keep=tuple(e["type"] for e in transcription)) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.done",
        *RESPONSE_SEQUENCE,
    ]
    started, stopped, committed = events[0], events[1], events[2]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert transcription[-1]["transcript"] == "What is the largest lake in the world?"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == "The Caspian Sea is the largest lake in the world."
    assert done["usage"]["output_token_details"]["audio_tokens"] > 0
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.audio_transcript.delta")
    assert deltas == "The Caspian Sea is the largest lake in the world."
    audio = audio_of(events)
    assert rms_dbfs(audio) > -30  # clearly audible
    expected = synthesize("The Caspian Sea is the largest lake in the world.").duration_ms
    assert abs(len(audio) / 2 / 24 - expected) < 1  # ms


def test_answer_length_follows_the_text():
    async def answer_ms(text: str) -> float:
        async with Emulator(scenario(f"turns:\n  - assistant: {json.dumps(text)}\n"), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"])
                await conn.send(text_turn("hi"))
                await conn.send({"type": "response.create"})
                events = await recv_until(conn, "response.done")
                return len(audio_of(events)) / 48.0

    short = run(answer_ms("Yes."))
    long = run(answer_ms("Yes, and the longest river in Africa is the Nile, which flows north into the Mediterranean."))
    assert 0 < short < 1000
    assert long > 5 * short


def test_placeholder_transcript_names_the_speech_duration():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn, input_audio_transcription={"model": "whisper-1"}, turn_detection={"type": "server_vad"}
                )
                await append_audio(conn, speech_pcm("one two three four", lead_ms=1000))
                return await recv_until(conn, "response.done")

    events = run(main())
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    completed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    seconds = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
    assert completed["transcript"] == f"({seconds:.1f} s of speech)"
    assert started["audio_start_ms"] == pytest.approx(1000 - 400, abs=40)  # lead minus default prefix padding


def test_sixteen_kilohertz_input():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn, input_audio_sampling_rate=16000, turn_detection={"type": "server_vad", "prefix_padding_ms": 0}
                )
                await append_audio(conn, speech_pcm("hello there", lead_ms=500, rate=16000), rate=16000)
                return await recv_until(conn, "input_audio_buffer.committed")

    events = run(main())
    assert types(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    speech_ms = synthesize("hello there", 16000).duration_ms
    assert events[0]["audio_start_ms"] == pytest.approx(500, abs=40)
    assert events[1]["audio_end_ms"] == pytest.approx(500 + speech_ms, abs=320)  # the synth ends in a pause


# -- barge-in, cancel, truncate ----------------------------------------------------------------


def test_barge_in_cancels_the_response_and_starts_the_next_turn():
    async def main():
        async with Emulator(scenario(LONG_ANSWER), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], turn_detection={"type": "server_vad"})
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                first = await recv_until(conn, "response.audio.delta")
                await append_audio(conn, speech_pcm("Stop please."))
                rest = await recv_until(conn, "response.done", count=2)
                return first, rest

    first, rest = run(main())
    response_id = next(e for e in first if e["type"] == "response.created")["response"]["id"]
    started = types(rest).index("input_audio_buffer.speech_started")
    cancelled_types = [t for t in types(rest[started:]) if not t.endswith(".delta")]
    assert cancelled_types[:6] == [
        "input_audio_buffer.speech_started",
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    dones = [e for e in rest if e["type"] == "response.done"]
    cancelled = dones[0]["response"]
    assert cancelled["id"] == response_id
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert cancelled["output"][0]["status"] == "incomplete"
    # no deltas of the cancelled response after its response.done
    after = rest[rest.index(dones[0]) + 1 :]
    assert not [e for e in after if e.get("response_id") == response_id]
    # the interruption became the next turn, answered
    assert "input_audio_buffer.committed" in types(after)
    assert dones[1]["response"]["status"] == "completed"
    assert dones[1]["response"]["output"][0]["content"][0]["transcript"] == "Sure, I will stop."


def test_no_interruption_when_interrupt_response_is_off():
    async def main():
        async with Emulator(scenario(LONG_ANSWER), speed=8) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn,
                    modalities=["text", "audio"],
                    turn_detection={"type": "server_vad", "interrupt_response": False},
                )
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                await recv_until(conn, "response.audio.delta")
                await append_audio(conn, speech_pcm("Stop please."))
                return await recv_until(conn, "response.done")

    events = run(main())
    assert "input_audio_buffer.speech_started" in types(events)
    assert events[-1]["response"]["status"] == "completed"


def test_auto_truncate_cuts_the_interrupted_answer():
    async def main():
        async with Emulator(scenario(LONG_ANSWER), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(
                    conn,
                    modalities=["text", "audio"],
                    turn_detection={"type": "server_vad", "auto_truncate": True, "create_response": False},
                )
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                first = await recv_until(conn, "response.audio.delta", count=3)
                await append_audio(conn, speech_pcm("Stop please."))
                rest = await recv_until(conn, "conversation.item.truncated")
                item_id = rest[-1]["item_id"]
                await conn.send({"type": "conversation.item.retrieve", "item_id": item_id})
                retrieved = (await recv_until(conn, "conversation.item.retrieved"))[-1]
                return first + rest, retrieved

    events, retrieved = run(main())
    done = next(e for e in events if e["type"] == "response.done")
    assert done["response"]["status"] == "cancelled"
    truncated = events[-1]
    assert types(events).index("response.done") < types(events).index("conversation.item.truncated")
    assert truncated["item_id"] == done["response"]["output"][0]["id"]
    sent_ms = len(audio_of(events)) / 48.0
    assert 0 < truncated["audio_end_ms"] <= sent_ms
    full = "".join(e["delta"] for e in events if e["type"] == "response.audio_transcript.delta")
    kept = retrieved["item"]["content"][0]["transcript"]
    assert full.startswith(kept) and len(kept) <= len(full)


def test_truncate_within_and_past_the_audio():
    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"])
                await conn.send(text_turn("hi"))
                await conn.send({"type": "response.create"})
                events = await recv_until(conn, "response.done")
                item_id = events[-1]["response"]["output"][0]["id"]
                await conn.send(
                    {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 900}
                )
                ok = await recv(conn)
                await conn.send({"type": "conversation.item.retrieve", "item_id": item_id})
                retrieved = await recv(conn)
                await conn.send(
                    {
                        "type": "conversation.item.truncate",
                        "event_id": "trunc-2",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": 60000,
                    }
                )
                too_far = await recv(conn)
                await conn.send(
                    {
                        "type": "conversation.item.truncate",
                        "item_id": "item_nope",
                        "content_index": 0,
                        "audio_end_ms": 1,
                    }
                )
                unknown = await recv(conn)
                return ok, retrieved, too_far, unknown

    ok, retrieved, too_far, unknown = run(main())
    assert {k: ok[k] for k in ("type", "content_index", "audio_end_ms")} == {
        "type": "conversation.item.truncated",
        "content_index": 0,
        "audio_end_ms": 900,
    }
    kept = retrieved["item"]["content"][0]["transcript"]
    assert (
        kept
        and "The Caspian Sea is the largest lake in the world.".startswith(kept)
        and kept != "The Caspian Sea is the largest lake in the world."
    )
    assert too_far["type"] == "error"
    assert too_far["error"]["type"] == "invalid_request_error"
    assert too_far["error"]["event_id"] == "trunc-2"
    assert too_far["error"]["message"] == "Audio content of 900 ms is already shorter than 60000 ms"
    assert unknown["type"] == "error" and unknown["error"]["param"] == "item_id"


def test_response_cancel_without_and_with_an_active_response():
    async def main():
        async with Emulator(scenario(LONG_ANSWER), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await conn.send({"type": "response.cancel", "event_id": "cancel-1"})
                idle = await recv(conn)
                await conn.send(text_turn("Tell me a story."))
                await conn.send({"type": "response.create"})
                await recv_until(conn, "response.audio.delta")
                again = {"type": "response.create", "event_id": "again", "response": {"cancel_previous": False}}
                await conn.send(again)
                busy = await recv_until(conn, "error")
                await conn.send({"type": "response.cancel"})
                done = await recv_until(conn, "response.done")
                return idle, busy[-1], done[-1]

    idle, busy, done = run(main())
    assert idle["type"] == "error"
    assert idle["error"]["code"] == "response_cancel_not_active"
    assert idle["error"]["event_id"] == "cancel-1"
    assert busy["error"]["code"] == "conversation_already_has_active_response"
    assert busy["error"]["event_id"] == "again"
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"


# -- tools, text, manual turns -----------------------------------------------------------------

TOOL_SCENARIO = """
turns:
  - user: What is the weather in Paris?
    tool: {name: get_weather, arguments: {city: Paris}}
    assistant: "The forecast says: {tool_output}"
"""

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Look up the weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_tool_round_then_spoken_answer():
    async def main():
        async with Emulator(scenario(TOOL_SCENARIO), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], tools=[WEATHER_TOOL])
                await conn.send(text_turn("What is the weather in Paris?"))
                await conn.send({"type": "response.create"})
                call = await recv_until(conn, "response.done", count=1)
                done = call[-1]["response"]["output"][0]
                await conn.send(call_output(done["call_id"], "sunny, 21 degrees"))
                await conn.send({"type": "response.create"})
                answer = await recv_until(conn, "response.done")
                return call, answer

    call, answer = run(main())
    assert collapse(types(call)) == [
        "conversation.item.created",
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "DELTAS",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
    ]
    arguments_done = next(e for e in call if e["type"] == "response.function_call_arguments.done")
    assert json.loads(arguments_done["arguments"]) == {"city": "Paris"}
    assert (
        "".join(e["delta"] for e in call if e["type"] == "response.function_call_arguments.delta")
        == arguments_done["arguments"]
    )
    item = call[-1]["response"]["output"][0]
    assert item["type"] == "function_call" and item["name"] == "get_weather" and item["status"] == "completed"
    assert answer[0]["type"] == "conversation.item.created"
    assert answer[0]["item"]["type"] == "function_call_output"
    assert collapse(types(answer[1:])) == RESPONSE_SEQUENCE
    assert answer[-1]["response"]["output"][0]["content"][0]["transcript"] == "The forecast says: sunny, 21 degrees"
    assert rms_dbfs(audio_of(answer)) > -30


def test_tool_turn_without_the_tool_in_the_session_answers_directly():
    async def main():
        async with Emulator(scenario(TOOL_SCENARIO), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                await conn.send(text_turn("What is the weather in Paris?"))
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done")

    events = run(main())
    assert "response.function_call_arguments.done" not in types(events)
    assert events[-1]["response"]["output"][0]["type"] == "message"


PARALLEL_SCENARIO = """
turns:
  - user: What time is it in Tokyo, and is the Louvre open?
    tool:
      - {name: get_current_time, arguments: {timezone: Asia/Tokyo}}
      - {name: get_opening_hours, arguments: {place: Louvre}}
      - {name: get_weather, arguments: {city: Paris}}
    assistant: "Here you go: {tool_output}"
"""

TIME_TOOL = {
    "type": "function",
    "name": "get_current_time",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
}
HOURS_TOOL = {
    "type": "function",
    "name": "get_opening_hours",
    "parameters": {"type": "object", "properties": {"place": {"type": "string"}}},
}

CALL_SEQUENCE = [
    "response.output_item.added",
    "conversation.item.created",
    "DELTAS",
    "response.function_call_arguments.done",
    "response.output_item.done",
]


def test_parallel_function_calls_in_one_response_then_one_answer():
    async def main():
        async with Emulator(scenario(PARALLEL_SCENARIO), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                # get_weather is not a tool of this session: only the other two calls are made
                await update_session(conn, modalities=["text"], tools=[HOURS_TOOL, TIME_TOOL])
                await conn.send(text_turn("What time is it in Tokyo, and is the Louvre open?"))
                await conn.send({"type": "response.create"})
                call = await recv_until(conn, "response.done")
                items = call[-1]["response"]["output"]
                # answered in the reverse order: the answer still follows the call order
                await conn.send(call_output(items[1]["call_id"], "open 9:00-18:00"))
                await conn.send(call_output(items[0]["call_id"], "14:05 JST"))
                await conn.send({"type": "response.create"})
                answer = await recv_until(conn, "response.done")
                return call, answer

    call, answer = run(main())
    assert collapse(types(call)) == [
        "conversation.item.created",
        "response.created",
        *CALL_SEQUENCE * 2,
        "response.done",
    ]
    response_id = call[1]["response"]["id"]
    added = [e for e in call if e["type"] == "response.output_item.added"]
    args_done = [e for e in call if e["type"] == "response.function_call_arguments.done"]
    item_done = [e for e in call if e["type"] == "response.output_item.done"]
    created = [e for e in call[2:] if e["type"] == "conversation.item.created"]
    assert [e["output_index"] for e in added] == [0, 1]
    assert [e["output_index"] for e in args_done] == [0, 1]
    assert [e["output_index"] for e in item_done] == [0, 1]
    assert [e["item"]["name"] for e in added] == ["get_current_time", "get_opening_hours"]
    assert all(e["item"]["status"] == "in_progress" and e["item"]["arguments"] == "" for e in added)
    item_ids = [e["item"]["id"] for e in added]
    call_ids = [e["item"]["call_id"] for e in added]
    assert len(set(item_ids)) == 2 and len(set(call_ids)) == 2
    assert all(c.startswith("call_") for c in call_ids)
    assert [e["item"]["id"] for e in created] == item_ids
    assert created[1]["previous_item_id"] == item_ids[0]
    assert all(e["response_id"] == response_id for e in added + args_done + item_done)
    for index, expected in enumerate(({"timezone": "Asia/Tokyo"}, {"place": "Louvre"})):
        deltas = [
            e for e in call if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == index
        ]
        assert deltas and all(e["item_id"] == item_ids[index] and e["call_id"] == call_ids[index] for e in deltas)
        assert "".join(e["delta"] for e in deltas) == args_done[index]["arguments"]
        assert json.loads(args_done[index]["arguments"]) == expected
        assert args_done[index]["item_id"] == item_ids[index] and args_done[index]["call_id"] == call_ids[index]
        assert args_done[index]["name"] == added[index]["item"]["name"]
    done = call[-1]["response"]
    assert done["status"] == "completed"
    assert [e["item"] for e in item_done] == done["output"]
    assert [(i["type"], i["id"], i["call_id"], i["status"]) for i in done["output"]] == [
        ("function_call", item_ids[0], call_ids[0], "completed"),
        ("function_call", item_ids[1], call_ids[1], "completed"),
    ]
    assert done["usage"]["output_token_details"]["audio_tokens"] == 0
    assert [e["item"]["type"] for e in answer[:2]] == ["function_call_output"] * 2
    assert answer[-1]["response"]["output"][0]["content"][0]["text"] == "Here you go: 14:05 JST; open 9:00-18:00"


def test_parallel_call_scenario_without_any_of_its_tools_answers_in_words():
    async def main():
        async with Emulator(scenario(PARALLEL_SCENARIO), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"], tools=[WEATHER_TOOL])
                await conn.send(text_turn("Only the weather tool is here."))
                await conn.send({"type": "response.create"})
                only_weather = await recv_until(conn, "response.done")
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                await conn.send(text_turn("No tools at all."))
                await conn.send({"type": "response.create"})
                no_tools = await recv_until(conn, "response.done")
                return only_weather, no_tools

    only_weather, no_tools = run(main())
    assert [i["name"] for i in only_weather[-1]["response"]["output"]] == ["get_weather"]
    assert "response.function_call_arguments.done" not in types(no_tools)
    assert no_tools[-1]["response"]["output"][0]["type"] == "message"


LONG_CALLS_SCENARIO = """
response_delay_ms: 0
turns:
  - user: Three calls, please.
    tool:
      - {name: get_current_time, arguments: {timezone: Asia/Tokyo}}
      - name: get_opening_hours
        arguments: {place: "%s"}
      - {name: get_current_time, arguments: {timezone: Europe/Paris}}
""" % ("The Louvre Museum, Paris " * 40)


def test_cancelling_a_parallel_call_response_mid_call():
    async def main():
        async with Emulator(scenario(LONG_CALLS_SCENARIO), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"], tools=[TIME_TOOL, HOURS_TOOL])
                await conn.send(text_turn("Three calls, please."))
                await conn.send({"type": "response.create"})
                before = await recv_until(conn, "response.function_call_arguments.delta")
                while before[-1]["output_index"] != 1:
                    before += await recv_until(conn, "response.function_call_arguments.delta")
                await conn.send({"type": "response.cancel"})
                after = await recv_until(conn, "response.done")
                await conn.send(text_turn("Still there?"))
                await conn.send({"type": "response.create"})
                nxt = await recv_until(conn, "response.done")
                return before, after, nxt

    before, after, nxt = run(main())
    events = before + after
    assert collapse(types(events)) == [
        "conversation.item.created",
        "response.created",
        *CALL_SEQUENCE,
        "response.output_item.added",
        "conversation.item.created",
        "DELTAS",
        "response.output_item.done",
        "response.done",
    ]
    assert "response.function_call_arguments.done" not in types(after)
    first, second = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    partial = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == 1
    )
    assert first["status"] == "completed" and json.loads(first["arguments"]) == {"timezone": "Asia/Tokyo"}
    assert second["status"] == "incomplete" and second["arguments"] == partial
    assert 0 < len(partial) < len(json.dumps({"place": "The Louvre Museum, Paris " * 40}))
    done = after[-1]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    assert done["output"] == [first, second]  # the third call was never announced
    assert max(e.get("output_index", 0) for e in events) == 1
    assert nxt[-1]["response"]["status"] == "completed"


def test_cancelling_between_two_parallel_calls(monkeypatch):
    from voicepipe.emulator import responses

    monkeypatch.setattr(responses, "ARGUMENT_DELTA_MS", 1000.0)  # a long pause between the calls
    short_args = """
response_delay_ms: 0
turns:
  - user: Two calls.
    tool:
      - {name: get_current_time}
      - {name: get_opening_hours}
"""

    async def main():
        async with Emulator(scenario(short_args), speed=1) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"], tools=[TIME_TOOL, HOURS_TOOL])
                await conn.send(text_turn("Two calls."))
                await conn.send({"type": "response.create"})
                before = await recv_until(conn, "response.output_item.done")
                await conn.send({"type": "response.cancel"})
                after = await recv_until(conn, "response.done")
                return before, after

    before, after = run(main())
    assert collapse(types(before)) == ["conversation.item.created", "response.created", *CALL_SEQUENCE]
    assert types(after) == ["response.done"]
    done = after[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["output"] == [before[-1]["item"]] and done["output"][0]["status"] == "completed"


def test_text_only_modality():
    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                await conn.send(text_turn("What is the largest lake?"))
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done")

    events = run(main())
    assert collapse(types(events)) == [
        "conversation.item.created",
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
        "DELTAS",
        "response.text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    assert {e["type"] for e in events if e["type"].endswith(".delta")} == {"response.text.delta"}
    answer = "The Caspian Sea is the largest lake in the world."
    assert "".join(e["delta"] for e in events if e["type"] == "response.text.delta") == answer
    assert next(e for e in events if e["type"] == "response.text.done")["text"] == answer
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "text", "text": answer}]


def test_response_modalities_override_the_session():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"])
                await conn.send(
                    {"type": "response.create", "response": {"modalities": ["text"], "metadata": {"k": "v"}}}
                )
                return await recv_until(conn, "response.done")

    events = run(main())
    assert "response.audio.delta" not in types(events)
    assert events[-1]["response"]["metadata"] == {"k": "v"}
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello! How can I help you today?"


def test_manual_turns_commit_clear_and_response_create():
    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                session = await update_session(
                    conn, turn_detection=None, input_audio_transcription={"model": "whisper-1"}
                )
                assert session["turn_detection"] is None
                await conn.send({"type": "input_audio_buffer.commit", "event_id": "empty"})
                empty = await recv(conn)
                await append_audio(conn, speech_pcm())
                await conn.send({"type": "input_audio_buffer.clear"})
                cleared = await recv(conn)  # nothing was detected in between: manual turns
                await append_audio(conn, speech_pcm())
                await conn.send({"type": "input_audio_buffer.commit"})
                committed = await recv_until(conn, "conversation.item.input_audio_transcription.completed")
                await conn.send({"type": "output_audio_buffer.clear"})
                output_cleared = await recv(conn)  # no response was started by the commit
                await conn.send({"type": "response.create"})
                response = await recv_until(conn, "response.done")
                return empty, cleared, committed, output_cleared, response

    empty, cleared, committed, output_cleared, response = run(main())
    assert empty["error"]["code"] == "input_audio_buffer_commit_empty"
    assert empty["error"]["event_id"] == "empty"
    assert cleared["type"] == "input_audio_buffer.cleared"
    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert committed[-1]["transcript"] == "What is the largest lake in the world?"
    assert output_cleared["type"] == "output_audio_buffer.cleared"
    assert collapse(types(response)) == RESPONSE_SEQUENCE
    assert response[-1]["response"]["output"][0]["content"][0]["transcript"].startswith("The Caspian Sea")


def test_default_session_uses_server_vad():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await append_audio(conn, speech_pcm())
                return await recv_until(conn, "response.done")

    events = run(main())
    assert types(events)[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]


def test_greeting_default_answer_and_conversation_items():
    async def main():
        async with Emulator(
            scenario("greeting: Welcome aboard.\ndefault_answer: 'Echo: {user}'\n"), speed=0
        ) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                await conn.send({"type": "response.create"})
                greeting = await recv_until(conn, "response.done")
                await conn.send(text_turn("ping"))
                await conn.send({"type": "response.create"})
                echo = await recv_until(conn, "response.done")
                user_item = echo[0]["item"]["id"]
                await conn.send({"type": "conversation.item.delete", "item_id": user_item})
                deleted = await recv(conn)
                await conn.send({"type": "conversation.item.retrieve", "item_id": user_item})
                missing = await recv(conn)
                return greeting, echo, deleted, missing

    greeting, echo, deleted, missing = run(main())
    assert greeting[-1]["response"]["output"][0]["content"][0]["text"] == "Welcome aboard."
    assert echo[0]["previous_item_id"] == greeting[-1]["response"]["output"][0]["id"]
    assert echo[-1]["response"]["output"][0]["content"][0]["text"] == "Echo: ping"
    assert deleted == {**deleted, "type": "conversation.item.deleted", "item_id": echo[0]["item"]["id"]}
    assert missing["type"] == "error" and missing["error"]["code"] == "item_not_found"


# -- validation and robustness -----------------------------------------------------------------


def test_invalid_session_update_gets_the_service_error_shape():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                bad = [
                    {"turn_detection": {"type": "server_vad", "threshold": 1.5}},
                    {"turn_detection": {"type": "nonsense_vad"}},
                    {"input_audio_sampling_rate": 11025},
                    {"modalities": ["smell"]},
                    {"voice": {"type": "azure-standard"}},
                    {"tools": [{"type": "function"}]},
                    {"no_such_setting": 1},
                ]
                errors = []
                for index, session in enumerate(bad):
                    await conn.send({"type": "session.update", "event_id": f"bad-{index}", "session": session})
                    errors.append(await recv(conn))
                session = await update_session(conn, instructions="Be brief.")
                return errors, session

    errors, session = run(main())
    for index, error in enumerate(errors):
        assert error["type"] == "error", error
        assert set(error) == {"type", "event_id", "error"}
        assert set(error["error"]) == {"type", "code", "message", "param", "event_id"}
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["event_id"] == f"bad-{index}"
        assert error["error"]["message"]
    assert [e["error"]["param"] for e in errors] == [
        "session.turn_detection.threshold",
        "session.turn_detection.type",
        "session.input_audio_sampling_rate",
        "session.modalities",
        "session.voice.name",
        "session.tools[0].name",
        "session.no_such_setting",
    ]
    # the rejected updates changed nothing
    assert session["turn_detection"]["threshold"] == 0.5
    assert session["input_audio_sampling_rate"] == 24000
    assert session["instructions"] == "Be brief."


def test_session_updated_fills_server_defaults():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                return await update_session(
                    conn,
                    voice={"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.8},
                    turn_detection={
                        "type": "azure_semantic_vad",
                        "threshold": 0.3,
                        "end_of_utterance_detection": {"model": "semantic_detection_v1", "timeout": 2},
                    },
                    input_audio_noise_reduction={"type": "azure_deep_noise_suppression"},
                    input_audio_echo_cancellation={"type": "server_echo_cancellation"},
                    input_audio_transcription={"model": "whisper-1"},
                )

    session = run(main())
    detection = session["turn_detection"]
    assert detection["type"] == "azure_semantic_vad" and detection["threshold"] == 0.3
    assert detection["silence_duration_ms"] == 500 and detection["create_response"] is True
    assert detection["end_of_utterance_detection"]["threshold_level"] == "default"
    assert session["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "server",
        "channels": 1,
    }
    assert session["input_audio_transcription"] == {
        "model": "whisper-1",
        "language": None,
        "prompt": None,
        "custom_speech": None,
        "phrase_list": None,
    }
    assert session["voice"]["name"] == "en-US-Ava:DragonHDLatestNeural"
    assert session["id"].startswith("sess_") and session["object"] == "realtime.session"


def test_malformed_client_frames_get_errors_and_the_connection_lives_on():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                ws = conn._connection  # the SDK only sends JSON; reach the socket for raw frames
                await ws.send_str("this is not json")
                not_json = await recv(conn)
                await ws.send_str("[1, 2]")
                not_object = await recv(conn)
                await ws.send_bytes(b"\x00\x01")
                binary = await recv(conn)
                await conn.send({"type": "no.such.event", "event_id": "e1"})
                unknown = await recv(conn)
                await conn.send({"type": "conversation.item.create", "event_id": "e2"})
                no_item = await recv(conn)
                await conn.send({"type": "input_audio_buffer.append", "audio": "!!not base64!!"})
                bad_audio = await recv(conn)
                await conn.send({"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": "soon"})
                wrong_type = await recv(conn)
                await conn.send({"event_id": "no-type"})
                no_type = await recv(conn)
                await conn.send({"type": "input_audio.turn.start", "turn_id": "t"})
                unsupported = await recv(conn)
                await conn.send(text_turn("still there?"))
                await conn.send({"type": "response.create"})
                response = await recv_until(conn, "response.done")
                return [
                    not_json,
                    not_object,
                    binary,
                    unknown,
                    no_item,
                    bad_audio,
                    wrong_type,
                    no_type,
                    unsupported,
                ], response

    errors, response = run(main())
    assert all(e["type"] == "error" for e in errors), errors
    assert [e["error"]["code"] for e in errors] == [
        "invalid_json",
        "invalid_type",
        "invalid_event",
        "invalid_value",
        "missing_required_parameter",
        "invalid_value",
        "item_not_found",
        "missing_required_parameter",
        "unsupported_event",
    ]
    assert errors[3]["error"]["event_id"] == "e1" and errors[3]["error"]["param"] == "type"
    assert errors[4]["error"]["param"] == "item"
    assert response[-1]["response"]["status"] == "completed"


def test_two_concurrent_connections_are_independent():
    async def one(emulator: Emulator, modalities: list, instructions: str):
        async with sdk_session(emulator) as conn:
            session = await update_session(conn, modalities=modalities, instructions=instructions)
            await conn.send(text_turn("hello"))
            await conn.send({"type": "response.create"})
            events = await recv_until(conn, "response.done")
            return session, events

    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=4) as emulator:
            results = await asyncio.gather(
                one(emulator, ["text"], "first"),
                one(emulator, ["text", "audio"], "second"),
            )
            return results, emulator.connections

    (first, second), records = run(main())
    assert first[0]["instructions"] == "first" and second[0]["instructions"] == "second"
    assert first[0]["id"] != second[0]["id"]
    # each connection starts the scenario from its first turn
    assert first[1][-1]["response"]["output"][0]["content"][0]["text"].startswith("The Caspian Sea")
    assert second[1][-1]["response"]["output"][0]["content"][0]["transcript"].startswith("The Caspian Sea")
    assert "response.audio.delta" not in types(first[1]) and "response.audio.delta" in types(second[1])
    assert len(records) == 2 and all(r.closed.is_set() for r in records)
    assert {r.session["instructions"] for r in records} == {"first", "second"}
    for record in records:
        assert [e["type"] for e in record.client_events] == [
            "session.update",
            "conversation.item.create",
            "response.create",
        ]
        assert record.server_events[0]["type"] == "session.created"


def test_speed_zero_streams_a_long_answer_without_pacing():
    answer = " ".join(["This sentence keeps the emulator talking for quite a while."] * 12)

    async def main():
        async with Emulator(scenario(f"turns:\n  - assistant: {json.dumps(answer)}\n"), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"])
                await conn.send(text_turn("talk"))
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done", timeout=15)

    events = run(main(), timeout=20)
    audio_seconds = len(audio_of(events)) / 48000
    assert audio_seconds > 30  # more audio than the whole wait allowed at real time
    assert events[-1]["response"]["status"] == "completed"


def test_records_keep_query_parameters_and_elide_audio():
    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator, model=None, agent_name="helper", project_name="proj") as conn:
                await append_audio(conn, b"\x00\x00" * 2400)
                await conn.send({"type": "input_audio_buffer.clear"})
                await recv_until(conn, "input_audio_buffer.cleared")
            return emulator.connections[0]

    record = run(main())
    assert record.query["agent-name"] == "helper"
    assert record.query["agent-project-name"] == "proj"
    assert "api-version" in record.query
    append = record.client_events[0]
    assert append["type"] == "input_audio_buffer.append"
    assert append["audio"] == "<6400 base64 characters>"


async def _created_session(emulator: Emulator, **kwargs) -> tuple[dict, dict]:
    """``session.created`` and ``session.updated`` (after an instructions-free update) of one connection."""
    from azure.ai.voicelive.aio import connect
    from azure.core.credentials import AzureKeyCredential

    async with connect(endpoint=emulator.url, credential=AzureKeyCredential("test-key"), **kwargs) as conn:
        created = await recv(conn)
        assert created["type"] == "session.created"
        updated = await update_session(conn, modalities=["text"])
        return created["session"], updated


def test_agent_connection_session_carries_the_agent():
    from azure.ai.voicelive.models import ResponseSession

    async def main():
        async with Emulator(speed=0) as emulator:
            with_thread = await _created_session(
                emulator, agent_name="concierge", project_name="proj", agent_version="3", conversation_id="conv-42"
            )
            first = await _created_session(emulator, agent_name="concierge", project_name="proj")
            second = await _created_session(emulator, agent_name="concierge", project_name="proj")
            model = await _created_session(emulator, model="gpt-realtime")
            return with_thread, first, second, model, emulator.connections

    (created, updated), (first, _), (second, _), (model, model_updated), records = run(main())
    agent = created["agent"]
    assert agent["type"] == "agent" and agent["name"] == "concierge" and agent["thread_id"] == "conv-42"
    assert agent["agent_id"].startswith("asst_") and len(agent["agent_id"]) > len("asst_")
    assert created["instructions"] == "You are concierge, a Foundry agent."
    assert updated["agent"] == agent and updated["instructions"] == created["instructions"]
    typed = ResponseSession(created).agent
    assert (typed.type, typed.name, typed.thread_id) == ("agent", "concierge", "conv-42")
    assert typed.agent_id == agent["agent_id"]
    assert records[0].query["agent-version"] == "3" and records[0].query["conversation-id"] == "conv-42"
    # without conversation-id: a new thread per connection, the same agent id for the same agent
    for session in (first, second):
        assert session["agent"]["thread_id"].startswith("thread_")
        assert session["agent"]["agent_id"] == agent["agent_id"]
    assert first["agent"]["thread_id"] != second["agent"]["thread_id"]
    # a model connection is unchanged
    assert "agent" not in model and "agent" not in model_updated
    assert model["instructions"] == "You are a helpful, friendly assistant. Keep your answers short."


def test_stop_closes_connections_with_going_away_and_is_idempotent():
    async def main():
        emulator = Emulator(speed=0)
        await emulator.start()
        async with sdk_session(emulator) as conn:
            reading = asyncio.ensure_future(conn.recv())  # a client is always reading
            await emulator.stop()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(reading, 10)
        await emulator.stop()
        return closed.value, emulator.connections[0]

    closed, record = run(main())
    assert closed.code == 1001
    assert record.closed.is_set() and record.close_code == 1001


def test_audio_deltas_decode_to_pcm16_at_the_output_rate():
    async def main():
        async with Emulator(scenario(SPOKEN_TURN), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text", "audio"], output_audio_format="pcm16_16000hz")
                await conn.send(text_turn("hi"))
                await conn.send({"type": "response.create"})
                return await recv_until(conn, "response.done")

    events = run(main())
    expected_ms = synthesize("The Caspian Sea is the largest lake in the world.", 16000).duration_ms
    audio = audio_of(events)
    assert abs(len(audio) / 32 - expected_ms) < 1
    chunk = base64.b64decode(next(e for e in events if e["type"] == "response.audio.delta")["delta"])
    assert len(chunk) == 1600 * 2  # 100 ms at 16 kHz


def test_memory_per_connection_is_bounded(monkeypatch):
    import voicepipe.emulator.conversation as conversation
    import voicepipe.emulator.record as record_module

    monkeypatch.setattr(record_module, "MAX_RECORDED", 40)
    monkeypatch.setattr(conversation, "MAX_ITEMS", 5)

    async def main():
        async with Emulator(speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, turn_detection=None)
                await append_audio(conn, b"\x00\x00" * 24000 * 10)  # 10 s in 100 appends, none of it kept
                ids = []
                for index in range(8):
                    await conn.send(text_turn(f"message {index}"))
                    ids.append((await recv(conn))["item"]["id"])
                await conn.send({"type": "conversation.item.retrieve", "item_id": ids[0]})
                oldest = await recv(conn)
                await conn.send({"type": "conversation.item.retrieve", "item_id": ids[-1]})
                newest = await recv(conn)
            return emulator.connections[0], oldest, newest

    record, oldest, newest = run(main())
    assert len(record.client_events) <= 40
    assert record.client_events[-1]["type"] == "conversation.item.retrieve"
    assert oldest["type"] == "error" and oldest["error"]["code"] == "item_not_found"
    assert newest["type"] == "conversation.item.retrieved"
