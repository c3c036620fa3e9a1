"""The device backends without a sound card: device choice, PortAudio errors as one line, and the
callback logic (played counter, clear, resampling) driven through a stand-in PyAudio module."""

import asyncio
import builtins
import sys
import threading
import types

import numpy as np
import pytest

from voicepipe.audio import devices, errors
from voicepipe.audio.devicechoice import resolve_device
from voicepipe.audio.devices import format_devices
from voicepipe.errors import UsageError

ROWS = [
    {"backend": "pyaudio", "index": 0, "name": "HDA Intel PCH: ALC257 Analog (hw:0,0)", "max_input_channels": 2,
     "max_output_channels": 2, "default_samplerate": 48000.0, "is_default_input": False, "is_default_output": False},
    {"backend": "pyaudio", "index": 1, "name": "USB Headset", "max_input_channels": 1, "max_output_channels": 0,
     "default_samplerate": 16000.0, "is_default_input": False, "is_default_output": False},
    {"backend": "pyaudio", "index": 2, "name": "default", "max_input_channels": 32, "max_output_channels": 32,
     "default_samplerate": 44100.0, "is_default_input": True, "is_default_output": True},
]


# -- choosing a device ------------------------------------------------------------------------------


def test_default_index_and_name_choose_the_device():
    assert resolve_device(ROWS, "default", "output", "pyaudio")["index"] == 2
    assert resolve_device(ROWS, None, "input", "pyaudio")["index"] == 2
    assert resolve_device(ROWS, 0, "output", "pyaudio")["index"] == 0
    assert resolve_device(ROWS, "1", "input", "pyaudio")["index"] == 1
    assert resolve_device(ROWS, "usb", "input", "pyaudio")["index"] == 1  # part of the name, any case
    assert resolve_device(ROWS, "alc257", "output", "pyaudio")["index"] == 0


@pytest.mark.parametrize(
    "spec, direction, expected",
    [
        ("usb", "output", "audio.output: pyaudio: device 'usb': no output device name contains 'usb'"),
        (1, "output", "audio.output: pyaudio: device 1: 'USB Headset' has no output channels"),
        (7, "input", "audio.input: pyaudio: device 7: no device has this index"),
    ],
)
def test_a_device_that_does_not_fit_is_one_line_with_the_fix(spec, direction, expected):
    with pytest.raises(UsageError) as err:
        resolve_device(ROWS, spec, direction, "pyaudio")
    message = str(err.value)
    assert message.startswith(expected)
    assert "\n" not in message and "`voicepipe devices` lists them" in message


def test_no_default_device():
    rows = [dict(r, is_default_input=False, is_default_output=False) for r in ROWS]
    with pytest.raises(UsageError, match=r"audio\.input: sounddevice: default device: no default input device \(connect a microphone"):
        resolve_device(rows, "default", "input", "sounddevice")


def test_a_device_of_the_wrong_type_is_reported():
    with pytest.raises(UsageError, match=r"audio\.output\.device: expected 'default', a device index or part"):
        resolve_device(ROWS, [1], "output", "pyaudio")


def test_format_devices_is_a_table():
    table = format_devices(ROWS)
    lines = table.splitlines()
    assert lines[0].split() == ["backend", "index", "name", "in", "out", "rate", "default"]
    assert lines[3].split()[-1] == "in,out" and "44100" in lines[3]
    assert "USB Headset" in lines[2]
    assert format_devices([]).startswith("no audio devices found")


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(-9985, "Device unavailable"), "busy or unavailable (close the program using it"),
        (ValueError("Invalid sample rate", -9997), "does not support 16000 Hz"),
        (OSError(-9998, "Invalid number of channels"), "does not support mono 16-bit audio"),
        (OSError(-9996, "Invalid device"), "is not an output device"),
        (OSError("No Default Output Device Available"), "no default output device"),
        (OSError("Unanticipated host error"), "cannot be opened (Unanticipated host error)"),
    ],
)
def test_portaudio_errors_are_classified(exc, expected):
    message = str(errors.device_error("output", "pyaudio", "default", exc, rate=16000, index=3))
    assert message.startswith("audio.output: pyaudio: ") and expected in message
    assert "\n" not in message and "Traceback" not in message


