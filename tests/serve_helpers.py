"""A caller made of a WAV file, for testing the serving side without a browser or a phone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

from voicepipe.audio.null import NullOutput
from voicepipe.audio.wav import load_mono_pcm16, read_wav_info
from voicepipe.plugins import load_plugin_set
from voicepipe.profile import load_profile
from voicepipe.serve.host import ServedProfile
from voicepipe.serve.transport import CallerInput, Transport

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "profiles" / "audio" / "question.wav"


class WavCaller(Transport):
    """Says ``wav`` (as fast as the session takes it), then stays on the line until
    :meth:`hang_up`, or until ``hang_up_after`` assistant audio milestones."""

    kind = "web"

    def __init__(self, wav: Path = QUESTION, trailing_silence_s: float = 1.5):
        self.input = CallerInput()
        self.output = NullOutput({"realtime": False})
        self.wav = wav
        self.trailing_silence_s = trailing_silence_s
        self._hung_up = asyncio.Event()
        self.closed_with: Optional[str] = None

    async def run(self) -> str:
        rate = await self.input.rate()
        pcm = load_mono_pcm16(read_wav_info(self.wav), rate)
        pcm += bytes(int(rate * self.trailing_silence_s) * 2)
        step = rate // 50 * 2
        for start in range(0, len(pcm), step):
            self.input.feed(pcm[start : start + step])
            await asyncio.sleep(0)
        await self._hung_up.wait()
        self.input.end()
        return "caller_hung_up"

    def hang_up(self) -> None:
        self._hung_up.set()

    async def close(self, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = reason
        self._hung_up.set()


def served(profile: Path, *overrides: str, name: Optional[str] = None) -> ServedProfile:
    """``profile`` as the server would offer it, against the embedded emulator at full speed."""
    loaded = load_profile(
        profile,
        [
            "connection.endpoint=emulator",
            "connection.emulator.speed=0",
            "audio.input.backend=web",
            "audio.output.backend=web",
            *overrides,
        ],
    )
    plugins = load_plugin_set(loaded, autoload=False, without=("console",))
    return ServedProfile(name or loaded.name, loaded, plugins, frozenset({"web"}))
