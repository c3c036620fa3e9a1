"""The wav backend: reading and converting input files, pacing, and the played-timeline output."""

import asyncio
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from voicepipe.audio.pcm import frames_for_ms
from voicepipe.audio.wav import WavInput, WavOutput
from voicepipe.errors import UsageError

RATE = 24000


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def write_riff(path: Path, fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, extensible: bool = False) -> Path:
    block = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", fmt_tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # an unrelated chunk to skip
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def pcm16(signal: np.ndarray) -> bytes:
    return np.clip(np.round(signal * 32767), -32768, 32767).astype("<i2").tobytes()


def read_all(source: WavInput, rate: int = RATE, chunk_ms: float = 20) -> list[bytes]:
    async def run():
        await source.open(rate, frames_for_ms(chunk_ms, rate))
        chunks = [chunk async for chunk in source]
        await source.close()
        return chunks

    return asyncio.run(asyncio.wait_for(run(), 30))


def peak_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


# -- input ------------------------------------------------------------------------------------------


def test_pcm16_mono_at_the_session_rate_is_passed_through_in_exact_chunks(tmp_path):
    data = pcm16(tone(0.25, RATE))
    path = write_riff(tmp_path / "q.wav", 1, 1, RATE, 16, data)
    chunks = read_all(WavInput({"file": str(path), "realtime": False}))
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks[:-1]] == [960] * (len(chunks) - 1)  # 20 ms at 24 kHz
    assert 0 < len(chunks[-1]) <= 960


def test_trailing_silence_is_appended(tmp_path):
    data = pcm16(tone(0.1, RATE))
    path = write_riff(tmp_path / "q.wav", 1, 1, RATE, 16, data)
    chunks = read_all(WavInput({"file": str(path), "realtime": False, "trailing_silence_ms": 250}))
    audio = b"".join(chunks)
    assert audio[: len(data)] == data
    tail = audio[len(data) :]
    assert len(tail) == frames_for_ms(250, RATE) * 2
    assert tail == bytes(len(tail))


@pytest.mark.parametrize(
    "label, fmt_tag, bits, encode, extensible",
    [
        ("24-bit stereo 44.1 kHz", 1, 24, "int24", False),
        ("8-bit unsigned", 1, 8, "uint8", False),
        ("32-bit float", 3, 32, "float32", False),
        ("32-bit int, extensible header", 1, 32, "int32", True),
    ],
)
def test_other_formats_are_converted_to_session_pcm16_mono(tmp_path, label, fmt_tag, bits, encode, extensible, caplog):
    rate_in, channels = 44100, 2
    left = tone(0.5, rate_in, 1000.0, 0.4)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    if encode == "int24":
        ints = np.round(stereo * (2**23 - 1)).astype(np.int32)
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    elif encode == "uint8":
        data = np.round(stereo * 127 + 128).astype(np.uint8).tobytes()
    elif encode == "float32":
        data = stereo.astype("<f4").tobytes()
    else:
        data = np.round(stereo * (2**31 - 1)).astype("<i4").tobytes()
    path = write_riff(tmp_path / "in.wav", fmt_tag, channels, rate_in, bits, data, extensible=extensible)
    with caplog.at_level("INFO", logger="voicepipe.audio"):
        chunks = read_all(WavInput({"file": str(path), "realtime": False}), rate=16000)
    samples = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert abs(len(samples) - 8000) <= 2  # 0.5 s at the session's 16 kHz
    assert abs(peak_hz(samples, 16000) - 1000.0) < 5
    assert 0.2 < np.abs(samples).max() / 32768 < 0.5  # the level survives the mix-down
    assert any("converting in.wav from 44100 Hz stereo" in r.getMessage() for r in caplog.records)


def test_mulaw_input_is_decoded(tmp_path):
    from voicepipe.audio.pcm import g711_encode

    signal = pcm16(tone(0.2, 8000, 400.0, 0.5))
    path = write_riff(tmp_path / "phone.wav", 7, 1, 8000, 8, g711_encode(signal, "g711_ulaw"))
    samples = np.frombuffer(b"".join(read_all(WavInput({"file": str(path), "realtime": False}), rate=8000)), "<i2")
    assert len(samples) == 1600
    assert abs(peak_hz(samples, 8000) - 400.0) < 10


def test_unreadable_encodings_say_how_to_convert(tmp_path):
    path = write_riff(tmp_path / "adpcm.wav", 2, 1, 8000, 4, b"\x00" * 100)  # MS ADPCM
    with pytest.raises(UsageError) as err:
        WavInput({"file": str(path)})
    message = str(err.value)
    assert "\n" not in message
    assert "audio.input: wav:" in message and "adpcm.wav" in message and "sox adpcm.wav -b 16" in message


def test_a_missing_file_is_one_line_naming_backend_file_and_fix(tmp_path):
    with pytest.raises(UsageError) as err:
        WavInput({"file": str(tmp_path / "nowhere.wav")})
    message = str(err.value)
    assert "\n" not in message
    assert "wav" in message and "nowhere.wav" in message and "audio.input.file" in message


