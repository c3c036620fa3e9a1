"""The emulator's voice: deterministic, audible, as long as the text, chunked for streaming."""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pytest
from g711_reference import G711_FULL_SCALE, G711_REFERENCE, NOT_ENCODED

from voicepipe.emulator.formats import decode_input, encode_output
from voicepipe.emulator.vad import EnergyVad
from voicepipe.emulator.voice import CHUNK_MS, split_pieces, spoken, synthesize


def rms_dbfs(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / 32768)


def test_deterministic_and_audible():
    first = synthesize("Hello there, how are you?")
    second = synthesize("Hello there, how are you?")
    assert np.array_equal(first.samples, second.samples)
    assert rms_dbfs(first.samples) > -25
    assert np.max(np.abs(first.samples)) < 32767  # no clipping
    other = synthesize("Something else entirely.")
    assert not np.array_equal(first.samples[: len(other.samples)], other.samples[: len(first.samples)])


def test_length_follows_the_text():
    short = synthesize("Yes.").duration_ms
    medium = synthesize("Yes, the lake is very large.").duration_ms
    long = synthesize("Yes, the lake is very large, and it is also very deep, and very cold in winter.").duration_ms
    assert 150 < short < medium < long
    assert 2.0 < long / medium < 4.0  # roughly proportional to the number of words (17 vs 6)
    words_per_minute = 17 / (long / 60000)
    assert 100 < words_per_minute < 260  # like a person talking


def test_voiced_like_speech_not_a_single_tone():
    samples = synthesize("a e i o u").samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / 24000)
    energy_low = spectrum[(freqs > 80) & (freqs < 300)].sum()  # the pitch region
    energy_formants = spectrum[(freqs > 300) & (freqs < 3500)].sum()
    energy_high = spectrum[freqs > 6000].sum()
    assert energy_low > 0 and energy_formants > energy_high * 5


def test_pieces_rebuild_the_text():
    for text in ("Hello, world!", "  leading and trailing  ", "one", "", "¿Qué tal?"):
        assert "".join(split_pieces(text)) == text
    speech = synthesize("Hello big world.")
    assert speech.pieces == ("Hello", " big", " world.")
    assert speech.starts_ms[0] == 0 and list(speech.starts_ms) == sorted(speech.starts_ms)


def test_spoken_chunks_carry_transcript_and_audio():
    text = "The Caspian Sea is the largest lake in the world."
    answer = spoken(text)
    assert answer is spoken(text)  # cached: base64 is computed once per text
    assert "".join(p for step in answer.steps for p in step.transcript) == text
    pcm = b"".join(base64.b64decode(step.audio_b64) for step in answer.steps)
    assert np.array_equal(np.frombuffer(pcm, dtype="<i2"), synthesize(text).samples)
    assert all(step.duration_ms == CHUNK_MS for step in answer.steps[:-1])
    assert answer.transcript_until(0) == ""
    assert answer.transcript_until(answer.duration_ms) == text
    half = answer.transcript_until(answer.duration_ms / 2)
    assert text.startswith(half) and 0 < len(half) < len(text)


def test_synthesized_speech_is_detected_as_one_turn():
    speech = synthesize("What is the largest lake in the world?").samples
    audio = np.concatenate([np.zeros(12000, np.int16), speech, np.zeros(24000, np.int16)])
    events = EnergyVad(24000, threshold=0.5, prefix_padding_ms=0, silence_duration_ms=500).feed(audio)
    assert [e.kind for e in events] == ["start", "stop"]
    assert abs(events[0].ms - 500) <= 30


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_round_trip(fmt: str):
    samples = synthesize("testing the telephone", 8000).samples
    decoded = decode_input(encode_output(samples, fmt), fmt).astype(np.float64)
    error = decoded - samples
    snr = 10 * np.log10(np.sum(samples.astype(np.float64) ** 2) / np.sum(error**2))
    assert snr > 25  # G.711 keeps about 38 dB on speech


@pytest.mark.parametrize("fmt", sorted(G711_REFERENCE))
def test_g711_codes_decode_and_encode_as_the_standard_tables_say(fmt: str):
    for code, sample in G711_REFERENCE[fmt]:
        assert decode_input(bytes([code]), fmt).tolist() == [sample], (fmt, hex(code), sample)
        if code not in NOT_ENCODED:
            assert encode_output(np.array([sample], np.int16), fmt) == bytes([code]), (fmt, sample, hex(code))
    assert encode_output(np.array([32767, -32768], np.int16), fmt) == G711_FULL_SCALE[fmt]


def test_g711_output_chunks_are_one_byte_per_sample():
    answer = spoken("Hello.", "g711_ulaw")
    assert len(base64.b64decode(answer.steps[0].audio_b64)) == 8000 * CHUNK_MS // 1000


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is optional and not installed here")
def test_espeak_engine_when_installed():
    speech = synthesize("Hello world, this is a test.", 24000, engine="espeak")
    assert speech.rate == 24000 and speech.duration_ms > 800
    assert rms_dbfs(speech.samples) > -35
    assert "".join(speech.pieces) == "Hello world, this is a test."
