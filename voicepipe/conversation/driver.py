"""The scripted caller as a plugin of the session it drives.

One :class:`ConversationDriver` per session: it provides the ``conversation`` audio input (the
:class:`~voicepipe.conversation.caller.ScriptedMicrophone`), starts each turn (speech into the
microphone, or a typed message), and keeps what the service did in answer in one
:class:`TurnRecord` per turn. A response belongs to the turn that was current when it was created,
so an answer that is still streaming when the caller talks over it stays with its own turn.

A turn is answered once every response it caused is done, the last one called no function (else
the tools plugin's follow-up response is awaited), and the answer's audio has played or been cut
off. The caller then takes the next turn; when there is none, the session stops.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import voicepipe
from voicepipe.conversation.caller import BACKEND, ScriptedMicrophone
from voicepipe.conversation.spec import Conversation
from voicepipe.pipeline import event_fields

STOP_REASON = "input_finished"


@dataclass
class TurnRecord:
    """What happened in one turn, as the caller saw it. Times are ``ctx.now()`` readings."""

    index: int
    label: str
    started_at: Optional[float] = None
    #: the last sample of the caller's speech captured, or the typed message sent
    input_end_at: Optional[float] = None
    user_text: Optional[str] = None
    response_ids: list = field(default_factory=list)
    answers: list = field(default_factory=list)  # the words of each message the service answered with
    tool_calls: list = field(default_factory=list)  # {"name", "arguments", "call_id"}
    statuses: list = field(default_factory=list)
    first_played_at: Optional[float] = None
    interrupted: bool = False
    errors: list = field(default_factory=list)
    #: why the turn has no complete answer (a timeout, the session ending)
    failure: Optional[str] = None
    answered: bool = False
    open_responses: int = 0
    awaiting_followup: bool = False
    audio_items: set = field(default_factory=set)
    played_items: set = field(default_factory=set)
    paced: bool = True

    @property
    def answer(self) -> str:
        return " ".join(text for text in self.answers if text)

    @property
    def voice_to_voice_ms(self) -> Optional[float]:
        """End of the caller's input → the answer's first sample played (tool time included)."""
        if not self.paced or self.input_end_at is None or self.first_played_at is None:
            return None
        return round((self.first_played_at - self.input_end_at) * 1000.0, 1)

    def settled(self) -> bool:
        return (
            bool(self.response_ids)
            and self.open_responses == 0
            and not self.awaiting_followup
            and self.audio_items <= self.played_items
        )

    def as_dict(self) -> dict:
        return {
            "turn": self.index + 1,
            "label": self.label,
            "user_text": self.user_text,
            "answer": self.answer,
            "tool_calls": self.tool_calls,
            "response_ids": self.response_ids,
            "statuses": self.statuses,
            "interrupted": self.interrupted,
            "voice_to_voice_ms": self.voice_to_voice_ms,
            "errors": self.errors,
            "failure": self.failure,
        }


def _message_text(item: Any) -> str:
    parts = []
    for content in item.get("content") or []:
        text = content.get("transcript") or content.get("text")
        if text:
            parts.append(str(text))
    return " ".join(parts)


def _has_audio(item: Any) -> bool:
    return any(content.get("type") in ("audio", "output_audio") for content in item.get("content") or [])


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


class ConversationDriver:
    """Plays the caller of ``conversation``; ``audio[i]`` is turn ``i``'s PCM (``None`` for text)."""

    def __init__(self, conversation: Conversation, audio: list, interjection: bytes, *, paced: bool,
                 on_finished: Optional[Callable[[], None]] = None):
        self.conversation = conversation
        self.audio = audio
        self.interjection = interjection
        self.paced = paced
        self.microphone = ScriptedMicrophone(realtime=paced)
        self.records = [TurnRecord(t.index, t.label, paced=paced) for t in conversation.turns]
        self.end_reason: Optional[str] = None
        self.ctx: Any = None
        self._current: Optional[TurnRecord] = None
        self._by_response: dict[str, TurnRecord] = {}
        self._by_item: dict[str, TurnRecord] = {}
        self._changed: Optional[asyncio.Event] = None
        self._on_finished = on_finished

    # -- hooks ---------------------------------------------------------------------------------

    @voicepipe.hookimpl
    def voicepipe_audio_backend(self, name: str, direction: str) -> Any:
        if name == BACKEND and direction == "input":
            return self.microphone
        return None

    @voicepipe.hookimpl
    def voicepipe_session_start(self, ctx: Any) -> None:
        self.ctx = ctx
        self._changed = asyncio.Event()
        ctx.spawn(self._drive(), name="conversation")

    @voicepipe.hookimpl
    def voicepipe_event(self, event: Any, ctx: Any) -> None:
        fields = event_fields(event)
        kind = fields.get("type")
        if kind == "response.created":
            record = self._current
            response_id = (fields.get("response") or {}).get("id")
            if record is None or not response_id:
                return
            self._by_response[response_id] = record
            record.response_ids.append(response_id)
            record.open_responses += 1
            record.awaiting_followup = False
        elif kind == "response.done":
            self._on_response_done(fields.get("response") or {})
        elif kind == "input_audio_buffer.committed":
            if self._current is not None and fields.get("item_id"):
                self._by_item[fields["item_id"]] = self._current
        elif kind == "conversation.item.input_audio_transcription.completed":
            record = self._by_item.get(fields.get("item_id")) or self._current
            if record is not None:
                record.user_text = str(fields.get("transcript") or "").strip() or record.user_text
        elif kind == "error":
            error = fields.get("error") or {}
            if self._current is not None:
                self._current.errors.append(str(error.get("message") or error.get("code") or "error"))
        else:
            return
        self._bump()

    @voicepipe.hookimpl
    def voicepipe_playback(self, event: Any, ctx: Any) -> None:
        record = self._by_response.get(event.get("response_id"))
        if record is None:
            return
        kind = event.get("type")
        if kind == "playback.started":
            if record.first_played_at is None:
                record.first_played_at = event.get("at")
        elif kind in ("playback.finished", "playback.interrupted"):
            record.played_items.add(event.get("item_id"))
            if kind == "playback.interrupted":
                record.interrupted = True
        self._bump()

    @voicepipe.hookimpl
    async def voicepipe_session_end(self, ctx: Any, reason: str) -> None:
        self.end_reason = reason
        await self.microphone.close()

    # -- events --------------------------------------------------------------------------------

    def _on_response_done(self, response: Any) -> None:
        record = self._by_response.get(response.get("id"))
        if record is None:
            return
        status = response.get("status")
        record.statuses.append(status)
        record.open_responses = max(0, record.open_responses - 1)
        calls = 0
        for item in response.get("output") or []:
            kind = item.get("type")
            if kind == "function_call":
                calls += 1
                record.tool_calls.append(
                    {"name": item.get("name"), "arguments": _arguments(item.get("arguments")), "call_id": item.get("call_id")}
                )
            elif kind == "message":
                record.answers.append(_message_text(item))
                if _has_audio(item) and item.get("id"):
                    record.audio_items.add(item["id"])
        if status == "cancelled":
            record.interrupted = True
        record.awaiting_followup = bool(calls) and status == "completed"

    def _bump(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _until(self, condition: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return condition()
        return True

    # -- the caller ----------------------------------------------------------------------------

    def _start(self, record: TurnRecord, pcm: Optional[bytes], text: Optional[str]) -> None:
        ctx = self.ctx
        self._current = record
        record.started_at = ctx.now()
        if text is not None:
            record.user_text = text
            ctx.send({"type": "conversation.item.create",
                      "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
            ctx.send({"type": "response.create"})
            record.input_end_at = ctx.now()
            return

        def spoken() -> None:
            record.input_end_at = ctx.now()

        self.microphone.speak(pcm or b"", spoken)

    async def _drive(self) -> None:
        turns = self.conversation.turns
        timeout = self.conversation.turn_timeout_s
        try:
            await asyncio.wait_for(self.microphone.wait_open(), timeout)
        except asyncio.TimeoutError:
            self.records[0].failure = f"the audio input did not open within {timeout:g} s"
            self.ctx.stop("error")
            return
        started_next = False
        for turn, record in zip(turns, self.records):
            if not started_next:
                self._start(record, self.audio[turn.index], turn.text)
            started_next = False
            if turn.barge_in_after_ms is not None:
                if not await self._until(lambda: record.first_played_at is not None or record.settled(), timeout):
                    record.failure = f"no answer started playing within {timeout:g} s"
                    break
                if not record.settled():
                    await asyncio.sleep(turn.barge_in_after_ms / 1000.0)
                if not record.settled():
                    following = turns[turn.index + 1] if turn.index + 1 < len(turns) else None
                    if following is not None and following.spoken:
                        self._start(self.records[following.index], self.audio[following.index], None)
                        started_next = True
                        continue
                    aside = TurnRecord(-1, "(talking over the answer)", paced=self.paced)
                    self._start(aside, self.interjection, None)
                    if not await self._until(aside.settled, timeout):
                        record.failure = f"the interruption was not answered within {timeout:g} s"
                        break
                    continue
            if not await self._until(record.settled, timeout):
                record.failure = f"no complete answer within {timeout:g} s"
                break
        self._current = None
        if self._on_finished is not None:
            self._on_finished()
        self.ctx.stop(STOP_REASON)
