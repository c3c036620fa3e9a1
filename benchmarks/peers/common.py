"""What the peer clients share: their arguments and the microphone stream (no voicepipe import:
they run in another virtual environment)."""

from __future__ import annotations

import json
import sys
import time
import wave

RATE = 24000


def arguments() -> dict:
    return json.loads(sys.argv[1])


def microphone(args: dict, chunk_ms: int = 20) -> list[bytes]:
    """As ``benchmarks.conversation.microphone``: per turn the question, then silence."""
    with wave.open(args["question"], "rb") as f:
        speech = f.readframes(f.getnframes())
    size_turn = int(args["turn_s"] * RATE) * 2
    stream = speech[:size_turn].ljust(size_turn, b"\x00") * int(args["turns"])
    size = RATE * chunk_ms // 1000 * 2
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def report(cpu_started: float) -> None:
    print(json.dumps({"cpu_s": time.process_time() - cpu_started}), flush=True)
