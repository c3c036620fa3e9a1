"""The audio plugin's logic with a scripted server: streaming, milestones and barge-in done right."""

import asyncio
import base64
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import pytest
from azure.ai.voicelive.models import ServerEvent

from voicepipe.audio.base import AudioInput, AudioOutput, ItemPlayback
from voicepipe.audio.null import NullOutput
from voicepipe.builtin import audio as audio_plugin
from voicepipe.context import SessionContext

RATE = 24000
SESSION = {
    "id": "sess_1",
    "output_audio_format": "pcm16",
    "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.3},
}


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class NullLog:
    def __init__(self):
        self.records = []

    def __getattr__(self, level):
        return lambda event, **fields: self.records.append((level, event, fields))


class IdleInput(AudioInput):
    """A microphone that stays silent and sends nothing until closed."""

    def __init__(self):
        self.opened_with = None
        self._closed: Optional[asyncio.Event] = None

    async def open(self, sample_rate, frames_per_chunk):
        self.opened_with = (sample_rate, frames_per_chunk)
        self._closed = asyncio.Event()

    async def __aiter__(self):
        await self._closed.wait()
        return
        yield

    async def close(self):
        if self._closed is not None:
            self._closed.set()


class ScriptedOutput(AudioOutput):
    """An output whose played counter the test sets (to check the plugin's arithmetic)."""

    def __init__(self):
        self.written: dict[str, int] = {}
        self.played: dict[str, float] = {}
        self.head: Optional[str] = None
        self.clears = 0

    async def open(self, sample_rate):
        self.rate = sample_rate

    def write(self, pcm, item_id):
        self.written[item_id] = self.written.get(item_id, 0) + len(pcm)
        self.head = self.head or item_id

    def played_ms(self, item_id):
        return self.played.get(item_id, 0.0)

    def playback(self, item_id):
        if item_id not in self.written:
            return None
        return ItemPlayback(item_id, self.written[item_id] / 2 / self.rate * 1000, self.played_ms(item_id))

    def clear(self):
        self.clears += 1
        head, self.head = self.head, None
        state = self.playback(head) if head else None
        return state if state is not None and state.played_ms < state.written_ms else None

    async def drain(self):
        pass

    async def close(self):
        pass


class Harness:
    """One session of the audio plugin with a real SessionContext and backends the test chooses."""

    def __init__(self, tmp_path: Path, audio: dict, output: Any = None, input: Any = None, clock=None):
        self.sent: list[dict] = []
        self.playback: list[dict] = []
        self.stops: list[str] = []
        self.clock = clock or FakeClock()
        self.backends = {"output": output, "input": input or IdleInput()}
        self.created: list[tuple] = []
        profile = SimpleNamespace(audio=audio, base_dir=tmp_path)
        self.ctx = SessionContext(
            profile,
            tmp_path / "run",
            NullLog(),
            send=self._send,
            stop=self.stops.append,
            notify_playback=lambda e: self.playback.append(dict(e)),
            clock=self.clock,
        )
        self.ctx.hook = SimpleNamespace(voicepipe_audio_backend=self._backend)

    def _send(self, event) -> None:
        # as the runtime's writer does: the client_event hook, then the wire
        audio_plugin.voicepipe_client_event(event, self.ctx)
        self.sent.append(dict(event))

    def _backend(self, name, direction, options, ctx=None):
        self.created.append((name, direction, dict(options)))
        given = self.backends.get(direction)
        if given is not None:
            return given
        return audio_plugin.voicepipe_audio_backend(name, direction, options)

    @property
    def audio(self) -> audio_plugin.AudioSession:
        return self.ctx.stash["audio"]

    def server(self, type_: str, **fields: Any) -> Any:
        event = ServerEvent._deserialize({"type": type_, **fields}, [])
        if type_ == "session.updated":
            self.ctx.session = dict(fields["session"])
        audio_plugin.voicepipe_event(event, self.ctx)
        return event

    async def start(self, session: Optional[dict] = None) -> None:
        audio_plugin.voicepipe_session_start(self.ctx)
        self.server("session.updated", session=session or SESSION)
        await wait_until(lambda: self.audio.output_ready and self.audio.input_rate)
        await asyncio.sleep(0.01)  # the input opens after the output

    def answer(self, response: str, item: str, ms: float, *, created: bool = True) -> None:
        if created:
            self.server("response.created", response={"id": response, "status": "in_progress", "output": []})
        self.delta(response, item, ms)

    def delta(self, response: str, item: str, ms: float) -> None:
        pcm = np.full(int(RATE * ms / 1000), 1000, "<i2").tobytes()
        self.server("response.audio.delta", response_id=response, item_id=item, output_index=0, content_index=0,
                    delta=base64.b64encode(pcm).decode())

    def finish(self, response: str, item: str, status: str = "completed") -> None:
        self.server("response.audio.done", response_id=response, item_id=item, output_index=0, content_index=0)
        self.server("response.done", response={"id": response, "status": status, "output": []})

    def speech_started(self) -> None:
        self.server("input_audio_buffer.speech_started", audio_start_ms=1000, item_id="item_user")

    def client_types(self) -> list[str]:
        return [e["type"] for e in self.sent if e["type"] != "input_audio_buffer.append"]

    def barge_in_events(self) -> list[dict]:
        return [e for e in self.sent if e["type"] in ("conversation.item.truncate", "conversation.item.delete", "response.cancel")]

    async def end(self, reason: str = "user") -> None:
        await audio_plugin.voicepipe_session_end(self.ctx, reason)


