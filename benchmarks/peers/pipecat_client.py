"""Pipecat's ``AzureVoiceLiveLLMService`` in the benchmark conversation: a pipeline of a microphone
processor pushing 20 ms ``InputAudioRawFrame``s in real time, the service, and a sink that reads
every frame (a null output) and counts the answers (``TTSStoppedFrame``)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RATE, arguments, microphone, report  # noqa: E402


async def main(args: dict) -> None:
    from pipecat.frames.frames import InputAudioRawFrame, TTSStoppedFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.azure.voice_live.llm import AzureVoiceLiveLLMService

    answers = {"done": 0}
    finished = asyncio.Event()

    class Sink(FrameProcessor):
        async def process_frame(self, frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TTSStoppedFrame):
                answers["done"] += 1
                if answers["done"] >= args["turns"]:
                    finished.set()
            await self.push_frame(frame, direction)

    class Microphone(FrameProcessor):
        async def process_frame(self, frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    service = AzureVoiceLiveLLMService(endpoint="https://emulator.invalid", api_key=args["key"])
    # plain ws:// to the local emulator (the service turns any endpoint into wss://)
    service.base_url = "ws://" + args["url"].split("://", 1)[1].rstrip("/") + "/voice-live/realtime"
    mic = Microphone()
    task = PipelineTask(Pipeline([mic, service, Sink()]),
                        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.ensure_future(runner.run(task))
    deadline = time.monotonic() + 60
    while not getattr(service, "_api_session_ready", False):
        if time.monotonic() > deadline or running.done():
            raise RuntimeError("the Voice Live session was not ready")
        await asyncio.sleep(0.01)
    started = time.process_time()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for index, chunk in enumerate(microphone(args)):
        delay = t0 + (index + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await mic.push_frame(InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1))
    await asyncio.wait_for(finished.wait(), 120)
    report(started)
    await task.cancel()
    await running


if __name__ == "__main__":
    asyncio.run(main(arguments()))