# -- PortAudio missing ------------------------------------------------------------------------------


def _refuse_import(monkeypatch, name, exc):
    real_import = builtins.__import__

    def fake_import(module, *args, **kwargs):
        if module == name:
            raise exc
        return real_import(module, *args, **kwargs)

    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_portaudio_library_is_one_line(monkeypatch):
    _refuse_import(monkeypatch, "sounddevice", OSError("PortAudio library not found"))
    with pytest.raises(UsageError) as err:
        devices.list_devices("sounddevice")
    message = str(err.value)
    assert message == (
        "audio: sounddevice: cannot load PortAudio (PortAudio library not found); install PortAudio: "
        "apt-get install libportaudio2 (Debian/Ubuntu), brew install portaudio (macOS)"
    )


def test_missing_python_package_names_pip(monkeypatch):
    exc = ModuleNotFoundError("No module named 'pyaudio'", name="pyaudio")
    _refuse_import(monkeypatch, "pyaudio", exc)
    from voicepipe.audio.pyaudio_backend import PyAudioOutput

    with pytest.raises(UsageError, match=r"audio: pyaudio: cannot load PortAudio .*; pip install pyaudio$"):
        asyncio.run(PyAudioOutput({}).open(24000))


def test_listing_both_backends_keeps_the_one_that_works(monkeypatch):
    fake = FakePyAudio.module()
    monkeypatch.setitem(sys.modules, "pyaudio", fake)
    _refuse_import(monkeypatch, "sounddevice", OSError("PortAudio library not found"))
    rows = devices.list_devices()
    assert [r["backend"] for r in rows] == ["pyaudio", "pyaudio"]
    with pytest.raises(UsageError, match="unknown device backend 'alsa'"):
        devices.list_devices("alsa")


# -- the callback logic, through a stand-in PyAudio -------------------------------------------------


class FakeStream:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.callback = kwargs["stream_callback"]
        self.stopped = self.closed = False

    def get_output_latency(self):
        return 0.04

    def get_input_latency(self):
        return 0.03

    def stop_stream(self):
        self.stopped = True

    def close(self):
        self.closed = True


class FakePyAudio:
    """What the backends use of a ``pyaudio.PyAudio`` instance; the devices take only ``rates``."""

    rates = {44100, 48000}
    fail_open = None
    streams: list = []

    def __init__(self):
        self.terminated = False

    @classmethod
    def module(cls):
        module = types.ModuleType("pyaudio")
        module.paInt16, module.paContinue, module.paInputOverflow, module.paOutputUnderflow = 8, 0, 2, 4
        module.PyAudio = cls
        cls.streams = []
        return module

    def get_device_count(self):
        return 2

    def get_device_info_by_index(self, index):
        return [
            {"name": "Speakers (hw)", "maxInputChannels": 0, "maxOutputChannels": 2, "defaultSampleRate": 48000.0, "hostApi": 0},
            {"name": "Mic (hw)", "maxInputChannels": 1, "maxOutputChannels": 0, "defaultSampleRate": 48000.0, "hostApi": 0},
        ][index]

    def get_host_api_info_by_index(self, index):
        return {"name": "ALSA"}

    def get_default_input_device_info(self):
        return {"index": 1}

    def get_default_output_device_info(self):
        return {"index": 0}

    def is_format_supported(self, rate, **kwargs):
        if rate not in self.rates:
            raise ValueError("Invalid sample rate", -9997)
        return True

    def open(self, **kwargs):
        if self.fail_open is not None:
            raise self.fail_open
        stream = FakeStream(**kwargs)
        FakePyAudio.streams.append(stream)
        return stream

    def terminate(self):
        self.terminated = True


@pytest.fixture
def fake_pyaudio(monkeypatch):
    module = FakePyAudio.module()
    monkeypatch.setitem(sys.modules, "pyaudio", module)
    monkeypatch.setattr(FakePyAudio, "fail_open", None)
    return module


