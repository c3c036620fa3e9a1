"""The built-in "tools" plugin: running the model's function calls, and checking the bindings."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path

import pytest
from session_script import NullLog

from voicepipe.builtin import tools
from voicepipe.cli import main as cli_main
from voicepipe.errors import ProfileError
from voicepipe.plugins import configure_plugins, make_plugin_manager
from voicepipe.profile import load_profile

TOOL_MODULE = '''\
import asyncio
import threading


async def first(city):
    PARTNER.set()
    await asyncio.wait_for(OTHER.wait(), 5)  # returns only if second() ran meanwhile
    return {"city": city, "weather": "sunny"}


async def second(city):
    OTHER.set()
    await asyncio.wait_for(PARTNER.wait(), 5)
    return f"{city}: 12 degrees"


def blocking(city):
    # returns only once the event loop, still running, has set the flag
    return {"city": city, "loop_ran": LOOP_RAN.wait(5)}


def broken(city):
    raise ValueError("the weather service is down")


async def hangs(city):
    await asyncio.Event().wait()


def hangs_in_thread(city):
    threading.Event().wait()


PARTNER = OTHER = LOOP_RAN = None
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def profile_with(tmp_path: Path, handlers: dict, *, timeout_s: float = 5, names=None) -> Path:
    names = names or list(handlers)
    tool_list = "".join(
        f"    - type: function\n      name: {name}\n"
        "      parameters: {type: object, properties: {city: {type: string}}, required: [city]}\n"
        for name in names
    )
    bound = "".join(f"    {name}: weather.py:{target}\n" for name, target in handlers.items())
    return write(tmp_path, "profile.yaml", f"connection: {{endpoint: emulator, model: gpt-realtime}}\n"
                 f"session:\n  tools:\n{tool_list}tools:\n  timeout_s: {timeout_s}\n"
                 + (f"  handlers:\n{bound}" if bound else ""))


class FakeContext:
    """What the tools plugin uses of a session context."""

    def __init__(self, profile, hook=None):
        self.profile = profile
        self.stash: dict = {}
        self.sent: list[dict] = []
        self.tasks: list[asyncio.Task] = []
        self.log = NullLog()  # keeps (level, event, fields)
        self.hook = hook

    def send(self, event):
        self.sent.append(event)

    def spawn(self, coro, name=None):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    def now(self):
        return asyncio.get_running_loop().time()


def call_events(response_id: str, calls: list[tuple[str, str, dict | str]]) -> list[dict]:
    events: list[dict] = [{"type": "response.created", "response": {"id": response_id}}]
    for call_id, name, arguments in calls:
        events.append({
            "type": "response.function_call_arguments.done", "response_id": response_id, "call_id": call_id,
            "name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        })
    events.append({"type": "response.done", "response": {"id": response_id, "status": "completed"}})
    return events


def outputs(ctx: FakeContext) -> list[tuple[str, dict | str]]:
    found = []
    for event in ctx.sent:
        if event["type"] == "conversation.item.create":
            output = event["item"]["output"]
            try:
                output = json.loads(output)
            except ValueError:
                pass
            found.append((event["item"]["call_id"], output))
    return found


@pytest.fixture
def weather(tmp_path):
    write(tmp_path, "weather.py", TOOL_MODULE)
    yield tmp_path


def run_calls(profile_path: Path, events: list[dict], hook=None, during=None) -> FakeContext:
    """Dispatch ``events`` to the plugin and wait for the tool tasks; ``during`` runs meanwhile."""

    async def main():
        profile = load_profile(profile_path)
        ctx = FakeContext(profile, hook)
        tools.voicepipe_session_start(ctx)  # imports weather.py
        module = _module()
        module.PARTNER, module.OTHER, module.LOOP_RAN = asyncio.Event(), asyncio.Event(), threading.Event()
        for event in events:
            tools.voicepipe_event(event, ctx)
        if during is not None:
            await during(ctx, module)
        await asyncio.gather(*ctx.tasks)
        return ctx

    return asyncio.run(main())


def _module():
    import sys

    return sys.modules["voicepipe.tools.weather"]


def test_the_calls_of_one_response_run_concurrently_and_answer_in_call_order(weather):
    """first() only returns once second() has started, and the reverse: run one after the other,
    both would time out."""
    profile = profile_with(weather, {"first": "first", "second": "second"})
    ctx = run_calls(profile, call_events("r1", [("c1", "first", {"city": "Paris"}), ("c2", "second", {"city": "Oslo"})]))
    assert outputs(ctx) == [("c1", {"city": "Paris", "weather": "sunny"}), ("c2", "Oslo: 12 degrees")]
    assert [e["type"] for e in ctx.sent] == ["conversation.item.create", "conversation.item.create", "response.create"]
    assert [level for level, event, _ in ctx.log.records if event == "tool_called"] == ["info", "info"]


def test_a_sync_callable_runs_off_the_event_loop(weather):
    async def set_flag_from_the_loop(ctx, module):
        await asyncio.sleep(0)
        module.LOOP_RAN.set()

    profile = profile_with(weather, {"blocking": "blocking"})
    ctx = run_calls(profile, call_events("r1", [("c1", "blocking", {"city": "Rome"})]), during=set_flag_from_the_loop)
    assert outputs(ctx) == [("c1", {"city": "Rome", "loop_ran": True})]


@pytest.mark.parametrize("target", ["hangs", "hangs_in_thread"])
def test_a_tool_past_its_timeout_answers_with_an_error(weather, target):
    profile = profile_with(weather, {"slow": target}, timeout_s=0.05)
    ctx = run_calls(profile, call_events("r1", [("c1", "slow", {"city": "Lima"})]))
    assert outputs(ctx) == [("c1", {"error": "slow did not answer within 0.05 s"})]
    assert ctx.sent[-1] == {"type": "response.create"}
    assert ("error", "tool_timed_out", {"tool": "slow", "call_id": "c1", "timeout_s": 0.05}) in ctx.log.records


def test_a_tool_that_raises_answers_with_an_error_and_is_logged_by_name(weather):
    profile = profile_with(weather, {"broken": "broken", "first": "first"})
    module_events = call_events("r1", [("c1", "broken", {"city": "Kyiv"})])
    ctx = run_calls(profile, module_events)
    assert outputs(ctx) == [("c1", {"error": "broken failed: ValueError"})]
    (record,) = [fields for level, event, fields in ctx.log.records if event == "tool_failed"]
    assert record["tool"] == "broken" and "the weather service is down" in record["error"]


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ({"town": "Bern"}, "'city' is a required property"),
        ({"city": 7}, "city: 7 is not of type 'string'"),
        ("not json", None),
        ("[1, 2]", None),
    ],
)
def test_arguments_that_do_not_match_the_schema_never_reach_the_tool(weather, arguments, problem):
    profile = profile_with(weather, {"broken": "broken"})
    ctx = run_calls(profile, call_events("r1", [("c1", "broken", arguments)]))
    ((call_id, output),) = outputs(ctx)
    if problem:
        assert output == {"error": f"the arguments for broken do not match its parameters: {problem}"}
    else:
        assert output == {"error": "the arguments for broken were not a JSON object"}
    assert not any(event == "tool_failed" for _, event, _ in ctx.log.records)  # broken() never ran


def test_response_create_waits_for_a_response_in_progress(weather):
    """The user spoke while the tool ran: their answer comes first, then the model carries on."""

    async def user_speaks_meanwhile(ctx, module):
        tools.voicepipe_event({"type": "response.created", "response": {"id": "r2"}}, ctx)
        module.PARTNER.set()
        module.OTHER.set()
        await asyncio.gather(*ctx.tasks)
        assert [e["type"] for e in ctx.sent] == ["conversation.item.create"]
        tools.voicepipe_event({"type": "response.done", "response": {"id": "r2", "status": "completed"}}, ctx)

    profile = profile_with(weather, {"first": "first"})
    ctx = run_calls(profile, call_events("r1", [("c1", "first", {"city": "Nice"})]), during=user_speaks_meanwhile)
    assert [e["type"] for e in ctx.sent] == ["conversation.item.create", "response.create"]


def test_calls_of_a_cancelled_response_are_not_run(weather):
    profile = profile_with(weather, {"first": "first"})
    events = call_events("r1", [("c1", "first", {"city": "Nice"})])
    events[-1]["response"]["status"] = "cancelled"
    assert run_calls(profile, events).sent == []


class HookPlugins:
    """A stand-in for ``ctx.hook``: a plugin's voicepipe_tool_call."""

    def __init__(self, answer):
        self.answer = answer
        self.voicepipe_tool_call = self

    def __call__(self, name, arguments, call_id, ctx):
        return self.answer(name, arguments)