async def wait_until(condition, timeout: float = 5.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def virtual_output(clock) -> NullOutput:
    out = NullOutput({})
    out.clock = clock
    return out


# -- barge-in ---------------------------------------------------------------------------------------


def test_barge_in_truncates_at_what_the_output_clock_played(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 1000)
        clock.t += 0.7  # 700 ms of the answer have played
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 700}
    ]
    interrupted = [p for p in h.playback if p["type"] == "playback.interrupted"]
    assert interrupted == [
        {"type": "playback.interrupted", "item_id": "item_a", "response_id": "resp_1", "played_ms": 700.0,
         "generated_ms": 1000.0, "at": clock.t}
    ]


def test_truncate_never_goes_past_the_audio_received(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 400)
        out.played["item_a"] = 650.0  # a backend counting past what it was given
        out.written["item_a"] += 1000  # (and claiming more was written)
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 400}
    ]


@pytest.mark.parametrize("played", [420.96, 420.04, 421.0, 420.5])
def test_the_truncate_and_the_interrupted_milestone_say_the_same_position(tmp_path, played):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 1000)
        out.played["item_a"] = played
        h.speech_started()
        await h.end()

    run(scenario())
    (truncate,) = h.barge_in_events()
    (interrupted,) = [p for p in h.playback if p["type"] == "playback.interrupted"]
    assert truncate["audio_end_ms"] == int(interrupted["played_ms"])


def test_nothing_played_deletes_the_item(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 300)
        h.speech_started()  # before the first sample reached the speaker
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [{"type": "conversation.item.delete", "item_id": "item_a"}]
    assert [p["type"] for p in h.playback] == ["playback.interrupted"]
    assert h.playback[0]["played_ms"] == 0


def test_no_truncate_when_playback_had_finished(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 500)
        h.finish("resp_1", "item_a")
        clock.t += 0.8  # the whole answer has played
        h.speech_started()  # the user's next turn
        await asyncio.sleep(0)
        await h.end()

    run(scenario())
    assert h.barge_in_events() == []
    kinds = [p["type"] for p in h.playback]
    assert kinds == ["playback.started", "playback.finished"]
    assert h.playback[1]["played_ms"] == 500.0 and h.playback[1]["generated_ms"] == 500.0


def test_underrun_of_an_unfinished_answer_still_truncates(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 300)
        clock.t += 0.5  # everything received has played, more is coming
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 300}
    ]


def test_no_response_cancel_when_the_server_interrupts_by_itself(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 1000)
        out.played["item_a"] = 200.0
        h.speech_started()
        await h.end()

    run(scenario())
    assert "response.cancel" not in h.client_types()
    assert h.client_types() == ["conversation.item.truncate"]


