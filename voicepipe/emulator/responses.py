"""One model response: the event sequence the service sends, paced like the service.

A spoken answer streams as in the recorded sessions::

    response.created → response.output_item.added → conversation.item.created
    → response.content_part.added → (response.audio_transcript.delta* response.audio.delta)*
    → response.audio.done → response.audio_transcript.done → response.content_part.done
    → response.output_item.done → response.done

Audio goes out in 100 ms deltas (``voice.CHUNK_MS``); each transcript piece (a word with its
leading space) is sent just before the audio delta in which it starts, so the transcript leads
the audio slightly, as on the service. Delta ``i`` is due ``i × 100 ms / speed`` after the first
one (after ``response_delay_ms / speed`` of thinking time); speed 0 sends as fast as the client
reads. A text-only response sends ``response.text.delta`` per word (40 ms apart at speed 1); a
function call sends its arguments in 8-character ``response.function_call_arguments.delta``.

Every state change happens synchronously between awaits, so a cancellation (barge-in or
``response.cancel``) can never interleave with half an event group.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from voicepipe.emulator import defaults
from voicepipe.emulator.events import function_call_item, message_item
from voicepipe.emulator.voice import SpokenText, split_pieces

if TYPE_CHECKING:
    from voicepipe.emulator.connection import Connection
    from voicepipe.emulator.conversation import ItemRecord

TEXT_DELTA_MS = 40.0
ARGUMENT_DELTA_MS = 10.0
ARGUMENT_CHUNK = 8


@dataclass
class ResponsePlan:
    """What a response will say (``text``) or which function it calls (``tool_name``…)."""

    text: str = ""
    tool_name: Optional[str] = None
    arguments: str = ""
    call_id: Optional[str] = None


class Response:
    """A response in progress on a connection; :meth:`start` it, it finishes or is cancelled."""

    def __init__(self, conn: "Connection", plan: ResponsePlan, params: dict[str, Any]):
        self.conn = conn
        self.plan = plan
        self.id = defaults.new_id("resp")
        session = conn.session
        self.modalities = list(params.get("modalities") or session.get("modalities") or ["text", "audio"])
        self.audio = "audio" in self.modalities and plan.tool_name is None
        self.output_format = params.get("output_audio_format") or session.get("output_audio_format") or "pcm16"
        self.shape = {
            "object": "realtime.response",
            "id": self.id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "usage": None,
            "conversation_id": conn.conversation_id,
            "modalities": self.modalities,
            "voice": params.get("voice") or session.get("voice"),
            "output_audio_format": self.output_format,
            "temperature": params.get("temperature"),
            "max_output_tokens": params.get("max_output_tokens", session.get("max_response_output_tokens", "inf")),
            "metadata": params.get("metadata"),
        }
        self.item_id = defaults.new_id("item")
        self.item: Optional["ItemRecord"] = None
        self.done = False
        self._task: Optional[asyncio.Task] = None
        self._spoken: Optional[SpokenText] = None
        self._sent_pieces: list[str] = []
        self._sent_ms = 0.0
        self._arguments_sent = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Send the opening events and start streaming."""
        conn = self.conn
        conn.emit("response.created", response=self._response_shape())
        if self.plan.tool_name is not None:
            item = function_call_item(self.item_id, self.plan.tool_name, self.plan.call_id, "", "in_progress")
        else:
            item = message_item(self.item_id, "assistant", [], status="in_progress")
        conn.emit("response.output_item.added", response_id=self.id, output_index=0, item=item)
        self.item = conn.add_item(item, role="assistant")
        conn.emit("conversation.item.created", previous_item_id=self.item.previous_id, item=item)
        if self.plan.tool_name is None:
            part = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
            conn.emit("response.content_part.added", **self._where(), part=part)
        self._task = asyncio.get_running_loop().create_task(self._stream())

    def cancel(self, reason: str) -> None:
        """Stop now: the closing events with status incomplete, ``response.done`` cancelled."""
        if self.done:
            return
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._finish("cancelled", {"type": "cancelled", "reason": reason})

    def abandon(self) -> None:
        """The connection is gone: stop without sending anything."""
        self.done = True
        if self._task is not None:
            self._task.cancel()

    # -- streaming ---------------------------------------------------------------------------

    async def _stream(self) -> None:
        conn = self.conn
        try:
            if self.plan.tool_name is None and self.audio:
                self._spoken = await conn.speech_for(self.plan.text, self.output_format)
                self.item.spoken = self._spoken
            await conn.pace(conn.scenario.response_delay_ms)
            if self.plan.tool_name is not None:
                await self._stream_arguments()
            elif self.audio:
                await self._stream_audio()
            else:
                await self._stream_text()
            if not self.done:
                self._finish("completed", None)
        except asyncio.CancelledError:
            pass

    async def _stream_audio(self) -> None:
        conn = self.conn
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, step in enumerate(self._spoken.steps):
            await conn.room()
            await conn.pace_until(started, step.start_ms)
            if self.done:
                return
            for piece in step.transcript:
                conn.emit("response.audio_transcript.delta", **self._where(), delta=piece)
                self._sent_pieces.append(piece)
            if step.audio_b64:
                conn.emit("response.audio.delta", **self._where(), delta=step.audio_b64)
                self._sent_ms = step.start_ms + step.duration_ms
                self.item.audio_ms = self._sent_ms
                if self.item.first_delta_at is None:
                    self.item.first_delta_at = loop.time()
            self.item.transcript = "".join(self._sent_pieces)
            if index == 0:
                conn.flush_transcriptions()

    async def _stream_text(self) -> None:
        conn = self.conn
        for index, piece in enumerate(split_pieces(self.plan.text)):
            await conn.room()
            if index:
                await conn.pace(TEXT_DELTA_MS)
            if self.done:
                return
            conn.emit("response.text.delta", **self._where(), delta=piece)
            self._sent_pieces.append(piece)
            self.item.transcript = "".join(self._sent_pieces)
            if index == 0:
                conn.flush_transcriptions()

    async def _stream_arguments(self) -> None:
        conn = self.conn
        arguments = self.plan.arguments
        for index, start in enumerate(range(0, len(arguments), ARGUMENT_CHUNK)):
            if index:
                await conn.pace(ARGUMENT_DELTA_MS)
            if self.done:
                return
            delta = arguments[start : start + ARGUMENT_CHUNK]
            conn.emit(
                "response.function_call_arguments.delta",
                response_id=self.id,
                item_id=self.item_id,
                output_index=0,
                call_id=self.plan.call_id,
                delta=delta,
            )
            self._arguments_sent += delta
            if index == 0:
                conn.flush_transcriptions()

    # -- closing -----------------------------------------------------------------------------

    def _finish(self, status: str, details: Optional[dict]) -> None:
        self.done = True
        conn = self.conn
        conn.flush_transcriptions()
        item_status = "completed" if status == "completed" else "incomplete"
        if self.plan.tool_name is not None:
            arguments = self.plan.arguments if status == "completed" else self._arguments_sent
            if status == "completed":
                conn.emit(
                    "response.function_call_arguments.done",
                    response_id=self.id,
                    item_id=self.item_id,
                    output_index=0,
                    call_id=self.plan.call_id,
                    name=self.plan.tool_name,
                    arguments=arguments,
                )
            item = function_call_item(self.item_id, self.plan.tool_name, self.plan.call_id, arguments, item_status)
            output_text_tokens = defaults.text_tokens(arguments)
            output_audio_tokens = 0
        else:
            text = "".join(self._sent_pieces)
            if self.audio:
                conn.emit("response.audio.done", **self._where())
                conn.emit("response.audio_transcript.done", **self._where(), transcript=text)
                part = {"type": "audio", "transcript": text}
                conn.emit("response.content_part.done", **self._where(), part=part)
            else:
                conn.emit("response.text.done", **self._where(), text=text)
                # the service sends the text part empty here; the full text is in text.done
                conn.emit("response.content_part.done", **self._where(), part={"type": "text", "text": ""})
                part = {"type": "text", "text": text}
            item = message_item(self.item_id, "assistant", [part], status=item_status)
            output_text_tokens = defaults.text_tokens(text)
            output_audio_tokens = defaults.audio_tokens(self._sent_ms) if self.audio else 0
        self.item.replace(item)
        conn.emit("response.output_item.done", response_id=self.id, output_index=0, item=item)
        input_text, input_audio = conn.input_token_estimate()
        shape = self._response_shape()
        shape.update(
            status=status,
            status_details=details,
            output=[item],
            usage=defaults.usage(
                input_text=input_text,
                input_audio=input_audio,
                output_text=output_text_tokens,
                output_audio=output_audio_tokens,
            ),
        )
        conn.emit("response.done", response=shape)
        conn.response_finished(self)

    # -- helpers -----------------------------------------------------------------------------

    def _where(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item_id, "output_index": 0, "content_index": 0}

    def _response_shape(self) -> dict[str, Any]:
        return dict(self.shape)
