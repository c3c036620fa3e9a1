"""The metrics plugin, driven through a real plugin manager and Pipeline with a clock the test moves."""

import asyncio
import base64
import json
from types import SimpleNamespace

import pluggy
import pytest
from azure.ai.voicelive.models import ServerEvent

import voicepipe.hookspecs
from voicepipe.builtin import metrics
from voicepipe.errors import UsageError
from voicepipe.pipeline import Pipeline

# The usage object is copied from a recorded Voice Live session (test cassette
# test_audio_in_server_vad_turn.yaml, MIT licence, Copyright (c) Pydantic Services Inc. 2024 to present).
RECORDED_USAGE = {
    "total_tokens": 143,
    "input_tokens": 44,
    "output_tokens": 99,
    "input_token_details": {
        "cached_tokens": 0,
        "text_tokens": 14,
        "audio_tokens": 30,
        "image_tokens": 0,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 27, "audio_tokens": 72, "reasoning_tokens": 0},
}


def pcm_b64(ms, rate=24000, width=2):
    """Base64 of ``ms`` of silence; the lengths used here are multiples of 3 bytes (no padding)."""
    return base64.b64encode(bytes(int(rate * ms / 1000) * width)).decode()


class Clock:
    def __init__(self, t=1000.0):
        self.t = t
        self.reads = 0

    def __call__(self):
        self.reads += 1
        return self.t


class FakeLog:
    def __init__(self):
        self.records = []

    def _add(self, level, event, **fields):
        self.records.append((level, event, fields))

    def debug(self, event, **fields):
        self._add("debug", event, **fields)

    def info(self, event, **fields):
        self._add("info", event, **fields)

    def warning(self, event, **fields):
        self._add("warning", event, **fields)

    def error(self, event, **fields):
        self._add("error", event, **fields)

    def level(self, level):
        return [(event, fields) for lvl, event, fields in self.records if lvl == level]


