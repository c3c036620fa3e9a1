"""PCM helpers, resampling, the playback queue, the null backend and the echo reference."""

import asyncio
import base64
import warnings

import numpy as np
import pytest
from g711_reference import G711_FULL_SCALE, G711_REFERENCE, NOT_ENCODED

from voicepipe.audio.echo import EchoReference
from voicepipe.audio.null import NullInput, NullOutput
from voicepipe.audio.pcm import (
    LazyPCM,
    Rechunker,
    base64_length,
    g711_decode,
    g711_encode,
    input_rate,
    interleave,
    output_rate,
    pcm_bytes,
)
from voicepipe.audio.playback import MAX_ITEMS, PlaybackQueue
from voicepipe.audio.resample import StreamResampler, resample


def tone(seconds, rate, freq=1000.0, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")


def peak_hz(samples, rate):
    x = samples.astype(np.float64)
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.abs(np.fft.rfft(x * np.hanning(len(x)))).argmax()])


# -- formats and rates ------------------------------------------------------------------------------


def test_rates_follow_the_effective_session():
    assert output_rate({}) == 24000
    assert output_rate({"output_audio_format": "pcm16"}) == 24000
    assert output_rate({"output_audio_format": "pcm16_16000hz"}) == 16000
    assert output_rate({"output_audio_format": "pcm16-8000hz"}) == 8000  # the legacy spelling
    assert output_rate({"output_audio_format": "g711_ulaw"}) == 8000
    assert input_rate({}) == 24000
    assert input_rate({"input_audio_sampling_rate": 16000}) == 16000
    assert input_rate({"input_audio_format": "g711_alaw", "input_audio_sampling_rate": 24000}) == 8000


def test_rechunker_cuts_exact_chunks_and_keeps_the_rest():
    r = Rechunker(4)
    assert list(r.feed(b"abcd")) == [b"abcd"]
    assert list(r.feed(b"ef")) == []
    assert list(r.feed(b"ghijklm")) == [b"efgh", b"ijkl"]
    assert r.rest() == b"m"
    assert r.rest() is None


def test_interleave_puts_the_microphone_on_channel_0():
    left = np.array([1, 2, 3], "<i2").tobytes()
    right = np.array([-1, -2, -3], "<i2").tobytes()
    stereo = np.frombuffer(interleave(left, right), "<i2").reshape(-1, 2)
    assert stereo[:, 0].tolist() == [1, 2, 3] and stereo[:, 1].tolist() == [-1, -2, -3]


@pytest.mark.parametrize("fmt", sorted(G711_REFERENCE))
def test_g711_codes_decode_and_encode_as_the_standard_tables_say(fmt):
    for code, sample in G711_REFERENCE[fmt]:
        pcm = np.array([sample], "<i2").tobytes()
        assert g711_decode(bytes([code]), fmt) == pcm, (fmt, hex(code), sample)
        if code not in NOT_ENCODED:
            assert g711_encode(pcm, fmt) == bytes([code]), (fmt, sample, hex(code))
    extremes = np.array([32767, -32768], "<i2").tobytes()
    assert g711_encode(extremes, fmt) == G711_FULL_SCALE[fmt]


