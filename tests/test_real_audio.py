"""Real audio through the pyaudio and sounddevice backends.

These need a sound server with a loopback: in CI, ``.ci/audio-ci.sh`` starts a private PulseAudio
whose default input is the monitor of its default output (a null sink), so what a backend plays
comes back through the input backend. PortAudio lists devices once, when it is first loaded, so the
server must be up before Python starts. Without devices these tests skip, except under the wrapper
(``REQUIRE_AUDIO=1``), where a missing device fails the run.
"""

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from voicepipe.audio import devices
from voicepipe.errors import UsageError

RATE = 24000
CHUNK_MS = 20
BACKENDS = ["pyaudio", "sounddevice"]


def _have_audio() -> bool:
    try:
        rows = devices.list_devices()
    except Exception:
        return False
    return any(r["is_default_input"] for r in rows) and any(r["is_default_output"] for r in rows)


requires_audio = pytest.mark.skipif(
    os.environ.get("REQUIRE_AUDIO") != "1" and not _have_audio(), reason="no audio input/output device"
)
pytestmark = [pytest.mark.audio, requires_audio]


def make(backend: str, direction: str, **options):
    from voicepipe.builtin.audio import voicepipe_audio_backend

    return voicepipe_audio_backend(backend, direction, {"device": "default", **options})


def tone(seconds: float, rate: int = RATE, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def loud_frames(samples: np.ndarray, rate: int, threshold: float = 0.1) -> np.ndarray:
    """Indexes of the 10 ms frames whose RMS is above ``threshold`` of full scale."""
    size = rate // 100
    x = samples[: len(samples) // size * size].astype(np.float64) / 32768
    rms = np.sqrt((x.reshape(-1, size) ** 2).mean(axis=1))
    return np.nonzero(rms > threshold)[0]


def peak_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64) / 32768
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.abs(np.fft.rfft(x * np.hanning(len(x)))).argmax()])


