"""One emulated Voice Live connection: the protocol state machine behind a WebSocket.

Client events are handled one at a time, synchronously: each handler updates the state and queues
the server events it causes. A single writer task sends the queue in order, so the order on the
wire is the order in which the state changed, and scenario faults are applied exactly between two
events. Responses stream from their own task (see :mod:`voicepipe.emulator.responses`).

Memory stays bounded however long the session runs: no input audio is kept (the voice detector
holds counters and at most one 10 ms frame, the buffer is a sample count), the conversation keeps
the last ``conversation.MAX_ITEMS`` items, the event records keep the last
``record.MAX_RECORDED`` events (appended audio replaced by its size), and a streaming response
waits for the send queue to drain below ``QUEUE_HIGH`` events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any, Optional

from voicepipe.emulator import defaults
from voicepipe.emulator.conversation import Conversation, ItemRecord, check_truncate, item_from_client
from voicepipe.emulator.events import (
    CLIENT_EVENT_TYPES,
    ProtocolError,
    error_event,
    invalid_type,
    invalid_value,
    message_item,
    missing,
)
from voicepipe.emulator.faults import FaultPlan
from voicepipe.emulator.formats import bytes_per_sample, decode_input, input_rate
from voicepipe.emulator.frames import event_text
from voicepipe.emulator.pacing import Pacing
from voicepipe.emulator.record import ConnectionRecord
from voicepipe.emulator.responses import PlannedCall, Response, ResponsePlan
from voicepipe.emulator.scenario import Fault, Scenario, ToolCall, Turn, answer_text
from voicepipe.emulator.session import apply_session_update, check_response_params
from voicepipe.emulator.vad import EnergyVad
from voicepipe.emulator.voice import SpokenText, cached_speech, cached_spoken, spoken

log = logging.getLogger(__name__)

QUEUE_HIGH = 64  # a streaming response waits while more events than this are unsent
MIN_COMMIT_MS = 100.0
COMPLETE_FRACTION = 0.75  # of a turn's words' length in our voice: the utterance counts as said


@dataclass
class _Speech:
    item_id: str
    start_ms: int


@dataclass
class _Inject:
    """A fault queued behind the events that were already waiting."""

    fault: Fault


_CLOSE = object()


@dataclass
class _Buffer:
    samples: int = 0  # appended since the last commit or clear
    odd_byte: bytes = b""  # half a PCM16 sample carried to the next append


class Connection:
    """The protocol state of one WebSocket connection (see the module docstring)."""

    def __init__(
        self,
        ws,
        record: ConnectionRecord,
        scenario: Scenario,
        pacing: Pacing,
        faults: FaultPlan,
        model: Optional[str],
        agent: Optional[dict] = None,
    ):
        self.ws = ws
        self.record = record
        self.scenario = scenario
        self.pacing = pacing
        self.faults = faults
        self.session = defaults.initial_session(model, agent)
        record.session = self.session
        self.conversation_id = defaults.new_id("conv")
        self.conversation = Conversation()
        self.response: Optional[Response] = None  # the conversation's response in progress
        self._side: set[Response] = set()  # out-of-band responses in progress
        self._turn_index = 0
        self._buffer = _Buffer()
        self._speech: Optional[_Speech] = None
        self._vad: Optional[EnergyVad] = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._drained = asyncio.Event()
        self._silenced = False
        self._delay_s = 0.0
        self._closing = False
        self._reader: Optional[asyncio.Task] = None
        self._closed_by_server: Optional[asyncio.Event] = None
        self._configure_vad()
        self._handlers = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "output_audio_buffer.clear": self._on_output_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.truncate": self._on_item_truncate,
            "conversation.item.delete": self._on_item_delete,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write())
        self._reader = loop.create_task(self._read())
        try:
            for fault in self.faults.at_open():
                self._queue.put_nowait(_Inject(fault))
            self.emit("session.created", session=self.session)
            try:
                await self._reader
            except asyncio.CancelledError:
                if self._closed_by_server is None:
                    raise  # not our close(): this task itself is being cancelled
            if self._closed_by_server is not None:
                await self._closed_by_server.wait()
        finally:
            self._reader.cancel()
            self._closing = True
            self._abandon_responses()
            self._queue.put_nowait(_CLOSE)
            try:
                await asyncio.wait_for(writer, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                writer.cancel()
            self.record.close_code = self.record.close_code or self.ws.close_code
            self.record.closed.set()
            self._release()

    def _release(self) -> None:
        """The connection is over: drop what refers back to it (the handler table and the voice
        detector hold its bound methods; the reader task, its last frame), so that reference
        counting frees it once the server lets go, not a full garbage collection."""
        self._handlers = {}
        self._vad = None
        self._reader = None

    async def _read(self) -> None:
        import aiohttp

        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self._on_text(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                self._send_error(
                    ProtocolError("invalid_event", "Binary frames are not supported; send JSON text frames.")
                )
            elif message.type == aiohttp.WSMsgType.ERROR:
                break

    async def close(self, code: int = 1001, reason: str = "going away") -> None:
        """Close from the server side (emulator shutdown or a ``close`` fault).

        The reader is stopped first: aiohttp drops the transport at once when a close overlaps a
        pending receive, and the client would see 1006 instead of ``code``. Without one, the
        close handshake completes and the client gets the code and reason.
        """
        if self._closed_by_server is not None:
            return
        self._closed_by_server = asyncio.Event()
        self.record.close_code = code
        self._closing = True
        self._abandon_responses()
        try:
            if self._reader is not None and not self._reader.done():
                self._reader.cancel()
                await asyncio.wait({self._reader})
            await self.ws.close(code=code, message=reason.encode("utf-8"))
        except Exception:  # the peer may already be gone
            log.debug("closing connection #%s failed", self.record.number, exc_info=True)
        finally:
            self._closed_by_server.set()

    def _abandon_responses(self) -> None:
        for response in [self.response, *self._side]:
            if response is not None:
                response.abandon()
        self.response = None
        self._side.clear()

    async def _write(self) -> None:
        while True:
            if self._queue.qsize() <= QUEUE_HIGH // 2:
                self._drained.set()
            entry = await self._queue.get()
            if entry is _CLOSE:
                return
            if isinstance(entry, _Inject):
                await self._apply(entry.fault)
                continue
            if self._silenced or self._closing:
                continue
            if self._delay_s:
                delay, self._delay_s = self._delay_s, 0.0
                await asyncio.sleep(delay)
            if not await self._send(entry):
                continue
            for fault in self.faults.server_event_sent(entry["type"]):
                await self._apply(fault)

    async def _send(self, event: Any) -> bool:
        if self.ws.closed:
            return False
        try:
            if isinstance(event, str):
                await self.ws.send_str(event)
                return True
            await self.ws.send_str(event_text(event))
        except (ConnectionError, RuntimeError):
            self._closing = True
            return False
        self.record.sent(event)
        return True

    async def _apply(self, fault: Fault) -> None:
        params = fault.params
        log.info("connection #%s: fault %s (scenario line %s)", self.record.number, fault.action, fault.line)
        if fault.action == "delay":
            self._delay_s += params["ms"] / 1000.0
        elif fault.action == "close":
            await self.close(params["code"], params["reason"])
        elif fault.action == "error":
            await self._send(error_event(params["code"], params["message"], error_type=params["type"]))
        elif fault.action == "malformed":
            if params["kind"] == "wrong_shape":
                await self._send({"type": "response.done", "event_id": defaults.new_id("event", 22), "response": "???"})
            else:
                await self._send('{"type": "response.audio.delta", "delta": ')
        elif fault.action == "stop_answering":
            self._silenced = True

    # -- used by responses -------------------------------------------------------------------

    def emit(self, event_type: str, **fields: Any) -> None:
        """Queue a server event (``event_id`` and ``type`` first, as the service orders them)."""
        if self._closing:
            return
        event = {"event_id": defaults.new_id("event", 22), "type": event_type}
        event.update(fields)
        self._queue.put_nowait(event)
        if self._queue.qsize() > QUEUE_HIGH:
            self._drained.clear()

    async def room(self) -> None:
        """Wait until the send queue has room (a slow reader slows the response, not memory)."""
        while self._queue.qsize() > QUEUE_HIGH and not self._closing:
            self._drained.clear()
            await self._drained.wait()

    async def think(self, ms: float) -> None:
        """The thinking time before an answer (``ms`` of conversation time)."""
        await asyncio.sleep(self.pacing.latency_s(ms))

    async def pace(self, ms: float) -> None:
        """The gap between two text or argument deltas ``ms`` apart at real time."""
        await asyncio.sleep(self.pacing.step_s(ms))

    async def pace_until(self, started: float, ms: float) -> None:
        """Sleep until the audio starting at ``ms`` is due (see :class:`~.pacing.Pacing`)."""
        due = self.pacing.audio_due_s(ms)
        if due <= 0:
            await asyncio.sleep(0)
            return
        await asyncio.sleep(max(0.0, started + due - asyncio.get_running_loop().time()))

    async def speech_for(self, text: str, fmt: str) -> SpokenText:
        """The answer's audio: from the cache, or synthesized off the event loop the first time."""
        ready = cached_spoken(text, fmt, self.scenario.voice)
        if ready is not None:
            return ready
        return await asyncio.to_thread(spoken, text, fmt, self.scenario.voice)

    def add_item(self, item: dict, role: Optional[str] = None, **extra: Any) -> ItemRecord:
        return self.conversation.add(item, role, **extra)

    def flush_transcriptions(self) -> None:
        """Send the input transcriptions still owed (they ride along with the next response)."""
        for record in self.conversation:
            if record.pending_transcription:
                record.pending_transcription = False
                record.replace({**record.item, "content": [{"type": "input_audio", "transcript": record.user_text}]})
                self.emit(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=record.id,
                    content_index=0,
                    delta=record.user_text,
                )
                self.emit(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=record.id,
                    content_index=0,
                    transcript=record.user_text,
                )

    def input_token_estimate(self) -> tuple[int, int]:
        return self.conversation.token_estimate()

    def response_finished(self, response: Response) -> None:
        if self.response is response:
            self.response = None
        self._side.discard(response)

    # -- client events -----------------------------------------------------------------------

    def _on_text(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError as exc:
            self._send_error(ProtocolError("invalid_json", f"The server failed to parse the event: {exc}."))
            return
        if not isinstance(event, dict):
            self._send_error(invalid_type("event", "an object", event))
            return
        self.record.received(event)
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        event_type = event.get("type")
        try:
            if event_type is None:
                raise missing("type")
            if not isinstance(event_type, str):
                raise invalid_type("type", "a string", event_type)
            handler = self._handlers.get(event_type)
            if handler is None:
                if event_type in CLIENT_EVENT_TYPES:
                    raise ProtocolError(
                        "unsupported_event", f"The voicepipe emulator does not implement '{event_type}'.", "type"
                    )
                raise invalid_value("type", event_type, tuple(self._handlers))
            handler(event)
        except ProtocolError as exc:
            self._send_error(exc, client_event_id)
        if isinstance(event_type, str):
            for fault in self.faults.client_event_handled(event_type):
                self._queue.put_nowait(_Inject(fault))

    def _send_error(self, exc: ProtocolError, client_event_id: Optional[str] = None) -> None:
        event = error_event(exc.code, exc.message, param=exc.param, client_event_id=client_event_id)
        if not self._closing:
            self._queue.put_nowait(event)

    def _on_session_update(self, event: dict) -> None:
        self.session = apply_session_update(self.session, event.get("session"))
        self.record.session = self.session
        self._configure_vad()
        self.emit("session.updated", session=self.session)

    def _configure_vad(self) -> None:
        detection = self.session.get("turn_detection")
        timeline = self._vad.position_ms if self._vad is not None else 0
        if detection is None:
            self._vad = EnergyVad(self._input_rate, timeline_ms=timeline)
            return
        semantic = detection.get("type", "").startswith("azure_semantic_vad")
        self._vad = EnergyVad(
            self._input_rate,
            threshold=detection.get("threshold", 0.5),
            prefix_padding_ms=detection.get("prefix_padding_ms") or 0,
            silence_duration_ms=detection.get("silence_duration_ms") or 500,
            speech_duration_ms=detection.get("speech_duration_ms"),
            timeline_ms=timeline,
            end_hold=self._end_of_utterance_hold if semantic and detection.get("end_of_utterance_detection") else None,
        )
        self._speech = None

    def _end_of_utterance_hold(self, spoken_ms: int) -> float:
        """The silence that ends an utterance under semantic end-of-utterance detection (an
        approximation): the silence duration when the words said so far end a sentence, else the
        detector's timeout. The words are the next scenario turn's, as far as the synthesized voice
        says them in ``spoken_ms``; without a scenario turn, the silence duration."""
        detection = self.session.get("turn_detection") or {}
        silence = detection.get("silence_duration_ms") or 500
        turn = self._peek_turn()
        if turn is None or not turn.user:
            return silence
        speech = cached_speech(turn.user, self._input_rate)
        voiced_ms = speech.ends_ms[-1] if speech.ends_ms else speech.duration_ms
        if spoken_ms >= COMPLETE_FRACTION * voiced_ms:
            return silence  # about all of it was said (real voices are faster or slower than ours)
        partial = speech.transcript_until(spoken_ms)
        if partial.rstrip().endswith((".", "!", "?")) or partial == turn.user:
            return silence
        eou = detection.get("end_of_utterance_detection") or {}
        timeout_ms = eou.get("timeout_ms")
        if eou.get("timeout") is not None:
            timeout_ms = float(eou["timeout"]) * 1000.0  # seconds in the SDK's EouDetection
        return max(silence, timeout_ms or defaults.EOU_FIELDS["timeout_ms"])

    @property
    def _input_rate(self) -> int:
        return input_rate(
            self.session.get("input_audio_format"), self.session.get("input_audio_sampling_rate") or 24000
        )

    def _on_append(self, event: dict) -> None:
        audio = event.get("audio")
        if audio is None:
            raise missing("audio")
        if not isinstance(audio, str):
            raise invalid_type("audio", "a base64-encoded string", audio)
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_value", "Invalid 'audio': expected base64-encoded audio.", "audio") from None
        fmt = self.session.get("input_audio_format")
        if bytes_per_sample(fmt) == 2:
            raw = self._buffer.odd_byte + raw
            self._buffer.odd_byte = raw[len(raw) // 2 * 2 :]
            raw = raw[: len(raw) // 2 * 2]
        samples = decode_input(raw, fmt)
        self._buffer.samples += len(samples)
        if self.session.get("turn_detection") is None:
            self._vad.skip(len(samples))  # manual turns: keep the timeline, detect nothing
            return
        for vad_event in self._vad.feed(samples):
            if vad_event.kind == "start":
                self._speech_started(vad_event.ms)
            elif self._speech is not None:
                self._speech_stopped(vad_event.ms)

    def _speech_started(self, start_ms: int) -> None:
        self._speech = _Speech(defaults.new_id("item"), start_ms)
        self.emit("input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=self._speech.item_id)
        detection = self.session.get("turn_detection") or {}
        if not detection.get("interrupt_response", True):
            return
        if self.response is not None:
            self.response.cancel("turn_detected")
            self.response = None
        if detection.get("auto_truncate"):
            self._auto_truncate(detection.get("appended_text_after_truncation"))

    def _auto_truncate(self, appended: Optional[str]) -> None:
        """Cut the last spoken answer where real-time playback since its first delta would be.

        The answer may still be streaming or already finished (``response.done`` sent) while the
        listener still plays it: the service generates faster than real time (see ``pacing``).
        """
        assistant = self.conversation.last_answer()
        timescale = self.pacing.timescale
        if assistant is None or assistant.first_delta_at is None or assistant.auto_truncated or timescale <= 0:
            return
        played_ms = (asyncio.get_running_loop().time() - assistant.first_delta_at) * 1000.0 * timescale
        if played_ms >= assistant.audio_ms:
            return
        assistant.auto_truncated = True
        assistant.truncate(int(played_ms), appended or "")
        self.emit("conversation.item.truncated", item_id=assistant.id, content_index=0, audio_end_ms=int(played_ms))

    def _speech_stopped(self, end_ms: int) -> None:
        speech, self._speech = self._speech, None
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=speech.item_id)
        record = self._commit_audio(speech.item_id, max(0, end_ms - speech.start_ms))
        detection = self.session.get("turn_detection") or {}
        if detection.get("create_response", True) and self.response is None:
            self._start_response({}, answering=record)
        else:
            self.flush_transcriptions()

    def _commit_audio(self, item_id: str, duration_ms: float) -> ItemRecord:
        turn = self._next_turn()
        said = turn.user if turn is not None and turn.user else f"({duration_ms / 1000:.1f} s of speech)"
        item = message_item(item_id, "user", [{"type": "input_audio", "transcript": None}])
        transcribing = self.session.get("input_audio_transcription") is not None
        record = self.add_item(
            item, role="user", turn=turn, user_text=said, audio_ms=duration_ms, pending_transcription=transcribing
        )
        self._buffer.samples = 0
        self.emit("input_audio_buffer.committed", previous_item_id=record.previous_id, item_id=item_id)
        self.emit("conversation.item.created", previous_item_id=record.previous_id, item=item)
        self.emit("conversation.item.done", previous_item_id=record.previous_id, item=item)
        return record

    def _on_commit(self, event: dict) -> None:
        buffered_ms = 1000.0 * self._buffer.samples / self._input_rate
        if buffered_ms < MIN_COMMIT_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id = self._speech.item_id if self._speech is not None else defaults.new_id("item")
        self._speech = None
        self._vad.reset()
        self._commit_audio(item_id, buffered_ms)
        self.flush_transcriptions()

    def _on_clear(self, event: dict) -> None:
        self._buffer = _Buffer()
        self._speech = None
        self._vad.reset()
        self.emit("input_audio_buffer.cleared")

    def _on_output_clear(self, event: dict) -> None:
        self.emit("output_audio_buffer.cleared")

    def _on_item_create(self, event: dict) -> None:
        after = self.conversation.check_position(event.get("previous_item_id"))
        item, extra = item_from_client(event.get("item"), self.conversation)
        self._create_item(item, extra, after)

    def _create_item(self, item: dict, extra: dict, after: Optional[str] = None) -> ItemRecord:
        """Add a client item, and take the scenario turn its text is (re-seeded history)."""
        role, text = extra.get("role"), extra.get("user_text") or ""
        if role in ("user", "assistant") and text:
            index = self.scenario.turn_of(role, text, self._turn_index)
            if index is not None:
                self._turn_index = index + 1
                if role == "user":
                    extra = {**extra, "turn": self.scenario.turns[index]}
        record = self.add_item(item, after=after, **extra)
        self.emit("conversation.item.created", previous_item_id=record.previous_id, item=item)
        return record

    def _on_item_retrieve(self, event: dict) -> None:
        record = self.conversation.find(event)
        self.emit("conversation.item.retrieved", item=record.item)

    def _on_item_delete(self, event: dict) -> None:
        record = self.conversation.find(event)
        self.conversation.delete(record)
        self.emit("conversation.item.deleted", item_id=record.id)

    def _on_item_truncate(self, event: dict) -> None:
        record = self.conversation.find(event)
        audio_end_ms = check_truncate(record, event)
        record.truncate(audio_end_ms)
        self.emit("conversation.item.truncated", item_id=record.id, content_index=0, audio_end_ms=audio_end_ms)

    def _on_response_create(self, event: dict) -> None:
        """``response.create`` with the SDK's ``ResponseCreateParams`` options: ``commit``,
        ``cancel_previous`` (default true), ``append_input_items``, ``pre_generated_assistant_message``;
        and the realtime API's out-of-band ``conversation: "none"`` (with optional ``input``)."""
        params = check_response_params(event.get("response"))
        out_of_band = params.get("conversation") == "none"
        if out_of_band:
            context = self._items_of(params, "input")
            plan = self._plan_from(context, params)
            self._side.add(self._launch(plan, params, commit=False, out_of_band=True))
            return
        if self.response is not None:
            if not params.get("cancel_previous", True):
                raise ProtocolError(
                    "conversation_already_has_active_response",
                    f"Conversation already has an active response in progress: {self.response.id}. "
                    "Wait until the response is finished before creating a new one.",
                )
            self.response.cancel("client_cancelled")
            self.response = None
        appended = self._items_of(params, "append_input_items")
        for item, extra in appended:
            self._create_item(item, extra)
        commit = params.get("commit", True)
        if params.get("pre_generated_text") is not None:
            plan = ResponsePlan(text=params["pre_generated_text"])
        elif commit:
            plan = self._plan(None, params)
        else:
            plan = self._plan_from([], params)
        self.response = self._launch(plan, params, commit=commit)

    def _items_of(self, params: dict, key: str) -> list[tuple[dict, dict]]:
        """The items of ``response.<key>``, every one checked before any is used."""
        items = []
        for index, raw in enumerate(params.get(key) or ()):
            try:
                items.append(item_from_client(raw, self.conversation))
            except ProtocolError as exc:
                where = f"response.{key}[{index}]"
                param = where + (exc.param or "item")[len("item") :]
                raise ProtocolError(exc.code, exc.message.replace("'item", f"'{where}"), param) from None
        return items

    def _on_response_cancel(self, event: dict) -> None:
        wanted = event.get("response_id")
        side = next((r for r in self._side if r.id == wanted), None)
        if side is not None:
            side.cancel("client_cancelled")
            return
        if self.response is None or (wanted is not None and wanted != self.response.id):
            raise ProtocolError("response_cancel_not_active", "Cancellation failed: no active response found.")
        self.response.cancel("client_cancelled")
        self.response = None

    # -- turns and answers -------------------------------------------------------------------

    def _peek_turn(self) -> Optional[Turn]:
        if self._turn_index < len(self.scenario.turns):
            return self.scenario.turns[self._turn_index]
        return None

    def _next_turn(self) -> Optional[Turn]:
        if self._turn_index < len(self.scenario.turns):
            self._turn_index += 1
            return self.scenario.turns[self._turn_index - 1]
        return None

    def _start_response(self, params: dict, answering: Optional[ItemRecord] = None) -> None:
        self.response = self._launch(self._plan(answering, params), params)

    def _launch(self, plan: ResponsePlan, params: dict, **options: Any) -> Response:
        response = Response(self, plan, params, **options)
        response.start()
        return response

    def _plan(self, answering: Optional[ItemRecord], params: dict) -> ResponsePlan:
        """What to answer: the scenario turn of the latest user input (or tool output)."""
        latest = answering or self.conversation.latest_input()
        if latest is None:
            return ResponsePlan(text=self.scenario.greeting)
        if latest.item.get("type") == "function_call_output":
            asked = self.conversation.calls.get(latest.item["call_id"])
            if asked is not None and asked.calls_left:
                return self._call(asked, [asked.calls_left.pop(0)])  # parallel_tool_calls false: the next one
            turn = asked.turn if asked is not None else None
            if turn is not None and turn.assistant:
                template = turn.assistant
            else:
                template = "{tool_output}"
            user = asked.user_text if asked is not None else ""
            return ResponsePlan(text=answer_text(template, user=user, tool_output=self._tool_output(latest, asked)))
        if latest.turn is None and not latest.tool_called:
            latest.turn = self._next_turn()
        turn = latest.turn
        if not latest.tool_called:
            wanted = self._calls_for(turn, params)
            if wanted:
                if self._tool_setting("parallel_tool_calls", params) is False:
                    wanted, latest.calls_left = wanted[:1], wanted[1:]
                plan = self._call(latest, wanted)
                plan.text = (turn.preamble or "") if turn is not None else ""
                return plan
        template = turn.assistant if turn is not None and turn.assistant else self.scenario.default_answer
        return ResponsePlan(text=answer_text(template, user=latest.user_text))

    def _plan_from(self, context: list[tuple[dict, dict]], params: dict) -> ResponsePlan:
        """What a response whose answer is not kept says, changing no state: to its own input
        items (out of band), or to the latest input's turn without taking a new one."""
        if params.get("pre_generated_text") is not None:
            return ResponsePlan(text=params["pre_generated_text"])
        said = next((extra.get("user_text") for item, extra in reversed(context) if extra.get("role") == "user"), None)
        if said is None and not context:
            latest = self.conversation.latest_input()
            if latest is None:
                return ResponsePlan(text=self.scenario.greeting)
            said = latest.user_text
            turn = latest.turn
            if turn is None and self._turn_index < len(self.scenario.turns):
                turn = self.scenario.turns[self._turn_index]
            if turn is not None and turn.assistant:
                return ResponsePlan(text=answer_text(turn.assistant, user=said))
        return ResponsePlan(text=answer_text(self.scenario.default_answer, user=said or ""))

    def _call(self, asking: ItemRecord, wanted: list) -> ResponsePlan:
        asking.tool_called = True
        calls = [PlannedCall(call.name, call.arguments, defaults.new_id("call", 16)) for call in wanted]
        asking.call_ids.extend(call.call_id for call in calls)
        for call in calls:
            self.conversation.remember_call(call.call_id, asking)
        return ResponsePlan(calls=calls)

    def _calls_for(self, turn: Optional[Turn], params: dict) -> list:
        """The turn's calls the tools and ``tool_choice`` allow (``required`` or a named function
        with no such call in the turn: that function with ``{}``). SDK ``ToolChoiceFunctionSelection``
        is ``{"type": "function", "name": …}``; the ``ResponseCreateParams`` docstring's
        ``{"type": "function", "function": {"name": …}}`` is accepted too."""
        tools = params.get("tools")
        if tools is None:
            tools = self.session.get("tools") or []
        available = [t.get("name") for t in tools if isinstance(t, dict) and t.get("type", "function") == "function"]
        choice = self._tool_setting("tool_choice", params) or "auto"
        planned = [call for call in turn.calls if call.name in available] if turn is not None else []
        if choice == "none" or not available:
            return []
        if isinstance(choice, dict):
            name = choice.get("name") or (choice.get("function") or {}).get("name")
            chosen = [call for call in planned if call.name == name][:1]
            return chosen or ([ToolCall(name, "{}")] if name in available else [])
        if choice == "required" and not planned:
            return [ToolCall(available[0], "{}")]
        return planned

    def _tool_setting(self, key: str, params: dict) -> Any:
        return params[key] if params.get(key) is not None else self.session.get(key)

    def _tool_output(self, latest: ItemRecord, asked: Optional[ItemRecord]) -> str:
        """``{tool_output}``: the outputs of every call of the response that asked, in call order.

        Each call's newest ``function_call_output`` counts; calls without one are left out. If the
        asking turn is forgotten (or made one call), it is the output just sent, as before.
        """
        call_ids = asked.call_ids if asked is not None else []
        if len(call_ids) <= 1:
            return latest.user_text
        outputs = self.conversation.call_outputs()
        return "; ".join(outputs[call_id] for call_id in call_ids if call_id in outputs)


