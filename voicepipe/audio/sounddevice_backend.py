"""The ``sounddevice`` backend: microphone and speaker through python-sounddevice's raw callback
streams.

Options: ``device`` (``default``, an index, or part of a name), ``latency`` (``low``, ``high`` or
seconds) and, for output, ``fade_ms``; see :mod:`voicepipe.audio.device`. sounddevice loads
PortAudio when it is imported, so it is imported only when a stream opens.
"""

from __future__ import annotations

import contextlib
from typing import Any

from voicepipe.audio import errors
from voicepipe.audio.device import DeviceInput, DeviceOutput, choose_rate
from voicepipe.audio.devicechoice import resolve_device
from voicepipe.audio.pcm import frames_for_ms
from voicepipe.errors import UsageError

BACKEND = "sounddevice"
OUTPUT_BUFFER_MS = 20


def _import() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise errors.portaudio_missing(BACKEND, exc) from None
    return sounddevice


def _default_index(sd: Any, kind: str) -> Any:
    try:
        return sd.query_devices(kind=kind)["index"]
    except Exception:
        return None


def _rows(sd: Any) -> list[dict]:
    default_in = _default_index(sd, "input")
    default_out = _default_index(sd, "output")
    try:
        host_apis = [api["name"] for api in sd.query_hostapis()]
    except Exception:
        host_apis = []
    rows = []
    for info in sd.query_devices():
        index = info["index"]
        host = info.get("hostapi")
        rows.append(
            {
                "backend": BACKEND,
                "index": index,
                "name": info.get("name", ""),
                "host_api": host_apis[host] if isinstance(host, int) and host < len(host_apis) else "",
                "max_input_channels": int(info.get("max_input_channels", 0)),
                "max_output_channels": int(info.get("max_output_channels", 0)),
                "default_samplerate": float(info.get("default_samplerate", 0)),
                "is_default_input": index == default_in,
                "is_default_output": index == default_out,
            }
        )
    return rows


def list_devices() -> list[dict]:
    """sounddevice's devices as rows (see :func:`voicepipe.audio.devices.list_devices`)."""
    return _rows(_import())


def _open(sd: Any, direction: str, device: Any, session_rate: int) -> tuple[dict, int]:
    row = resolve_device(_rows(sd), device, direction, BACKEND)
    check = sd.check_input_settings if direction == "input" else sd.check_output_settings

    def supports(rate: int) -> bool:
        try:
            check(device=row["index"], channels=1, dtype="int16", samplerate=rate)
            return True
        except Exception:
            return False

    rate = choose_rate(session_rate, row["default_samplerate"], supports)
    if rate is None:
        raise UsageError(
            f"audio.{direction}: {BACKEND}: device {row['name']!r} (#{row['index']}): does not support mono 16-bit audio "
            f"at {session_rate} Hz or {row['default_samplerate']:g} Hz (choose another with audio.{direction}.device; "
            f"{errors.LIST_HINT})"
        )
    return row, rate


def _latency(stream: Any) -> float:
    try:
        return float(stream.latency or 0.0)
    except Exception:
        return 0.0


class SoundDeviceOutput(DeviceOutput):
    """Speaker output through a sounddevice ``RawOutputStream``."""

    backend = BACKEND

    def __init__(self, options: Any):
        super().__init__(options)
        self._stream: Any = None

    def _probe(self, session_rate: int) -> None:
        _open(_import(), "output", self.device, session_rate)

    def _start_stream(self, session_rate: int) -> tuple[int, float]:
        sd = _import()
        row, rate = _open(sd, "output", self.device, session_rate)
        self.device_name = row["name"]
        self._make_queue(rate)

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            if status.output_underflow:
                self.underflows += 1
            outdata[:] = self._fill(frames)

        try:
            self._stream = sd.RawOutputStream(
                samplerate=rate,
                blocksize=frames_for_ms(OUTPUT_BUFFER_MS, rate),
                device=row["index"],
                channels=1,
                dtype="int16",
                latency=self.latency,
                callback=callback,
            )
            self._stream.start()
        except Exception as exc:
            self._stop_stream()
            raise errors.device_error("output", BACKEND, self.device, exc, rate=rate, index=row["index"]) from None
        return rate, _latency(self._stream)

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        _release(stream)


class SoundDeviceInput(DeviceInput):
    """Microphone input through a sounddevice ``RawInputStream``."""

    backend = BACKEND

    def __init__(self, options: Any):
        super().__init__(options)
        self._stream: Any = None

    def _probe(self, session_rate: int) -> None:
        _open(_import(), "input", self.device, session_rate)

    def _start_stream(self, session_rate: int, frames_per_chunk: int) -> tuple[int, float]:
        sd = _import()
        row, rate = _open(sd, "input", self.device, session_rate)
        self.device_name = row["name"]

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            self._captured(bytes(indata))

        try:
            self._stream = sd.RawInputStream(
                samplerate=rate,
                blocksize=self.device_frames_per_chunk(rate),
                device=row["index"],
                channels=1,
                dtype="int16",
                latency=self.latency,
                callback=callback,
            )
            self._stream.start()
        except Exception as exc:
            self._stop_stream()
            raise errors.device_error("input", BACKEND, self.device, exc, rate=rate, index=row["index"]) from None
        return rate, _latency(self._stream)

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        _release(stream)


def _release(stream: Any) -> None:
    """Stop and close a stream (``None`` is fine); errors of a device already gone are ignored."""
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.stop()
        with contextlib.suppress(Exception):
            stream.close()
