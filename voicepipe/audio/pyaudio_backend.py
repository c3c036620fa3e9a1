"""The ``pyaudio`` backend: microphone and speaker through PyAudio's callback streams.

Options: ``device`` (``default``, an index, or part of a name) and, for output, ``fade_ms``; see
:mod:`voicepipe.audio.device`. PyAudio has no latency setting; use the ``sounddevice`` backend to
choose one. PyAudio is imported only when a stream opens.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from voicepipe.audio import errors
from voicepipe.audio.device import DeviceInput, DeviceOutput, choose_rate
from voicepipe.audio.devicechoice import resolve_device
from voicepipe.audio.pcm import frames_for_ms
from voicepipe.errors import UsageError

BACKEND = "pyaudio"
OUTPUT_BUFFER_MS = 20


def _import() -> Any:
    try:
        import pyaudio
    except (ImportError, OSError) as exc:
        raise errors.portaudio_missing(BACKEND, exc) from None
    return pyaudio


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """PortAudio's initialisation probes ALSA and JACK and prints dozens of harmless lines to the
    process's stderr; hide them for that moment (sounddevice does the same)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _new_pyaudio() -> Any:
    pyaudio = _import()
    try:
        with _quiet_stderr():
            return pyaudio.PyAudio()
    except OSError as exc:
        raise errors.portaudio_missing(BACKEND, exc) from None


def _rows(pa: Any) -> list[dict]:
    def default_index(getter: Any) -> Any:
        try:
            return getter()["index"]
        except (OSError, IOError, KeyError):
            return None

    default_in = default_index(pa.get_default_input_device_info)
    default_out = default_index(pa.get_default_output_device_info)
    rows = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        try:
            host_api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        except Exception:
            host_api = ""
        rows.append(
            {
                "backend": BACKEND,
                "index": index,
                "name": info.get("name", ""),
                "host_api": host_api,
                "max_input_channels": int(info.get("maxInputChannels", 0)),
                "max_output_channels": int(info.get("maxOutputChannels", 0)),
                "default_samplerate": float(info.get("defaultSampleRate", 0)),
                "is_default_input": index == default_in,
                "is_default_output": index == default_out,
            }
        )
    return rows


def list_devices() -> list[dict]:
    """PyAudio's devices as rows (see :func:`voicepipe.audio.devices.list_devices`)."""
    pa = _new_pyaudio()
    try:
        return _rows(pa)
    finally:
        pa.terminate()


def _supports(pa: Any, pyaudio: Any, direction: str, index: int) -> Any:
    def check(rate: int) -> bool:
        kwargs = {f"{direction}_device": index, f"{direction}_channels": 1, f"{direction}_format": pyaudio.paInt16}
        try:
            return bool(pa.is_format_supported(rate, **kwargs))
        except (ValueError, OSError):
            return False

    return check


def _open(pa: Any, pyaudio: Any, direction: str, device: Any, session_rate: int) -> tuple[dict, int]:
    """Resolve ``device`` and pick the rate: the session's, else the device's default."""
    row = resolve_device(_rows(pa), device, direction, BACKEND)
    rate = choose_rate(session_rate, row["default_samplerate"], _supports(pa, pyaudio, direction, row["index"]))
    if rate is None:
        raise UsageError(
            f"audio.{direction}: {BACKEND}: device {row['name']!r} (#{row['index']}): does not support mono 16-bit audio "
            f"at {session_rate} Hz or {row['default_samplerate']:g} Hz (choose another with audio.{direction}.device; "
            f"{errors.LIST_HINT})"
        )
    return row, rate


class PyAudioOutput(DeviceOutput):
    """Speaker output through a PyAudio callback stream."""

    backend = BACKEND

    def __init__(self, options: Any):
        super().__init__(options)
        self._pa: Any = None
        self._stream: Any = None

    def _probe(self, session_rate: int) -> None:
        pa = _new_pyaudio()
        try:
            _open(pa, _import(), "output", self.device, session_rate)
        finally:
            _release(None, pa)

    def _start_stream(self, session_rate: int) -> tuple[int, float]:
        pyaudio = _import()
        self._pa = _new_pyaudio()
        try:
            row, rate = _open(self._pa, pyaudio, "output", self.device, session_rate)
            self.device_name = row["name"]
            self._make_queue(rate)
            underflow = pyaudio.paOutputUnderflow
            cont = pyaudio.paContinue

            def callback(in_data: Any, frame_count: int, time_info: Any, status: int) -> tuple:
                if status & underflow:
                    self.underflows += 1
                return self._fill(frame_count), cont

            try:
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=1,
                    rate=rate,
                    output=True,
                    output_device_index=row["index"],
                    frames_per_buffer=frames_for_ms(OUTPUT_BUFFER_MS, rate),
                    stream_callback=callback,
                )
            except (OSError, ValueError) as exc:
                raise errors.device_error("output", BACKEND, self.device, exc, rate=rate, index=row["index"]) from None
            return rate, float(self._stream.get_output_latency() or 0.0)
        except BaseException:
            self._stop_stream()
            raise

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        pa, self._pa = self._pa, None
        _release(stream, pa)


class PyAudioInput(DeviceInput):
    """Microphone input through a PyAudio callback stream."""

    backend = BACKEND

    def __init__(self, options: Any):
        super().__init__(options)
        self._pa: Any = None
        self._stream: Any = None

    def _probe(self, session_rate: int) -> None:
        pa = _new_pyaudio()
        try:
            _open(pa, _import(), "input", self.device, session_rate)
        finally:
            _release(None, pa)

    def _start_stream(self, session_rate: int, frames_per_chunk: int) -> tuple[int, float]:
        pyaudio = _import()
        self._pa = _new_pyaudio()
        try:
            row, rate = _open(self._pa, pyaudio, "input", self.device, session_rate)
            self.device_name = row["name"]
            overflow = pyaudio.paInputOverflow
            cont = pyaudio.paContinue

            def callback(in_data: bytes, frame_count: int, time_info: Any, status: int) -> tuple:
                if status & overflow:
                    self.overflows += 1
                self._captured(in_data)
                return None, cont

            try:
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=1,
                    rate=rate,
                    input=True,
                    input_device_index=row["index"],
                    frames_per_buffer=self.device_frames_per_chunk(rate),
                    stream_callback=callback,
                )
            except (OSError, ValueError) as exc:
                raise errors.device_error("input", BACKEND, self.device, exc, rate=rate, index=row["index"]) from None
            return rate, float(self._stream.get_input_latency() or 0.0)
        except BaseException:
            self._stop_stream()
            raise

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        pa, self._pa = self._pa, None
        _release(stream, pa)


def _release(stream: Any, pa: Any) -> None:
    """Stop and close a stream, then terminate its PyAudio instance; either may be ``None``."""
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.stop_stream()
        with contextlib.suppress(Exception):
            stream.close()
    if pa is not None:
        with contextlib.suppress(Exception):
            pa.terminate()
