"""Every profile section, declared: which keys exist, their types, enums and ranges.

``session:`` follows the SDK's ``RequestSession`` models (azure-ai-voicelive 1.3). Fields the
service accepts but the SDK models lack are declared as ``passthrough`` (validated here, set by item
assignment on the typed model); ``extra:`` (in ``session`` and ``turn_detection``) sends keys
verbatim for service fields this schema does not know yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

from voicepipe.profile.nodes import KeyPath, Node, dotted, show
from voicepipe.profile.spec import (
    ANYTHING,
    INVALID,
    JSON,
    Bool,
    Check,
    Either,
    Enum,
    FreeMap,
    Int,
    ListOf,
    Map,
    Number,
    Spec,
    Str,
    Tagged,
    did_you_mean,
)
from voicepipe.profile.sdkenums import SdkEnum

# -- enums -----------------------------------------------------------------------------------------
# Built-in copies of azure.ai.voicelive.models' enums (and values from the service documentation the
# SDK lacks); a value not in them is looked up in the installed SDK (voicepipe.profile.sdkenums).

MODALITIES = ["text", "audio", "animation", "avatar"]
INPUT_AUDIO_FORMATS = ["pcm16", "g711_ulaw", "g711_alaw"]
OUTPUT_AUDIO_FORMATS = [
    "pcm16", "pcm16_8000hz", "pcm16_16000hz", "pcm16_22050hz", "pcm16_24000hz", "pcm16_44100hz",
    "pcm16_48000hz", "g711_ulaw", "g711_alaw",
]
SAMPLING_RATES = [8000, 16000, 24000, 44100, 48000]
OPENAI_VOICES = ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"]
REALTIME_NATIVE_VOICES = [
    "aarti", "andrew", "ava", "denise", "diya", "elsa", "florian", "francisca", "meera", "xiaoxiao", "yunxi", "ximena",
]
PERSONAL_VOICE_MODELS = [
    "DragonLatestNeural", "PhoenixLatestNeural", "PhoenixV2Neural", "DragonHDOmniLatestNeural", "MAI-Voice-1",
]
TRANSCRIPTION_MODELS = [
    "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize", "mai-transcribe-1",
    "azure-speech",
]
NOISE_REDUCTION_TYPES = ["azure_deep_noise_suppression", "near_field", "far_field"]
REASONING_EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh"]
INCLUDE_OPTIONS = [
    "item.input_audio_transcription.logprobs", "item.input_audio_transcription.phrases", "file_search_call.results",
]
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

#: built-in plugins (voicepipe.plugins.BUILTINS), the names ``disable:`` takes
BUILTIN_PLUGINS = ["audio", "console", "transcript", "recorder", "metrics", "tools"]
#: built-in audio backends, and the names that mean "no audio" (voicepipe.builtin.audio)
BUILTIN_BACKENDS = ["pyaudio", "sounddevice", "wav", "null", "web", "acs", "twilio"]
NULL_BACKEND_NAMES = {"", "none", "off", "null"}

API_KEY_ENV = "AZURE_VOICELIVE_API_KEY"
EMULATOR = "emulator"

# -- connection ----------------------------------------------------------------------------------

_SECRET_NAMES = {"key", "api_key", "apikey", "token", "access_token", "bearer", "password", "secret", "client_secret"}


def is_secret_key(key: str) -> bool:
    """A key under ``connection:`` that would hold a credential."""
    name = key.strip().lower().replace("-", "_")
    return name in _SECRET_NAMES or name.endswith(("_key", "_token", "_password", "_secret"))


_SECRET_MESSAGE = f"a key must not be written in the profile (set {API_KEY_ENV} in the environment)"


def _endpoint(value: str) -> Optional[str]:
    text = value.strip()
    if not text or text == EMULATOR:
        return None  # an empty endpoint is reported when a session starts, with what to set
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http", "wss", "ws") or not parts.netloc:
        return (f"expected a URL like https://<resource>.services.ai.azure.com/ or {EMULATOR!r}, "
                f"got {show(value)}")
    return None


def _connection_map(fields: dict, **kw: Any) -> Map:
    return Map(fields, forbid=is_secret_key, forbid_message=_SECRET_MESSAGE, **kw)


CONNECTION = _connection_map(
    {
        "endpoint": Str(validator=_endpoint, what=f"a URL or {EMULATOR!r}"),
        "model": Str(non_empty=True),
        "api_version": Str(numbers_as_text=True),
        "auth": Enum(["api-key", "entra"]),
        "credential_scopes": ListOf(Str(non_empty=True), single=True),
        "agent": _connection_map(
            {
                "name": Str(non_empty=True),
                "project": Str(non_empty=True),
                "version": Str(numbers_as_text=True),
                "conversation_id": Str(),
                "authentication_identity_client_id": Str(),
                "foundry_resource_override": Str(),
            },
            required=("name", "project"),
        ),
        "connect_timeout_s": Number(above=0, unit="of seconds"),
        "session_timeout_s": Number(above=0, unit="of seconds"),
        "response_timeout_s": Number(above=0, unit="of seconds"),
        "reconnect": Map(
            {
                "attempts": Int(0, 100),
                "window_s": Number(above=0, high=86400, unit="of seconds"),
                "initial_delay_s": Number(0, 60, unit="of seconds"),
                "max_delay_s": Number(above=0, high=600, unit="of seconds"),
                "history_items": Int(0, 1000),
                "history_chars": Int(0, 1_000_000),
                "buffer_audio_s": Number(0, 60, unit="of seconds"),
            }
        ),
        "emulator": _connection_map(
            {"scenario": Str(non_empty=True), "speed": Number(0), "burst_ms": Number(0, unit="of milliseconds")}
        ),
    }
)

# -- session: voice --------------------------------------------------------------------------------


def _azure_voice(**fields: Spec) -> Map:
    common = {
        "temperature": Number(0, 1),
        "custom_lexicon_url": Str(),
        "custom_text_normalization_url": Str(),
        "prefer_locales": ListOf(Str()),
        "locale": Str(),
        "style": Str(),
        "pitch": Str(numbers_as_text=True),
        "rate": Str(numbers_as_text=True),
        "volume": Str(numbers_as_text=True),
    }
    return Map({**fields, **common}, required=tuple(fields))


_OPENAI_VOICE = SdkEnum(OPENAI_VOICES, "OpenAIVoiceName")
_PERSONAL_MODEL = SdkEnum(PERSONAL_VOICE_MODELS, "PersonalVoiceModels")


def _bare_voice(name: str) -> Optional[str]:
    if _OPENAI_VOICE.is_known(name):
        return None
    if "-" in name:
        return f"an Azure voice is a mapping: {{name: {name}, type: azure-standard}}"
    voices = [str(voice) for voice in _OPENAI_VOICE.all_values()]
    close = did_you_mean(name, voices)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"expected an OpenAI voice name ({', '.join(voices)}) or a mapping with a type, got {show(name)}{hint}"


VOICE = Either(
    Str(validator=_bare_voice, what="an OpenAI voice name"),
    Tagged(
        {
            "azure-standard": _azure_voice(name=Str(non_empty=True)),
            "azure-custom": _azure_voice(name=Str(non_empty=True), endpoint_id=Str(non_empty=True)),
            "azure-personal": _azure_voice(name=Str(non_empty=True), model=_PERSONAL_MODEL),
            "avatar-voice-sync": _azure_voice(model=_PERSONAL_MODEL),
            "azure-realtime-native": Map({"name": SdkEnum(REALTIME_NATIVE_VOICES, "AzureRealtimeNativeVoiceName")}, required=("name",)),
            "openai": Map({"name": _OPENAI_VOICE}, required=("name",)),
        }
    ),
    what="a voice name or a mapping with a type",
)

# -- session: turn detection -----------------------------------------------------------------------


def _eou() -> Map:
    return Map(
        {"threshold_level": SdkEnum(["low", "medium", "high", "default"], "EouThresholdLevel"), "timeout_ms": Int(0)},
        # sent by the quickstart, accepted by the service, missing from the SDK model
        passthrough={"threshold": Number(0, 1), "timeout": Number(0, unit="of seconds")},
    )


END_OF_UTTERANCE = Tagged(
    {name: _eou() for name in ("semantic_detection_v1", "semantic_detection_v1_en",
                                   "semantic_detection_v1_multilingual")},
    tag="model",
)

_EXTRA_HINT = "or put a service field voicepipe does not know under extra:"


def _turn_detection(*, azure: bool, languages: bool) -> Map:
    fields: dict[str, Spec] = {
        "threshold": Number(0, 1),
        "prefix_padding_ms": Int(0),
        "silence_duration_ms": Int(0),
        "end_of_utterance_detection": END_OF_UTTERANCE,
        "auto_truncate": Bool(),
        "create_response": Bool(),
        "interrupt_response": Bool(),
        "extra": FreeMap(JSON),
    }
    passthrough: dict[str, Spec] = {
        "idle_timeout_ms": Int(0),
        "eagerness": Enum(["auto", "low", "medium", "high"]),
        "neg_threshold": Number(0, 1),
        "window_size": Int(1),
        "speech_duration_assistant_speaking_ms": Int(0),
        "profile": Str(),
        "distinct_ci_phones": Int(0),
        "require_vowel": Bool(),
        "require_vowel_assistant_speaking": Bool(),
    }
    if azure:
        fields.update(speech_duration_ms=Int(0), remove_filler_words=Bool())
        passthrough["appended_text_after_truncation"] = Str()
        if languages:
            fields["languages"] = ListOf(Str(non_empty=True), unique=True)
    else:
        passthrough["speech_duration_ms"] = Int(0)
    spec = Map(fields, passthrough=passthrough, unknown_hint=_EXTRA_HINT)
    spec.after = lambda result, node, path, v: _extra_not_known(spec, node, path, v)
    return spec


def _extra_not_known(spec: Map, node: Node, path: KeyPath, v: Check) -> None:
    """``extra:`` is for fields the schema does not know: a known one belongs in its own place."""
    extra = node.value.get("extra")
    if extra is None or not isinstance(extra.value, dict):
        return
    for key, child in extra.value.items():
        if spec.spec_for(key) is not None:
            v.error(child, path + ("extra", key), f"{key!r} is a known setting: set {dotted(path + (key,))} instead",
                    at_key=True)


TURN_DETECTION = Tagged(
    {
        "server_vad": _turn_detection(azure=False, languages=False),
        "azure_semantic_vad": _turn_detection(azure=True, languages=True),
        "azure_semantic_vad_en": _turn_detection(azure=True, languages=False),
        "azure_semantic_vad_multilingual": _turn_detection(azure=True, languages=True),
    },
    nullable=True,  # null: manual turns (commit and response.create by the client)
)

# -- session: audio processing, transcription ----------------------------------------------------------


def _echo_checks(result: dict, node: Node, path: KeyPath, v: Check) -> None:
    if result.get("channels") == 2 and result.get("reference_source") != "client":
        v.error(node.value["channels"], path + ("channels",),
                "channels 2 needs reference_source: client (the second channel carries the signal the client played)")


ECHO_CANCELLATION = Map(
    {
        "type": Enum(["server_echo_cancellation"]),
        "reference_source": SdkEnum(["server", "client"], "EchoCancellationReferenceSource"),
        "channels": Enum([1, 2]),
    },
    nullable=True,
    after=_echo_checks,
)

NOISE_REDUCTION = Map({"type": Enum(NOISE_REDUCTION_TYPES)}, required=("type",), nullable=True)

TRANSCRIPTION = Map(
    {
        "model": Enum(TRANSCRIPTION_MODELS),
        "language": Str(non_empty=True),
        "phrase_list": ListOf(Str()),
        "custom_speech": FreeMap(Str()),
    },
    passthrough={"prompt": Str()},
    required=("model",),
    nullable=True,
)

# -- session: tools --------------------------------------------------------------------------------

def _parameters_schema(result: dict, node: Node, path: KeyPath, v: Check) -> None:
    if isinstance(result.get("parameters"), dict):
        from voicepipe.toolbind import schema_problem

        problem = schema_problem(result["parameters"])
        if problem:
            v.error(node.value["parameters"], path + ("parameters",), problem)


TOOL = Tagged(
    {
        "function": Map(
            {"name": Str(non_empty=True), "description": Str(), "parameters": FreeMap(JSON, what="a JSON schema mapping")},
            required=("name",),
            after=_parameters_schema,
        ),
        "mcp": Map(
            {
                "server_label": Str(non_empty=True),
                "server_url": Str(non_empty=True),
                "authorization": Str(secret=True),
                "headers": FreeMap(Str(secret=True, numbers_as_text=True)),
                "allowed_tools": ListOf(Str(non_empty=True)),
                "require_approval": Either(
                    SdkEnum(["never", "always"], "MCPApprovalType"),
                    Map({"never": ListOf(Str()), "always": ListOf(Str())}),
                ),
            },
            required=("server_label", "server_url"),
        ),
    }
)

TOOL_CHOICE = Either(
    SdkEnum(["auto", "none", "required"], "ToolChoiceLiteral"),
    Tagged({"function": Map({"name": Str(non_empty=True)}, required=("name",))}),
)


def _interim(**fields: Spec) -> Map:
    return Map({"triggers": ListOf(SdkEnum(["latency", "tool"], "InterimResponseTrigger"), unique=True), "latency_threshold_ms": Int(0), **fields})


INTERIM_RESPONSE = Tagged(
    {
        "static_interim_response": _interim(texts=ListOf(Str())),
        "llm_interim_response": _interim(model=Str(), instructions=Str(), max_completion_tokens=Int(1)),
    }
)

# -- session: avatar, animation --------------------------------------------------------------------

_PAIR = ListOf(Int(0), min_len=2, max_len=2)

AVATAR = Map(
    {
        "type": SdkEnum(["video-avatar", "photo-avatar"], "AvatarConfigTypes"),
        "character": Str(non_empty=True),
        "style": Str(),
        "model": SdkEnum(["vasa-1"], "PhotoAvatarBaseModes"),
        "customized": Bool(),
        "ice_servers": ListOf(
            Map({"urls": ListOf(Str(), single=True), "username": Str(), "credential": Str(secret=True)},
                required=("urls",))
        ),
        "video": Map(
            {
                "bitrate": Int(1),
                "codec": Enum(["h264"]),
                "crop": Map({"top_left": _PAIR, "bottom_right": _PAIR}, required=("top_left", "bottom_right")),
                "resolution": Map({"width": Int(1), "height": Int(1)}, required=("width", "height")),
                "background": Map({"color": Str(), "image_url": Str()}),
                "gop_size": Int(1),
            }
        ),
        "scene": Map({key: Number() for key in ("zoom", "position_x", "position_y", "rotation_x", "rotation_y",
                                                "rotation_z", "amplitude")}),
        "output_protocol": SdkEnum(["webrtc", "websocket"], "AvatarOutputProtocol"),
        "output_audit_audio": Bool(),
    },
    required=("character",),
)

ANIMATION = Map({"model_name": Str(), "outputs": ListOf(SdkEnum(["blendshapes", "viseme_id"], "AnimationOutputType"), unique=True)})

# -- session ---------------------------------------------------------------------------------------


def _session_checks(result: dict, node: Node, path: KeyPath, v: Check) -> None:
    fmt, rate = result.get("input_audio_format"), result.get("input_audio_sampling_rate")
    if isinstance(fmt, str) and fmt.startswith("g711") and rate is not None and rate != 8000:
        v.error(node.value["input_audio_sampling_rate"], path + ("input_audio_sampling_rate",),
                f"{fmt} audio is 8000 Hz, got {rate}")
    echo = result.get("input_audio_echo_cancellation")
    if isinstance(echo, dict) and echo.get("channels") == 2 and isinstance(fmt, str) and fmt != "pcm16":
        echo_node = node.value["input_audio_echo_cancellation"]
        v.error(echo_node.value["channels"], path + ("input_audio_echo_cancellation", "channels"),
                f"a stereo echo reference needs input_audio_format: pcm16, got {fmt}")
    _extra_not_known(SESSION, node, path, v)


SESSION = Map(
    {
        "model": Str(non_empty=True),
        "instructions": Str(),
        "modalities": ListOf(SdkEnum(MODALITIES, "Modality"), min_len=1, unique=True),
        "voice": VOICE,
        "input_audio_format": SdkEnum(INPUT_AUDIO_FORMATS, "InputAudioFormat"),
        "input_audio_sampling_rate": Enum(SAMPLING_RATES),
        "output_audio_format": SdkEnum(OUTPUT_AUDIO_FORMATS, "OutputAudioFormat"),
        "turn_detection": TURN_DETECTION,
        "input_audio_noise_reduction": NOISE_REDUCTION,
        "input_audio_echo_cancellation": ECHO_CANCELLATION,
        "input_audio_transcription": TRANSCRIPTION,
        "output_audio_timestamp_types": ListOf(SdkEnum(["word"], "AudioTimestampType"), unique=True),
        "tools": ListOf(TOOL),
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": Bool(),
        "temperature": Number(0, 2),
        "max_response_output_tokens": Either(Int(1, 4096), Enum(["inf"]), what="an integer from 1 to 4096 or 'inf'"),
        "reasoning_effort": SdkEnum(REASONING_EFFORTS, "ReasoningEffort"),
        "interim_response": INTERIM_RESPONSE,
        "include": ListOf(SdkEnum(INCLUDE_OPTIONS, "SessionIncludeOption"), unique=True),
        "metadata": FreeMap(Str(numbers_as_text=True), max_len=16, what="a mapping of up to 16 strings"),
        "animation": ANIMATION,
        "avatar": AVATAR,
        "extra": FreeMap(JSON),
    },
    unknown_hint=_EXTRA_HINT,
    after=_session_checks,
)

# -- audio -----------------------------------------------------------------------------------------

_DEVICE = Either(Int(0), Str(non_empty=True), what="a device name, an index or 'default'")
_LATENCY = Either(Number(above=0, high=2, unit="of seconds"), Enum(["low", "high"]),
                  what="low, high or a number of seconds from 0 to 2")
_ANSWER_TIMEOUT = Number(above=0, unit="of seconds")

BACKEND_OPTIONS: dict[str, dict[str, dict[str, Spec]]] = {
    "input": {
        "pyaudio": {"device": _DEVICE, "latency": _LATENCY, "answer_timeout_s": _ANSWER_TIMEOUT},
        "wav": {"file": Str(non_empty=True), "realtime": Bool(), "trailing_silence_ms": Int(0),
                "answer_timeout_s": _ANSWER_TIMEOUT},
        "null": {"realtime": Bool(), "answer_timeout_s": _ANSWER_TIMEOUT},
    },
    "output": {
        "pyaudio": {"device": _DEVICE, "latency": _LATENCY, "fade_ms": Number(0)},
        "wav": {"file": Str(non_empty=True), "realtime": Bool()},
        "null": {"realtime": Bool()},
    },
}
for _direction in BACKEND_OPTIONS.values():
    _direction["sounddevice"] = _direction["pyaudio"]
    for _transport in ("web", "acs", "twilio"):  # a caller's connection under `voicepipe serve`
        _direction[_transport] = {"answer_timeout_s": _ANSWER_TIMEOUT} if _direction is BACKEND_OPTIONS["input"] else {}
_REQUIRED_OPTIONS = {"wav": ("file",)}


class Backend(Spec):
    """``audio.input`` / ``audio.output``: ``{backend: NAME, option: value…}``, a bare backend name
    or null. Options of built-in backends are checked; a third-party backend takes any options."""

    nullable = True

    def __init__(self, direction: str):
        self.direction = direction

    def describe(self) -> str:
        return "a mapping like {backend: wav, file: x.wav}"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (dict, str))

    def check(self, node: Node, path: KeyPath, v: Check) -> Any:
        if isinstance(node.value, str):
            name = self.backend_name(node, path, v)
            return INVALID if name is INVALID else name
        if not isinstance(node.value, dict):
            return v.error(node, path, f"expected {self.describe()}, got {show(node.value)}")
        backend_node = node.value.get("backend")
        if backend_node is None:
            if node.value:
                return v.error(node, path, f"missing required key 'backend' ({', '.join(BUILTIN_BACKENDS)} "
                                           "or a plugin's backend)", at_key=True)
            return {}
        name = self.backend_name(backend_node, path + ("backend",), v)
        if name is INVALID:
            return INVALID
        options = self.options_for(name)
        if options is None:  # a third-party backend: its options are its own business
            return {**FreeMap().check(node, path, v), "backend": name}
        label = name or "null"
        spec = Map({"backend": ANYTHING, **options}, required=_REQUIRED_OPTIONS.get(label, ()),
                   unknown_hint=f"options of the {label} {self.direction}: {', '.join(options)}")
        result = spec.check(node, path, v)
        if result is INVALID:
            return INVALID
        return {**result, "backend": name}

    def backend_name(self, node: Node, path: KeyPath, v: Check) -> Any:
        value = node.value
        if value is None:
            return None
        if not isinstance(value, str):
            return v.error(node, path, f"expected a backend name ({', '.join(BUILTIN_BACKENDS)} or a plugin's), "
                                       f"got {show(value)}")
        lowered = value.strip().lower()
        if lowered in BUILTIN_BACKENDS or lowered in NULL_BACKEND_NAMES:
            return lowered
        close = did_you_mean(lowered, BUILTIN_BACKENDS, cutoff=0.75)
        if close is not None:
            return v.error(node, path, f"unknown audio backend {value!r} (did you mean {close!r}?)")
        return value  # provided by a plugin through voicepipe_audio_backend

    def options_for(self, name: Optional[str]) -> Optional[dict[str, Spec]]:
        key = "null" if name is None or name in NULL_BACKEND_NAMES else name
        return BACKEND_OPTIONS[self.direction].get(key)

    def child(self, key: Any, current: Any) -> Optional[Spec]:
        if not isinstance(key, str):
            return None
        if key == "backend":
            return Str()
        if isinstance(current, dict) and "backend" in current:
            name = current["backend"]
            options = self.options_for(None if name is None else str(name).strip().lower())
            return ANYTHING if options is None else options.get(key)
        for options in BACKEND_OPTIONS[self.direction].values():
            if key in options:
                return options[key]
        return None

    def keys(self, current: Any) -> list[str]:
        names = ["backend"]
        for options in BACKEND_OPTIONS[self.direction].values():
            names += [key for key in options if key not in names]
        return names


def _audio_checks(result: dict, node: Node, path: KeyPath, v: Check) -> None:
    """An output file that is the input file would overwrite the recording being played."""
    given, written = result.get("input") or {}, result.get("output") or {}
    if not (isinstance(given, dict) and isinstance(written, dict)):
        return
    source, target = given.get("file"), written.get("file")
    if isinstance(source, str) and isinstance(target, str) and os.path.normpath(source) == os.path.normpath(target):
        v.error(node.value["output"].value["file"], path + ("output", "file"),
                f"{show(target)} is also audio.input.file: the output would overwrite the input "
                "(write the output elsewhere, e.g. \"{run_dir}/output.wav\")")


AUDIO = Map(
    {
        "chunk_ms": Int(10, 200),
        "batch_ms": Int(0, 1000),
        "quiet_dbfs": Number(-96, 0, unit="dBFS"),
        "truncate": Bool(),
        "echo_reference": Bool(),
        "input": Backend("input"),
        "output": Backend("output"),
    },
    after=_audio_checks,
)

# -- the other sections ----------------------------------------------------------------------------


def _callable_path(value: str) -> Optional[str]:
    module, colon, name = value.strip().rpartition(":")
    if not colon or not module or not name.isidentifier():
        return f"expected module:function or path/file.py:function, got {show(value)}"
    return None


TOOLS = Map(
    {
        "timeout_s": Number(above=0, unit="of seconds"),
        "handlers": FreeMap(Str(validator=_callable_path, what="module:function"),
                            what="a mapping of function tool names to module:function"),
    }
)


# -- serve: how `voicepipe serve` offers the profile to callers --------------------------------------

SERVE_TOKEN_ENV = "VOICEPIPE_SERVE_TOKEN"
_ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _env_name(value: str) -> Optional[str]:
    if not value or value[0].isdigit() or not set(value) <= _ENV_NAME_CHARS:
        return f"expected the name of an environment variable (like {SERVE_TOKEN_ENV}), got {show(value)}"
    return None


def _origin(value: str) -> Optional[str]:
    if value == "*":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        return f"expected an origin like https://app.example.com (scheme and host, no path) or '*', got {show(value)}"
    return None


SERVE = Map(
    {
        "max_sessions": Int(1, 100_000),
        "drain_timeout_s": Number(0, 3600, unit="of seconds"),
        "allowed_origins": ListOf(Str(validator=_origin, what="an origin"), unique=True),
        "auth": Enum(["token", "none"]),
        "token_env": Str(validator=_env_name, what="an environment variable name"),
        "max_message_rate": Number(above=0, high=100_000, unit="of messages a second"),
        "max_message_bytes": Int(1024, 16 * 1024 * 1024),
        "metrics_token_env": Str(validator=_env_name, what="an environment variable name"),
    },
    forbid=is_secret_key,
    forbid_message=f"a token must not be written in the profile (export it as {SERVE_TOKEN_ENV}, "
                   "or name another variable with serve.token_env)",
)

_LEVEL = Enum(LOG_LEVELS, fold_case=True)

SECTIONS: dict[str, Spec] = {
    "connection": CONNECTION,
    "session": SESSION,
    "audio": AUDIO,
    "plugins": ListOf(Str(non_empty=True), unique=True),
    "disable": ListOf(Enum(BUILTIN_PLUGINS), unique=True),
    "logging": Map({"dir": Str(non_empty=True), "level": _LEVEL, "file_level": _LEVEL, "azure_level": _LEVEL,
                    "run_name": Str(non_empty=True, numbers_as_text=True)}),
    "runtime": Map({"slow_hook_ms": Number(above=0), "duration_s": Number(above=0, unit="of seconds"),
                    "max_plugin_errors": Int(1), "hook_timeout_s": Number(above=0, unit="of seconds")}),
    "console": Map({"quiet": Bool()}),
    "transcript": Map({"enabled": Bool()}),
    "recorder": Map({"enabled": Bool(), "audio": Bool()}),
    "metrics": Map({"prometheus_port": Int(1, 65535), "otel": Bool(), "table": Bool()}),
    "report": Map({"enabled": Bool()}),
    "tools": TOOLS,
    "serve": SERVE,
}

PLUGIN_SECTION = FreeMap(what="a mapping (the plugin's own settings)")


def plugin_name(spec: str) -> str:
    """The name a ``plugins:`` entry registers under, which is also its profile section
    (the same rule as :func:`voicepipe.plugins.plugin_name`)."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        return Path(spec).stem
    return spec.rsplit(".", 1)[-1]


