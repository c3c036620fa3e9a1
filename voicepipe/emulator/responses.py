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

A function-call response has one ``function_call`` output item per call (parallel calls), streamed
one after the other, each with its own ``output_index``, item id and ``call_id``::

    response.created → (response.output_item.added → conversation.item.created
    → response.function_call_arguments.delta* → response.function_call_arguments.done
    → response.output_item.done)  per call → response.done (output: every item)

A cancelled one closes the item being streamed as ``incomplete`` (its arguments as far as sent, no
``arguments.done``); calls not yet announced are left out of ``response.done``.

Every state change happens synchronously between awaits, so a cancellation (barge-in or
``response.cancel``) can never interleave with half an event group.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
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
class PlannedCall:
    """One function call of a response: the function, its JSON arguments, its ``call_id``."""

    name: str
    arguments: str
    call_id: str
    item_id: str = field(default_factory=lambda: defaults.new_id("item"))


@dataclass
class ResponsePlan:
    """What a response will say (``text``) or which functions it calls (``calls``, in order)."""

    text: str = ""
    calls: list[PlannedCall] = field(default_factory=list)


class Response:
    """A response in progress on a connection; :meth:`start` it, it finishes or is cancelled."""

    def __init__(self, conn: "Connection", plan: ResponsePlan, params: dict[str, Any]):
        self.conn = conn
        self.plan = plan
        self.id = defaults.new_id("resp")
        session = conn.session
        self.modalities = list(params.get("modalities") or session.get("modalities") or ["text", "audio"])
        self.audio = "audio" in self.modalities and not plan.calls
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
        self.item_id = plan.calls[0].item_id if plan.calls else defaults.new_id("item")
        self.item: Optional["ItemRecord"] = None
        self.done = False
        self._output: list[dict] = []  # the closed output items, for response.done
        self._call_index = 0  # the call being streamed (function-call responses)
        self._call_open = False  # announced and not yet closed
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
        if self.plan.calls:
            self._announce_call(0)
        else:
            item = message_item(self.item_id, "assistant", [], status="in_progress")
            conn.emit("response.output_item.added", response_id=self.id, output_index=0, item=item)
            self.item = conn.add_item(item, role="assistant")
            conn.emit("conversation.item.created", previous_item_id=self.item.previous_id, item=item)
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
            if not self.plan.calls and self.audio:
                self._spoken = await conn.speech_for(self.plan.text, self.output_format)
                self.item.spoken = self._spoken
            await conn.pace(conn.scenario.response_delay_ms)
            if self.plan.calls:
                await self._stream_calls()
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

    async def _stream_calls(self) -> None:
        """Each call in turn: its argument deltas, then its closing events (the next one opens)."""
        conn = self.conn
        for index, call in enumerate(self.plan.calls):
            if index:
                await conn.pace(ARGUMENT_DELTA_MS)
                if self.done:
                    return
                self._announce_call(index)
            for chunk, start in enumerate(range(0, len(call.arguments), ARGUMENT_CHUNK)):
                if chunk:
                    await conn.pace(ARGUMENT_DELTA_MS)
                if self.done:
                    return
                delta = call.arguments[start : start + ARGUMENT_CHUNK]
                conn.emit(
                    "response.function_call_arguments.delta",
                    response_id=self.id,
                    item_id=call.item_id,
                    output_index=index,
                    call_id=call.call_id,
                    delta=delta,
                )
                self._arguments_sent += delta
                if index == 0 and chunk == 0:
                    conn.flush_transcriptions()
            if self.done:
                return
            if index < len(self.plan.calls) - 1:
                self._close_call("completed")  # the last one closes in _finish, with response.done

    def _announce_call(self, index: int) -> None:
        """Open the ``index``-th function call item (added + created), synchronously."""
        conn = self.conn
        call = self.plan.calls[index]
        self._call_index = index
        self._call_open = True
        self._arguments_sent = ""
        self.item_id = call.item_id
        item = function_call_item(call.item_id, call.name, call.call_id, "", "in_progress")
        conn.emit("response.output_item.added", response_id=self.id, output_index=index, item=item)
        self.item = conn.add_item(item, role="assistant")
        conn.emit("conversation.item.created", previous_item_id=self.item.previous_id, item=item)

    def _close_call(self, status: str) -> None:
        """Close the call being streamed: ``arguments.done`` (if completed) and ``output_item.done``."""
        if not self._call_open:
            return  # between two calls: the last one is closed, the next not yet announced
        self._call_open = False
        conn = self.conn
        index = self._call_index
        call = self.plan.calls[index]
        arguments = call.arguments if status == "completed" else self._arguments_sent
        if status == "completed":
            conn.emit(
                "response.function_call_arguments.done",
                response_id=self.id,
                item_id=call.item_id,
                output_index=index,
                call_id=call.call_id,
                name=call.name,
                arguments=arguments,
            )
        item_status = "completed" if status == "completed" else "incomplete"
        item = function_call_item(call.item_id, call.name, call.call_id, arguments, item_status)
        self.item.replace(item)
        conn.emit("response.output_item.done", response_id=self.id, output_index=index, item=item)
        self._output.append(item)

    # -- closing -----------------------------------------------------------------------------

    def _finish(self, status: str, details: Optional[dict]) -> None:
        self.done = True
        conn = self.conn
        conn.flush_transcriptions()
        item_status = "completed" if status == "completed" else "incomplete"
        if self.plan.calls:
            self._close_call(status)
            output_text_tokens = sum(defaults.text_tokens(item["arguments"]) for item in self._output)
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
            self._output.append(item)
        input_text, input_audio = conn.input_token_estimate()
        shape = self._response_shape()
        shape.update(
            status=status,
            status_details=details,
            output=list(self._output),
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
