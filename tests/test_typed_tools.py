"""@voicepipe.tool: a typed function's signature and docstring become the tool's declaration."""

import asyncio
import enum
import re
import json
import textwrap
from typing import Literal, Optional

import pytest

from voicepipe import tool
from voicepipe.errors import UsageError
from voicepipe.functiontools import TypedToolsPlugin, declaration, typed_tools
from voicepipe.testing import run_profile


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def test_types_defaults_and_google_style_descriptions():
    @tool
    def get_weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS, hourly: bool = False,
                    tags: Optional[list[str]] = None, mood: Literal["calm", "windy"] = "calm") -> dict:
        """The weather in a city.

        More text that is not the summary.

        Args:
            city: The city, e.g. London.
            days: How many days,
                counted from today.
        """

    entry = get_weather.__voicepipe_tool__.declaration
    assert entry["name"] == "get_weather" and entry["description"] == "The weather in a city."
    props = entry["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "The city, e.g. London."}
    assert props["days"] == {"type": "integer", "description": "How many days, counted from today.", "default": 1}
    assert props["unit"] == {"enum": ["celsius", "fahrenheit"]}
    assert props["hourly"] == {"type": "boolean", "default": False}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": None}
    assert props["mood"] == {"enum": ["calm", "windy"], "default": "calm"}
    assert entry["parameters"]["required"] == ["city"]


def test_sphinx_descriptions_a_renamed_tool_and_ctx_left_out():
    @tool(name="lookup")
    def find(ctx, query: str, limit: float | None) -> str:
        """Find something.

        :param query: what to look for
        :param float limit: at most this many
        """

    entry = find.__voicepipe_tool__.declaration
    assert entry["name"] == "lookup"
    assert entry["parameters"]["properties"] == {
        "query": {"type": "string", "description": "what to look for"},
        "limit": {"type": "number", "description": "at most this many"},
    }
    assert entry["parameters"]["required"] == ["query"]  # limit admits None


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f(city): pass", "parameter 'city' needs a type hint"),
        ("def f(*names: str): pass", "*args and **kwargs"),
        ("def f(when: complex): pass", "cannot be described to the model"),
    ],
)
def test_functions_that_cannot_be_described_are_usage_errors(source, message):
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(UsageError, match=re.escape(message)):
        declaration(namespace["f"], "f")


def test_the_plugin_checks_arguments_and_runs_sync_and_async_functions():
    @tool
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @tool
    async def shout(text: str, ctx) -> str:
        """Shout."""
        ctx.seen = True
        return text.upper()

    plugin = TypedToolsPlugin([add.__voicepipe_tool__, shout.__voicepipe_tool__])
    assert sorted(plugin.voicepipe_tools_provided()) == ["add", "shout"]

    class Ctx:
        class log:
            warnings: list = []

            @classmethod
            def warning(cls, *args, **kwargs):
                cls.warnings.append(kwargs)

    ctx = Ctx()

    async def calls():
        return (await plugin.voicepipe_tool_call("add", {"a": 40}, "c1", ctx),
                await plugin.voicepipe_tool_call("shout", {"text": "hi"}, "c2", ctx))

    assert asyncio.run(calls()) == (42, "HI") and ctx.seen
    refused = plugin.voicepipe_tool_call("add", {"a": "forty"}, "c3", ctx)
    assert "do not match its parameters" in refused["error"] and "'forty'" in refused["error"]
    assert plugin.voicepipe_tool_call("other", {}, "c4", ctx) is None  # another plugin's tool


def test_a_declared_tool_in_the_profile_wins_over_the_decorator():
    @tool
    def get_time(timezone: str) -> str:
        """Now."""

    plugin = TypedToolsPlugin([get_time.__voicepipe_tool__])
    session = {"tools": [{"type": "function", "name": "get_time", "description": "mine"}]}
    plugin.voicepipe_session_config(profile=None, session=session)
    assert session["tools"] == [{"type": "function", "name": "get_time", "description": "mine"}]
    empty: dict = {}
    plugin.voicepipe_session_config(profile=None, session=empty)
    assert [t["name"] for t in empty["tools"]] == ["get_time"]


def test_a_typed_tool_in_a_plugin_file_is_called_in_a_session(tmp_path):
    (tmp_path / "weather.py").write_text(textwrap.dedent('''
        from voicepipe import tool

        @tool
        def get_weather(city: str) -> dict:
            """The weather in a city."""
            return {"city": city, "sky": "foggy"}
    '''))
    (tmp_path / "scenario.yaml").write_text(textwrap.dedent('''
        turns:
          - user: What's the weather in London?
            tool: {name: get_weather, arguments: {city: London}}
            assistant: "Here it is: {tool_output}"
    '''))
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f'''
        connection: {{endpoint: emulator, model: gpt-realtime, emulator: {{scenario: scenario.yaml}}}}
        session: {{modalities: [text, audio]}}
        plugins: [weather.py]
        metrics: {{table: false}}
    '''))

    class Ask:
        __name__ = "ask"

        def voicepipe_event(self, event, ctx):
            if event.get("type") == "session.updated" and not getattr(self, "asked", False):
                self.asked = True
                ctx.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": "What's the weather in London?"}]}})
                ctx.send({"type": "response.create"})
            elif event.get("type") == "response.done" and "foggy" in json.dumps(event.get("response")):
                ctx.stop("duration")

    result = run_profile(tmp_path / "p.yaml", run_dir=tmp_path / "run", plugins=[Ask()], duration=30)
    assert result.exit_code == 0
    update = next(e for e in result.client_events if e["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["get_weather"]
    outputs = [e["item"]["output"] for e in result.client_events if e["type"] == "conversation.item.create"
               and e["item"].get("type") == "function_call_output"]
    assert [json.loads(o) for o in outputs] == [{"city": "London", "sky": "foggy"}]
    assert typed_tools(object) == []
