"""The ``wav`` backend: a spoken input from a file, and the answer written to a file as heard.

Input options (``audio.input``): ``file`` (required), ``realtime`` (default true: paced like a
microphone; false: as fast as the connection takes it), ``trailing_silence_ms`` (silence appended
after the file, so the service's voice detection sees the end of the turn). Files in another format
(stereo, 8/24/32-bit, float, G.711, another rate) are converted (mixed down, resampled) and the
conversion is logged; encodings that cannot be read are reported with the command that converts
them.

Output options (``audio.output``): ``file`` (required), ``realtime`` (default true). The file is
written on the *played* timeline: a virtual clock runs in real time from the moment the output
opens, silence fills the gaps between answers, and a barge-in cuts the answer off where it was, so
the file is what a listener would have heard. With ``realtime: false`` every write plays at once
(written = played, no gaps). The header is rewritten after every write, so the file stays a valid
WAV even if the process is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from voicepipe.audio.null import PacedInput, VirtualClockOutput, option_bool, option_ms
from voicepipe.audio.pcm import SAMPLE_WIDTH, frames_for_ms, silence
from voicepipe.errors import UsageError

log = logging.getLogger("voicepipe.audio")

FORMAT_PCM = 0x0001
FORMAT_FLOAT = 0x0003
FORMAT_ALAW = 0x0006
FORMAT_MULAW = 0x0007
FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {FORMAT_PCM: "PCM", FORMAT_FLOAT: "float", FORMAT_ALAW: "A-law", FORMAT_MULAW: "mu-law"}
CONVERT_HINT = "convert it to 16-bit PCM, e.g. `sox {name} -b 16 -e signed-integer -c 1 out.wav`"


@dataclass
class WavInfo:
    """What the header of a WAV file says."""

    path: Path
    format_tag: int
    channels: int
    rate: int
    bits: int
    data_offset: int
    data_size: int

    def describe(self) -> str:
        kind = _FORMAT_NAMES.get(self.format_tag, f"format 0x{self.format_tag:04x}")
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        return f"{self.rate} Hz {layout} {self.bits}-bit {kind}"

    @property
    def is_session_ready(self) -> bool:
        return self.format_tag == FORMAT_PCM and self.channels == 1 and self.bits == 16


def read_wav_info(path: Path, where: str = "audio.input") -> WavInfo:
    """Parse the RIFF header of ``path``; a file that is no readable WAV is a :class:`UsageError`."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise UsageError(f"{where}: wav: {path} is not a WAV file (expected a RIFF/WAVE header); {_hint(path)}")
            fmt: Optional[tuple] = None
            while True:
                header = f.read(8)
                if len(header) < 8:
                    raise UsageError(f"{where}: wav: {path} has no audio data chunk; {_hint(path)}")
                chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk_id == b"fmt ":
                    body = f.read(size)
                    if len(body) < 16:
                        raise UsageError(f"{where}: wav: {path} has a broken format chunk; {_hint(path)}")
                    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == FORMAT_EXTENSIBLE and len(body) >= 26:
                        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the tag
                    fmt = (tag, channels, rate, bits)
                elif chunk_id == b"data":
                    if fmt is None:
                        raise UsageError(f"{where}: wav: {path} has audio data before its format chunk; {_hint(path)}")
                    offset = f.tell()
                    total = path.stat().st_size - offset
                    data_size = total if size in (0, 0xFFFFFFFF) or size > total else size
                    tag, channels, rate, bits = fmt
                    return WavInfo(path, tag, channels, rate, bits, offset, data_size)
                else:
                    f.seek(size + (size & 1), 1)
                if size & 1 and chunk_id == b"fmt ":
                    f.seek(1, 1)
    except OSError as exc:
        raise UsageError(f"{where}: wav: cannot read {path}: {exc.strerror or exc}") from None


def _hint(path: Path) -> str:
    return CONVERT_HINT.format(name=path.name)


def check_supported(info: WavInfo, where: str = "audio.input") -> None:
    ok = (
        (info.format_tag == FORMAT_PCM and info.bits in (8, 16, 24, 32))
        or (info.format_tag == FORMAT_FLOAT and info.bits in (32, 64))
        or (info.format_tag in (FORMAT_ALAW, FORMAT_MULAW) and info.bits == 8)
    )
    if not ok or info.channels < 1 or info.rate < 1:
        raise UsageError(f"{where}: wav: {info.path} is {info.describe()}, which cannot be read; {_hint(info.path)}")


