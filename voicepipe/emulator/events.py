"""Event vocabulary of the realtime protocol and builders for the shapes the service sends."""

from __future__ import annotations

from typing import Any, Optional

from voicepipe.emulator.defaults import new_id

#: client → server event types the service knows (SDK ``ClientEventType``)
CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "input_audio.turn.start",
    "input_audio.turn.append",
    "input_audio.turn.end",
    "input_audio.turn.cancel",
    "input_audio.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "session.avatar.connect",
    "transcription_session.update",
    "mcp_approval_response",
    "input_text.delta",
    "input_text.done",
)

#: server → client event types the emulator sends
SERVER_EVENT_TYPES = (
    "error",
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "output_audio_buffer.cleared",
    "conversation.item.created",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.audio_transcript.delta",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.text.delta",
    "response.text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
)


def error_event(
    code: Optional[str],
    message: str,
    *,
    param: Optional[str] = None,
    client_event_id: Optional[str] = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An ``error`` event in the service's shape; ``client_event_id`` names the event that caused it."""
    return {
        "event_id": new_id("event", 22),
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


class ProtocolError(Exception):
    """A client event the service would reject; becomes an ``error`` event."""

    def __init__(self, code: str, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def missing(param: str) -> ProtocolError:
    return ProtocolError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


_JSON_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def invalid_type(param: str, expected: str, value: Any) -> ProtocolError:
    got = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
    return ProtocolError(
        "invalid_type", f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param
    )


def invalid_value(param: str, value: Any, supported: Optional[tuple] = None, why: str = "") -> ProtocolError:
    message = f"Invalid value: {value!r}."
    if supported:
        message += " Supported values are: " + ", ".join(repr(s) for s in supported) + "."
    if why:
        message += " " + why
    return ProtocolError("invalid_value", message, param)


def message_item(item_id: str, role: str, content: list, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": role,
        "content": content,
    }


def function_call_item(item_id: str, name: str, call_id: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }


def function_call_output_item(item_id: str, call_id: str, output: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
    }