class Session:
    """One session of the metrics plugin, stepped by hand."""

    def __init__(self, run_dir, settings=None, session=None, before=()):
        self.clock = Clock()
        self.run_dir = run_dir
        pm = pluggy.PluginManager("voicepipe")
        pm.add_hookspecs(voicepipe.hookspecs)
        for name, plugin in before:  # registered ahead of metrics, as the built-in audio plugin is
            pm.register(plugin, name=name)
        pm.register(metrics, name="metrics")
        sections = {"metrics": {"table": False} if settings is None else settings}
        self.profile = SimpleNamespace(runtime={}, section=lambda name: sections.get(name, {}))
        self.log = FakeLog()
        self.pipeline = Pipeline(
            self.profile, pm, run_dir, self.log, send=lambda e: None, stop=lambda r: None, clock=self.clock
        )
        self.ctx = self.pipeline.ctx
        self.ctx.session = session or {"input_audio_sampling_rate": 24000, "output_audio_format": "pcm16"}
        asyncio.run(self.pipeline.start())
        self._check()

    def _check(self):
        errors = [fields for event, fields in self.log.level("error") if event == "plugin_error"]
        assert not errors, errors

    def server(self, t, type_, **fields):
        self.clock.t = t
        self.pipeline.dispatch(ServerEvent._deserialize({"type": type_, **fields}, []))
        self._check()

    def client(self, t, event):
        self.clock.t = t
        self.pipeline.client_event(event)
        self._check()

    def playback(self, t, type_, item_id, response_id, played_ms=0.0, generated_ms=0.0):
        self.clock.t = t + 0.001  # the plugin must use the backend's ``at``, not its own reading
        self.pipeline.notify_playback(
            {
                "type": type_,
                "item_id": item_id,
                "response_id": response_id,
                "played_ms": played_ms,
                "generated_ms": generated_ms,
                "at": t,
            }
        )
        self._check()

    def end(self, t=None, reason="user"):
        if t is not None:
            self.clock.t = t
        asyncio.run(self.pipeline.end(reason))
        self._check()

    def records(self):
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def summary(self):
        return json.loads((self.run_dir / "metrics.json").read_text(encoding="utf-8"))

    # -- scripted exchanges ----------------------------------------------------------------------

    def start_input(self, t, chunk_ms=20):
        self.client(t, {"type": "input_audio_buffer.append", "audio": pcm_b64(chunk_ms)})

    def vad_turn(self, t, rid, *, audio_end_ms, stopped_after=0.3, first_audio=0.4, playout=0.05, chunks=2,
                 usage=RECORDED_USAGE, finish=True):
        """speech_stopped at ``t``; deltas from ``t + first_audio``; played ``playout`` later."""
        item = f"item_{rid}"
        self.server(t, "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=f"user_{rid}")
        self.server(t + 0.1, "response.created", response={"id": rid, "status": "in_progress"})
        self.server(t + 0.1, "response.output_item.added", response_id=rid, item={"id": item, "type": "message"})
        for n in range(chunks):
            self.server(t + first_audio + n * 0.1, "response.audio.delta", response_id=rid, item_id=item,
                        delta=pcm_b64(100))
        self.playback(t + first_audio + playout, "playback.started", item, rid)
        self.server(t + 1.0, "response.done", response={"id": rid, "status": "completed", "usage": usage})
        if finish:
            self.playback(t + 1.2, "playback.finished", item, rid, played_ms=chunks * 100.0)


# -- one spoken turn ---------------------------------------------------------------------------------


def test_a_spoken_turn_is_measured_on_the_capture_and_playback_clocks(tmp_path):
    s = Session(tmp_path)
    s.start_input(1000.0)  # a 20 ms chunk sent at 1000.0: input sample 0 was captured at 999.98
    s.server(1003.3, "input_audio_buffer.speech_stopped", audio_end_ms=3000, item_id="item_user")
    s.server(1003.4, "response.created", response={"id": "resp_1", "status": "in_progress"})
    s.server(1003.4, "response.output_item.added", response_id="resp_1", item={"id": "item_a", "type": "message"})
    s.server(1003.7, "response.audio.delta", response_id="resp_1", item_id="item_a", delta=pcm_b64(100))
    s.server(1003.8, "response.audio.delta", response_id="resp_1", item_id="item_a", delta=pcm_b64(100))
    s.playback(1003.75, "playback.started", "item_a", "resp_1")
    s.server(1004.0, "response.done", response={"id": "resp_1", "status": "completed", "usage": RECORDED_USAGE})
    assert s.records() == []  # still playing
    s.playback(1004.2, "playback.finished", "item_a", "resp_1", played_ms=200.0)

    [record] = s.records()  # written before the session ends
    assert record["response_id"] == "resp_1"
    assert record["trigger"] == "speech"
    assert record["status"] == "completed"
    assert record["interrupted"] is False
    assert record["complete"] is True
    assert record["item_ids"] == ["item_a"]
    assert record["server_first_audio_ms"] == 400.0
    assert record["vad_tail_ms"] == 320.0  # 1003.3 - (999.98 + 3.0)
    assert record["playout_delay_ms"] == 50.0
    assert record["voice_to_voice_ms"] == 770.0  # 1003.75 - 1002.98
    assert record["response_duration_ms"] == 600.0
    assert record["first_audio_from_create_ms"] is None
    assert record["tool_ms"] is None
    assert record["generated_ms"] == 200.0
    assert record["played_ms"] == 200.0
    assert record["usage"] == RECORDED_USAGE
    assert record["at_s"] == 3.4

    s.end(1005.0)
    assert len(s.records()) == 1


def test_voice_to_voice_is_the_sum_of_its_parts(tmp_path):
    s = Session(tmp_path)
    s.start_input(500.0)
    s.vad_turn(510.0, "r1", audio_end_ms=9700, first_audio=0.35, playout=0.12)
    [r] = s.records()
    assert r["voice_to_voice_ms"] >= r["server_first_audio_ms"]
    assert r["voice_to_voice_ms"] == pytest.approx(
        r["vad_tail_ms"] + r["server_first_audio_ms"] + r["playout_delay_ms"], abs=0.2
    )


def test_the_audio_plugins_capture_start_is_preferred_to_the_first_append(tmp_path):
    s = Session(tmp_path)
    s.ctx.stash["audio"] = SimpleNamespace(input_started_at=999.5)
    s.start_input(1000.0)
    s.vad_turn(1010.0, "r1", audio_end_ms=10_200)  # speech ended at 1009.7 by the capture clock
    [r] = s.records()
    assert r["vad_tail_ms"] == 300.0
    assert r["voice_to_voice_ms"] == 750.0  # played at 1010.45


def test_input_not_paced_in_real_time_has_no_capture_clock(tmp_path):
    """A WAV file read with realtime: false: audio_end_ms is a position in the file, not a time."""
    s = Session(tmp_path)
    s.ctx.stash["audio"] = SimpleNamespace(input_started_at=999.5, input_realtime=False)
    s.start_input(1000.0)
    s.vad_turn(1000.2, "r1", audio_end_ms=10_200)
    [r] = s.records()
    assert r["vad_tail_ms"] is None and r["voice_to_voice_ms"] is None
    assert r["server_first_audio_ms"] == 400.0


def test_without_any_input_capture_time_voice_to_voice_is_unknown_not_guessed(tmp_path):
    s = Session(tmp_path)
    s.vad_turn(10.0, "r1", audio_end_ms=2000)
    [r] = s.records()
    assert r["voice_to_voice_ms"] is None and r["vad_tail_ms"] is None
    assert r["server_first_audio_ms"] == 400.0


def test_the_first_append_is_measured_at_the_session_input_rate(tmp_path):
    s = Session(tmp_path, session={"input_audio_sampling_rate": 16000, "output_audio_format": "pcm16"})
    s.client(100.0, {"type": "input_audio_buffer.append", "audio": pcm_b64(30, rate=16000)})
    s.client(100.03, {"type": "input_audio_buffer.append", "audio": pcm_b64(30, rate=16000)})
    assert s.ctx.stash["metrics"].input_started_at() == pytest.approx(99.97)


# -- client-created responses and tools --------------------------------------------------------------


def test_a_tool_round_measures_tool_time_and_the_follow_up_from_response_create(tmp_path):
    s = Session(tmp_path)
    s.client(20.0, {"type": "response.create"})
    s.server(20.1, "response.created", response={"id": "r_call", "status": "in_progress"})
    s.server(20.1, "response.output_item.added", response_id="r_call",
             item={"id": "item_call", "type": "function_call", "call_id": "call_1", "name": "get_weather"})
    s.server(20.5, "response.function_call_arguments.done", response_id="r_call", item_id="item_call",
             call_id="call_1", name="get_weather", arguments='{"city": "London"}')
    s.server(20.6, "response.done", response={
        "id": "r_call", "status": "completed", "usage": {"total_tokens": 10, "input_tokens": 8, "output_tokens": 2},
        "output": [{"type": "function_call", "call_id": "call_1", "name": "get_weather", "id": "item_call"}],
    })
    assert s.records() == []  # the tool output has not been sent yet
    s.client(21.25, {"type": "conversation.item.create",
                     "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"}})
    [call_turn] = s.records()
    assert call_turn["trigger"] == "client"
    assert call_turn["tool_ms"] == 750.0
    assert call_turn["tool_calls"] == [{"call_id": "call_1", "name": "get_weather", "ms": 750.0}]
    assert call_turn["generated_ms"] is None  # no audio in a function-call response

    s.client(21.25, {"type": "response.create"})
    s.server(21.3, "response.created", response={"id": "r_answer", "status": "in_progress"})
    s.server(21.3, "response.output_item.added", response_id="r_answer", item={"id": "item_ans", "type": "message"})
    s.server(21.85, "response.audio.delta", response_id="r_answer", item_id="item_ans", delta=pcm_b64(100))
    s.playback(21.9, "playback.started", "item_ans", "r_answer")
    s.server(22.0, "response.done", response={"id": "r_answer", "status": "completed"})
    s.playback(22.0, "playback.finished", "item_ans", "r_answer", played_ms=100.0)
    answer = s.records()[1]
    assert answer["trigger"] == "client"
    assert answer["first_audio_from_create_ms"] == 600.0
    assert answer["server_first_audio_ms"] is None
    assert answer["voice_to_voice_ms"] is None
    assert answer["playout_delay_ms"] == 50.0