def installed_plugin_names() -> set[str]:
    """Names of plugins installed as entry points in the ``voicepipe`` group."""
    from importlib.metadata import entry_points

    try:
        return {ep.name for ep in entry_points(group="voicepipe")}
    except Exception:  # a broken distribution must not stop validation
        return set()


def profile_spec(plugin_specs: Iterable[Any]) -> Map:
    """The whole profile's spec; a top-level key named after a listed or installed plugin is that
    plugin's section."""
    listed = {plugin_name(spec) for spec in plugin_specs if isinstance(spec, str) and spec}
    installed: list[set[str]] = []

    def other(key: str) -> Optional[Spec]:
        if key in listed:
            return PLUGIN_SECTION
        if not installed:
            installed.append(installed_plugin_names())  # only looked up when a key needs it
        return PLUGIN_SECTION if key in installed[0] else None

    return Map(
        SECTIONS,
        other=other,
        unknown_hint=f"sections: {', '.join(SECTIONS)}; a plugin's own section needs the plugin under plugins:",
        after=_agent_checks,
    )


def _agent_checks(result: dict, node: Node, path: KeyPath, v: Check) -> None:
    """A Foundry agent owns its model and instructions: a profile that sets them is refused."""
    connection = result.get("connection") or {}
    if not isinstance(connection.get("agent"), dict):
        return
    if "model" in connection:
        v.error(node.value["connection"].value["model"], ("connection", "model"),
                "set connection.model or connection.agent, not both (the agent has its own model)")
    session = result.get("session") or {}
    for key in ("model", "instructions"):
        if key in session:
            v.error(node.value["session"].value[key], ("session", key),
                    f"a Foundry agent owns its {key}: remove this key, or connect to a model instead of an agent")


