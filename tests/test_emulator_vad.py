"""The energy voice detector honours threshold, prefix padding and silence duration."""

from __future__ import annotations

import numpy as np
import pytest

from voicepipe.emulator.vad import EnergyVad, VadEvent, speech_likelihood

RATE = 24000


def tone(ms: int, dbfs: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)  # sine RMS = amplitude / sqrt(2)
    return np.round(amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def feed_in_chunks(vad: EnergyVad, samples: np.ndarray, chunk: int = 977) -> list[VadEvent]:
    events: list[VadEvent] = []
    for start in range(0, len(samples), chunk):  # odd chunk sizes: frames straddle appends
        events += vad.feed(samples[start : start + chunk])
    return events


def test_likelihood_scale():
    assert speech_likelihood(np.array([0.0]))[0] == 0.0
    assert speech_likelihood(np.array([32768.0]))[0] == 1.0
    level = 32768 * 10 ** (-37.5 / 20)
    assert abs(speech_likelihood(np.array([level]))[0] - 0.5) < 1e-6


def test_start_and_stop_times_on_the_audio_timeline():
    vad = EnergyVad(RATE, threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    audio = np.concatenate([silence(1000), tone(1200, -20), silence(800)])
    assert feed_in_chunks(vad, audio) == [VadEvent("start", 700), VadEvent("stop", 2200)]
    assert vad.position_ms == 3000


def test_prefix_padding_never_goes_before_zero():
    vad = EnergyVad(RATE, prefix_padding_ms=300)
    assert vad.feed(np.concatenate([silence(100), tone(300, -20)]))[0] == VadEvent("start", 0)


def test_threshold_decides_what_counts_as_speech():
    quiet = np.concatenate([silence(200), tone(600, -45), silence(700)])
    sensitive = EnergyVad(RATE, threshold=0.3, prefix_padding_ms=0, silence_duration_ms=500)
    strict = EnergyVad(RATE, threshold=0.8, prefix_padding_ms=0, silence_duration_ms=500)
    assert [e.kind for e in sensitive.feed(quiet)] == ["start", "stop"]
    assert strict.feed(quiet) == []


def test_silence_duration_splits_or_joins_turns():
    audio = np.concatenate([tone(400, -20), silence(300), tone(400, -20), silence(1000)])
    short = EnergyVad(RATE, prefix_padding_ms=0, silence_duration_ms=200)
    long = EnergyVad(RATE, prefix_padding_ms=0, silence_duration_ms=500)
    assert short.feed(audio) == [
        VadEvent("start", 0),
        VadEvent("stop", 400),
        VadEvent("start", 700),
        VadEvent("stop", 1100),
    ]
    assert long.feed(audio) == [VadEvent("start", 0), VadEvent("stop", 1100)]


def test_short_clicks_are_not_speech():
    vad = EnergyVad(RATE, speech_duration_ms=80)
    audio = np.concatenate([silence(100), tone(50, -10), silence(600), tone(200, -20), silence(600)])
    events = vad.feed(audio)
    assert [e.kind for e in events] == ["start", "stop"]
    assert events[0].ms == 750 - 300  # the 200 ms tone at 750 ms, minus the padding


def test_reset_skip_and_memory_stay_small():
    vad = EnergyVad(16000, prefix_padding_ms=0)
    vad.feed(tone(300, -20, 16000))
    assert vad.speaking
    vad.reset()
    assert not vad.speaking
    vad.skip(16000 * 2 + 5)
    assert vad.position_ms == 2300
    for _ in range(200):  # a long stream keeps no audio beyond one partial frame
        vad.feed(silence(97, 16000))
    assert len(vad._pending) < vad.frame_samples
    resumed = EnergyVad(16000, timeline_ms=vad.position_ms, prefix_padding_ms=0)
    assert resumed.feed(tone(100, -20, 16000))[0].ms == vad.position_ms


@pytest.mark.parametrize("threshold", [0.01, 0.3, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("chunk", [480, 977])
def test_the_cheap_decision_is_the_formulas(threshold, chunk):
    """Frames are decided by their exact energy unless they are at the threshold itself; every
    decision is the one the float32 formula makes, including frames a hair either side of it."""
    from voicepipe.emulator.vad import energy_bounds, voiced_by_formula

    n = RATE // 100
    rng = np.random.default_rng(7)
    level = int(32768 * 10 ** ((-60 + 45 * threshold) / 20))
    frames = []
    for k in range(n + 1):  # RMS from `level` to `level + 1` in small steps, across the threshold
        frame = np.full(n, level, dtype=np.int16)
        frame[:k] += 1
        frames.append(frame * rng.choice(np.array([-1, 1], dtype=np.int16), n))
    for dbfs in rng.uniform(-80, 0, 200):  # and noise at any level, silence, full scale
        frames.append(np.clip(rng.normal(0, 32768 * 10 ** (dbfs / 20), n), -32768, 32767).astype(np.int16))
    frames += [np.zeros(n, dtype=np.int16), np.full(n, 32767, dtype=np.int16), np.full(n, -32768, dtype=np.int16)]
    order = rng.permutation(len(frames))
    frames = np.stack([frames[i] for i in order])

    decided = voiced_by_formula(frames, threshold).tolist()
    expected, previous = [], False
    for index, voiced in enumerate(decided):  # 10 ms to start, 10 ms to stop, no padding: every change
        if voiced and not previous:
            expected.append(VadEvent("start", index * 10))
        elif previous and not voiced:
            expected.append(VadEvent("stop", index * 10))
        previous = voiced
    vad = EnergyVad(RATE, threshold=threshold, prefix_padding_ms=0, silence_duration_ms=10, speech_duration_ms=10)
    assert feed_in_chunks(vad, frames.reshape(-1), chunk) == expected
    assert True in decided and False in decided

    low, high = energy_bounds(threshold, n)
    energy = (frames.astype(np.float64) ** 2).sum(axis=1)
    assert ((energy >= low) & (energy <= high)).any()  # some frames were left to the formula


def test_a_threshold_off_the_scale_is_decided_by_the_formula_alone():
    from voicepipe.emulator.vad import energy_bounds

    assert energy_bounds(0.0, 240) is None and energy_bounds(1.5, 240) is None
    assert energy_bounds(float("nan"), 240) is None
    everything = EnergyVad(RATE, threshold=0.0, prefix_padding_ms=0, speech_duration_ms=10)
    assert feed_in_chunks(everything, silence(100)) == [VadEvent("start", 0)]  # likelihood 0 >= 0
    nothing = EnergyVad(RATE, threshold=1.5, prefix_padding_ms=0, speech_duration_ms=10)
    assert feed_in_chunks(nothing, np.full(2400, 32767, dtype=np.int16)) == []
