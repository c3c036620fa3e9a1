"""Steady input is sent in fewer appends: what waits, when it leaves, and that nothing changes."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import wave

import numpy as np
import pytest

from voicepipe.audio.batching import ONSET_S, QUIET_AFTER_S, InputBatcher, quiet_peak
from voicepipe.audio.device import DeviceInput
from voicepipe.audio.null import PacedInput
from voicepipe.errors import UsageError

RATE = 24000
CHUNK_MS = 20
FRAMES = RATE * CHUNK_MS // 1000
HOLD_OFF = int(QUIET_AFTER_S * 1000 / CHUNK_MS)  # quiet chunks still sent one by one
ONSET = int(ONSET_S * 1000 / CHUNK_MS)  # chunks of a sound still sent one by one


def chunk(peak: int = 0, tag: int = 0) -> bytes:
    """One chunk whose loudest sample is ``peak`` (or -peak for a negative ``peak``); ``tag`` makes
    quiet chunks tell apart without making them louder."""
    samples = np.zeros(FRAMES, dtype="<i2")
    samples[0] = peak
    samples[1] = tag % 3 - 1
    return samples.tobytes()


def feed_all(batcher: InputBatcher, chunks: list[bytes]) -> list[bytes]:
    out = [sent for sent in map(batcher.feed, chunks) if sent is not None]
    rest = batcher.flush()
    return out + ([rest] if rest is not None else [])


def test_the_level_that_counts_as_quiet():
    peak = quiet_peak(-50)
    assert peak == int(32768 * 10 ** (-50 / 20)) == 103
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    assert batcher.is_quiet(bytes(2 * FRAMES))
    assert batcher.is_quiet(chunk(peak)) and batcher.is_quiet(chunk(-peak))
    assert not batcher.is_quiet(chunk(peak + 1)) and not batcher.is_quiet(chunk(-peak - 1))
    assert not batcher.is_quiet(chunk(-32768)) and not batcher.is_quiet(chunk(32767))
    assert InputBatcher(CHUNK_MS, 100, 0).is_quiet(chunk(32767))  # 0 dBFS: nothing is loud


def test_quiet_chunks_are_held_after_a_second_and_a_sound_flushes_them_at_once():
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    loud = chunk(5000)
    quiet = [chunk(tag=i) for i in range(HOLD_OFF + 12)]
    stream = [loud] + quiet + [loud, loud] + quiet[:3]
    out = [batcher.feed(c) for c in stream]

    assert out[0] == loud
    assert out[1 : 1 + HOLD_OFF] == quiet[:HOLD_OFF]  # the first second of quiet: chunk by chunk
    held = out[1 + HOLD_OFF : 1 + HOLD_OFF + 12]
    assert held == [None] * 4 + [b"".join(quiet[HOLD_OFF : HOLD_OFF + 5])] + [None] * 4 + [
        b"".join(quiet[HOLD_OFF + 5 : HOLD_OFF + 10])
    ] + [None, None]
    # the sound leaves with the two held chunks before it, at once; the next one alone
    assert out[1 + HOLD_OFF + 12] == b"".join(quiet[HOLD_OFF + 10 :]) + loud
    assert out[2 + HOLD_OFF + 12] == loud
    assert out[-3:] == quiet[:3]  # quiet again: the hold-off starts over
    assert batcher.flush() is None


def test_a_long_sound_leaves_chunk_by_chunk_at_its_start_then_in_batches_and_its_end_at_once():
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    quiet = [chunk(tag=i) for i in range(HOLD_OFF + 5)]
    sound = [chunk(3000 + i) for i in range(ONSET + 12)]
    for c in quiet:
        batcher.feed(c)  # a steady quiet before it
    out = [batcher.feed(c) for c in sound]
    assert out[:ONSET] == sound[:ONSET]  # the start of speech: at once
    assert out[ONSET : ONSET + 12] == [None] * 4 + [b"".join(sound[ONSET : ONSET + 5])] + [None] * 4 + [
        b"".join(sound[ONSET + 5 : ONSET + 10])
    ] + [None, None]
    pause = chunk(tag=7)
    assert batcher.feed(pause) == b"".join(sound[ONSET + 10 :]) + pause  # the end of the sound: at once
    # a pause shorter than the hold-off is not a steady quiet: the sound goes on in batches
    assert [batcher.feed(c) for c in sound[:4]] == [None] * 4
    assert batcher.feed(sound[4]) == b"".join(sound[:5])


def test_after_a_steady_quiet_a_new_sound_starts_chunk_by_chunk_again():
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    sound = [chunk(3000 + i) for i in range(ONSET + 5)]
    feed_all(batcher, sound + [chunk(tag=i) for i in range(HOLD_OFF + 1)])
    out = [batcher.feed(c) for c in sound]
    assert out[:ONSET] == sound[:ONSET] and out[ONSET:] == [None] * 4 + [b"".join(sound[ONSET:])]


def test_while_an_answer_is_in_progress_every_sound_leaves_at_once():
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    batcher.answering = True
    sound = [chunk(3000 + i) for i in range(ONSET + 20)]
    assert [batcher.feed(c) for c in sound] == sound
    quiet = [chunk(tag=i) for i in range(HOLD_OFF + 5)]
    out = [batcher.feed(c) for c in quiet]
    assert out[HOLD_OFF:] == [None] * 4 + [b"".join(quiet[HOLD_OFF:])]  # silence still waits
    batcher.answering = False
    assert [batcher.feed(c) for c in sound[:ONSET + 1]] == sound[:ONSET] + [None]


@pytest.mark.parametrize("batch_ms, expected_batch", [(100, 5), (60, 3), (30, 1), (0, 1), (1000, 50)])
def test_every_byte_leaves_once_in_order(batch_ms, expected_batch):
    rng = np.random.default_rng(batch_ms)
    stream = [chunk(int(rng.choice([0, 50, 3000, -7000])), tag=i) for i in range(400)]
    batcher = InputBatcher(CHUNK_MS, batch_ms, -50)
    assert batcher.batch_chunks == expected_batch and batcher.enabled == (expected_batch > 1)
    out = feed_all(batcher, stream)
    assert b"".join(out) == b"".join(stream)
    assert max(len(sent) for sent in out) <= (expected_batch + 1) * 2 * FRAMES


def test_the_end_of_an_input_flushes_what_is_held():
    batcher = InputBatcher(CHUNK_MS, 100, -50)
    stream = [chunk(tag=i) for i in range(HOLD_OFF + 3)]
    out = feed_all(batcher, stream)
    assert out[-1] == b"".join(stream[HOLD_OFF:]) and b"".join(out) == b"".join(stream)


class ListInput(PacedInput):
    def __init__(self, chunks: list[bytes], realtime: bool = True):
        super().__init__(realtime=realtime)
        self._chunks = chunks

    def chunks(self):
        return iter(self._chunks)


def test_a_paced_input_yields_a_batch_when_its_last_chunk_is_captured_never_before():
    stream = [chunk(4000)] + [chunk(tag=i) for i in range(HOLD_OFF + 10)] + [chunk(4000)]

    async def main():
        source = ListInput(stream)
        source.batcher = InputBatcher(CHUNK_MS, 100, -50)
        await source.open(RATE, FRAMES)
        started = time.monotonic()
        got = []
        async for data in source:
            got.append((data, time.monotonic() - started))
        return got

    got = asyncio.run(main())
    assert b"".join(data for data, _ in got) == b"".join(stream)
    assert [len(data) // (2 * FRAMES) for data, _ in got] == [1] * (1 + HOLD_OFF) + [5, 5, 1]
    captured = 0
    for data, at in got:
        captured += len(data) // 2
        assert at >= captured / RATE - 0.002  # the timer may fire a hair early; never a chunk early


def test_an_unpaced_input_batches_the_same_way():
    stream = [chunk(tag=i) for i in range(HOLD_OFF + 5)]

    async def main():
        source = ListInput(stream, realtime=False)
        source.batcher = InputBatcher(CHUNK_MS, 100, -50)
        await source.open(RATE, FRAMES)
        return [data async for data in source]

    got = asyncio.run(main())
    assert len(got) == HOLD_OFF + 1 and got[-1] == b"".join(stream[HOLD_OFF:])


class ThreadDevice(DeviceInput):
    """A device input whose "stream" is a thread calling the capture callback with ``buffers``."""

    def __init__(self, buffers: list[bytes]):
        super().__init__({})
        self.buffers = buffers
        self.woken = 0
        self.done = threading.Event()

    def _start_stream(self, session_rate: int, frames_per_chunk: int):
        def capture():
            for data in self.buffers:
                self._captured(data)
            self.done.set()

        threading.Thread(target=capture, daemon=True).start()
        return session_rate, 0.0

    def _stop_stream(self) -> None:
        self.done.wait(5)


def test_a_device_input_wakes_the_loop_once_per_batch_and_close_flushes_the_rest():
    buffers = [chunk(4000)] + [chunk(tag=i) for i in range(HOLD_OFF + 7)]

    async def main():
        device = ThreadDevice(buffers)
        device.batcher = InputBatcher(CHUNK_MS, 100, -50)
        await device.open(RATE, FRAMES)
        await asyncio.to_thread(device.done.wait, 5)
        queued = device._queue.qsize()  # what the device thread handed to the loop
        got = []

        async def read():
            async for data in device:
                got.append(data)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)
        await device.close()
        await asyncio.wait_for(reader, 5)
        return queued, got

    queued, got = asyncio.run(main())
    assert queued == 1 + HOLD_OFF + 1  # the loud chunk, a second of quiet, one batch; 2 chunks held
    assert b"".join(got) == b"".join(buffers)
    assert [len(data) // (2 * FRAMES) for data in got] == [1] * (1 + HOLD_OFF) + [5, 2]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("batch_ms", -1, "audio.batch_ms: expected milliseconds from 0 to 1000, got -1"),
        ("batch_ms", "lots", "audio.batch_ms: expected milliseconds from 0 to 1000, got 'lots'"),
        ("batch_ms", True, "audio.batch_ms: expected milliseconds from 0 to 1000, got True"),
        ("quiet_dbfs", 3, "audio.quiet_dbfs: expected a level in dBFS from -96 to 0, got 3"),
        ("quiet_dbfs", -200, "audio.quiet_dbfs: expected a level in dBFS from -96 to 0, got -200"),
    ],
)
def test_bad_settings_name_the_key(key, value, message):
    from voicepipe.builtin.audio import AudioSettings

    with pytest.raises(UsageError) as raised:
        AudioSettings({key: value}, ".")
    assert str(raised.value) == message


@pytest.mark.parametrize("text, error", [("batch_ms: 5000", "audio.batch_ms"),
                                         ("quiet_dbfs: loud", "audio.quiet_dbfs")])
def test_the_profile_check_refuses_bad_values_with_file_and_line(tmp_path, text, error):
    from voicepipe.profile import load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(f"connection:\n  endpoint: emulator\naudio:\n  {text}\n", encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        load_profile(profile)
    assert f"{profile}:4" in str(raised.value) and error in str(raised.value)


def write_wav(path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(samples.astype("<i2").tobytes())


def test_a_question_after_a_long_silence_is_heard_and_answered(voicepipe_run, tmp_path):
    """Three seconds of silence, then the question: the silence goes out in batches, the question
    starts in the append that ends the hold, and the service hears and answers it."""
    from tests.test_audio_e2e import QUESTION, write_profile

    with wave.open(str(QUESTION), "rb") as f:
        question = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    source = tmp_path / "late-question.wav"
    write_wav(source, np.concatenate([np.zeros(3 * RATE, dtype="<i2"), question]))
    turns = """\
        turns:
          - user: What is the largest lake in the world?
            assistant: The Caspian Sea.
        """
    profile = write_profile(tmp_path, input_file=source, realtime_input=False, speed=0, turns=turns)
    result = voicepipe_run(profile)

    assert result.exit_code == 0 and result.reason == "input_finished"
    assert "The Caspian Sea." in result.read("transcript.txt") and "input_audio_buffer.speech_started" in result.server_types()
    appends = [base64.b64decode(e["audio"]) for e in result.client_events if e["type"] == "input_audio_buffer.append"]
    sent = np.frombuffer(b"".join(appends), dtype="<i2")
    assert np.array_equal(sent[3 * RATE : 3 * RATE + len(question)], question) and not sent[: 3 * RATE].any()
    sizes = [len(a) // (2 * FRAMES) for a in appends]
    assert sizes[:HOLD_OFF] == [1] * HOLD_OFF and 5 in sizes[HOLD_OFF : HOLD_OFF + 5]
    first_sound = int(np.flatnonzero(np.abs(sent.astype(np.int32)) > quiet_peak(-50))[0])
    ends = np.cumsum([len(a) // 2 for a in appends])
    carrier = int(np.searchsorted(ends, first_sound, side="right"))
    assert ends[carrier] - first_sound <= FRAMES  # the chunk with the first sound ends its append


def test_a_caller_input_keeps_quiet_audio_until_a_sound_or_a_full_batch_wakes_the_reader():
    from voicepipe.serve.transport import CallerInput

    stream = [chunk(4000)] + [chunk(tag=i) for i in range(HOLD_OFF + 7)] + [chunk(-4000)] + [chunk(tag=1)] * 3
    wire = b"".join(stream)

    async def main():
        caller = CallerInput()
        caller.batcher = InputBatcher(CHUNK_MS, 100, -50)
        caller.feed(wire[:1000])  # before the session opened its input
        await caller.open(RATE, FRAMES)
        got = []

        async def read():
            async for data in caller:
                got.append(data)

        reader = asyncio.create_task(read())
        for start in range(1000, len(wire), 700):  # frames that do not line up with chunks
            caller.feed(wire[start : start + 700])
            await asyncio.sleep(0)
        caller.end()
        await asyncio.wait_for(reader, 5)
        return got

    got = asyncio.run(main())
    assert b"".join(got) == wire
    sizes = [len(data) // (2 * FRAMES) for data in got]
    # chunk by chunk until a second of quiet, one batch of five, the sound with the two held before
    # it, then quiet chunks one by one again (the hold-off starts over)
    assert sizes[: 1 + HOLD_OFF] == [1] * (1 + HOLD_OFF) and sizes[1 + HOLD_OFF :] == [5, 3, 1, 1, 1]
    assert got[2 + HOLD_OFF].endswith(chunk(-4000))


def test_a_quiet_caller_sending_too_fast_is_still_bounded():
    from voicepipe.serve.transport import MAX_PENDING_S, CallerInput

    async def main():
        caller = CallerInput()
        caller.batcher = InputBatcher(CHUNK_MS, 1000, -50)
        await caller.open(RATE, FRAMES)
        for _ in range(int(MAX_PENDING_S * 1000 / CHUNK_MS) * 3):
            caller.feed(bytes(2 * FRAMES))  # nobody reads
        return caller

    caller = asyncio.run(main())
    assert len(caller._pending) <= int(MAX_PENDING_S * RATE) * 2 and caller.dropped_bytes > 0