def test_client_created_responses_are_matched_to_their_response_create_in_order(tmp_path):
    s = Session(tmp_path)
    s.client(1.0, {"type": "response.create"})
    s.client(2.0, {"type": "response.create", "response": {"conversation": "none"}})
    s.server(3.0, "response.created", response={"id": "r1"})
    s.server(4.0, "response.created", response={"id": "r2"})
    s.server(5.0, "response.audio.delta", response_id="r2", delta=pcm_b64(100))
    s.server(5.5, "response.audio.delta", response_id="r1", delta=pcm_b64(100))
    s.end(6.0)
    assert {r["response_id"]: r["first_audio_from_create_ms"] for r in s.records()} == {"r1": 4500.0, "r2": 3000.0}


def test_a_response_create_rejected_by_the_server_does_not_shift_attribution(tmp_path):
    s = Session(tmp_path)
    s.start_input(0.0)
    s.client(5.0, {"type": "response.create"})
    s.server(5.01, "error", error={"type": "invalid_request_error", "code": "conversation_already_has_active_response"})
    s.vad_turn(9.0, "r1", audio_end_ms=8800)
    [r] = s.records()
    assert r["trigger"] == "speech"
    assert r["first_audio_from_create_ms"] is None


def test_a_tool_call_of_a_cancelled_response_does_not_hold_the_record(tmp_path):
    s = Session(tmp_path)
    s.server(1.0, "response.created", response={"id": "r1"})
    s.server(1.2, "response.function_call_arguments.done", response_id="r1", call_id="c1", name="f", arguments="{}")
    s.server(1.3, "response.done", response={"id": "r1", "status": "cancelled"})
    [r] = s.records()
    assert r["interrupted"] is True
    assert r["tool_ms"] is None
    assert r["tool_calls"] == [{"call_id": "c1", "name": "f", "ms": None}]


