"""Scenario files: loading, validation errors naming file:line, and how turns are used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator_helpers import recv_until, run, sdk_session, update_session
from voicepipe.emulator import Emulator, Scenario, load_scenario, parse_scenario
from voicepipe.emulator.scenario import ToolCall, Turn, answer_text
from voicepipe.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[1] / "voicepipe" / "emulator" / "example_scenario.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(UsageError) as error:
        parse_scenario(text, "bad.yaml")
    assert error.value.exit_code == 2
    return str(error.value).splitlines()


def test_example_scenario_loads():
    example = load_scenario(EXAMPLE)
    assert isinstance(example, Scenario)
    assert len(example.turns) == 4
    assert example.turns[1].tool.name == "get_weather"
    assert json.loads(example.turns[1].tool.arguments) == {"city": "Paris", "unit": "celsius"}
    assert [call.name for call in example.turns[2].calls] == ["get_current_time", "get_opening_hours"]
    assert [json.loads(call.arguments) for call in example.turns[2].calls] == [
        {"timezone": "Asia/Tokyo"},
        {"place": "Louvre"},
    ]
    assert [f.action for f in example.faults] == ["delay", "close"]
    assert example.faults[1].connection == 1
    assert example.faults[1].trigger == ("server", "response.audio.delta", 5)
    assert example.source == str(EXAMPLE)


def test_empty_and_missing_files(tmp_path: Path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_scenario(empty).turns == []
    with pytest.raises(UsageError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="nope.yaml"):
        Emulator(tmp_path / "nope.yaml")


def test_errors_name_the_line_and_key():
    text = (
        "turns:\n"  # 1
        "  - user: hello\n"  # 2
        "    asistant: hi\n"  # 3
        "  - tool: {name: get_weather, arguments: '{not json'}\n"  # 4
        "  - 42\n"  # 5
        "faults:\n"  # 6
        "  - after: {event: response.audio.deltas, count: 2}\n"  # 7
        "    action: close\n"  # 8
        "  - action: explode\n"  # 9
        "  - after_events: 0\n"  # 10
        "    action: delay\n"  # 11
        "    ms: 5\n"  # 12
        "  - action: close\n"  # 13
        "    code: 99\n"  # 14
        "  - action: http_status\n"  # 15
        "    after_events: 1\n"  # 16
        "voice: robot\n"  # 17
    )
    found = problems(text)
    assert found == [
        "bad.yaml:3: turns[0].asistant: unknown key (did you mean 'assistant'?)",
        "bad.yaml:4: turns[1].tool.arguments: not valid JSON (Expecting property name enclosed in double quotes)",
        "bad.yaml:5: turns[2]: expected a mapping, got 42",
        "bad.yaml:7: faults[0].after.event: unknown server event type 'response.audio.deltas' (did you mean 'response.audio.delta'?)",
        "bad.yaml:9: faults[1].action: expected one of delay, close, error, malformed, stop_answering, http_status, got 'explode'",
        "bad.yaml:10: faults[2].after_events: expected an integer ≥ 1, got 0",
        "bad.yaml:14: faults[3].code: expected an integer ≥ 1000, got 99",
        "bad.yaml:15: faults[4]: http_status happens at connect: it takes no after/after_client/after_events",
        "bad.yaml:17: voice: expected one of synth, espeak, got 'robot'",
    ]


def test_yaml_syntax_and_shape_errors():
    assert problems("turns: [\n  - user: x\n")[0].startswith("bad.yaml:")
    assert problems("- just\n- a list\n") == ["bad.yaml:1: expected a mapping, got a list"]
    assert problems("turns:\n  - user: a\n    user: b\n") == ["bad.yaml:3: user: duplicate key"]
    assert problems("faults:\n  - after: {event: response.done}\n") == [
        "bad.yaml:2: faults[0]: 'action' is required (one of delay, close, error, malformed, stop_answering, http_status)"
    ]
    assert problems("faults:\n  - after_client: {event: session.updated}\n    action: close\n") == [
        "bad.yaml:2: faults[0].after_client.event: unknown client event type 'session.updated' (did you mean 'session.update'?)"
    ]


def test_tool_as_a_list_of_parallel_calls():
    parsed = parse_scenario(
        "turns:\n"
        "  - user: Time in Tokyo, and is the Louvre open?\n"
        "    tool:\n"
        "      - {name: get_current_time, arguments: {timezone: Asia/Tokyo}}\n"
        "      - name: get_opening_hours\n"
        "        arguments: '{\"place\": \"Louvre\"}'\n"
        "      - {name: ping}\n"
        "  - tool: {name: get_weather, arguments: {city: Paris}}\n"
        "  - tool: [{name: get_weather}]\n"
        "  - user: no tool\n"
    )
    parallel, single, one_in_a_list, none = parsed.turns
    assert parallel.calls == (
        ToolCall("get_current_time", '{"timezone": "Asia/Tokyo"}'),
        ToolCall("get_opening_hours", '{"place": "Louvre"}'),
        ToolCall("ping", "{}"),
    )
    assert parallel.tool == parallel.calls
    assert single.tool == ToolCall("get_weather", '{"city": "Paris"}')  # a mapping stays one ToolCall
    assert single.calls == (single.tool,)
    assert one_in_a_list.calls == (ToolCall("get_weather", "{}"),)
    assert none.tool is None and none.calls == ()
    assert Turn(tool=ToolCall("f", "{}")).calls == (ToolCall("f", "{}"),)


def test_bad_entries_in_a_tool_list_name_their_index():
    text = (
        "turns:\n"  # 1
        "  - user: hi\n"  # 2
        "    tool:\n"  # 3
        "      - {name: get_current_time}\n"  # 4
        "      - {arguments: {place: Louvre}}\n"  # 5
        "      - name: get_opening_hours\n"  # 6
        "        argument: {place: Louvre}\n"  # 7
        "      - just a name\n"  # 8
        "      - {name: f, arguments: '{oops'}\n"  # 9
        "      - {name: [1, 2]}\n"  # 10
        "  - tool: []\n"  # 11
        "  - tool: get_weather\n"  # 12
    )
    assert problems(text) == [
        "bad.yaml:5: turns[0].tool[1]: 'name' is required",
        "bad.yaml:7: turns[0].tool[2].argument: unknown key (did you mean 'arguments'?)",
        "bad.yaml:8: turns[0].tool[3]: expected a mapping, got 'just a name'",
        "bad.yaml:9: turns[0].tool[4].arguments: not valid JSON (Expecting property name enclosed in double quotes)",
        "bad.yaml:10: turns[0].tool[5].name: expected text, got a list",
        "bad.yaml:11: turns[1].tool: expected at least one call (a mapping or a list of mappings), got an empty list",
        "bad.yaml:12: turns[2].tool: expected a mapping or a list of mappings, got 'get_weather'",
    ]


def test_answer_placeholders():
    assert answer_text("You said {user}; tool: {tool_output}; {other}", user="hi", tool_output="42") == (
        "You said hi; tool: 42; {other}"
    )


TURNS = """
turns:
  - user: first question
    assistant: "First answer to: {user}"
  - assistant: Second answer.
default_answer: "Out of turns ({user})"
"""


def test_turns_are_used_in_order_then_the_default_answer():
    async def main():
        async with Emulator(parse_scenario(TURNS), speed=0) as emulator:
            async with sdk_session(emulator) as conn:
                await update_session(conn, modalities=["text"])
                answers = []
                for text in ("typed one", "typed two", "typed three"):
                    await conn.send(
                        {
                            "type": "conversation.item.create",
                            "item": {
                                "type": "message",
                                "role": "user",
                                "content": [{"type": "input_text", "text": text}],
                            },
                        }
                    )
                    await conn.send({"type": "response.create"})
                    done = (await recv_until(conn, "response.done"))[-1]
                    answers.append(done["response"]["output"][0]["content"][0]["text"])
                return answers

    assert run(main()) == ["First answer to: typed one", "Second answer.", "Out of turns (typed three)"]
