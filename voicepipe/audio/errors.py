"""PortAudio failures turned into one line a person can act on.

Every message names the profile key, the backend and the device, says what went wrong and what to do,
and never carries a PortAudio traceback::

    audio.input: pyaudio: device 'USB mic' (#4): busy or unavailable (close the program using it, or
    choose another with audio.input.device; `voicepipe devices` lists them)
"""

from __future__ import annotations

from typing import Any, Optional

from voicepipe.errors import UsageError

LIST_HINT = "`voicepipe devices` lists them"


def where(direction: str, backend: str) -> str:
    return f"audio.{direction}: {backend}"


def portaudio_missing(backend: str, exc: BaseException) -> UsageError:
    """The Python package or the PortAudio library it loads is not installed."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and exc.name in ("pyaudio", "sounddevice"):
        fix = f"pip install {exc.name}"
    else:
        fix = "install PortAudio: apt-get install libportaudio2 (Debian/Ubuntu), brew install portaudio (macOS)"
    return UsageError(f"audio: {backend}: cannot load PortAudio ({detail}); {fix}")


def no_device(direction: str, backend: str, device: Any, reason: str) -> UsageError:
    kind = "microphone" if direction == "input" else "speaker"
    return UsageError(
        f"{where(direction, backend)}: {_describe(device)}: {reason} (connect a {kind} or start the sound server, "
        f"or choose another device with audio.{direction}.device; {LIST_HINT})"
    )


def device_error(
    direction: str, backend: str, device: Any, exc: BaseException, *, rate: Optional[int] = None, index: Optional[int] = None
) -> UsageError:
    """A failure to open or start a stream, classified by PortAudio's message or error code."""
    text = " ".join(str(a) for a in getattr(exc, "args", ()) if a is not None) or str(exc) or type(exc).__name__
    lowered = text.lower()
    name = _describe(device, index)
    if "unavailable" in lowered or "busy" in lowered or "-9985" in lowered:
        problem = "busy or unavailable"
        fix = f"close the program using it, or choose another with audio.{direction}.device; {LIST_HINT}"
    elif "sample rate" in lowered or "-9997" in lowered:
        problem = f"does not support {rate} Hz" if rate else "does not support the sample rate"
        fix = f"choose another device with audio.{direction}.device; {LIST_HINT}"
    elif "channel" in lowered or "-9998" in lowered:
        problem = "does not support mono 16-bit audio"
        fix = f"choose another device with audio.{direction}.device; {LIST_HINT}"
    elif "no default" in lowered:
        return no_device(direction, backend, device, f"no default {direction} device")
    elif "invalid device" in lowered or "-9996" in lowered:
        problem = f"is not an {direction} device" if direction == "input" else "is not an output device"
        fix = f"choose another with audio.{direction}.device; {LIST_HINT}"
    else:
        problem = f"cannot be opened ({text.strip().splitlines()[0] if text.strip() else type(exc).__name__})"
        fix = f"check the sound server, or choose another device with audio.{direction}.device; {LIST_HINT}"
    return UsageError(f"{where(direction, backend)}: {name}: {problem} ({fix})")


def _describe(device: Any, index: Optional[int] = None) -> str:
    label = "default device" if device in (None, "default") else f"device {device!r}"
    if index is not None and not (isinstance(device, int) and device == index):
        label += f" (#{index})"
    return label