def test_the_client_cancels_when_interrupt_response_is_off(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)
    session = {**SESSION, "turn_detection": {"type": "server_vad", "interrupt_response": False}}

    async def scenario():
        await h.start(session)
        h.answer("resp_1", "item_a", 1000)
        out.played["item_a"] = 200.0
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 200},
        {"type": "response.cancel", "response_id": "resp_1"},
    ]


def test_no_cancel_without_an_active_response_even_when_interrupt_response_is_off(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)
    session = {**SESSION, "turn_detection": {"type": "server_vad", "interrupt_response": False}}

    async def scenario():
        await h.start(session)
        h.answer("resp_1", "item_a", 1000)
        h.finish("resp_1", "item_a")  # generated in full, still playing
        out.played["item_a"] = 400.0
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.client_types() == ["conversation.item.truncate"]


def test_late_deltas_of_the_interrupted_response_are_dropped(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 200)
        out.played["item_a"] = 100.0
        h.speech_started()
        h.delta("resp_1", "item_a", 200)  # already in flight when the server cancelled
        h.delta("resp_1", "item_b", 200)
        h.finish("resp_1", "item_a", status="cancelled")
        h.answer("resp_2", "item_c", 300)  # the next answer plays again
        await h.end()

    run(scenario())
    assert out.written == {"item_a": 200 * 48, "item_c": 300 * 48}
    assert h.audio.items["item_a"].generated_bytes == 200 * 48  # the truncate point stays right


def test_audio_for_an_item_that_has_finished_is_not_even_decoded(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 200)
        out.played["item_a"] = 200.0
        h.finish("resp_1", "item_a")
        assert h.audio.items["item_a"].done
        # not base64 at all: decoding it would raise
        h.server("response.audio.delta", response_id="resp_1", item_id="item_a", output_index=0, content_index=0,
                 delta="not base64!")
        await h.end()

    run(scenario())
    assert out.written == {"item_a": 200 * 48}
    assert h.audio.items["item_a"].generated_bytes == 200 * 48


class RecordingOutput(ScriptedOutput):
    """A ScriptedOutput that keeps what it was handed, and may take undecoded audio."""

    def __init__(self, lazy: bool):
        super().__init__()
        self.accepts_lazy_pcm = lazy
        self.payloads: list = []

    def write(self, pcm, item_id):
        self.payloads.append(pcm)
        super().write(pcm, item_id)


def test_an_output_that_takes_undecoded_audio_gets_it_undecoded(tmp_path):
    from voicepipe.audio.pcm import LazyPCM

    out = RecordingOutput(lazy=True)
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 200)
        # text whose length cannot be known without decoding it is decoded here, as before
        h.server("response.audio.delta", response_id="resp_1", item_id="item_a", output_index=0, content_index=0,
                 delta=base64.b64encode(b"\x01\x00" * 3).decode() + "\n")
        h.server("response.audio.delta", response_id="resp_1", item_id="item_a", output_index=0, content_index=0,
                 delta="QUJ")  # broken padding: skipped with a warning
        await h.end()

    run(scenario())
    first, second = out.payloads
    assert type(first) is LazyPCM and len(first) == 200 * 48 and not first.decoded
    assert bytes(first) == np.full(4800, 1000, "<i2").tobytes()
    assert second == b"\x01\x00" * 3
    assert h.audio.items["item_a"].generated_bytes == 200 * 48 + 6
    assert [r[1] for r in h.ctx.log.records if r[0] == "warning"] == ["audio_delta_skipped"]


def test_other_outputs_and_g711_get_decoded_bytes(tmp_path):
    out = RecordingOutput(lazy=False)
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 100)
        await h.end()

    run(scenario())
    assert [type(p) for p in out.payloads] == [bytes]
    g711 = RecordingOutput(lazy=True)
    h = Harness(tmp_path, {}, output=g711)

    async def coded():
        await h.start({**SESSION, "output_audio_format": "g711_ulaw"})
        h.answer("resp_1", "item_a", 100)
        await h.end()

    run(coded())
    assert [type(p) for p in g711.payloads] == [bytes] and g711.written == {"item_a": 2 * 4800}