class Recorder:
    """Collects what an input backend yields, in a task."""

    def __init__(self, source):
        self.source = source
        self.chunks: list[bytes] = []
        self.task = None

    async def start(self, rate: int = RATE) -> "Recorder":
        await self.source.open(rate, rate * CHUNK_MS // 1000)
        self.task = asyncio.get_running_loop().create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for chunk in self.source:
            self.chunks.append(chunk)

    @property
    def recorded_ms(self) -> float:
        return sum(len(c) for c in self.chunks) / 2 / RATE * 1000

    async def wait_for_ms(self, ms: float, timeout: float = 10.0) -> None:
        """Wait until ``ms`` more milliseconds have been recorded."""
        target = self.recorded_ms + ms

        async def poll():
            while self.recorded_ms < target:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(poll(), timeout)

    async def stop(self) -> np.ndarray:
        await self.source.close()
        await asyncio.wait_for(self.task, 5)
        return np.frombuffer(b"".join(self.chunks), dtype="<i2")


async def wait_for(condition, timeout: float = 10.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tone_played_comes_back_through_the_input(backend):
    milestones = []

    async def scenario():
        out = make(backend, "output")
        out.on_playback = lambda kind, item: milestones.append((kind, item))
        recorder = await Recorder(make(backend, "input")).start()
        await out.open(RATE)
        try:
            await recorder.wait_for_ms(100)
            out.write(tone(1.0), "item_tone")
            await out.drain()
            await wait_for(lambda: ("finished", "item_tone") in milestones)
            played = out.played_ms("item_tone")
            await recorder.wait_for_ms(250)  # the device's buffer plays out into the recording
        finally:
            await out.close()
        return played, await recorder.stop()

    played, recording = run(scenario())
    assert played == pytest.approx(1000.0, abs=0.1)  # every frame handed to the device
    assert milestones == [("started", "item_tone"), ("finished", "item_tone")]
    assert abs(peak_hz(recording, RATE) - 440.0) < 5
    loud = loud_frames(recording, RATE)
    assert len(loud) and (loud[-1] - loud[0] + 1) * 10 >= 950, len(loud)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clear_stops_playback_and_the_played_counter(backend):
    async def scenario():
        out = make(backend, "output")
        recorder = await Recorder(make(backend, "input")).start()
        await out.open(RATE)
        try:
            await recorder.wait_for_ms(100)
            out.write(tone(3.0), "item_long")
            await wait_for(lambda: out.played_ms("item_long") >= 500)
            state = out.clear()
            await recorder.wait_for_ms(400)  # the device keeps running, on silence
            after = out.played_ms("item_long")
            playback = out.playback("item_long")
        finally:
            await out.close()
        return state, after, playback, await recorder.stop()

    state, after, playback, recording = run(scenario())
    assert state is not None and state.item_id == "item_long"
    assert 500 <= state.played_ms < 3000 and state.written_ms == pytest.approx(3000.0)
    assert after == state.played_ms  # the counter stays where the barge-in cut it
    assert playback.finished_at is None
    loud = loud_frames(recording, RATE)
    assert len(loud), "the tone never arrived"
    assert abs(peak_hz(recording[loud[0] * 240 : (loud[-1] + 1) * 240], RATE) - 440.0) < 5
    heard_ms = (loud[-1] - loud[0] + 1) * 10
    assert heard_ms < 2000, heard_ms  # cut well before the 3 s tone would have ended
    tail = recording[-RATE // 5 :]  # the last 200 ms: silence
    assert np.sqrt(np.mean((tail.astype(np.float64) / 32768) ** 2)) < 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_device_rate_other_than_the_session_rate_is_resampled(backend, monkeypatch):
    """Force the devices to 48 kHz (PulseAudio would take any rate): the output resamples 16 kHz
    session audio up, the input resamples 48 kHz capture down to the 16 kHz session rate."""
    import importlib

    module = importlib.import_module(f"voicepipe.audio.{backend}_backend")
    monkeypatch.setattr(module, "choose_rate", lambda session_rate, default, supports: 48000)
    session_rate = 16000

    async def scenario():
        out = make(backend, "output")
        source = make(backend, "input")
        await source.open(session_rate, session_rate * CHUNK_MS // 1000)
        chunks = []

        async def collect():
            async for chunk in source:
                chunks.append(chunk)

        task = asyncio.get_running_loop().create_task(collect())
        await out.open(session_rate)
        try:
            assert out.device_rate == 48000 and source.device_rate == 48000
            out.write(tone(1.0, session_rate, 440.0), "item_tone")
            await out.drain()
            played = out.played_ms("item_tone")
            await wait_for(lambda: len(chunks) * CHUNK_MS >= 1800)
        finally:
            await out.close()
            await source.close()
            await asyncio.wait_for(task, 5)
        return played, chunks

    played, chunks = run(scenario())
    assert {len(c) for c in chunks} == {session_rate * CHUNK_MS // 1000 * 2}  # exact session chunks
    recording = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert played == pytest.approx(1000.0, abs=2.0)
    assert abs(peak_hz(recording, session_rate) - 440.0) < 5
    loud = loud_frames(recording, session_rate)
    assert len(loud) and (loud[-1] - loud[0] + 1) * 10 >= 900, len(loud)


@pytest.mark.parametrize("backend", BACKENDS)
def test_devices_are_listed_with_defaults(backend):
    rows = devices.list_devices(backend)
    assert rows and all(r["backend"] == backend for r in rows)
    default_in = [r for r in rows if r["is_default_input"]]
    default_out = [r for r in rows if r["is_default_output"]]
    assert len(default_in) == 1 and default_in[0]["max_input_channels"] > 0
    assert len(default_out) == 1 and default_out[0]["max_output_channels"] > 0
    table = devices.format_devices(rows)
    assert table.splitlines()[0].split() == ["backend", "index", "name", "in", "out", "rate", "default"]
    assert default_out[0]["name"] in table


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_device_chosen_by_name_or_index_opens(backend):
    rows = devices.list_devices(backend)
    default_out = next(r for r in rows if r["is_default_output"])

    async def scenario():
        for spec in (default_out["name"].upper(), default_out["index"], str(default_out["index"])):
            out = make(backend, "output", device=spec)
            await out.open(RATE)
            assert out.device_name == default_out["name"]
            await out.close()

    run(scenario())


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_device_is_one_line_with_the_fix(backend):
    out = make(backend, "output", device="no such speaker")
    with pytest.raises(UsageError) as err:
        run(out.open(RATE))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"audio.output: {backend}: device 'no such speaker'")
    assert "voicepipe devices" in message
    source = make(backend, "input", device=9999)
    with pytest.raises(UsageError, match=rf"audio\.input: {backend}: device 9999: no device has this index"):
        run(source.open(RATE, 480))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_session_through_speaker_and_microphone_interrupts_itself(backend, voicepipe_run, tmp_path):
    """The profile of ``profiles/ava.yaml`` with this backend, against the emulator. The virtual
    microphone hears the speaker, so the greeting is interrupted by its own echo: a real barge-in,
    measured by the device's played counter."""
    import textwrap

    class Greeter:
        __name__ = "greeter"

        @staticmethod
        def voicepipe_event(event, ctx):
            if event.get("type") == "session.updated" and not ctx.stash.get("greeted"):
                ctx.stash["greeted"] = True
                ctx.send({"type": "response.create"})

    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("greeting: Hello there, and welcome to the voice assistant. How can I help you today?\n")
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        textwrap.dedent(
            f"""\
            extends: {Path(__file__).resolve().parent.parent / "profiles" / "ava.yaml"}
            connection:
              endpoint: emulator
              emulator: {{scenario: {scenario}, speed: 1}}
            audio:
              input: {{backend: {backend}, device: default}}
              output: {{backend: {backend}, device: default}}
            console: {{quiet: true}}
            metrics: {{table: false}}
            """
        )
    )
    result = voicepipe_run(profile, plugins=[Greeter()], duration=4.0, realtime=True)

    assert result.exit_code == 0 and result.reason == "duration"
    assert "error" not in result.server_types()
    assert "response.cancel" not in result.client_types()
    appends = [e for e in result.client_events if e["type"] == "input_audio_buffer.append"]
    assert len(appends) > 50  # the microphone streamed the whole time
    interrupted = [p for p in result.playback if p["type"] == "playback.interrupted"]
    assert interrupted, "the echo of the greeting never interrupted it"
    first = interrupted[0]
    assert 0 < first["played_ms"] <= first["generated_ms"]
    cut = next(e for e in result.client_events if e["type"] in ("conversation.item.truncate", "conversation.item.delete"))
    assert cut == {"type": "conversation.item.truncate", "item_id": first["item_id"], "content_index": 0,
                   "audio_end_ms": int(first["played_ms"])}