def test_output_resamples_for_a_device_that_refuses_the_session_rate(fake_pyaudio):
    from voicepipe.audio.pyaudio_backend import PyAudioOutput

    out = PyAudioOutput({"device": "speakers", "fade_ms": 0})
    milestones = []
    out.on_playback = lambda kind, item: milestones.append((kind, item))

    async def scenario():
        await out.open(24000)  # the device only takes 44.1 and 48 kHz
        stream = FakePyAudio.streams[-1]
        assert stream.kwargs["rate"] == 48000 and stream.kwargs["output_device_index"] == 0
        assert out.device_rate == 48000 and out.latency_s == 0.04
        t = np.arange(2400) / 24000
        out.write((8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes(), "item_a")  # 100 ms
        pulled = []
        for _ in range(4):  # the device pulls 4 x 20 ms
            data, flag = stream.callback(None, 960, {}, 0)
            assert flag == 0 and len(data) == 960 * 2
            pulled.append(data)
        await asyncio.sleep(0)  # milestones reach the loop
        played = out.played_ms("item_a")
        state = out.clear()
        data, _ = stream.callback(None, 960, {}, 0)
        after = out.played_ms("item_a")
        await out.close()
        return pulled, played, state, data, after, stream

    pulled, played, state, silent, after, stream = asyncio.run(scenario())
    samples = np.frombuffer(b"".join(pulled), "<i2")
    spectrum = np.abs(np.fft.rfft(samples.astype(float)))
    assert abs(np.fft.rfftfreq(len(samples), 1 / 48000)[spectrum.argmax()] - 500) < 15  # the tone, at 48 kHz
    assert played == pytest.approx(80.0)  # exactly the frames the device took
    assert state.item_id == "item_a" and state.played_ms == played
    assert silent == bytes(1920) and after == played
    assert milestones == [("started", "item_a")]
    assert stream.stopped and stream.closed


def test_input_from_the_callback_thread_comes_out_in_session_chunks(fake_pyaudio):
    from voicepipe.audio.pyaudio_backend import PyAudioInput

    source = PyAudioInput({})
    FakePyAudio.rates = {16000, 48000}

    async def scenario():
        await source.open(16000, 320)
        stream = FakePyAudio.streams[-1]
        assert stream.kwargs["rate"] == 16000 and stream.kwargs["frames_per_buffer"] == 320
        assert source.latency_s == 0.03

        def device():
            for value in range(1, 6):
                stream.callback(np.full(320, value, "<i2").tobytes(), 320, {}, 0)

        thread = threading.Thread(target=device)
        thread.start()
        chunks = []
        async for chunk in source:
            chunks.append(chunk)
            if len(chunks) == 5:
                await source.close()
        thread.join()
        return chunks

    try:
        chunks = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        FakePyAudio.rates = {44100, 48000}
    assert [np.frombuffer(c, "<i2")[0] for c in chunks] == [1, 2, 3, 4, 5]
    assert all(len(c) == 640 for c in chunks)


def test_a_busy_device_is_one_line(fake_pyaudio, monkeypatch):
    from voicepipe.audio.pyaudio_backend import PyAudioOutput

    monkeypatch.setattr(FakePyAudio, "fail_open", OSError(-9985, "Device unavailable"))
    with pytest.raises(UsageError) as err:
        asyncio.run(PyAudioOutput({}).open(48000))
    assert str(err.value) == (
        "audio.output: pyaudio: default device (#0): busy or unavailable (close the program using it, or choose "
        "another with audio.output.device; `voicepipe devices` lists them)"
    )


def test_a_device_without_any_usable_rate_is_one_line(fake_pyaudio, monkeypatch):
    from voicepipe.audio.pyaudio_backend import PyAudioInput

    monkeypatch.setattr(FakePyAudio, "rates", {96000})
    with pytest.raises(UsageError, match=r"audio\.input: pyaudio: device 'Mic \(hw\)' \(#1\): does not support mono 16-bit audio at 24000 Hz or 48000 Hz"):
        asyncio.run(PyAudioInput({}).open(24000, 480))


def test_latency_option_is_checked():
    from voicepipe.audio.sounddevice_backend import SoundDeviceOutput

    assert SoundDeviceOutput({"latency": "low"}).latency == "low"
    assert SoundDeviceOutput({"latency": 0.1}).latency == 0.1
    with pytest.raises(UsageError, match=r"audio\.output\.latency: expected low, high or seconds"):
        SoundDeviceOutput({"latency": "fast"})