def test_the_null_output_plays_whole_answers_without_decoding_them(tmp_path):
    import binascii
    from unittest import mock

    clock = FakeClock()
    out = NullOutput({"realtime": False})
    out.clock = clock
    h = Harness(tmp_path, {}, output=out, clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 500)
        h.delta("resp_1", "item_a", 500)
        h.finish("resp_1", "item_a")
        await asyncio.sleep(0.01)
        await h.end()

    with mock.patch.object(binascii, "a2b_base64", side_effect=AssertionError("decoded")):
        run(scenario())
    assert out.played_ms("item_a") == 1000.0
    assert [p["type"] for p in h.playback] == ["playback.started", "playback.finished"]


def test_auto_truncate_leaves_truncation_to_the_server(tmp_path):
    clock = FakeClock()
    out = virtual_output(clock)
    h = Harness(tmp_path, {}, output=out, clock=clock)
    session = {**SESSION, "turn_detection": {"type": "azure_semantic_vad", "auto_truncate": True}}

    async def scenario():
        await h.start(session)
        h.answer("resp_1", "item_a", 1000)
        clock.t += 0.3
        h.speech_started()
        queued = out.queue.queued_frames
        await h.end()
        return queued

    assert run(scenario()) == 0  # the speaker is still flushed at once
    assert h.barge_in_events() == []
    assert [p["type"] for p in h.playback if p["type"] == "playback.interrupted"] == ["playback.interrupted"]


def test_truncate_false_in_the_profile_turns_client_truncation_off(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {"truncate": False}, output=out)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 1000)
        out.played["item_a"] = 300.0
        h.speech_started()
        await h.end()

    run(scenario())
    assert out.clears == 1
    assert h.barge_in_events() == []


def test_every_unheard_item_is_cut_or_deleted(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 300)
        h.delta("resp_1", "item_b", 300)  # a second audio item queued behind the first
        clock.t += 0.1
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.barge_in_events() == [
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 100},
        {"type": "conversation.item.delete", "item_id": "item_b"},
    ]


def test_first_speech_of_the_session_sends_nothing(tmp_path):
    h = Harness(tmp_path, {}, output=ScriptedOutput())

    async def scenario():
        await h.start()
        h.speech_started()
        await h.end()

    run(scenario())
    assert h.client_types() == []
    assert h.audio.barge_ins == 0


# -- playback milestones and streaming --------------------------------------------------------------


def test_milestones_follow_the_output_clock(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 200)
        clock.t += 0.05
        h.audio.output.advance()
        await asyncio.sleep(0)
        started = list(h.playback)
        clock.t += 0.2  # the audio received so far has played, the answer is not complete
        h.audio.output.advance()
        await asyncio.sleep(0)
        before_done = list(h.playback)
        h.finish("resp_1", "item_a")
        await h.end()
        return started, before_done

    started, before_done = run(scenario())
    assert [p["type"] for p in started] == ["playback.started"]
    assert started[0]["item_id"] == "item_a" and started[0]["response_id"] == "resp_1"
    assert [p["type"] for p in before_done] == ["playback.started"]  # an underrun is not the end
    assert [p["type"] for p in h.playback] == ["playback.started", "playback.finished"]
    assert h.playback[1]["played_ms"] == 200.0 and h.playback[1]["generated_ms"] == 200.0


def test_deltas_before_the_output_opens_are_kept(tmp_path):
    out = ScriptedOutput()
    h = Harness(tmp_path, {}, output=out)

    async def scenario():
        audio_plugin.voicepipe_session_start(h.ctx)
        h.server("session.updated", session=SESSION)
        h.answer("resp_1", "item_a", 100)  # the output is still opening
        await wait_until(lambda: h.audio.output_ready)
        await h.end()

    run(scenario())
    assert out.written == {"item_a": 100 * 48}