# -- interruptions and aggregates --------------------------------------------------------------------


def test_interrupted_turns_are_flagged_and_kept_out_of_latency_aggregates(tmp_path):
    s = Session(tmp_path)
    s.start_input(0.0, chunk_ms=0)
    s.vad_turn(10.0, "r1", audio_end_ms=9700, first_audio=0.4)
    # r2 plays, then the user barges in: the backend reports the interruption, the server cancels
    item = "item_r2"
    s.server(20.0, "input_audio_buffer.speech_stopped", audio_end_ms=19_700)
    s.server(20.1, "response.created", response={"id": "r2"})
    s.server(20.1, "response.output_item.added", response_id="r2", item={"id": item})
    s.server(20.2, "response.audio.delta", response_id="r2", item_id=item, delta=pcm_b64(100))
    s.server(20.3, "response.audio.delta", response_id="r2", item_id=item, delta=pcm_b64(100))
    s.playback(20.25, "playback.started", item, "r2")
    s.server(20.31, "input_audio_buffer.speech_started", audio_start_ms=20_250)
    s.playback(20.31, "playback.interrupted", item, "r2", played_ms=60.0)
    assert len(s.records()) == 1  # r2 is not done yet
    s.server(20.4, "response.done", response={"id": "r2", "status": "cancelled", "usage": RECORDED_USAGE})
    r2 = s.records()[1]
    assert r2["interrupted"] is True
    assert r2["played_ms"] == 60.0 and r2["generated_ms"] == 200.0
    assert r2["server_first_audio_ms"] == 200.0  # measured and recorded, just not aggregated

    s.end(30.0)
    summary = s.summary()
    assert summary["turns"] == 2
    assert summary["interrupted"] == 1
    assert summary["metrics"]["server_first_audio_ms"] == {
        "count": 1, "p50": 400.0, "p90": 400.0, "p99": 400.0, "max": 400.0
    }
    assert summary["metrics"]["played_ms"]["count"] == 1
    # interrupted responses are billed: their tokens count
    assert summary["tokens"]["input_tokens"] == 88
    assert summary["tokens"]["input_token_details"]["cached_tokens_details"]["audio_tokens"] == 0


def test_a_cancelled_response_is_interrupted_even_without_playback(tmp_path):
    s = Session(tmp_path)
    s.server(1.0, "response.created", response={"id": "r1"})
    s.server(1.5, "response.done", response={"id": "r1", "status": "cancelled"})
    [r] = s.records()
    assert r["interrupted"] is True and r["generated_ms"] is None


