"""Fault isolation in hook dispatch: one plugin's failure is reported and the others carry on."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from azure.ai.voicelive.models import ServerEvent

from voicepipe.plugins import VoicepipePluginManager
from voicepipe.pipeline import Pipeline, event_fields


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


def test_event_hooks_get_the_arguments_they_ask_for_in_any_order():
    seen = []

    class Both:
        def voicepipe_event(self, event, ctx):
            seen.append(("both", event.get("type"), ctx is pipeline.ctx))

    class Reversed:
        def voicepipe_event(self, ctx, event):
            seen.append(("reversed", event.get("type"), ctx is pipeline.ctx))

    class OnlyContext:
        def voicepipe_client_event(self, ctx):
            seen.append(("ctx", None, ctx is pipeline.ctx))

    class Nothing:
        def voicepipe_playback(self):
            seen.append(("nothing", None, True))

    pipeline, log, _ = make_pipeline(("both", Both()), ("reversed", Reversed()), ("ctx", OnlyContext()), ("nothing", Nothing()))
    pipeline.dispatch(event("response.created"))
    pipeline.client_event({"type": "response.create"})
    pipeline.notify_playback({"type": "playback.started", "item_id": "item_1"})
    # the most recently registered runs first, as pluggy orders them
    assert seen == [
        ("reversed", "response.created", True),
        ("both", "response.created", True),
        ("ctx", None, True),
        ("nothing", None, True),
    ]
    assert log.records == []


def test_a_failing_client_event_hook_is_reported_with_the_event_type():
    class Exploding:
        def voicepipe_client_event(self, event):
            raise RuntimeError("boom")

    pipeline, log, _ = make_pipeline(("exploding", Exploding()))
    pipeline.client_event({"type": "input_audio_buffer.append", "audio": ""})
    assert [(e["plugin"], e["hook"], e["event_type"]) for e in log.named("plugin_error")] == [
        ("exploding", "voicepipe_client_event", "input_audio_buffer.append")
    ]


def test_event_fields_read_what_get_reads_without_copying():
    typed = event("response.audio.delta", item_id="item_1", response_id="resp_1", delta="AAAA", output_index=0)
    fields = event_fields(typed)
    assert dict(fields) == dict(typed.items())
    for key in ("type", "item_id", "response_id", "delta", "output_index", "absent"):
        assert fields.get(key) == typed.get(key)
    with pytest.raises(TypeError):
        fields["delta"] = "changed"  # read-only: plugins cannot change what the others see
    assert event_fields(fields) is fields
    plain = {"type": "response.create"}
    assert event_fields(plain) is plain
    done = event("response.done", response={"id": "resp_1", "status": "completed", "output": []})
    assert event_fields(done).get("response").get("id") == "resp_1"


def test_a_hanging_session_end_is_cut_off_and_the_other_plugins_still_end():
    ended = []

    class Hanging:
        async def voicepipe_session_end(self):
            await asyncio.Event().wait()

    class Flushing:
        async def voicepipe_session_end(self, reason):
            await asyncio.sleep(0)
            ended.append(reason)

    # registered last, so called first: it must not keep the other from ending
    pipeline, log, _ = make_pipeline(("flushing", Flushing()), ("hanging", Hanging()))
    asyncio.run(pipeline.end("user", timeout=0.2))
    assert ended == ["user"]
    assert log.named("session_end_timeout") == [{"plugin": "hanging", "seconds": 0.2}]
