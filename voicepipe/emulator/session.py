"""``session.update``: validated like the service, merged into the effective session.

An update is all or nothing: the first invalid value raises :class:`ProtocolError` (answered with
an ``error`` event whose ``param`` names the field, e.g. ``session.turn_detection.threshold``) and
the session stays as it was. Keys not given keep their value; a given ``turn_detection`` replaces the
old one, with the Voice Live defaults filled in for the fields it leaves out; ``turn_detection:
null`` switches to manual turns.

Ranges follow the service documentation; where the documentation disagrees with itself (session
``temperature``: 0-1 in the SDK, 0.6-1.2 in the API reference) the wider range is accepted, so a
session that works against the service also works here.
"""

from __future__ import annotations

import copy
from typing import Any

from voicepipe.emulator.defaults import (
    ECHO_CANCELLATION_FIELDS,
    EOU_FIELDS,
    TRANSCRIPTION_FIELDS,
    TURN_DETECTION_TYPES,
    turn_detection_defaults,
)
from voicepipe.emulator.events import ProtocolError, invalid_type, invalid_value, missing
from voicepipe.emulator.formats import INPUT_FORMATS, INPUT_SAMPLE_RATES, OUTPUT_RATES, normalise_format

MODALITIES = ("text", "audio", "animation", "avatar")
VOICE_TYPES = (
    "openai",
    "azure-standard",
    "azure-custom",
    "azure-personal",
    "avatar-voice-sync",
    "azure-realtime-native",
)
NOISE_REDUCTION_TYPES = ("azure_deep_noise_suppression", "near_field", "far_field")
TRANSCRIPTION_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "mai-transcribe-1",
    "azure-speech",
)
TOOL_CHOICES = ("auto", "none", "required")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

#: every session key the service accepts (SDK RequestSession plus server-side fields)
SESSION_KEYS = (
    "model",
    "modalities",
    "animation",
    "voice",
    "instructions",
    "input_audio_sampling_rate",
    "input_audio_format",
    "output_audio_format",
    "turn_detection",
    "input_audio_noise_reduction",
    "input_audio_echo_cancellation",
    "avatar",
    "input_audio_transcription",
    "output_audio_timestamp_types",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "max_response_output_tokens",
    "reasoning_effort",
    "interim_response",
    "include",
    "metadata",
    "truncation_strategy",
    "greeting",
    "handoff",
    "agent",
    "id",
    "object",
    "expires_at",
)
_READ_ONLY = ("id", "object", "expires_at", "model")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(param: str, value: Any, low: float, high: float) -> None:
    if not _is_number(value):
        raise invalid_type(param, "a number", value)
    if not low <= value <= high:
        raise ProtocolError(
            "invalid_value",
            f"Invalid '{param}': expected a value between {low:g} and {high:g}, but got {value} instead.",
            param,
        )


def _non_negative_int(param: str, value: Any) -> None:
    if not _is_int(value):
        raise invalid_type(param, "an integer", value)
    if value < 0:
        raise ProtocolError(
            "invalid_value", f"Invalid '{param}': expected a value >= 0, but got {value} instead.", param
        )