def auto_truncate_warning(data: dict) -> Optional[str]:
    """The problem with ``audio.truncate`` and ``turn_detection.auto_truncate`` both on, or None."""
    audio = data.get("audio") or {}
    detection = (data.get("session") or {}).get("turn_detection") or {}
    if audio.get("truncate") is True and isinstance(detection, dict) and detection.get("auto_truncate") is True:
        return ("client truncation and session.turn_detection.auto_truncate are both on: the service already "
                "truncates interrupted answers (set one of them to false)")
    return None


def spec_at(root: Spec, path: KeyPath, data: Any) -> tuple[Optional[Spec], int]:
    """Follow ``path`` down the schema; the spec at its end, or ``None`` and the index of the
    first key the schema does not know."""
    spec: Optional[Spec] = root
    current = data
    for depth, key in enumerate(path):
        child = spec.child(key, current) if spec is not None else None
        if child is None:
            return None, depth
        spec = child
        if isinstance(current, dict):
            current = current.get(key)
        elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            current = current[key]
        else:
            current = None
    return spec, len(path)


def known_keys(root: Spec, path: KeyPath, data: Any) -> list[str]:
    """Keys the schema knows directly below ``path``, for "did you mean"."""
    spec, _ = spec_at(root, path, data)
    current = data
    for key in path:
        current = current.get(key) if isinstance(current, dict) else None
    return spec.keys(current) if spec is not None else []

