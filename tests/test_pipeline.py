"""Fault isolation in hook dispatch: one plugin's failure is reported and the others carry on."""

import asyncio
import time
from types import SimpleNamespace

from azure.ai.voicelive.models import ServerEvent

from voicepipe.plugins import VoicepipePluginManager
from voicepipe.pipeline import Pipeline


class FakeLog:
    def __init__(self):
        self.records = []

    def _add(self, level, event, **fields):
        self.records.append((level, event, fields))

    def info(self, event, **fields):
        self._add("info", event, **fields)

    def warning(self, event, **fields):
        self._add("warning", event, **fields)

    def error(self, event, **fields):
        self._add("error", event, **fields)

    def named(self, event):
        return [fields for _, name, fields in self.records if name == event]


def make_pipeline(*plugins, runtime=None):
    pm = VoicepipePluginManager()
    for name, plugin in plugins:
        pm.add(plugin, name, "test")
    profile = SimpleNamespace(runtime=runtime or {}, section=lambda name: {})
    log = FakeLog()
    sent = []
    pipeline = Pipeline(profile, pm, "/tmp", log, send=sent.append, stop=lambda reason: None)
    return pipeline, log, sent


def event(type_, **fields):
    return ServerEvent._deserialize({"type": type_, **fields}, [])


class Recorder:
    def __init__(self):
        self.seen = []

    def voicepipe_event(self, event):
        self.seen.append(event.get("type"))


class Exploding:
    def voicepipe_event(self, event):
        raise RuntimeError("boom")


def test_a_raising_plugin_is_reported_by_name_and_event_and_others_still_see_the_event():
    recorder = Recorder()
    pipeline, log, _ = make_pipeline(("recorder", recorder), ("exploding", Exploding()))
    pipeline.dispatch(event("response.created"))
    pipeline.dispatch(event("rate_limits.updated"))
    assert recorder.seen == ["response.created", "rate_limits.updated"]
    errors = log.named("plugin_error")
    assert [(e["plugin"], e["event_type"]) for e in errors] == [
        ("exploding", "response.created"),
        ("exploding", "rate_limits.updated"),
    ]
    assert errors[0]["error"] == "RuntimeError: boom"


def test_a_plugin_that_keeps_raising_is_disabled():
    recorder = Recorder()
    pipeline, log, _ = make_pipeline(("recorder", recorder), ("exploding", Exploding()), runtime={"max_plugin_errors": 3})
    for _ in range(5):
        pipeline.dispatch(event("response.done"))
    assert len(log.named("plugin_error")) == 3
    assert log.named("plugin_disabled") == [{"plugin": "exploding", "errors": 3}]
    assert recorder.seen == ["response.done"] * 5


def test_a_slow_hook_is_logged_with_its_plugin():
    class Slow:
        def voicepipe_event(self, event):
            time.sleep(0.02)

    pipeline, log, _ = make_pipeline(("slow", Slow()), runtime={"slow_hook_ms": 5})
    pipeline.dispatch(event("response.done"))
    slow = log.named("slow_hook")
    assert slow and slow[0]["plugin"] == "slow" and slow[0]["event_type"] == "response.done" and slow[0]["ms"] >= 5


def test_awaitables_returned_by_hooks_are_awaited_in_order():
    order = []

    class Async:
        def voicepipe_event(self, event):
            async def later():
                order.append(event.get("type"))

            return later()

    pipeline, _, _ = make_pipeline(("async", Async()))

    async def run():
        await pipeline.dispatch_and_wait(event("a"))
        await pipeline.dispatch_and_wait(event("b"))

    asyncio.run(run())
    assert order == ["a", "b"]


def test_session_end_runs_once_even_if_a_plugin_fails_there():
    calls = []

    class Ender:
        def voicepipe_session_end(self, reason):
            calls.append(reason)

    class BadEnder:
        def voicepipe_session_end(self, reason):
            raise ValueError("nope")

    pipeline, log, _ = make_pipeline(("ender", Ender()), ("bad", BadEnder()))
    asyncio.run(pipeline.end("user"))
    asyncio.run(pipeline.end("error"))
    assert calls == ["user"]
    assert log.named("plugin_error")[0]["plugin"] == "bad"
