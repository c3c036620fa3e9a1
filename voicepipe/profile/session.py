"""The profile's ``session:`` section as the SDK's ``RequestSession``.

Typed SDK models are used wherever the SDK has one; keys the profile does not set are not passed
at all (the SDK sends an explicit ``None`` as JSON ``null``, and ``turn_detection: null`` means
manual turns). Fields the SDK models lack (declared pass-through fields and ``extra:``) are set by
item assignment, which the models keep and serialise. The SDK is imported here only, when a
session is built, so loading and validating a profile stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from azure.ai.voicelive.models import RequestSession

    from voicepipe.profile.model import Profile

Convert = Callable[[Any], Any]


def build_request_session(profile: "Profile") -> "RequestSession":
    """The ``RequestSession`` for ``profile``'s ``session:`` section, exactly as validated."""
    from azure.ai.voicelive import models

    return _SessionBuilder(models).session(profile.session)


def session_update_payload(profile: "Profile") -> dict:
    """The ``session.update`` client event for ``profile``, as it would be sent (before plugins
    add to the session in ``voicepipe_session_config``)."""
    return {"type": "session.update", "session": build_request_session(profile).as_dict()}


_FIELDS: dict[type, dict[str, str]] = {}


def _rest_fields(cls: type) -> dict[str, str]:
    """JSON name -> Python attribute name of an SDK model's fields."""
    fields = _FIELDS.get(cls)
    if fields is None:
        cls.__new__(cls)  # the SDK computes the class's field table in __new__, once per class
        fields = {field._rest_name: attr for attr, field in cls._attr_to_rest_field.items()}
        _FIELDS[cls] = fields
    return fields


class _SessionBuilder:
    def __init__(self, models: Any):
        self.m = models
        m = models
        self.voice_types = {
            "azure-standard": m.AzureStandardVoice,
            "azure-custom": m.AzureCustomVoice,
            "azure-personal": m.AzurePersonalVoice,
            "avatar-voice-sync": m.AzureAvatarVoiceSyncVoice,
            "azure-realtime-native": m.AzureRealtimeNativeVoice,
            "openai": m.OpenAIVoice,
        }
        self.turn_detection_types = {
            "server_vad": m.ServerVad,
            "azure_semantic_vad": m.AzureSemanticVad,
            "azure_semantic_vad_en": m.AzureSemanticVadEn,
            "azure_semantic_vad_multilingual": m.AzureSemanticVadMultilingual,
        }
        self.eou_models = {
            "semantic_detection_v1": m.AzureSemanticDetection,
            "semantic_detection_v1_en": m.AzureSemanticDetectionEn,
            "semantic_detection_v1_multilingual": m.AzureSemanticDetectionMultilingual,
        }
        self.interim_types = {
            "static_interim_response": m.StaticInterimResponseConfig,
            "llm_interim_response": m.LlmInterimResponseConfig,
        }

    def model(self, cls: type, data: Mapping[str, Any], convert: Optional[Mapping[str, Convert]] = None) -> Any:
        """An instance of ``cls`` with the keys of ``data``: SDK fields as constructor arguments,
        the others (and the entries of ``extra``) by item assignment."""
        fields = _rest_fields(cls)
        convert = convert or {}
        kwargs: dict[str, Any] = {}
        items: dict[str, Any] = {}
        for key, value in data.items():
            if key == "extra":
                continue
            if key in convert and value is not None:
                value = convert[key](value)
            if key in fields:
                kwargs[fields[key]] = value
            else:
                items[key] = value
        instance = cls(**kwargs)
        for key, value in items.items():
            instance[key] = value
        for key, value in (data.get("extra") or {}).items():
            instance[key] = value
        return instance

    def tagged(self, classes: Mapping[str, type], tag: str, convert: Optional[Mapping[str, Convert]] = None) -> Convert:
        return lambda data: self.model(classes[data[tag]], data, convert)

    def session(self, data: Mapping[str, Any]) -> Any:
        m = self.m
        nested = lambda cls, convert=None: (lambda value: self.model(cls, value, convert))  # noqa: E731
        convert: dict[str, Convert] = {
            "voice": self.voice,
            "turn_detection": self.tagged(
                self.turn_detection_types, "type",
                {"end_of_utterance_detection": self.tagged(self.eou_models, "model")},
            ),
            "input_audio_noise_reduction": nested(m.AudioNoiseReduction),
            "input_audio_echo_cancellation": nested(m.AudioEchoCancellation),
            "input_audio_transcription": nested(m.AudioInputTranscriptionOptions),
            "tools": lambda tools: [self.tool(tool) for tool in tools],
            "tool_choice": self.tool_choice,
            "interim_response": self.tagged(self.interim_types, "type"),
            "animation": nested(m.Animation),
            "avatar": self.avatar,
        }
        return self.model(m.RequestSession, data, convert)

    def voice(self, value: Any) -> Any:
        if isinstance(value, str):
            return value  # an OpenAI voice name goes as a plain string
        return self.model(self.voice_types[value["type"]], value)

    def tool(self, value: Mapping[str, Any]) -> Any:
        cls = self.m.FunctionTool if value["type"] == "function" else self.m.MCPServer
        return self.model(cls, value)

    def tool_choice(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        return self.model(self.m.ToolChoiceFunctionSelection, value)

    def avatar(self, value: Mapping[str, Any]) -> Any:
        m = self.m
        nested = lambda cls, convert=None: (lambda item: self.model(cls, item, convert))  # noqa: E731
        video = nested(m.VideoParams, {
            "crop": nested(m.VideoCrop),
            "resolution": nested(m.VideoResolution),
            "background": nested(m.Background),
        })
        return self.model(m.AvatarConfig, value, {
            "ice_servers": lambda servers: [self.model(m.IceServer, server) for server in servers],
            "video": video,
            "scene": nested(m.Scene),
        })