def test_tools_without_a_handler_go_to_the_plugins_hook(weather):
    async def later(name, arguments):
        await asyncio.sleep(0)
        return {"tool": name, **arguments}

    profile = profile_with(weather, {}, names=["lookup", "unknown"])
    ctx = run_calls(
        profile,
        call_events("r1", [("c1", "lookup", {"city": "Riga"}), ("c2", "unknown", {"city": "Baku"})]),
        hook=HookPlugins(lambda name, arguments: later(name, arguments) if name == "lookup" else None),
    )
    assert outputs(ctx) == [("c1", {"tool": "lookup", "city": "Riga"}), ("c2", {"error": "no handler for tool unknown"})]


# -- checking the bindings before anything connects ----------------------------------------------


def validate(path: Path, capsys) -> tuple[int, list[str]]:
    code = cli_main(["validate", str(path)])
    return code, capsys.readouterr().err.splitlines()


def test_every_binding_problem_is_reported_at_once_with_its_line(tmp_path, capsys):
    write(tmp_path, "tool.py", "def lookup(city):\n    return city\n\ndef needs(a, b):\n    return a\n\nvalue = 3\n")
    path = write(tmp_path, "p.yaml", """\
        connection: {endpoint: emulator, model: gpt-realtime}
        session:
          tools:
            - {type: function, name: lookup, parameters: {type: object, properties: {town: {type: string}}}}
            - {type: function, name: nothing}
            - {type: function, name: needs, parameters: {type: object, properties: {a: {type: string}}}}
            - {type: function, name: gone}
            - {type: function, name: value}
            - {type: function, name: typo}
        tools:
          handlers:
            lookup: tool.py:lookup
            lokup: tool.py:lookup
            needs: tool.py:needs
            gone: no_such_module_here:f
            value: tool.py:value
            typo: tool.py:lokup
        """)
    code, errors = validate(path, capsys)
    assert code == 2
    assert errors == [
        f"{path}:12:5: tools.handlers.lookup: tool.py:lookup does not take the argument 'town' declared in its parameters",
        f"{path}:13:5: tools.handlers.lokup: no function tool named 'lokup' in session.tools (did you mean 'lookup'?)",
        f"{path}:14:5: tools.handlers.needs: tool.py:needs needs 'a', 'b', which the parameters do not make required "
        "(give it a default, or list it under required)",
        f"{path}:15:5: tools.handlers.gone: cannot import 'no_such_module_here' (No module named 'no_such_module_here')",
        f"{path}:16:5: tools.handlers.value: tool.py:value is not callable (it is a int)",
        f"{path}:17:5: tools.handlers.typo: 'tool.py' has no 'lokup' (did you mean 'lookup'?)",
        f"{path}:5:7: session.tools[1]: function tool 'nothing' has no implementation (bind a callable under "
        "tools.handlers, or load a plugin that provides it)",
    ]


