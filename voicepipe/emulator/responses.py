"""One model response: the event sequence the service sends, paced like the service.

A spoken answer streams as in the recorded sessions::

    response.created → response.output_item.added → conversation.item.created
    → response.content_part.added → (response.audio_transcript.delta* response.audio.delta)*
    → response.audio.done → response.audio_transcript.done → response.content_part.done
    → response.output_item.done → response.done

Audio goes out in 100 ms deltas (``voice.CHUNK_MS``); each transcript piece (a word with its
leading space) is sent just before the audio delta in which it starts, so the transcript leads
the audio slightly, as on the service. When the session's ``output_audio_timestamp_types`` has
``"word"``, each word's ``response.audio_timestamp.delta`` follows its transcript piece (offset and
duration of the word in the synthesized audio), and ``response.audio_timestamp.done`` comes just
before ``response.audio.done``. When each delta is due is the emulator's pacing (see
:mod:`~voicepipe.emulator.pacing`), after ``response_delay_ms`` of thinking time. A text-only
response sends ``response.text.delta`` per word (40 ms apart at real time); a function call sends
its arguments in 8-character ``response.function_call_arguments.delta``.

A function-call response has one ``function_call`` output item per call (parallel calls), streamed
one after the other, each with its own ``output_index``, item id and ``call_id``::

    response.created → (response.output_item.added → conversation.item.created
    → response.function_call_arguments.delta* → response.function_call_arguments.done
    → response.output_item.done)  per call → response.done (output: every item)

A cancelled one closes the item being streamed as ``incomplete`` (its arguments as far as sent, no
``arguments.done``); calls not yet announced are left out of ``response.done``. A spoken preamble
(the scenario turn's ``preamble``) is a message output item at index 0, streamed and closed before
the calls, which then take indexes 1, 2, … (one response, as on the service).

A response that is not committed (``response.create`` with ``commit: false``, or out of band with
``conversation: "none"``) sends the same events except ``conversation.item.created``, and its items
never enter the conversation; an out-of-band one has ``conversation_id`` null.

Every state change happens synchronously between awaits, so a cancellation (barge-in or
``response.cancel``) can never interleave with half an event group.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol

from voicepipe.emulator import defaults
from voicepipe.emulator.events import function_call_item, message_item
from voicepipe.emulator.voice import SpokenText, split_pieces

from voicepipe.emulator.conversation import ItemRecord

if TYPE_CHECKING:
    from voicepipe.emulator.scenario import Scenario


class ResponseHost(Protocol):
    """What a response needs of the connection it runs on (``voicepipe.emulator.connection``)."""

    session: dict
    scenario: "Scenario"
    conversation_id: str

    def emit(self, event_type: str, **fields: Any) -> None: ...

    async def room(self) -> None: ...

    async def think(self, ms: float) -> None: ...

    async def pace(self, ms: float) -> None: ...

    async def pace_until(self, started: float, ms: float) -> None: ...

    async def speech_for(self, text: str, fmt: str) -> SpokenText: ...

    def add_item(self, item: dict, role: Optional[str] = None, **extra: Any) -> ItemRecord: ...

    def flush_transcriptions(self) -> None: ...

    def input_token_estimate(self) -> tuple[int, int]: ...

    def response_finished(self, response: "Response") -> None: ...

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
    """What a response says (``text``) and which functions it then calls (``calls``, in order).

    With calls, ``text`` is a preamble spoken first (empty: none)."""

    text: str = ""
    calls: list[PlannedCall] = field(default_factory=list)


class Response:
    """A response in progress on a connection; :meth:`start` it, it finishes or is cancelled.

    ``commit`` false keeps its items out of the conversation; ``out_of_band`` (``conversation:
    "none"``) also leaves its ``conversation_id`` null.
    """

    def __init__(
        self,
        conn: ResponseHost,
        plan: ResponsePlan,
        params: dict[str, Any],
        *,
        commit: bool = True,
        out_of_band: bool = False,
    ):
        self.conn = conn
        self.plan = plan
        self.id = defaults.new_id("resp")
        self.commit = commit
        self.out_of_band = out_of_band
        session = conn.session
        self.modalities = list(params.get("modalities") or session.get("modalities") or ["text", "audio"])
        self.has_message = bool(plan.text) or not plan.calls
        self.audio = "audio" in self.modalities and self.has_message
        self.output_format = params.get("output_audio_format") or session.get("output_audio_format") or "pcm16"
        self.word_timestamps = self.audio and "word" in (session.get("output_audio_timestamp_types") or ())
        self.shape = {
            "object": "realtime.response",
            "id": self.id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "usage": None,
            "conversation_id": None if out_of_band else conn.conversation_id,
            "modalities": self.modalities,
            "voice": params.get("voice") or session.get("voice"),
            "output_audio_format": self.output_format,
            "temperature": params.get("temperature"),
            "max_output_tokens": params.get("max_output_tokens", session.get("max_response_output_tokens", "inf")),
            "metadata": params.get("metadata"),
        }
        self.message_id = defaults.new_id("item")
        self.item_id = self.message_id if self.has_message else plan.calls[0].item_id
        self.item: Optional["ItemRecord"] = None  # the item being streamed
        self.message: Optional["ItemRecord"] = None
        self.done = False
        self._call_base = 1 if self.has_message else 0  # output_index of the first call
        self._output: list[dict] = []  # the closed output items, for response.done
        self._message_open = False
        self._call_index = 0  # the call being streamed
        self._call_open = False  # announced and not yet closed
        self._task: Optional[asyncio.Task] = None
        self._spoken: Optional[SpokenText] = None
        self._sent_pieces: list[str] = []
        self._sent_ms = 0.0
        self._arguments_sent = ""
        self._words_timed = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Send the opening events and start streaming."""
        self.conn.emit("response.created", response=self._response_shape())
        if self.has_message:
            self._open_message()
        else:
            self._announce_call(0)
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
            if self.audio:
                self._spoken = await conn.speech_for(self.plan.text, self.output_format)
                self.message.spoken = self._spoken
            await conn.think(conn.scenario.response_delay_ms)
            if self.has_message:
                if self.audio:
                    await self._stream_audio()
                else:
                    await self._stream_text()
                if self.done:
                    return
                if self.plan.calls:
                    self._close_message("completed")
                    await conn.pace(ARGUMENT_DELTA_MS)
                    if self.done:
                        return
                    self._announce_call(0)
            if self.plan.calls:
                await self._stream_calls()
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
                if self.word_timestamps:
                    self._time_word(piece)
            if step.audio_b64:
                conn.emit("response.audio.delta", **self._where(), delta=step.audio_b64)
                self._sent_ms = step.start_ms + step.duration_ms
                self.message.audio_ms = self._sent_ms
                if self.message.first_delta_at is None:
                    self.message.first_delta_at = loop.time()
            self.message.transcript = "".join(self._sent_pieces)
            if index == 0:
                conn.flush_transcriptions()

    def _time_word(self, piece: str) -> None:
        """``response.audio_timestamp.delta`` for the piece just sent, if it is a word (SDK
        ``ServerEventResponseAudioTimestampDelta``: offset and duration in ms, ``text``,
        ``timestamp_type`` "word")."""
        index = self._words_timed
        self._words_timed += 1
        word = piece.strip()
        if not word or index >= len(self._spoken.starts_ms):
            return
        offset, duration = self._spoken.word_timing(index)
        self.conn.emit(
            "response.audio_timestamp.delta",
            **self._where(),
            audio_offset_ms=offset,
            audio_duration_ms=duration,
            text=word,
            timestamp_type="word",
        )

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
            self.message.transcript = "".join(self._sent_pieces)
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
                    output_index=self._call_base + index,
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

    def _add(self, item: dict, output_index: int) -> "ItemRecord":
        """Announce an output item; a committed response also adds it to the conversation."""
        conn = self.conn
        conn.emit("response.output_item.added", response_id=self.id, output_index=output_index, item=item)
        if not self.commit:
            return ItemRecord(item=item, previous_id=None, role="assistant")
        record = conn.add_item(item, role="assistant")
        conn.emit("conversation.item.created", previous_item_id=record.previous_id, item=item)
        return record

    def _open_message(self) -> None:
        item = message_item(self.message_id, "assistant", [], status="in_progress")
        self.message = self.item = self._add(item, 0)
        self._message_open = True
        part = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
        self.conn.emit("response.content_part.added", **self._where(), part=part)

    def _close_message(self, status: str) -> None:
        """The message's closing events (also when interrupted: status incomplete)."""
        if not self._message_open:
            return
        self._message_open = False
        conn = self.conn
        text = "".join(self._sent_pieces)
        if self.audio:
            if self.word_timestamps:
                conn.emit("response.audio_timestamp.done", **self._where())
            conn.emit("response.audio.done", **self._where())
            conn.emit("response.audio_transcript.done", **self._where(), transcript=text)
            part = {"type": "audio", "transcript": text}
            conn.emit("response.content_part.done", **self._where(), part=part)
        else:
            conn.emit("response.text.done", **self._where(), text=text)
            # the service sends the text part empty here; the full text is in text.done
            conn.emit("response.content_part.done", **self._where(), part={"type": "text", "text": ""})
            part = {"type": "text", "text": text}
        item_status = "completed" if status == "completed" else "incomplete"
        item = message_item(self.message_id, "assistant", [part], status=item_status)
        self.message.replace(item)
        conn.emit("response.output_item.done", response_id=self.id, output_index=0, item=item)
        self._output.append(item)

    def _announce_call(self, index: int) -> None:
        """Open the ``index``-th function call item (added + created), synchronously."""
        call = self.plan.calls[index]
        self._call_index = index
        self._call_open = True
        self._arguments_sent = ""
        self.item_id = call.item_id
        item = function_call_item(call.item_id, call.name, call.call_id, "", "in_progress")
        self.item = self._add(item, self._call_base + index)

    def _close_call(self, status: str) -> None:
        """Close the call being streamed: ``arguments.done`` (if completed) and ``output_item.done``."""
        if not self._call_open:
            return  # between two calls: the last one is closed, the next not yet announced
        self._call_open = False
        conn = self.conn
        index = self._call_index
        output_index = self._call_base + index
        call = self.plan.calls[index]
        arguments = call.arguments if status == "completed" else self._arguments_sent
        if status == "completed":
            conn.emit(
                "response.function_call_arguments.done",
                response_id=self.id,
                item_id=call.item_id,
                output_index=output_index,
                call_id=call.call_id,
                name=call.name,
                arguments=arguments,
            )
        item_status = "completed" if status == "completed" else "incomplete"
        item = function_call_item(call.item_id, call.name, call.call_id, arguments, item_status)
        self.item.replace(item)
        conn.emit("response.output_item.done", response_id=self.id, output_index=output_index, item=item)
        self._output.append(item)

    # -- closing -----------------------------------------------------------------------------

    def _finish(self, status: str, details: Optional[dict]) -> None:
        self.done = True
        conn = self.conn
        conn.flush_transcriptions()
        self._close_message(status)
        self._close_call(status)
        output_text_tokens = sum(defaults.text_tokens(item["arguments"]) for item in self._output if "arguments" in item)
        output_audio_tokens = 0
        if self.has_message:
            output_text_tokens += defaults.text_tokens("".join(self._sent_pieces))
            output_audio_tokens = defaults.audio_tokens(self._sent_ms) if self.audio else 0
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
        return {"response_id": self.id, "item_id": self.message_id, "output_index": 0, "content_index": 0}

    def _response_shape(self) -> dict[str, Any]:
        return dict(self.shape)