def test_percentiles_over_many_turns_are_nearest_rank(tmp_path):
    s = Session(tmp_path)
    s.start_input(0.0, chunk_ms=0)
    for n in range(1, 11):  # server_first_audio of 100, 200 … 1000 ms
        s.vad_turn(100.0 * n, f"r{n}", audio_end_ms=100_000 * n - 300, first_audio=n / 10)
    s.end(2000.0)
    stats = s.summary()["metrics"]["server_first_audio_ms"]
    assert stats == {"count": 10, "p50": 500.0, "p90": 900.0, "p99": 1000.0, "max": 1000.0}
    summary = s.summary()
    assert summary["turns"] == 10 and summary["interrupted"] == 0
    assert summary["percentiles"] == "nearest-rank"
    assert summary["metrics"]["tool_ms"] == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    assert summary["tokens"]["total_tokens"] == 1430
    assert summary["tokens"]["output_token_details"] == {"text_tokens": 270, "audio_tokens": 720, "reasoning_tokens": 0}
    assert summary["reason"] == "user"
    vtv = summary["metrics"]["voice_to_voice_ms"]
    assert vtv["count"] == 10
    assert vtv["p50"] >= stats["p50"]


def test_an_audio_turn_that_never_plays_is_written_when_a_later_one_starts(tmp_path):
    s = Session(tmp_path)
    s.server(1.0, "response.created", response={"id": "r1"})
    s.server(1.0, "response.output_item.added", response_id="r1", item={"id": "i1"})
    s.server(1.2, "response.audio.delta", response_id="r1", item_id="i1", delta=pcm_b64(100))
    s.server(1.3, "response.done", response={"id": "r1", "status": "completed"})
    assert s.records() == []
    s.server(2.0, "response.created", response={"id": "r2"})
    s.server(2.0, "response.output_item.added", response_id="r2", item={"id": "i2"})
    s.server(2.2, "response.audio.delta", response_id="r2", item_id="i2", delta=pcm_b64(100))
    s.playback(2.3, "playback.started", "i2", None)  # the item alone names the response
    [r1] = s.records()
    assert r1["response_id"] == "r1"
    assert r1["playout_delay_ms"] is None and r1["played_ms"] is None


def test_session_end_writes_what_is_known_and_keeps_unfinished_responses_out_of_aggregates(tmp_path):
    s = Session(tmp_path)
    s.start_input(0.0, chunk_ms=0)
    s.vad_turn(10.0, "r1", audio_end_ms=9700, finish=False)  # done, still playing at the end
    s.server(20.0, "response.created", response={"id": "r2"})
    s.server(20.3, "response.audio.delta", response_id="r2", item_id="i2", delta=pcm_b64(100))
    assert s.records() == []
    s.end(21.0, reason="duration")
    r1, r2 = s.records()
    assert (r1["response_id"], r1["complete"], r1["status"]) == ("r1", False, "completed")
    assert r1["voice_to_voice_ms"] == 750.0 and r1["played_ms"] is None
    assert (r2["response_id"], r2["complete"], r2["status"]) == ("r2", False, None)
    assert r2["first_audio_from_create_ms"] is None and r2["generated_ms"] == 100.0
    summary = s.summary()
    assert summary["turns"] == 2
    assert summary["metrics"]["generated_ms"]["count"] == 1  # r2's response never finished
    assert summary["reason"] == "duration"


def test_playback_reported_while_an_earlier_plugin_ends_the_session_still_counts(tmp_path):
    class DrainingAudio:
        """Finishes playing the last item while the session ends, as an output backend's drain does."""

        @voicepipe.hookimpl
        def voicepipe_session_end(self, ctx):
            async def drain():
                await asyncio.sleep(0)
                ctx.notify_playback({"type": "playback.finished", "item_id": "item_r1", "response_id": "r1",
                                     "played_ms": 200.0, "generated_ms": 200.0, "at": 12.0})
            return drain()

    s = Session(tmp_path, before=[("audio", DrainingAudio())])
    s.vad_turn(10.0, "r1", audio_end_ms=9700, finish=False)
    s.end(11.5)
    [r] = s.records()
    assert r["complete"] is True and r["played_ms"] == 200.0