def test_wav_input_is_streamed_and_the_session_ends_after_the_answer(tmp_path):

    path = tmp_path / "question.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.full(1600, 300, "<i2").tobytes())  # 100 ms
    out = ScriptedOutput()
    audio = {"chunk_ms": 40, "input": {"backend": "wav", "file": "question.wav", "realtime": False}}
    h = Harness(tmp_path, audio, output=out, input=None)
    h.backends.pop("input")
    session = {**SESSION, "input_audio_sampling_rate": 16000}

    async def scenario():
        await h.start(session)
        await wait_until(lambda: h.audio.input_started_at is not None)
        await wait_until(lambda: len([e for e in h.sent if e["type"] == "input_audio_buffer.append"]) == 3)
        h.server("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")
        h.server("input_audio_buffer.speech_stopped", audio_end_ms=100, item_id="item_u")
        assert h.stops == []  # an answer is expected
        h.answer("resp_1", "item_a", 100)
        h.finish("resp_1", "item_a")
        await wait_until(lambda: h.stops)
        await h.end("input_finished")

    run(scenario())
    appends = [e for e in h.sent if e["type"] == "input_audio_buffer.append"]
    chunks = [base64.b64decode(e["audio"]) for e in appends]
    assert [len(c) for c in chunks] == [1280, 1280, 640]  # 40 ms chunks at 16 kHz, the rest
    assert b"".join(chunks) == np.full(1600, 300, "<i2").tobytes()
    assert h.stops == ["input_finished"]
    assert h.created[0][2]["file"] == tmp_path / "question.wav"  # relative to the profile's folder


def test_a_finished_input_without_any_answer_gives_up(tmp_path):

    path = tmp_path / "q.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(bytes(960))
    audio = {"input": {"backend": "wav", "file": str(path), "realtime": False, "answer_timeout_s": 0.2}}
    h = Harness(tmp_path, audio, output=ScriptedOutput())
    h.backends.pop("input")

    async def scenario():
        await h.start()
        await wait_until(lambda: h.stops)
        await h.end("input_finished")

    run(scenario())
    assert h.stops == ["input_finished"]
    assert any(event == "no_answer_after_input" for _, event, _ in h.ctx.log.records)


def test_a_missing_input_file_stops_the_session_with_one_line(tmp_path):
    h = Harness(tmp_path, {"input": {"backend": "wav", "file": "gone.wav"}}, output=ScriptedOutput())
    h.backends.pop("input")
    audio_plugin.voicepipe_session_start(h.ctx)
    assert h.stops == ["error"]
    (level, event, fields), = h.ctx.log.records
    assert level == "error" and event == "audio_error"
    assert "gone.wav" in fields["message"] and "\n" not in fields["message"]
    assert h.ctx.usage_failure == fields["message"]  # `voicepipe run` prints it and exits 2
    assert "audio" not in h.ctx.stash


def test_an_unknown_backend_is_reported(tmp_path):
    h = Harness(tmp_path, {"output": {"backend": "speakerphone"}})
    h.backends.pop("output")
    audio_plugin.voicepipe_session_start(h.ctx)
    assert h.stops == ["error"]
    message = h.ctx.log.records[0][2]["message"]
    assert "audio.output.backend: unknown backend 'speakerphone'" in message


def test_run_dir_and_null_defaults(tmp_path):
    h = Harness(tmp_path, {"output": {"backend": "wav", "file": "{run_dir}/answer.wav"}})
    h.backends = {}
    audio_plugin.voicepipe_session_start(h.ctx)
    assert h.stops == []
    assert [(name, direction) for name, direction, _ in h.created] == [("null", "input"), ("wav", "output")]
    assert h.created[1][2]["file"] == tmp_path / "run" / "answer.wav"


def test_yaml_null_backend_means_null(tmp_path):
    h = Harness(tmp_path, {"input": {"backend": None}, "output": {"backend": None}})
    h.backends = {}
    audio_plugin.voicepipe_session_start(h.ctx)
    assert h.stops == []
    assert type(h.audio.input).__name__ == "NullInput" and type(h.audio.output).__name__ == "NullOutput"


