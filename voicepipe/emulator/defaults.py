"""What the emulated service fills in by itself: ids, the initial session, per-type defaults.

Field names and default values follow the recorded real sessions in
``tests/vectors/voicelive-recorded/`` (api-version 2026-04-10): ``session.created`` carries the
OpenAI-style turn detection defaults (prefix 300 ms, silence 200 ms), and any ``session.update``
that sets ``turn_detection`` gets the Voice Live defaults (prefix 400 ms, silence 500 ms) for the
fields it leaves out.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import time
from typing import Any

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_SAMPLE_RATE = 24000
SESSION_LIFETIME_S = 30 * 60

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_random = random.Random(os.urandom(16))


def new_id(prefix: str, length: int = 21) -> str:
    """A service-looking id: ``prefix_`` and ``length`` base62 characters (``item_E4BAsP00UV…``)."""
    return f"{prefix}_{_base62(_random.getrandbits(6 * length), length)}"


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


#: the initial session as ``session.created`` shows it (newest recording, with greeting/handoff)
_INITIAL_SESSION: dict[str, Any] = {
    "id": None,
    "model": DEFAULT_MODEL,
    "modalities": ["audio"],
    "instructions": "You are a helpful, friendly assistant. Keep your answers short.",
    "voice": {"name": "alloy", "type": "openai"},
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "input_audio_transcription": None,
    "input_audio_noise_reduction": None,
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "create_response": True,
        "interrupt_response": True,
        "idle_timeout_ms": None,
        "speech_duration_ms": None,
        "end_of_utterance_detection": None,
        "auto_truncate": False,
        "appended_text_after_truncation": None,
    },
    "tools": [],
    "tool_choice": "auto",
    "max_response_output_tokens": "inf",
    "expires_at": None,
    "object": "realtime.session",
    "input_audio_sampling_rate": DEFAULT_SAMPLE_RATE,
    "animation": None,
    "input_audio_echo_cancellation": None,
    "avatar": None,
    "output_audio_timestamp_types": None,
    "truncation_strategy": None,
    "include": None,
    "greeting": None,
    "handoff": None,
}

#: fields every turn detection type echoes, with the Voice Live defaults after an update
_TURN_DETECTION_COMMON: dict[str, Any] = {
    "threshold": 0.5,
    "prefix_padding_ms": 400,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
    "idle_timeout_ms": None,
    "speech_duration_ms": None,
    "end_of_utterance_detection": None,
    "auto_truncate": False,
    "appended_text_after_truncation": None,
}

#: per-type differences (documented Azure semantic VAD defaults)
_TURN_DETECTION_BY_TYPE: dict[str, dict[str, Any]] = {
    "server_vad": {},
    "semantic_vad": {"eagerness": "auto"},
    "azure_semantic_vad": {"prefix_padding_ms": 420, "speech_duration_ms": 80, "remove_filler_words": False},
    "azure_semantic_vad_en": {"prefix_padding_ms": 420, "speech_duration_ms": 80, "remove_filler_words": False},
    "azure_semantic_vad_multilingual": {
        "prefix_padding_ms": 420,
        "speech_duration_ms": 80,
        "remove_filler_words": False,
        "languages": None,
    },
}

TURN_DETECTION_TYPES = tuple(_TURN_DETECTION_BY_TYPE)

#: what an ``input_audio_transcription`` object echoes
TRANSCRIPTION_FIELDS: dict[str, Any] = {
    "model": None,
    "language": None,
    "prompt": None,
    "custom_speech": None,
    "phrase_list": None,
}

ECHO_CANCELLATION_FIELDS: dict[str, Any] = {
    "type": "server_echo_cancellation",
    "reference_source": "server",
    "channels": 1,
}

EOU_FIELDS: dict[str, Any] = {
    "threshold_level": "default",
    "timeout_ms": 1000,
    "threshold": None,
    "timeout": None,
}


def agent_instructions(name: str) -> str:
    """The instructions an emulated Foundry agent brings (instead of the model default)."""
    return f"You are {name}, a Foundry agent."


def agent_config(
    name: str,
    project: str | None = None,
    conversation_id: str | None = None,
    *,
    agent_id: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """A session's ``agent`` (SDK ``AgentConfig``): the agent and the conversation thread it runs.

    ``agent_id`` is the one the connection named (the older ``agent-id`` form) or derived from the
    project and agent name, so one agent keeps one id across connections; ``thread_id`` is the
    ``conversation-id`` to continue, or a new thread. ``version`` (``agent-version``) is added
    when given; ``AgentConfig`` has no field for it, and its models keep unknown fields.
    """
    digest = int.from_bytes(hashlib.sha256(f"{project or ''}/{name}".encode("utf-8")).digest(), "big")
    config = {
        "type": "agent",
        "name": name,
        "agent_id": agent_id or f"asst_{_base62(digest, 24)}",
        "thread_id": conversation_id or new_id("thread", 24),
    }
    if version:
        config["version"] = version
    return config


def initial_session(model: str | None = None, agent: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fresh session, as ``session.created`` announces it.

    ``agent`` (see :func:`agent_config`) makes it a Foundry agent session: the session carries it
    and the agent's instructions.
    """
    session = copy.deepcopy(_INITIAL_SESSION)
    session["id"] = new_id("sess")
    session["model"] = model or DEFAULT_MODEL
    session["expires_at"] = int(time.time()) + SESSION_LIFETIME_S
    if agent is not None:
        session["instructions"] = agent_instructions(agent["name"])
        session["agent"] = copy.deepcopy(agent)
    return session


def turn_detection_defaults(kind: str) -> dict[str, Any]:
    """All fields a turn detection of ``kind`` echoes, with the defaults for the ones not given."""
    fields = {"type": kind, **_TURN_DETECTION_COMMON}
    fields.update(_TURN_DETECTION_BY_TYPE.get(kind, {}))
    return fields


def usage(*, input_text: int, input_audio: int, output_text: int, output_audio: int) -> dict[str, Any]:
    """A ``response.done`` usage block with the recorded sessions' fields."""
    input_tokens = input_text + input_audio
    output_tokens = output_text + output_audio
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "cached_tokens": 0,
            "text_tokens": input_text,
            "audio_tokens": input_audio,
            "image_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio, "reasoning_tokens": 0},
    }


def text_tokens(text: str) -> int:
    """A rough token count for text (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def audio_tokens(duration_ms: float) -> int:
    """A rough token count for audio (ten tokens a second)."""
    return int(round(duration_ms / 100.0))