def _object(param: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def _bool(param: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)


def _turn_detection(value: Any) -> Any:
    param = "session.turn_detection"
    if value is None:
        return None
    given = _object(param, value)
    kind = given.get("type", "server_vad")
    if kind not in TURN_DETECTION_TYPES:
        raise invalid_value(f"{param}.type", kind, TURN_DETECTION_TYPES)
    for key, check in (
        ("threshold", lambda p, v: _range(p, v, 0.0, 1.0)),
        ("prefix_padding_ms", _non_negative_int),
        ("silence_duration_ms", _non_negative_int),
        ("speech_duration_ms", _non_negative_int),
        ("idle_timeout_ms", _non_negative_int),
        ("create_response", _bool),
        ("interrupt_response", _bool),
        ("auto_truncate", _bool),
        ("remove_filler_words", _bool),
    ):
        if given.get(key) is not None:
            check(f"{param}.{key}", given[key])
    effective = turn_detection_defaults(kind)
    effective.update(copy.deepcopy(given))
    effective["type"] = kind
    eou = effective.get("end_of_utterance_detection")
    if eou is not None:
        _object(f"{param}.end_of_utterance_detection", eou)
        if not isinstance(eou.get("model"), str):
            raise missing(f"{param}.end_of_utterance_detection.model")
        effective["end_of_utterance_detection"] = {"model": eou["model"], **EOU_FIELDS, **eou}
    return effective


def _voice(value: Any) -> Any:
    param = "session.voice"
    if isinstance(value, str):
        if not value:
            raise invalid_value(param, value)
        return {"name": value, "type": "azure-standard" if "-" in value else "openai"}
    voice = _object(param, value)
    if not isinstance(voice.get("name"), str) or not voice["name"]:
        raise missing(f"{param}.name")
    kind = voice.get("type", "openai")
    if kind not in VOICE_TYPES:
        raise invalid_value(f"{param}.type", kind, VOICE_TYPES)
    if voice.get("temperature") is not None:
        _range(f"{param}.temperature", voice["temperature"], 0.0, 1.0)
    if kind == "azure-custom" and not voice.get("endpoint_id"):
        raise missing(f"{param}.endpoint_id")
    return copy.deepcopy(voice)


def _tools(value: Any) -> list:
    param = "session.tools"
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    for index, tool in enumerate(value):
        where = f"{param}[{index}]"
        _object(where, tool)
        kind = tool.get("type", "function")
        if kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise missing(f"{where}.name")
            if tool.get("parameters") is not None:
                _object(f"{where}.parameters", tool["parameters"])
        elif kind == "mcp":
            if not tool.get("server_label"):
                raise missing(f"{where}.server_label")
        else:
            raise invalid_value(f"{where}.type", kind, ("function", "mcp"))
    return copy.deepcopy(value)


def _tool_choice(value: Any) -> Any:
    param = "session.tool_choice"
    if isinstance(value, str):
        if value not in TOOL_CHOICES:
            raise invalid_value(param, value, TOOL_CHOICES)
        return value
    choice = _object(param, value)
    if isinstance(choice.get("function"), dict) and "name" not in choice:
        choice = {"type": choice.get("type"), "name": choice["function"].get("name")}
    if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
        raise missing(f"{param}.name")
    return copy.deepcopy(choice)


def _transcription(value: Any) -> Any:
    param = "session.input_audio_transcription"
    if value is None:
        return None
    given = _object(param, value)
    model = given.get("model")
    if model is None:
        raise missing(f"{param}.model")
    if model not in TRANSCRIPTION_MODELS:
        raise invalid_value(f"{param}.model", model, TRANSCRIPTION_MODELS)
    return {**TRANSCRIPTION_FIELDS, **copy.deepcopy(given)}


def _noise_reduction(value: Any) -> Any:
    param = "session.input_audio_noise_reduction"
    if value is None:
        return None
    given = _object(param, value)
    if given.get("type") not in NOISE_REDUCTION_TYPES:
        raise invalid_value(f"{param}.type", given.get("type"), NOISE_REDUCTION_TYPES)
    return copy.deepcopy(given)


def _echo_cancellation(value: Any) -> Any:
    param = "session.input_audio_echo_cancellation"
    if value is None:
        return None
    given = _object(param, value)
    if given.get("type", "server_echo_cancellation") != "server_echo_cancellation":
        raise invalid_value(f"{param}.type", given.get("type"), ("server_echo_cancellation",))
    if given.get("reference_source", "server") not in ("server", "client"):
        raise invalid_value(f"{param}.reference_source", given.get("reference_source"), ("server", "client"))
    if given.get("channels", 1) not in (1, 2):
        raise invalid_value(f"{param}.channels", given.get("channels"), (1, 2))
    return {**ECHO_CANCELLATION_FIELDS, **copy.deepcopy(given)}


def _modalities(value: Any) -> list:
    param = "session.modalities"
    if not isinstance(value, list) or not value:
        raise invalid_type(param, "a non-empty array", value)
    for item in value:
        if item not in MODALITIES:
            raise invalid_value(param, item, MODALITIES)
    return list(value)


def _max_tokens(param: str, value: Any) -> Any:
    if value == "inf":
        return value
    if not _is_int(value):
        raise invalid_type(param, "an integer or 'inf'", value)
    if not 1 <= value <= 4096:
        raise ProtocolError(
            "invalid_value", f"Invalid '{param}': expected 1-4096 or 'inf', but got {value} instead.", param
        )
    return value


def _simple(key: str, value: Any) -> Any:
    param = f"session.{key}"
    if value is None:
        return None  # an explicit null (the SDK sends one for fields set to None) clears the field
    if key == "instructions":
        if not isinstance(value, str):
            raise invalid_type(param, "a string", value)
    elif key == "input_audio_format":
        if value not in INPUT_FORMATS:
            raise invalid_value(param, value, INPUT_FORMATS)
    elif key == "output_audio_format":
        if not isinstance(value, str) or normalise_format(value) not in OUTPUT_RATES:
            raise invalid_value(param, value, tuple(OUTPUT_RATES))
    elif key == "input_audio_sampling_rate":
        if value not in INPUT_SAMPLE_RATES or isinstance(value, bool):
            raise invalid_value(param, value, INPUT_SAMPLE_RATES)
    elif key == "temperature":
        _range(param, value, 0.0, 2.0)
    elif key == "max_response_output_tokens":
        _max_tokens(param, value)
    elif key == "parallel_tool_calls":
        _bool(param, value)
    elif key == "output_audio_timestamp_types":
        if not isinstance(value, list):
            raise invalid_type(param, "an array", value)
        for kind in value:
            if kind != "word":
                raise invalid_value(param, kind, ("word",))
    elif key == "reasoning_effort":
        if value not in REASONING_EFFORTS:
            raise invalid_value(param, value, REASONING_EFFORTS)
    return copy.deepcopy(value)


_FIELD_RULES = {
    "turn_detection": _turn_detection,
    "voice": _voice,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "input_audio_transcription": _transcription,
    "input_audio_noise_reduction": _noise_reduction,
    "input_audio_echo_cancellation": _echo_cancellation,
    "modalities": _modalities,
}


def apply_session_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """The effective session after ``update`` (the event's ``session`` object), or ProtocolError."""
    if update is None:
        raise missing("session")
    _object("session", update)
    merged = dict(current)
    for key, value in update.items():
        if key not in SESSION_KEYS:
            raise ProtocolError("unknown_parameter", f"Unknown parameter: 'session.{key}'.", f"session.{key}")
        if key in _READ_ONLY:
            continue  # the model is fixed at connect; ids and expiry are the server's
        rule = _FIELD_RULES.get(key)
        merged[key] = rule(value) if rule else _simple(key, value)
    return merged


def check_response_params(params: Any) -> dict[str, Any]:
    """Validate the ``response`` object of ``response.create``; returns it (``{}`` when absent)."""
    if params is None:
        return {}
    _object("response", params)
    if "modalities" in params:
        try:
            _modalities(params["modalities"])
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message.replace("session.", "response."), "response.modalities") from None
    if "max_output_tokens" in params:
        _max_tokens("response.max_output_tokens", params["max_output_tokens"])
    if params.get("temperature") is not None:
        _range("response.temperature", params["temperature"], 0.0, 2.0)
    if params.get("output_audio_format") is not None:
        fmt = params["output_audio_format"]
        if not isinstance(fmt, str) or normalise_format(fmt) not in OUTPUT_RATES:
            raise invalid_value("response.output_audio_format", fmt, tuple(OUTPUT_RATES))
    if params.get("voice") is not None:
        params = {**params, "voice": _voice(params["voice"])}
    for key in ("commit", "cancel_previous", "parallel_tool_calls"):
        if params.get(key) is not None:
            _bool(f"response.{key}", params[key])
    for key in ("append_input_items", "input_items", "input"):
        if params.get(key) is not None and not isinstance(params[key], list):
            raise invalid_type(f"response.{key}", "an array", params[key])
    if params.get("conversation") is not None and params["conversation"] not in ("auto", "none"):
        raise invalid_value("response.conversation", params["conversation"], ("auto", "none"))
    if params.get("tool_choice") is not None:
        params = {**params, "tool_choice": _response_tool_choice(params["tool_choice"])}
    if params.get("tools") is not None:
        try:
            params = {**params, "tools": _tools(params["tools"])}
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message.replace("session.", "response."), (exc.param or "").replace("session.", "response.")) from None
    if params.get("pre_generated_assistant_message") is not None:
        params = {**params, "pre_generated_text": _pre_generated(params["pre_generated_assistant_message"])}
    return params


def _response_tool_choice(value: Any) -> Any:
    """``response.tool_choice``: as the session's, or ``{"type": "function", "function": {"name":
    …}}`` as the SDK's ``ResponseCreateParams.tool_choice`` docstring shows it."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict) and "name" not in value:
        value = {"type": value.get("type"), "name": value["function"].get("name")}
    try:
        return _tool_choice(value)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message.replace("session.", "response."), (exc.param or "").replace("session.", "response.")) from None


def _pre_generated(value: Any) -> str:
    """The text of ``pre_generated_assistant_message`` (SDK ``AssistantMessageItem``: role
    assistant, ``content`` parts with ``text``), which the response speaks instead of generating."""
    param = "response.pre_generated_assistant_message"
    message = _object(param, value)
    if message.get("role", "assistant") != "assistant":
        raise invalid_value(f"{param}.role", message.get("role"), ("assistant",))
    content = message.get("content")
    if not isinstance(content, list) or not content:
        raise invalid_type(f"{param}.content", "a non-empty array", content)
    texts = []
    for index, part in enumerate(content):
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise missing(f"{param}.content[{index}].text")
        texts.append(text)
    return " ".join(texts)