def test_session_end_never_raises(tmp_path):
    class Broken(ScriptedOutput):
        async def drain(self):
            raise RuntimeError("device gone")

        async def close(self):
            raise RuntimeError("device gone")

    h = Harness(tmp_path, {}, output=Broken())

    async def scenario():
        await h.start()
        h.answer("resp_1", "item_a", 100)
        await h.end("duration")

    run(scenario())


def test_g711_session_formats_are_encoded_and_decoded(tmp_path):
    from voicepipe.audio.pcm import g711_encode

    out = ScriptedOutput()
    received = []

    class Mic(IdleInput):
        async def __aiter__(self):
            yield np.full(160, 1000, "<i2").tobytes()
            await self._closed.wait()

    h = Harness(tmp_path, {}, output=out, input=Mic())
    session = {**SESSION, "input_audio_format": "g711_ulaw", "output_audio_format": "g711_alaw"}

    async def scenario():
        await h.start(session)
        await wait_until(lambda: any(e["type"] == "input_audio_buffer.append" for e in h.sent))
        h.server("response.created", response={"id": "resp_1", "status": "in_progress", "output": []})
        coded = g711_encode(np.full(80, 500, "<i2").tobytes(), "g711_alaw")
        h.server("response.audio.delta", response_id="resp_1", item_id="item_a", output_index=0, content_index=0,
                 delta=base64.b64encode(coded).decode())
        received.append(h.audio.items["item_a"].generated_bytes)
        await h.end()

    run(scenario())
    append = next(e for e in h.sent if e["type"] == "input_audio_buffer.append")
    assert base64.b64decode(append["audio"]) == g711_encode(np.full(160, 1000, "<i2").tobytes(), "g711_ulaw")
    assert h.audio.input_rate == 8000 and h.audio.output_rate == 8000
    assert out.written == {"item_a": 160} and received == [160]  # 80 samples decoded to PCM16


# -- the echo reference -----------------------------------------------------------------------------


def test_echo_reference_sends_stereo_with_the_played_signal_on_channel_1(tmp_path):
    mic_value = 123

    class Mic(IdleInput):
        async def __aiter__(self):
            for _ in range(30):  # 20 ms chunks, paced
                await asyncio.sleep(0.02)
                yield np.full(480, mic_value, "<i2").tobytes()

    out = NullOutput({})  # real time, on the monotonic clock
    h = Harness(tmp_path, {}, output=out, input=Mic())
    session = {**SESSION, "input_audio_echo_cancellation": {"type": "server_echo_cancellation",
                                                              "reference_source": "client", "channels": 2}}

    async def scenario():
        await h.start(session)
        h.answer("resp_1", "item_a", 2000)
        await wait_until(lambda: len([e for e in h.sent if e["type"] == "input_audio_buffer.append"]) >= 30)
        await h.end()

    run(scenario())
    appends = [np.frombuffer(base64.b64decode(e["audio"]), "<i2").reshape(-1, 2)
               for e in h.sent if e["type"] == "input_audio_buffer.append"]
    assert all(len(a) == 480 for a in appends)
    assert all((a[:, 0] == mic_value).all() for a in appends)
    reference = np.concatenate([a[:, 1] for a in appends])
    assert set(np.unique(reference)) <= {0, 1000}
    assert (reference == 1000).sum() > 480  # the answer, played while the microphone listened


def test_echo_reference_setting_asks_the_service_for_it():
    from azure.ai.voicelive.models import RequestSession

    session = RequestSession(input_audio_echo_cancellation={"type": "server_echo_cancellation"})
    audio_plugin.voicepipe_session_config(SimpleNamespace(audio={"echo_reference": True}), session)
    assert session.as_dict()["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation", "reference_source": "client", "channels": 2}
    untouched = RequestSession()
    audio_plugin.voicepipe_session_config(SimpleNamespace(audio={}), untouched)
    assert "input_audio_echo_cancellation" not in untouched.as_dict()