def test_a_file_that_is_not_a_wav_is_reported(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all")
    with pytest.raises(UsageError, match="is not a WAV file"):
        WavInput({"file": str(path)})


def test_no_file_option_is_reported():
    with pytest.raises(UsageError, match=r"audio\.input\.file: the wav backend needs a file"):
        WavInput({})


def test_realtime_input_is_paced_like_a_microphone(tmp_path):
    data = pcm16(tone(0.2, RATE))
    path = write_riff(tmp_path / "q.wav", 1, 1, RATE, 16, data)
    source = WavInput({"file": str(path)})  # realtime by default
    assert source.realtime is True

    async def run():
        loop = asyncio.get_running_loop()
        await source.open(RATE, frames_for_ms(20, RATE))
        start = loop.time()
        times = []
        async for _ in source:
            times.append(loop.time() - start)
        return times

    times = asyncio.run(asyncio.wait_for(run(), 30))
    assert len(times) == 10
    # chunk k is only available once its last sample would have been captured
    for k, at in enumerate(times):
        assert at >= (k + 1) * 0.020 - 0.003, (k, at)


def test_realtime_false_does_not_wait_for_the_clock(tmp_path):
    data = pcm16(tone(60.0, 8000, 300.0))  # a minute of audio
    path = write_riff(tmp_path / "long.wav", 1, 1, 8000, 16, data)
    source = WavInput({"file": str(path), "realtime": False})
    frozen = FakeClock()
    source.clock = frozen  # pacing would never be satisfied on a frozen clock
    chunks = read_all(source, rate=8000)
    assert sum(len(c) for c in chunks) == len(data)


def test_closing_the_input_ends_the_iteration(tmp_path):
    path = write_riff(tmp_path / "q.wav", 1, 1, RATE, 16, pcm16(tone(10.0, RATE)))
    source = WavInput({"file": str(path)})

    async def run():
        await source.open(RATE, 480)
        got = 0
        async for _ in source:
            got += 1
            if got == 2:
                await source.close()
        return got

    assert asyncio.run(asyncio.wait_for(run(), 10)) == 2


# -- output -----------------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_output_is_written_on_the_played_timeline_with_gaps_and_a_cut_off(tmp_path):
    rate = 8000
    path = tmp_path / "out.wav"
    clock = FakeClock(50.0)
    out = WavOutput({"file": str(path)})
    out.clock = clock
    events = []
    out.on_playback = lambda kind, item: events.append((kind, item))
    a = np.full(800, 1000, dtype="<i2").tobytes()  # 100 ms
    b = np.full(1600, -2000, dtype="<i2").tobytes()  # 200 ms

    async def run():
        await out.open(rate)
        out.write(a, "item_A")
        clock.t = 50.05
        assert out.played_ms("item_A") == pytest.approx(50.0)
        clock.t = 50.2  # A ended at 0.1; 100 ms of silence follow
        await asyncio.sleep(0)
        out.write(b, "item_B")
        clock.t = 50.25
        cleared = out.clear()  # barge-in 50 ms into B
        assert cleared.item_id == "item_B"
        assert cleared.played_ms == pytest.approx(50.0) and cleared.written_ms == pytest.approx(200.0)
        clock.t = 50.4
        assert out.played_ms("item_B") == pytest.approx(50.0)  # the clock goes on, B does not
        await asyncio.sleep(0)
        await out.close()

    asyncio.run(run())
    file_rate, samples = read_wav(path)
    assert file_rate == rate
    assert len(samples) == int(0.4 * rate)
    assert (samples[:800] == 1000).all()
    assert (samples[800:1600] == 0).all()  # the gap between the answers
    assert (samples[1600:2000] == -2000).all()  # 50 ms of B ...
    assert (samples[2000:] == 0).all()  # ... then the cut
    assert events == [("started", "item_A"), ("finished", "item_A"), ("started", "item_B")]
    a_state, b_state = out.playback("item_A"), out.playback("item_B")
    assert a_state.started_at == pytest.approx(50.0) and a_state.finished_at == pytest.approx(50.1)
    assert b_state.started_at == pytest.approx(50.2) and b_state.finished_at is None


def test_output_file_is_valid_before_close(tmp_path):
    path = tmp_path / "out.wav"
    clock = FakeClock()
    out = WavOutput({"file": str(path)})
    out.clock = clock

    async def run():
        await out.open(RATE)
        out.write(pcm16(tone(0.1, RATE)), "item_A")
        clock.t += 0.06
        out.played_ms("item_A")  # the clock moves, the file grows
        _, samples = read_wav(path)  # as if the process were killed now
        assert len(samples) == frames_for_ms(60, RATE)
        await out.close()

    asyncio.run(run())


def test_realtime_false_output_plays_each_write_at_once(tmp_path):
    path = tmp_path / "out.wav"
    out = WavOutput({"file": str(path), "realtime": False})
    data = pcm16(tone(0.3, RATE))

    async def run():
        await out.open(RATE)
        out.write(data[:4800], "item_A")
        assert out.played_ms("item_A") == pytest.approx(100.0)
        out.write(data[4800:], "item_A")
        assert out.clear() is None  # nothing is ever waiting
        await out.drain()
        await out.close()
        await out.close()  # idempotent

    asyncio.run(asyncio.wait_for(run(), 10))
    _, samples = read_wav(path)
    assert samples.tobytes() == data


def test_output_file_in_an_unwritable_place_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = WavOutput({"file": str(blocker / "out.wav")})
    with pytest.raises(UsageError, match=r"audio\.output: wav: cannot write"):
        asyncio.run(out.open(RATE))


def test_drain_waits_until_everything_has_played(tmp_path):
    out = WavOutput({"file": str(tmp_path / "out.wav")})

    async def run():
        await out.open(RATE)
        out.write(pcm16(tone(0.15, RATE)), "item_A")
        await out.drain()
        played = out.played_ms("item_A")
        await out.close()
        return played

    assert asyncio.run(asyncio.wait_for(run(), 10)) == pytest.approx(150.0)