def load_mono_pcm16(info: WavInfo, rate: int) -> bytes:
    """The file's audio as PCM16 mono at ``rate``: mixed down, resampled and requantised as needed."""
    import numpy as np

    from voicepipe.audio.pcm import g711_decode
    from voicepipe.audio.resample import resample

    with open(info.path, "rb") as f:
        f.seek(info.data_offset)
        raw = f.read(info.data_size)
    frame_bytes = info.channels * info.bits // 8
    raw = raw[: len(raw) - len(raw) % frame_bytes]
    if info.is_session_ready and info.rate == rate:
        return raw
    if info.format_tag == FORMAT_PCM:
        if info.bits == 8:
            samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif info.bits == 16:
            samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        elif info.bits == 24:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            samples = (np.where(value >= 1 << 23, value - (1 << 24), value)).astype(np.float32) / float(1 << 23)
        else:
            samples = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    elif info.format_tag == FORMAT_FLOAT:
        samples = np.frombuffer(raw, dtype="<f4" if info.bits == 32 else "<f8").astype(np.float32)
    else:
        fmt = "g711_alaw" if info.format_tag == FORMAT_ALAW else "g711_ulaw"
        samples = np.frombuffer(g711_decode(raw, fmt), dtype="<i2").astype(np.float32) / 32768.0
    if info.channels > 1:
        samples = samples.reshape(-1, info.channels).mean(axis=1)
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    if info.rate != rate:
        pcm = resample(pcm, info.rate, rate)
    log.info("audio.input: converting %s from %s to %d Hz mono 16-bit PCM", info.path.name, info.describe(), rate)
    return pcm.astype("<i2").tobytes()


def _file_option(options: Mapping[str, Any], where: str) -> Path:
    value = options.get("file")
    if not value or not isinstance(value, (str, Path)):
        raise UsageError(f"{where}.file: the wav backend needs a file, e.g. {where.split('.')[-1]}: {{backend: wav, file: answer.wav}}")
    return Path(value)


class WavInput(PacedInput):
    """A WAV file as the microphone."""

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(option_bool(options, "realtime", True, "audio.input"))
        self.path = _file_option(options, "audio.input")
        self.trailing_silence_ms = option_ms(options, "trailing_silence_ms", 0, "audio.input")
        if not self.path.is_file():
            raise UsageError(
                f"audio.input: wav: file not found: {self.path} (set audio.input.file to a WAV file; "
                "a relative path is relative to the profile's folder)"
            )
        self.info = read_wav_info(self.path)
        check_supported(self.info)
        self._pcm = b""

    async def open(self, sample_rate: int, frames_per_chunk: int) -> None:
        await super().open(sample_rate, frames_per_chunk)
        self._pcm = load_mono_pcm16(self.info, self.sample_rate)

    @property
    def duration_ms(self) -> float:
        """Length of the file's audio at the session rate (known after open)."""
        return len(self._pcm) / SAMPLE_WIDTH / max(self.sample_rate, 1) * 1000.0

    def chunks(self) -> Iterator[bytes]:
        # the file and its trailing silence are one stream: only the very last chunk may be short
        size = self.frames_per_chunk * SAMPLE_WIDTH
        pcm = memoryview(self._pcm)
        tail = frames_for_ms(self.trailing_silence_ms, self.sample_rate) * SAMPLE_WIDTH
        whole = len(pcm) // size * size
        for start in range(0, whole, size):
            yield bytes(pcm[start : start + size])
        rest = bytes(pcm[whole:])
        if rest:
            padding = min(size - len(rest), tail)
            tail -= padding
            yield rest + bytes(padding)
        chunk = silence(self.frames_per_chunk)
        while tail > 0:
            n = min(tail, size)
            yield chunk if n == size else bytes(n)
            tail -= n


#: the size of the header WavWriter writes (RIFF, fmt and data chunk headers)
HEADER_BYTES = 44


class WavWriter:
    """A PCM16 mono WAV file whose header always matches the data written so far."""

    def __init__(self, path: Path, rate: int):
        self.path = path
        self.rate = rate
        self.data_bytes = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: Optional[int] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write_at(0, self._header())
        except OSError:
            self.close()
            raise

    def _header(self) -> bytes:
        byte_rate = self.rate * SAMPLE_WIDTH
        return (
            b"RIFF" + struct.pack("<I", 36 + self.data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, FORMAT_PCM, 1, self.rate, byte_rate, SAMPLE_WIDTH, 16)
            + b"data" + struct.pack("<I", self.data_bytes)
        )

    def append(self, pcm: bytes) -> None:
        """Append samples; a write the disk refuses is cut off again (the file stays valid) and raised."""
        if self._fd is None or not pcm:
            return
        end = HEADER_BYTES + self.data_bytes
        try:
            self._write_at(end, pcm)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)
            raise
        self.data_bytes += len(pcm)
        # data first, then the sizes: a kill between the two leaves a shorter but valid file
        self._write_at(4, struct.pack("<I", 36 + self.data_bytes))
        self._write_at(40, struct.pack("<I", self.data_bytes))

    def _write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WavOutput(VirtualClockOutput):
    """What a listener would have heard, written to a WAV file on the played timeline."""

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(option_bool(options, "realtime", True, "audio.output"))
        self.path = _file_option(options, "audio.output")
        self.writer: Optional[WavWriter] = None

    async def open(self, sample_rate: int) -> None:
        try:
            self.writer = WavWriter(self.path, int(sample_rate))
        except OSError as exc:
            raise UsageError(
                f"audio.output: wav: cannot write {self.path}: {exc.strerror or exc} (choose a writable audio.output.file)"
            ) from None
        await super().open(sample_rate)

    def emit(self, pcm: bytes) -> None:
        if self.writer is not None:
            self.writer.append(pcm)

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
