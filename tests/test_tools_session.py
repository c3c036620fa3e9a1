"""Function tools in whole sessions against the emulator: profiles/tools.yaml, and a failing tool."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from voicepipe.testing import run_profile

ROOT = Path(__file__).resolve().parent.parent
TOOLS_PROFILE = ROOT / "profiles" / "tools.yaml"
FAST = ["connection.emulator.speed=0", "audio.input.realtime=false", "audio.output.realtime=false"]


def test_a_spoken_question_runs_both_tools_and_the_spoken_answer_follows(tmp_path):
    result = run_profile(TOOLS_PROFILE, run_dir=tmp_path / "run", emulator=False, overrides=FAST)
    assert result.exit_code == 0 and result.reason == "input_finished"

    calls = [e for e in result.server_events if e["type"] == "response.function_call_arguments.done"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_current_time", {"timezone": "Asia/Tokyo"}),
        ("get_opening_hours", {"place": "Louvre"}),
    ]
    assert len({c["response_id"] for c in calls}) == 1  # both in one response

    sent = result.client_events
    outputs = [e["item"] for e in sent if e["type"] == "conversation.item.create"]
    assert [o["call_id"] for o in outputs] == [c["call_id"] for c in calls]  # in call order
    time_output, hours_output = (json.loads(o["output"]) for o in outputs)
    assert time_output["timezone"] == "Asia/Tokyo" and len(time_output["time"]) == 5
    assert hours_output == {"place": "Louvre", "opens": "09:00", "closes": "18:00", "note": "closed on Tuesdays"}
    last_output = max(i for i, e in enumerate(sent) if e["type"] == "conversation.item.create")
    assert [e["type"] for e in sent[last_output + 1:]].count("response.create") == 1

    answers = [json.loads(line) for line in result.read("transcript.jsonl").splitlines()]
    assert [a["role"] for a in answers] == ["user", "tool_call", "tool_call", "tool_result", "tool_result", "assistant"]
    spoken = answers[-1]
    assert '"opens": "09:00"' in spoken["text"] and spoken["played_ms"] > 0  # the answer was heard

    turns = [json.loads(line) for line in result.read("metrics.jsonl").splitlines()]
    (tool_turn,) = [t for t in turns if t["tool_calls"]]
    assert {c["name"] for c in tool_turn["tool_calls"]} == {"get_current_time", "get_opening_hours"}
    assert tool_turn["tool_ms"] >= max(c["ms"] for c in tool_turn["tool_calls"]) >= 0


class TypedQuestions:
    """Types a question when the session is ready and after each spoken answer; stops after two."""

    __name__ = "typed-questions"

    def __init__(self):
        self.answers = 0

    def voicepipe_event(self, event, ctx):
        kind = event.get("type")
        if kind == "session.updated" and self.answers == 0:
            self._ask(ctx, "What is the weather in Paris?")
        elif kind == "response.done" and not any(o.get("type") == "function_call" for o in event["response"]["output"]):
            self.answers += 1
            if self.answers == 1:
                self._ask(ctx, "Are you still there?")
            else:
                ctx.stop("user")

    @staticmethod
    def _ask(ctx, text):
        ctx.send({"type": "conversation.item.create",
                  "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
        ctx.send({"type": "response.create"})


def test_a_failing_tool_answers_the_model_with_an_error_and_the_session_goes_on(tmp_path):
    (tmp_path / "weather.py").write_text("def weather(city):\n    raise ConnectionError('weather service down')\n")
    (tmp_path / "scenario.yaml").write_text(textwrap.dedent("""\
        response_delay_ms: 0
        turns:
          - user: What is the weather in Paris?
            tool: {name: get_weather, arguments: {city: Paris}}
            assistant: "Sorry, the weather tool failed: {tool_output}"
          - user: Are you still there?
            assistant: Yes, still here.
        """))
    profile = tmp_path / "profile.yaml"
    profile.write_text(textwrap.dedent("""\
        connection: {endpoint: emulator, model: gpt-realtime, emulator: {scenario: scenario.yaml, speed: 0}}
        session:
          modalities: [text]
          tools:
            - type: function
              name: get_weather
              parameters: {type: object, properties: {city: {type: string}}, required: [city]}
        tools:
          handlers: {get_weather: weather.py:weather}
        audio: {input: null, output: null}
        """))
    result = run_profile(profile, run_dir=tmp_path / "run", emulator=False, plugins=[TypedQuestions()])
    assert (result.exit_code, result.reason) == (0, "user")
    (output,) = [e["item"]["output"] for e in result.client_events
                 if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"]
    assert json.loads(output) == {"error": "get_weather failed: ConnectionError"}
    said = [json.loads(line) for line in result.read("transcript.jsonl").splitlines() if '"assistant"' in line]
    assert [a["text"] for a in said] == [
        'Sorry, the weather tool failed: {"error": "get_weather failed: ConnectionError"}',
        "Yes, still here.",
    ]
    log = result.read("voicepipe.log.jsonl")
    assert '"tool_failed"' in log and "weather service down" in log


def test_mcp_servers_pass_validation_and_reach_the_service_unchanged(tmp_path):
    """Server-side tools are the service's to run: voicepipe sends them as written and runs nothing."""
    mcp = {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp",
           "allowed_tools": ["ask_question"], "require_approval": "never", "headers": {"x-team": "voice"}}
    profile = tmp_path / "profile.yaml"
    profile.write_text(textwrap.dedent(f"""\
        connection: {{endpoint: emulator, model: gpt-realtime, emulator: {{speed: 0}}}}
        session:
          modalities: [text]
          tools:
            - {json.dumps(mcp)}
          tool_choice: auto
        audio: {{input: null, output: null}}
        """))
    result = run_profile(profile, run_dir=tmp_path / "run", emulator=False, duration=0.5)
    assert result.exit_code == 0
    (update,) = [e for e in result.client_events if e["type"] == "session.update"]
    assert update["session"]["tools"] == [mcp]
    (updated,) = [e for e in result.server_events if e["type"] == "session.updated"]
    assert updated["session"]["tools"][0]["server_label"] == "deepwiki"