def test_a_bad_json_schema_and_a_bad_callable_path_fail_validation(tmp_path, capsys):
    path = write(tmp_path, "p.yaml", """\
        connection: {endpoint: emulator, model: gpt-realtime}
        session:
          tools:
            - {type: function, name: f, parameters: {type: objekt}}
        tools:
          handlers: {f: "no colon"}
        """)
    code, errors = validate(path, capsys)
    assert code == 2
    assert errors == [
        f"{path}:4:45: session.tools[0].parameters: not a valid JSON schema: type: 'objekt' is not valid under any "
        "of the given schemas",
        f"{path}:6:17: tools.handlers.f: expected module:function or path/file.py:function, got 'no colon'",
    ]


def test_a_plugin_that_names_its_tools_implements_them(tmp_path):
    write(tmp_path, "provider.py", "def voicepipe_tools_provided():\n    return ['lookup']\n\n"
          "def voicepipe_tool_call(name, arguments):\n    return 'ok' if name == 'lookup' else None\n")
    path = write(tmp_path, "p.yaml", """\
        connection: {endpoint: emulator, model: gpt-realtime}
        session:
          tools: [{type: function, name: lookup}, {type: function, name: other}]
        plugins: [provider.py]
        """)
    profile = load_profile(path)
    with pytest.raises(ProfileError) as caught:
        configure_plugins(make_plugin_manager(profile, autoload=False), profile)
    assert caught.value.problems == [
        f"{path}:3:43: session.tools[1]: function tool 'other' has no implementation (bind a callable under "
        "tools.handlers, or load a plugin that provides it)"
    ]


def test_a_plugin_running_tools_without_naming_them_turns_the_check_off(tmp_path):
    write(tmp_path, "anything.py", "def voicepipe_tool_call(name, arguments):\n    return 'ok'\n")
    path = write(tmp_path, "p.yaml", """\
        connection: {endpoint: emulator, model: gpt-realtime}
        session:
          tools: [{type: function, name: lookup}]
        plugins: [anything.py]
        """)
    profile = load_profile(path)
    configure_plugins(make_plugin_manager(profile, autoload=False), profile)  # no error


def test_handlers_resolve_against_the_profile_that_names_them(tmp_path, capsys):
    """tools.yaml in profiles/ binds ../plugins/clock.py: it validates from any working directory."""
    root = Path(__file__).resolve().parent.parent
    code, errors = validate(root / "profiles" / "tools.yaml", capsys)
    assert (code, errors) == (0, [])


def test_arguments_nested_deeper_than_the_validator_goes_are_a_problem_not_a_crash():
    from voicepipe.toolbind import Tool

    nested = {"type": "object", "properties": {"tree": {"$ref": "#/$defs/node"}},
              "$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
    tree: list = []
    for _ in range(600):  # json.loads reads this depth; the validator takes several frames a level
        tree = [tree]
    tool = Tool("deep", nested, None)
    assert tool.argument_problem({"tree": tree}) == "nested deeper than can be checked"
    assert tool.argument_problem({"tree": [[[]]]}) is None
