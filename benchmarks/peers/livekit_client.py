"""LiveKit Agents' Azure Voice Live ``RealtimeModel`` in the benchmark conversation: the microphone
pushed as 20 ms ``rtc.AudioFrame``s in real time, every answer's audio frames read (a null sink)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RATE, arguments, microphone, report  # noqa: E402


async def main(args: dict) -> None:
    from livekit import rtc
    from livekit.plugins.azure.realtime import RealtimeModel

    model = RealtimeModel(endpoint=args["url"], api_key=args["key"], model="gpt-realtime",
                          input_audio_transcription=None)
    session = model.session()
    updated = asyncio.Event()
    answers = {"done": 0}
    finished = asyncio.Event()
    sinks: list[asyncio.Task] = []

    async def drain(stream) -> None:
        async for _ in stream:
            pass

    async def play(generation) -> None:
        async for message in generation.message_stream:
            sinks.append(asyncio.ensure_future(drain(message.audio_stream)))
            sinks.append(asyncio.ensure_future(drain(message.text_stream)))
        async for _ in generation.function_stream:
            pass

    def on_server_event(event) -> None:
        kind = event.get("type")
        if kind == "session.updated":
            updated.set()
        elif kind == "response.done":
            answers["done"] += 1
            if answers["done"] >= args["turns"]:
                finished.set()

    session.on("azure_server_event_received", on_server_event)
    session.on("generation_created", lambda generation: sinks.append(asyncio.ensure_future(play(generation))))
    await asyncio.wait_for(updated.wait(), 60)
    started = time.process_time()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for index, chunk in enumerate(microphone(args)):
        delay = t0 + (index + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        session.push_audio(rtc.AudioFrame(chunk, RATE, 1, len(chunk) // 2))
    await asyncio.wait_for(finished.wait(), 120)
    report(started)
    for task in sinks:
        task.cancel()
    await session.aclose()
    await model.aclose()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