def test_stash_publishes_the_live_backends(tmp_path):
    out = ScriptedOutput()
    mic = IdleInput()
    h = Harness(tmp_path, {"chunk_ms": 10}, output=out, input=mic)

    async def scenario():
        await h.start({**SESSION, "input_audio_sampling_rate": 16000, "output_audio_format": "pcm16_16000hz"})
        await wait_until(lambda: mic.opened_with is not None)
        await h.end()

    run(scenario())
    state = h.ctx.stash["audio"]
    assert state.output is out and state.input is mic
    assert (state.input_rate, state.output_rate) == (16000, 16000)
    assert mic.opened_with == (16000, 160) and out.rate == 16000


def test_the_session_waits_for_the_last_chunks_to_be_sent_and_answered(tmp_path):
    """A file pushed faster than the connection sends it: the input has ended long before the
    service has heard its last turn, and an earlier answer must not end the session early."""

    path = tmp_path / "two_turns.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(np.full(2400, 300, "<i2").tobytes())
    out = ScriptedOutput()
    h = Harness(tmp_path, {"input": {"backend": "wav", "file": str(path), "realtime": False}}, output=out)
    h.backends.pop("input")
    held = []
    h._send = lambda event: held.append(event)  # the send queue is stuck
    h.ctx._send = h._send
    order = []
    h.ctx._stop = lambda reason: (order.append("stop"), h.stops.append(reason))

    async def scenario():
        await h.start()
        h.answer("resp_0", "item_0", 100)  # an earlier turn, answered and played
        h.finish("resp_0", "item_0")
        out.played["item_0"] = 100.0
        await wait_until(lambda: len(held) == 5)  # every chunk queued, the input has ended
        await asyncio.sleep(0.05)
        assert h.stops == []  # nothing was sent yet: the service cannot have answered
        for event in held:
            Harness._send(h, event)
        h.speech_started()  # the service hears the last turn ...
        h.server("input_audio_buffer.speech_stopped", audio_end_ms=100, item_id="item_user")
        order.append("answer")
        h.answer("resp_1", "item_1", 100)  # ... and answers it
        h.finish("resp_1", "item_1")
        out.played["item_1"] = 100.0
        await wait_until(lambda: h.stops)
        await h.end("input_finished")

    run(scenario())
    assert h.stops == ["input_finished"] and order == ["answer", "stop"]
    assert h.barge_in_events() == []  # the earlier answer had played out: nothing to cut


def test_a_tool_call_round_is_waited_for_after_the_input_ends(tmp_path):

    path = tmp_path / "q.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(bytes(960))
    out = ScriptedOutput()
    h = Harness(tmp_path, {"input": {"backend": "wav", "file": str(path), "realtime": False}}, output=out)
    h.backends.pop("input")
    order = []
    h.ctx._stop = lambda reason: (order.append("stop"), h.stops.append(reason))

    async def scenario():
        await h.start()
        h.server("input_audio_buffer.speech_stopped", audio_end_ms=20, item_id="item_user")
        h.server("response.created", response={"id": "resp_1", "status": "in_progress", "output": []})
        await wait_until(lambda: h.audio.appends_sent == h.audio.appends_queued == 1)
        h.server("response.done", response={"id": "resp_1", "status": "completed", "output": [
            {"type": "function_call", "id": "item_f", "name": "get_weather", "call_id": "call_1", "arguments": "{}"}]})
        await asyncio.sleep(SETTLE_MARGIN)  # the tool runs; the session must not end meanwhile
        order.append("answer")
        h.answer("resp_2", "item_a", 100)
        h.finish("resp_2", "item_a")
        out.played["item_a"] = 100.0
        await wait_until(lambda: h.stops)
        await h.end("input_finished")

    run(scenario())
    assert order == ["answer", "stop"] and h.stops == ["input_finished"]


SETTLE_MARGIN = audio_plugin.SETTLE_S * 1.5


