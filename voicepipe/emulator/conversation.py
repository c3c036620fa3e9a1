"""The conversation: its items, what the emulator knows about each, and items sent by the client."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from voicepipe.emulator import defaults
from voicepipe.emulator.events import (
    ProtocolError,
    function_call_item,
    function_call_output_item,
    invalid_type,
    invalid_value,
    message_item,
    missing,
)
from voicepipe.emulator.scenario import Turn
from voicepipe.emulator.voice import SpokenText

ROOT = "root"  # previous_item_id that inserts an item first
MAX_ITEMS = 1000  # items kept; older ones are forgotten (the service keeps more, tests need less)

_CONTENT_TYPES = ("input_text", "input_audio", "input_image", "text", "output_text")


@dataclass
class ItemRecord:
    """A conversation item (``item``, as last sent) and what the emulator tracks about it."""

    item: dict
    previous_id: Optional[str]
    role: Optional[str] = None
    turn: Optional[Turn] = None  # the scenario turn a user item took
    user_text: str = ""  # what the user said or typed; a function call's output
    audio_ms: float = 0.0  # user speech duration; assistant audio sent (or kept after truncation)
    transcript: str = ""
    spoken: Optional[SpokenText] = None  # an assistant answer's audio
    first_delta_at: Optional[float] = None  # loop time of its first audio delta
    tool_called: bool = False
    call_ids: list = field(default_factory=list)  # the call_ids of the function calls it got, in order
    calls_left: list = field(default_factory=list)  # calls still to make (parallel_tool_calls false)
    auto_truncated: bool = False
    pending_transcription: bool = False

    @property
    def id(self) -> str:
        return self.item["id"]

    def replace(self, item: dict) -> None:
        self.item = item

    def truncate(self, audio_end_ms: int, appended: str = "") -> None:
        """Keep the first ``audio_end_ms`` of an answer's audio and the transcript spoken by then."""
        self.audio_ms = float(audio_end_ms)
        self.transcript = self.spoken.transcript_until(audio_end_ms) + appended
        self.item = {**self.item, "content": [{"type": "audio", "transcript": self.transcript}]}


class Conversation:
    """The items of one connection, oldest first, at most ``MAX_ITEMS``."""

    def __init__(self) -> None:
        self._items: "OrderedDict[str, ItemRecord]" = OrderedDict()
        self.calls: "OrderedDict[str, ItemRecord]" = OrderedDict()  # call_id → the user item it answers

    def __iter__(self) -> Iterator[ItemRecord]:
        return iter(self._items.values())

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    def add(self, item: dict, role: Optional[str] = None, *, after: Optional[str] = None, **extra: Any) -> ItemRecord:
        """Add an item at the end, or after the item ``after`` names (``"root"``: first).

        Check ``after`` with :meth:`check_position` first: an id not in the conversation is added
        at the end here.
        """
        if after == ROOT:
            record = ItemRecord(item=item, previous_id=None, role=role, **extra)
            self._items[record.id] = record
            self._items.move_to_end(record.id, last=False)
        elif after is not None and after in self._items and after != next(reversed(self._items)):
            record = ItemRecord(item=item, previous_id=after, role=role, **extra)
            # insertion in the middle is rare (history edits): rebuild the order once
            items = list(self._items.items())
            at = next(index for index, (key, _) in enumerate(items) if key == after) + 1
            items.insert(at, (record.id, record))
            self._items = OrderedDict(items)
        else:
            previous = next(reversed(self._items)) if self._items else None
            record = ItemRecord(item=item, previous_id=previous, role=role, **extra)
            self._items[record.id] = record
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)
        return record

    def check_position(self, previous_item_id: Any) -> Optional[str]:
        """Validate ``previous_item_id`` of ``conversation.item.create``; returns it.

        SDK ``ClientEventConversationItemCreate.previous_item_id``: "If set to ``root``, the new
        item will be added to the beginning of the conversation. [...] If the ID cannot be found,
        an error will be returned and the item will not be added."
        """
        if previous_item_id is None or previous_item_id == ROOT:
            return previous_item_id
        if not isinstance(previous_item_id, str):
            raise invalid_type("previous_item_id", "a string", previous_item_id)
        if previous_item_id not in self._items:
            raise ProtocolError(
                "item_not_found",
                f"Item with previous_item_id not found: {previous_item_id}",
                "previous_item_id",
            )
        return previous_item_id

    def find(self, event: dict) -> ItemRecord:
        """The item an event's ``item_id`` names, or the service's error."""
        item_id = event.get("item_id")
        if item_id is None:
            raise missing("item_id")
        if not isinstance(item_id, str):
            raise invalid_type("item_id", "a string", item_id)
        record = self._items.get(item_id)
        if record is None:
            raise ProtocolError("item_not_found", f"Item with item_id not found: {item_id}", "item_id")
        return record

    def delete(self, record: ItemRecord) -> None:
        del self._items[record.id]

    def latest_input(self) -> Optional[ItemRecord]:
        """The newest user message or function call output: what a response answers."""
        for record in reversed(self._items.values()):
            if record.role == "user" or record.item.get("type") == "function_call_output":
                return record
        return None

    def last_answer(self) -> Optional[ItemRecord]:
        """The newest assistant item with audio."""
        return next((r for r in reversed(self._items.values()) if r.role == "assistant" and r.spoken), None)

    def remember_call(self, call_id: str, asked_by: ItemRecord) -> None:
        self.calls[call_id] = asked_by
        while len(self.calls) > MAX_ITEMS:
            self.calls.popitem(last=False)

    def call_outputs(self) -> dict[str, str]:
        """call_id → the output of the newest ``function_call_output`` item for it."""
        return {
            r.item["call_id"]: r.user_text
            for r in self
            if r.item.get("type") == "function_call_output" and isinstance(r.item.get("call_id"), str)
        }

    def token_estimate(self) -> tuple[int, int]:
        """Rough (text, audio) input tokens of the whole conversation."""
        text = sum(defaults.text_tokens(r.user_text or r.transcript) for r in self)
        audio = sum(defaults.audio_tokens(r.audio_ms) for r in self if r.role == "user")
        return text, audio