def test_generated_ms_follows_the_output_format(tmp_path):
    s = Session(tmp_path, session={"output_audio_format": "pcm16_16000hz"})
    s.server(1.0, "response.created", response={"id": "r1"})
    s.server(1.1, "response.audio.delta", response_id="r1", delta=base64.b64encode(bytes(4800)).decode())
    s.server(1.2, "response.done", response={"id": "r1", "status": "completed"})
    # a format named by the response wins over the session's
    s.server(2.0, "response.created", response={"id": "r2", "output_audio_format": "g711_ulaw"})
    s.server(2.1, "response.audio.delta", response_id="r2", delta=base64.b64encode(bytes(4800)).decode())
    s.server(2.2, "response.done", response={"id": "r2", "status": "completed"})
    s.end(3.0)
    assert [r["generated_ms"] for r in s.records()] == [150.0, 600.0]


# -- the hot path and session isolation --------------------------------------------------------------


def test_audio_deltas_after_the_first_do_not_read_the_clock(tmp_path):
    s = Session(tmp_path)
    s.server(1.0, "response.created", response={"id": "r1"})
    s.server(1.1, "response.audio.delta", response_id="r1", delta=pcm_b64(100))
    reads = s.clock.reads
    for _ in range(50):
        s.server(1.2, "response.audio.delta", response_id="r1", delta=pcm_b64(100))
        s.client(1.2, {"type": "input_audio_buffer.append", "audio": pcm_b64(20)})
    s.client(1.2, {"type": "input_audio_buffer.append", "audio": pcm_b64(20)})
    # the first append reads the clock once; deltas and later appends never do
    assert s.clock.reads == reads + 1


def test_two_sessions_in_one_process_keep_their_own_turns(tmp_path):
    a = Session(tmp_path / "a")
    b = Session(tmp_path / "b")
    a.start_input(0.0, chunk_ms=0)
    b.start_input(0.0, chunk_ms=0)
    a.vad_turn(10.0, "same_id", audio_end_ms=9700, first_audio=0.4)
    b.vad_turn(10.0, "same_id", audio_end_ms=9700, first_audio=0.8)
    a.end(20.0)
    b.end(20.0)
    assert [r["server_first_audio_ms"] for r in a.records()] == [400.0]
    assert [r["server_first_audio_ms"] for r in b.records()] == [800.0]


# -- the table ---------------------------------------------------------------------------------------


def test_the_table_is_printed_at_session_end_in_plain_text(tmp_path, capsys):
    s = Session(tmp_path, settings={})  # table defaults to on
    s.start_input(0.0, chunk_ms=0)
    s.vad_turn(10.0, "r1", audio_end_ms=9700)
    capsys.readouterr()
    s.end(20.0)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "metrics: 1 turn, 0 interrupted"
    assert lines[1].split() == ["metric", "count", "p50", "p90", "p99", "max"]
    assert "voice_to_voice_ms 1 750.0 750.0 750.0 750.0" in [" ".join(line.split()) for line in lines]
    assert lines[-1].strip() == (
        "tokens: input 44 (cached 0, text 14, audio 30), output 99 (text 27, audio 72), total 143"
    )
    assert "tool_ms" not in out  # metrics never measured are left out
    assert "\x1b" not in out


def test_table_false_prints_nothing(tmp_path, capsys):
    s = Session(tmp_path, settings={"table": False})
    s.vad_turn(10.0, "r1", audio_end_ms=9700)
    s.end(20.0)
    assert capsys.readouterr().out == ""
    assert s.summary()["turns"] == 1


# -- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, message",
    [
        ({"prometheus_port": "9464"}, "metrics.prometheus_port: expected a port number from 1 to 65535, got '9464'"),
        ({"prometheus_port": 70000}, "metrics.prometheus_port: expected a port number from 1 to 65535, got 70000"),
        ({"prometheus_port": True}, "metrics.prometheus_port: expected a port number"),
        ({"otel": "yes"}, "metrics.otel: expected true or false, got 'yes'"),
        ({"tabel": False}, "metrics.tabel: unknown setting (known: table, prometheus_port, otel)"),
    ],
)
def test_bad_settings_are_one_clear_usage_error(section, message):
    profile = SimpleNamespace(section=lambda name: section, location=lambda key: "profiles/x.yaml:7:3")
    with pytest.raises(UsageError) as caught:
        metrics.voicepipe_configure(profile)
    assert str(caught.value).startswith("profiles/x.yaml:7:3: " + message)


def test_defaults():
    profile = SimpleNamespace(section=lambda name: {})
    assert metrics.read_settings(profile) == metrics.MetricsSettings(table=True, prometheus_port=None, otel=False)