def test_configure_reports_bad_settings_before_anything_connects(tmp_path):
    from voicepipe.errors import UsageError

    def configure(audio):
        audio_plugin.voicepipe_configure(SimpleNamespace(audio=audio, base_dir=tmp_path))

    configure({})
    configure({"input": {"backend": "pyaudio", "device": "USB"}, "output": {"backend": "wav", "file": "{run_dir}/a.wav"}})
    configure({"input": {"backend": "my_plugin_backend", "anything": 1}})  # a plugin's backend: its own business
    bad = [
        ({"chunk_ms": 0}, "audio.chunk_ms: expected milliseconds between 1 and 1000, got 0"),
        ({"truncate": "yes"}, "audio.truncate: expected true or false, got 'yes'"),
        ({"input": {"backend": "wav", "file": "missing.wav"}}, "audio.input: wav: file not found: "),
        ({"input": {"backend": "wav", "file": "q.wav", "trailing_silence_ms": -5}}, "audio.input.trailing_silence_ms"),
        ({"output": {"backend": "sounddevice", "latency": "fast"}}, "audio.output.latency: expected low, high"),
        ({"input": {"backend": 3}}, "audio.input.backend: expected a backend name"),
        ({"input": ["wav"]}, "audio.input: expected a mapping like {backend: wav, file: x.wav}"),
    ]

    with wave.open(str(tmp_path / "q.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(bytes(480))
    for audio, message in bad:
        try:
            configure(audio)
        except UsageError as exc:
            assert str(exc).startswith(message), (audio, str(exc))
            assert "\n" not in str(exc)
        else:
            raise AssertionError(f"{audio} was accepted")


def test_the_ga_event_names_play_and_finish_too(tmp_path):
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)

    async def scenario():
        await h.start()
        h.server("response.created", response={"id": "resp_1", "status": "in_progress", "output": []})
        pcm = np.full(int(RATE * 0.2), 1000, "<i2").tobytes()
        h.server("response.output_audio.delta", response_id="resp_1", item_id="item_a", output_index=0,
                 content_index=0, delta=base64.b64encode(pcm).decode())
        h.server("response.output_audio.done", response_id="resp_1", item_id="item_a", output_index=0, content_index=0)
        clock.t += 0.3
        h.audio.output.advance()
        await asyncio.sleep(0)
        await h.end()

    run(scenario())
    assert [p["type"] for p in h.playback] == ["playback.started", "playback.finished"]
    assert h.playback[1]["played_ms"] == 200.0


@pytest.mark.parametrize("realtime", [True, False])
def test_the_session_says_whether_its_input_is_paced_in_real_time(tmp_path, realtime):
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(bytes(960))
    h = Harness(tmp_path, {"input": {"backend": "wav", "file": str(path), "realtime": realtime}}, output=ScriptedOutput())
    h.backends.pop("input")
    audio_plugin.voicepipe_session_start(h.ctx)
    assert h.ctx.stash["audio"].input_realtime is realtime


def test_the_input_batcher_knows_when_an_answer_is_in_progress(tmp_path):
    """A sound during an answer may be a barge-in: it must not wait in a batch."""
    clock = FakeClock()
    h = Harness(tmp_path, {}, output=virtual_output(clock), clock=clock)
    seen = []

    async def scenario():
        await h.start()
        batcher = h.audio.batcher
        seen.append(batcher.answering)
        h.answer("resp_1", "item_a", 1000)
        seen.append(batcher.answering)
        h.finish("resp_1", "item_a")
        seen.append(batcher.answering)  # generated, still playing
        clock.t += 1.5
        h.audio.output.advance()
        await wait_until(lambda: any(p["type"] == "playback.finished" for p in h.playback))
        seen.append(batcher.answering)  # played out
        h.answer("resp_2", "item_b", 1000)
        seen.append(batcher.answering)
        h.speech_started()  # barge-in: the item is cut, the response still open
        seen.append(batcher.answering)
        h.finish("resp_2", "item_b", status="cancelled")
        seen.append(batcher.answering)
        await h.end()

    run(scenario())
    assert seen == [False, True, True, False, True, True, False]


def test_batch_ms_0_gives_the_input_no_batcher(tmp_path):
    h = Harness(tmp_path, {"batch_ms": 0})

    async def scenario():
        await h.start()
        await h.end()

    run(scenario())
    assert h.audio.batcher is None and h.backends["input"].batcher is None