def check_truncate(record: ItemRecord, event: dict) -> int:
    """Validate ``conversation.item.truncate`` against the item; returns ``audio_end_ms``."""
    content_index = event.get("content_index", 0)
    if not isinstance(content_index, int) or isinstance(content_index, bool):
        raise invalid_type("content_index", "an integer", content_index)
    audio_end_ms = event.get("audio_end_ms")
    if audio_end_ms is None:
        raise missing("audio_end_ms")
    if not isinstance(audio_end_ms, int) or isinstance(audio_end_ms, bool):
        raise invalid_type("audio_end_ms", "an integer", audio_end_ms)
    if audio_end_ms < 0:
        raise invalid_value("audio_end_ms", audio_end_ms, why="It must not be negative.")
    if record.role != "assistant" or record.spoken is None:
        raise ProtocolError("invalid_value", "Only assistant messages with audio can be truncated.", "item_id")
    if content_index != 0:
        raise invalid_value("content_index", content_index, why="The item has one content part (index 0).")
    if audio_end_ms > record.audio_ms:
        raise ProtocolError(
            "invalid_value",
            f"Audio content of {int(record.audio_ms)} ms is already shorter than {audio_end_ms} ms",
            "audio_end_ms",
        )
    return audio_end_ms


def item_from_client(raw: Any, conversation: Conversation) -> tuple[dict, dict]:
    """The item a ``conversation.item.create`` adds, as the service echoes it, and what to track.

    Returns ``(item, extra)`` where ``extra`` holds :class:`ItemRecord` fields (role, user text).
    """
    if raw is None:
        raise missing("item")
    if not isinstance(raw, dict):
        raise invalid_type("item", "an object", raw)
    kind = raw.get("type")
    item_id = raw.get("id") or defaults.new_id("item", 22)
    if not isinstance(item_id, str):
        raise invalid_type("item.id", "a string", item_id)
    if item_id in conversation:
        raise ProtocolError("invalid_value", f"Item with id '{item_id}' already exists.", "item.id")
    if kind == "message":
        return _message(item_id, raw)
    if kind == "function_call":
        for key in ("name", "call_id"):
            if not isinstance(raw.get(key), str):
                raise missing(f"item.{key}")
        arguments = raw.get("arguments", "")
        if not isinstance(arguments, str):
            raise invalid_type("item.arguments", "a string", arguments)
        return function_call_item(item_id, raw["name"], raw["call_id"], arguments, "completed"), {}
    if kind == "function_call_output":
        if not isinstance(raw.get("call_id"), str):
            raise missing("item.call_id")
        output = raw.get("output")
        if output is None:
            raise missing("item.output")
        if not isinstance(output, str):
            raise invalid_type("item.output", "a string", output)
        return function_call_output_item(item_id, raw["call_id"], output), {"user_text": output}
    if kind is None:
        raise missing("item.type")
    raise invalid_value("item.type", kind, ("message", "function_call", "function_call_output"))


def _message(item_id: str, raw: dict) -> tuple[dict, dict]:
    role = raw.get("role")
    if role is None:
        raise missing("item.role")
    if role not in ("user", "assistant", "system"):
        raise invalid_value("item.role", role, ("user", "assistant", "system"))
    content = raw.get("content")
    if content is None:
        raise missing("item.content")
    if not isinstance(content, list):
        raise invalid_type("item.content", "an array", content)
    parts, texts = [], []
    for index, part in enumerate(content):
        where = f"item.content[{index}]"
        if not isinstance(part, dict):
            raise invalid_type(where, "an object", part)
        kind = part.get("type")
        if kind in ("input_text", "text", "output_text"):
            text = part.get("text")
            if text is None:
                raise missing(f"{where}.text")
            if not isinstance(text, str):
                raise invalid_type(f"{where}.text", "a string", text)
            # the service echoes assistant output_text as "text" (see the recorded sessions)
            parts.append({"type": "input_text" if kind == "input_text" else "text", "text": text})
            texts.append(text)
        elif kind == "input_audio":
            transcript = part.get("transcript")
            parts.append({"type": "input_audio", "transcript": transcript})
            if isinstance(transcript, str):
                texts.append(transcript)
        elif kind == "input_image":
            parts.append({"type": "input_image", "image_url": part.get("image_url")})
        elif kind is None:
            raise missing(f"{where}.type")
        else:
            raise invalid_value(f"{where}.type", kind, _CONTENT_TYPES)
    said = " ".join(texts)
    return message_item(item_id, role, parts), {"role": role, "user_text": said, "transcript": said}
