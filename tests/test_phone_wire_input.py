"""A phone caller's wire audio into the session's input (:class:`voicepipe.serve.phone.WireInput`):
the input batcher's rules applied to the wire frames before they are converted, with the same
bytes reaching the session and the edges of speech leaving at once."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from phone_helpers import speech
from voicepipe.audio.batching import QUIET_AFTER_S, InputBatcher
from voicepipe.audio.pcm import g711_decode, g711_encode, g711_quiet_codes
from voicepipe.audio.resample import StreamResampler
from voicepipe.serve.phone import TimedCallerInput, WireInput

RATE = 24000
CHUNK_MS = 20
FRAMES = RATE * CHUNK_MS // 1000
WIRE_FRAME = 160  # 20 ms of mu-law at 8 kHz
SILENCE = b"\xff" * WIRE_FRAME
HOLD_OFF = int(QUIET_AFTER_S * 1000 / CHUNK_MS)


def recorded_call() -> list[bytes]:
    """A call as Twilio sends it: line noise, the question, a long quiet, the question again."""
    rng = np.random.default_rng(7)
    noise = g711_encode(rng.integers(-40, 41, 8000 * 3).astype("<i2").tobytes(), "g711_ulaw")
    question = g711_encode(speech(8000), "g711_ulaw")
    wire = noise + question + SILENCE * 120 + question + noise[:8000]
    wire += SILENCE[: -len(wire) % WIRE_FRAME]
    return [wire[i : i + WIRE_FRAME] for i in range(0, len(wire), WIRE_FRAME)]


async def _through(frames: list[bytes], batched: bool, answering: bool = False) -> tuple[list[bytes], list[int]]:
    """What the session's input yields for ``frames``, and after which frame each append left."""
    target = TimedCallerInput()
    if batched:
        target.batcher = InputBatcher(CHUNK_MS, 100, -50)
        target.batcher.answering = answering
    await target.open(RATE, FRAMES)
    wire = WireInput(target, 8000, codec="g711_ulaw")
    got: list[bytes] = []
    left_after: list[int] = []
    index = 0

    async def read() -> None:
        async for data in target:
            got.append(data)
            left_after.append(index)

    reader = asyncio.create_task(read())
    for index, frame in enumerate(frames):
        assert wire.push(frame, index * 0.02)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    index = len(frames)
    wire.end()
    await asyncio.wait_for(reader, 5)
    return got, left_after


def test_a_recorded_call_reaches_the_session_byte_for_byte_whether_frames_wait_or_not():
    # mutation checked: WireInput's resampler made with exact=False (soxr's int16 output) fails here
    frames = recorded_call()
    batched, _ = asyncio.run(_through(frames, batched=True))
    one_by_one, _ = asyncio.run(_through(frames, batched=False))
    whole = StreamResampler(8000, RATE, exact=True)
    reference = whole.process(g711_decode(b"".join(frames), "g711_ulaw")) + whole.flush()
    assert b"".join(batched) == b"".join(one_by_one) == reference
    assert len(batched) < len(one_by_one) / 2  # and the steady parts did wait


def test_an_exact_resampler_gives_the_same_bytes_however_the_stream_is_split():
    pcm = speech(8000)
    one = StreamResampler(8000, RATE, exact=True)
    whole = one.process(pcm) + one.flush()
    parts = StreamResampler(8000, RATE, exact=True)
    sizes = [320, 960, 320, 1600, 640]
    out, at, turn = [], 0, 0
    while at < len(pcm):
        out.append(parts.process(pcm[at : at + sizes[turn % len(sizes)]]))
        at += sizes[turn % len(sizes)]
        turn += 1
    assert b"".join(out) + parts.flush() == whole


def test_the_quiet_codes_are_the_levels_no_louder_than_the_peak():
    # mutation checked: "<" for "<=" in g711_quiet_codes drops the codes at the peak and fails here
    for peak in (0, 103, 1000):
        codes = g711_quiet_codes("g711_ulaw", peak)
        levels = np.frombuffer(g711_decode(bytes(range(256)), "g711_ulaw"), "<i2")
        assert set(codes) == {code for code in range(256) if abs(int(levels[code])) <= peak}
    assert (SILENCE + b"\x7f").translate(None, g711_quiet_codes("g711_ulaw", 0)) == b""


def _loud() -> bytes:
    return g711_encode(np.full(WIRE_FRAME, 8000, dtype="<i2").tobytes(), "g711_ulaw")


def test_after_a_steady_quiet_the_start_of_speech_leaves_with_its_own_frame():
    # mutation checked: WireInput holding a frame the batcher lets go (holds forced true) fails here
    quiet = HOLD_OFF + 23  # a steady quiet, mid-batch when the sound starts
    frames = [SILENCE] * quiet + [_loud()] * 3 + [SILENCE] * 3
    got, left_after = asyncio.run(_through(frames, batched=True))
    assert left_after[0] < HOLD_OFF + 1  # the first second of quiet left frame by frame
    # the sound's first frame (index quiet) woke the reader before the next frame came
    assert quiet in left_after
    onset = left_after.index(quiet)
    level = np.abs(np.frombuffer(b"".join(got[: onset + 1]), "<i2")).max()
    assert level > 1000  # and what left then carried the start of the sound
    # and what waited before it left with it
    assert len(got[onset]) > 2 * FRAMES


def test_a_barge_in_leaves_frame_by_frame_while_an_answer_is_in_progress():
    # mutation checked: WireInput clearing the batcher's answering flag before deciding fails here
    frames = [SILENCE] * (HOLD_OFF + 10) + [_loud()] * 60
    _, left_after = asyncio.run(_through(frames, batched=True, answering=True))
    # past the sound's first half second (which leaves frame by frame in any case)
    late = range(HOLD_OFF + 10 + 26, HOLD_OFF + 70)
    # every frame wakes the reader at once (soxr emits in bursts: at least every other frame)
    assert sum(1 for i in late if i in left_after) >= len(late) // 2
    _, steady = asyncio.run(_through(frames, batched=True, answering=False))
    assert sum(1 for i in late if i in steady) <= len(late) // 4  # without an answer it is batched


def test_a_frame_of_another_length_leaves_at_once():
    frames = [SILENCE] * (HOLD_OFF + 12) + [SILENCE[:80]] + [SILENCE] * 2
    _, left_after = asyncio.run(_through(frames, batched=True))
    assert HOLD_OFF + 12 in left_after


@pytest.mark.parametrize("batched", [True, False])
def test_the_end_of_the_call_hands_on_what_waited(batched):
    frames = [SILENCE] * (HOLD_OFF + 13)
    got, _ = asyncio.run(_through(frames, batched=batched))
    assert len(b"".join(got)) == len(frames) * 3 * 2 * WIRE_FRAME