@pytest.mark.parametrize("fmt, reference", [("g711_ulaw", "ulaw2lin"), ("g711_alaw", "alaw2lin")])
def test_g711_decoding_matches_audioop_where_python_still_has_it(fmt, reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert g711_decode(codes, fmt) == getattr(audioop, reference)(codes, 2)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_round_trip_keeps_the_signal(fmt):
    signal = tone(0.1, 8000, 440.0)
    back = np.frombuffer(g711_decode(g711_encode(signal.tobytes(), fmt), fmt), "<i2").astype(np.int32)
    error = np.abs(back - signal.astype(np.int32))
    assert len(back) == len(signal)
    assert (error <= np.maximum(np.abs(signal.astype(np.int32)) // 16, 16)).all()  # within one step


# -- resampling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_in, rate_out", [(24000, 48000), (44100, 24000), (24000, 16000)])
def test_stream_resampler_keeps_length_and_frequency(rate_in, rate_out):
    signal = tone(1.0, rate_in)
    r = StreamResampler(rate_in, rate_out)
    chunk = rate_in // 50
    out = b"".join(r.process(signal[i : i + chunk].tobytes()) for i in range(0, len(signal), chunk)) + r.flush()
    samples = np.frombuffer(out, "<i2")
    assert abs(len(samples) - rate_out) <= 2
    assert abs(peak_hz(samples, rate_out) - 1000.0) < 3


def test_stream_resampler_starts_afresh_after_a_flush():
    r = StreamResampler(24000, 48000)
    first = r.process(tone(0.1, 24000).tobytes()) + r.flush()
    second = r.process(tone(0.1, 24000).tobytes()) + r.flush()
    assert len(first) == len(second) == 0.1 * 48000 * 2


def test_resample_whole_signal():
    out = resample(tone(0.5, 44100), 44100, 24000)
    assert out.dtype == np.int16 and abs(len(out) - 12000) <= 1
    assert abs(peak_hz(out, 24000) - 1000.0) < 3
    same = tone(0.1, 24000)
    assert resample(same, 24000, 24000) is same


# -- the playback queue -----------------------------------------------------------------------------


def frames(n, value):
    return np.full(n, value, "<i2").tobytes()


def test_queue_counts_played_frames_per_item_and_pads_with_silence():
    q = PlaybackQueue(1000)
    q.write(frames(30, 1), "a")
    q.write(frames(20, 2), "b")
    pcm, milestones = q.take(40, started_at=10.0)
    assert np.frombuffer(pcm, "<i2").tolist() == [1] * 30 + [2] * 10
    assert milestones == [("started", "a"), ("finished", "a"), ("started", "b")]
    assert q.played_ms("a") == 30 and q.played_ms("b") == 10
    assert q.playback("a").finished_at == pytest.approx(10.030)
    assert q.playback("b").started_at == pytest.approx(10.030)
    pcm, milestones = q.take(20, started_at=10.04)
    assert np.frombuffer(pcm, "<i2").tolist() == [2] * 10 + [0] * 10
    assert milestones == [("finished", "b")]
    assert q.played_ms("b") == 20 and q.queued_frames == 0


def test_a_take_of_exactly_one_write_hands_on_its_bytes_without_a_copy():
    q = PlaybackQueue(1000)
    pcm = frames(30, 1)
    q.write(pcm, "a")
    taken, milestones = q.take(30, started_at=0.0)
    assert taken is pcm
    assert milestones == [("started", "a"), ("finished", "a")]
    mutable = bytearray(frames(10, 2))
    q.write(mutable, "a")
    mutable[:2] = b"\x00\x00"  # the writer's buffer changing later does not change what is queued
    taken, _ = q.take(10, started_at=0.03)
    assert type(taken) is bytes and np.frombuffer(taken, "<i2").tolist() == [2] * 10


def test_play_through_counts_and_reports_as_a_write_then_a_take_of_it():
    queued, direct = PlaybackQueue(1000), PlaybackQueue(1000)
    writes = [(frames(30, 1), "a", 0.0), (frames(20, 2) + b"\x07", "a", 0.03), (b"", "a", 0.05), (frames(10, 3), "b", 0.05)]
    for pcm, item_id, at in writes:
        queued.write(pcm, item_id)
        expected = queued.take(queued.queued_frames, at)
        assert direct.play_through(pcm, item_id, at) == expected
    for item_id in ("a", "b"):
        assert direct.playback(item_id) == queued.playback(item_id)
    assert direct.playback("a").finished_at == pytest.approx(0.05)
    direct.write(frames(5, 1), "c")
    with pytest.raises(RuntimeError):
        direct.play_through(frames(5, 1), "c", 0.1)  # audio is queued: it must play first


def test_clear_returns_the_head_item_and_drops_the_rest():
    q = PlaybackQueue(1000)
    q.write(frames(30, 1), "a")
    q.write(frames(30, 2), "b")
    q.take(10, 0.0)
    state = q.clear()
    assert state.item_id == "a" and state.played_ms == 10 and state.written_ms == 30
    assert q.queued_frames == 0
    pcm, milestones = q.take(10, 0.01)
    assert pcm == bytes(20) and milestones == []
    assert q.clear() is None


def test_clear_with_a_fade_ramps_down_without_counting_it_as_played():
    q = PlaybackQueue(1000)
    q.write(frames(100, 10000), "a")
    q.take(10, 0.0)
    q.clear(fade_frames=5)
    pcm, _ = q.take(10, 0.01)
    samples = np.frombuffer(pcm, "<i2")
    assert samples[0] == 10000 and (np.diff(samples[:5]) < 0).all() and (samples[5:] == 0).all()
    assert q.played_ms("a") == 10


def test_an_item_not_yet_reached_is_cleared_with_nothing_played():
    q = PlaybackQueue(1000)
    q.write(frames(30, 1), "a")
    state = q.clear()
    assert state.item_id == "a" and state.played_ms == 0 and state.started_at is None


def test_frames_to_next_boundary():
    q = PlaybackQueue(1000)
    assert q.frames_to_next_boundary() == 0
    q.write(frames(30, 1), "a")
    q.write(frames(10, 1), "a")
    q.write(frames(30, 2), "b")
    q.take(5, 0.0)
    assert q.frames_to_next_boundary() == 35


# -- the null backend -------------------------------------------------------------------------------


def test_null_input_yields_silence_until_closed():
    source = NullInput({})

    async def run():
        await source.open(16000, 320)
        chunks = []
        async for chunk in source:
            chunks.append(chunk)
            if len(chunks) == 5:
                await source.close()
        return chunks

    chunks = asyncio.run(asyncio.wait_for(run(), 10))
    assert chunks == [bytes(640)] * 5


def test_null_input_paces_chunks_by_deadline_and_close_ends_a_wait_at_once():
    source = NullInput({})
    clock = [100.0]
    source.clock = lambda: clock[0]
    slept = []

    class Alarm:
        async def sleep(self, delay):
            slept.append(round(delay, 6))
            clock[0] += delay + 0.005  # woken a little late: the next deadline takes it back

        def ring(self):
            pass

    async def run():
        await source.open(1000, 20)  # 20 ms chunks
        source._alarm = Alarm()
        chunks = []
        async for chunk in source:
            chunks.append(chunk)
            if len(chunks) == 4:
                break
        return chunks

    assert len(asyncio.run(run())) == 4
    assert slept == [0.02, 0.015, 0.015, 0.015]

    real = NullInput({})

    async def close_while_waiting():
        await real.open(1, 3600)  # one chunk an hour
        reading = asyncio.ensure_future(_collect(real))
        while real._alarm._waiter is None:
            await asyncio.sleep(0)
        await real.close()
        return await reading

    assert asyncio.run(asyncio.wait_for(close_while_waiting(), 10)) == []  # not an hour later


async def _collect(source):
    return [chunk async for chunk in source]


def test_null_output_delivers_milestones_after_the_call_that_caused_them_in_one_go():
    out = NullOutput({"realtime": False})
    delivered = []

    async def run():
        await out.open(1000)
        out.on_playback = lambda kind, item_id: delivered.append((kind, item_id))
        out.write(frames(10, 1), "a")
        out.write(frames(10, 1), "a")
        out.write(frames(10, 1), "b")
        assert delivered == []  # never from inside write()
        await asyncio.sleep(0)
        first = list(delivered)
        out.write(frames(10, 1), "b")
        await asyncio.sleep(0)
        return first

    first = asyncio.run(run())
    # a repeated "finished" in a row says nothing new and is delivered once
    assert first == [("started", "a"), ("finished", "a"), ("started", "b"), ("finished", "b")]
    assert delivered == first + [("finished", "b")]


def test_null_output_keeps_a_real_time_clock():
    clock = [0.0]
    out = NullOutput({})
    out.clock = lambda: clock[0]

    async def run():
        await out.open(8000)
        out.write(frames(800, 5), "a")  # 100 ms
        clock[0] = 0.04
        assert out.played_ms("a") == pytest.approx(40.0)
        state = out.clear()
        clock[0] = 1.0
        assert out.played_ms("a") == pytest.approx(40.0)
        await out.close()
        return state

    state = asyncio.run(run())
    assert state.item_id == "a" and state.played_ms == pytest.approx(40.0)


def test_null_output_drain_returns_once_played():
    out = NullOutput({})

    async def run():
        await out.open(8000)
        out.write(frames(400, 5), "a")  # 50 ms
        await out.drain()
        played = out.played_ms("a")
        await out.close()
        return played

    assert asyncio.run(asyncio.wait_for(run(), 10)) == pytest.approx(50.0)


# -- the echo reference -----------------------------------------------------------------------------


def test_echo_reference_returns_what_played_at_the_capture_time():
    ref = EchoReference(1000)
    ref.played(frames(10, 1), 1000, 5.000)
    ref.played(frames(10, 2), 1000, 5.010)
    window = np.frombuffer(ref.window(5.005, 10), "<i2").tolist()
    assert window == [1] * 5 + [2] * 5
    before = np.frombuffer(ref.window(4.995, 10), "<i2").tolist()
    assert before == [0] * 5 + [1] * 5  # nothing played before 5.000
    after = np.frombuffer(ref.window(5.015, 10), "<i2").tolist()
    assert after == [2] * 5 + [0] * 5


def test_echo_reference_fills_a_real_gap_and_ignores_callback_jitter():
    ref = EchoReference(1000)
    ref.played(frames(10, 1), 1000, 1.000)
    ref.played(frames(10, 2), 1000, 1.012)  # 2 ms late: jitter, stays contiguous
    ref.played(frames(10, 3), 1000, 1.100)  # 80 ms later: a real gap
    assert np.frombuffer(ref.window(1.010, 10), "<i2").tolist() == [2] * 10
    assert np.frombuffer(ref.window(1.100, 10), "<i2").tolist() == [3] * 10
    assert np.frombuffer(ref.window(1.050, 10), "<i2").tolist() == [0] * 10


def test_echo_reference_resamples_a_device_rate():
    ref = EchoReference(16000)
    signal = tone(0.5, 48000)
    for i in range(0, len(signal), 960):
        ref.played(signal[i : i + 960].tobytes(), 48000, 2.0 + i / 48000)
    window = np.frombuffer(ref.window(2.2, 3200), "<i2")
    assert abs(peak_hz(window, 16000) - 1000.0) < 10


# -- audio left in its base64 text ------------------------------------------------------------------


def lazy(pcm: bytes) -> LazyPCM:
    return LazyPCM(base64.b64encode(pcm).decode("ascii"))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 4800])
def test_base64_length_is_the_decoded_length_without_decoding(size):
    text = base64.b64encode(bytes(range(256)) * 20)[: ((size + 2) // 3) * 4].decode()
    assert base64_length(text) == len(base64.b64decode(text))


@pytest.mark.parametrize("text", ["QQ", "Q===", "QQ=A", "\u00e9\u00e9\u00e9\u00e9", "QUJD=", "===="])
def test_base64_length_refuses_what_cannot_be_base64(text):
    assert base64_length(text) is None
    assert LazyPCM.of(text) is None
    with pytest.raises(ValueError):
        LazyPCM(text)


def test_lazy_pcm_knows_its_length_and_decodes_only_when_asked():
    pcm = frames(300, 7)
    payload = lazy(pcm)
    assert len(payload) == 600 and not payload.decoded
    assert bytes(payload) == pcm and payload.decoded
    assert bytes(payload) is bytes(payload)  # decoded once
    assert pcm_bytes(payload) == pcm and pcm_bytes(pcm) is pcm
    part = lazy(pcm + b"\x01").cut(600)
    assert len(part) == 600 and bytes(part) == pcm


def test_lazy_pcm_plays_what_was_counted_even_for_text_outside_the_alphabet():
    # the length check passes (8 ASCII characters, no "=" inside), the decoder drops the "!"s
    odd = LazyPCM("QUJD!!!!")
    assert len(odd) == 6 and bytes(odd) == b"ABC\x00\x00\x00"
    broken = LazyPCM("A!==")  # not decodable at all: silence of the counted length
    assert len(broken) == 1 and bytes(broken) == b"\x00"


def test_the_queue_keeps_lazy_audio_undecoded_until_its_bytes_are_taken():
    q = PlaybackQueue(1000)
    first, second = lazy(frames(30, 1)), lazy(frames(20, 2) + b"\x09")  # an odd byte is cut off
    q.write(first, "a")
    q.write(second, "b")
    assert q.queued_frames == 50 and not first.decoded and not second.decoded
    pcm, milestones = q.take(10, started_at=0.0, audio=False)  # an output that keeps no audio
    assert pcm == b"" and milestones == [("started", "a")] and not first.decoded
    pcm, milestones = q.take(30, started_at=0.01)
    assert np.frombuffer(pcm, "<i2").tolist() == [1] * 20 + [2] * 10
    assert milestones == [("finished", "a"), ("started", "b")]
    pcm, _ = q.take(20, started_at=0.04)
    assert np.frombuffer(pcm, "<i2").tolist() == [2] * 10 + [0] * 10
    assert q.played_ms("a") == 30 and q.played_ms("b") == 20


def test_play_through_counts_lazy_audio_as_it_counts_bytes():
    queued, direct = PlaybackQueue(1000), PlaybackQueue(1000)
    for pcm, item_id, at in [(frames(30, 1), "a", 0.0), (frames(20, 2) + b"\x07", "a", 0.03), (frames(10, 3), "b", 0.05)]:
        queued.write(pcm, item_id)
        expected_pcm, expected_milestones = queued.take(queued.queued_frames, at)
        played, milestones = direct.play_through(lazy(pcm), item_id, at)
        assert type(played) is LazyPCM and not played.decoded
        assert milestones == expected_milestones and bytes(played) == expected_pcm
    for item_id in ("a", "b"):
        assert direct.playback(item_id) == queued.playback(item_id)


@pytest.mark.parametrize("realtime", [False, True])
def test_the_null_output_counts_lazy_audio_without_decoding_it(realtime):
    clock = [0.0]
    out = NullOutput({"realtime": realtime})
    out.clock = lambda: clock[0]
    payloads = [lazy(frames(80, 5)) for _ in range(3)]  # 10 ms each at 8 kHz

    async def run():
        await out.open(8000)
        for payload in payloads:
            out.write(payload, "a")
        clock[0] = 1.0
        played = out.played_ms("a")
        await out.close()
        return played

    assert out.accepts_lazy_pcm
    assert asyncio.run(run()) == pytest.approx(30.0)
    assert not any(payload.decoded for payload in payloads)


def test_the_null_output_decodes_lazy_audio_for_an_echo_reference():
    out = NullOutput({"realtime": False})
    heard = []
    out.on_played = lambda pcm, rate, at: heard.append(pcm)

    async def run():
        await out.open(1000)
        out.write(lazy(frames(10, 4)), "a")
        await out.close()

    asyncio.run(run())
    assert heard == [frames(10, 4)]


def test_a_wav_output_gets_bytes_and_writes_lazy_audio_decoded(tmp_path):
    from voicepipe.audio.wav import WavOutput

    out = WavOutput({"file": str(tmp_path / "out.wav"), "realtime": False})

    async def run():
        await out.open(1000)
        out.write(lazy(frames(10, 4)), "a")
        await out.close()

    asyncio.run(run())
    import wave

    with wave.open(str(tmp_path / "out.wav")) as wav:
        assert wav.readframes(100) == frames(10, 4)



@pytest.mark.parametrize("items, taken", [(MAX_ITEMS + 1, 0), (2 * MAX_ITEMS, 0), (MAX_ITEMS + 40, 5)])
def test_items_still_queued_are_never_forgotten(items, taken):
    q = PlaybackQueue(1000)
    for n in range(items):
        q.write(bytes(20), f"item{n}")  # 10 frames each, none played yet
    q.take(10 * taken, started_at=0.0)  # the first `taken` items played out
    head = q.clear()  # a barge-in with more items queued than are remembered
    assert head is not None and head.item_id == f"item{taken}" and head.played_ms == 0
    assert q.playback(f"item{items - 1}").written_ms == 10
    for n in range(items):
        q.write(bytes(20), f"later{n}")  # once nothing is queued, old items make room again
    assert q.playback("item0") is None


def test_played_items_are_forgotten_first_and_queued_accounting_survives_a_clear():
    q = PlaybackQueue(1000)
    for n in range(MAX_ITEMS + 5):
        q.write(bytes(20), f"item{n}")
        q.take(10, started_at=float(n))
    q.write(bytes(20), "queued")
    assert q.playback("item0") is None and q.playback(f"item{MAX_ITEMS + 4}") is not None
    assert q.clear().item_id == "queued"
    q.write(bytes(20), "queued")
    _, milestones = q.take(10, started_at=0.0)
    assert milestones == [("started", "queued")] and q.played_ms("queued") == 10


@pytest.mark.parametrize("chunks, chunk_frames", [(30, 100), (7, 1000), (1, 5000)])
def test_the_playback_queue_holds_at_most_its_limit(chunks, chunk_frames, caplog):
    q = PlaybackQueue(1000, max_queued_s=2.0)  # 2000 frames
    for _ in range(chunks):
        q.write(bytes(chunk_frames * 2), "flood")
    total = chunks * chunk_frames
    assert q.queued_frames == min(total, 2000)
    assert q.dropped_frames == max(total - 2000, 0)
    assert q.playback("flood").written_ms == min(total, 2000)  # dropped audio was never written
    assert len([r for r in caplog.records if "playback queue full" in r.getMessage()]) == 1
    _, milestones = q.take(2000, started_at=0.0)
    assert milestones == [("started", "flood"), ("finished", "flood")]
