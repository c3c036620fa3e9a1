"""From profile to the SDK RequestSession and the session.update payload."""

from __future__ import annotations

import textwrap
from pathlib import Path

from azure.ai.voicelive import models

from voicepipe.profile import build_request_session, load_profile, session_update_payload

ROOT = Path(__file__).resolve().parents[1]
ENV = {"AZURE_VOICELIVE_ENDPOINT": "https://res.services.ai.azure.com/"}

# The Azure Voice Live Python quickstart's session, as profiles/ava.yaml writes it.
AVA = """
connection:
  endpoint: ${AZURE_VOICELIVE_ENDPOINT}
  model: gpt-realtime
session:
  instructions: You are a helpful AI assistant responding in natural, engaging language.
  modalities: [text, audio]
  voice: {name: en-US-Ava:DragonHDLatestNeural, type: azure-standard, temperature: 0.8}
  input_audio_format: pcm16
  output_audio_format: pcm16
  turn_detection:
    type: azure_semantic_vad
    threshold: 0.3
    prefix_padding_ms: 200
    silence_duration_ms: 200
    remove_filler_words: false
    end_of_utterance_detection: {model: semantic_detection_v1, threshold: 0.01, timeout: 2}
  input_audio_noise_reduction: {type: azure_deep_noise_suppression}
  input_audio_echo_cancellation: {type: server_echo_cancellation}
audio:
  input: {backend: pyaudio, device: default}
  output: {backend: pyaudio, device: default}
"""

AVA_SESSION = {
    "instructions": "You are a helpful AI assistant responding in natural, engaging language.",
    "modalities": ["text", "audio"],
    "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.8},
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "turn_detection": {
        "type": "azure_semantic_vad",
        "threshold": 0.3,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 200,
        "remove_filler_words": False,
        "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2},
    },
    "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
    "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
}

DEMO = """
extends: ava.yaml
connection:
  endpoint: emulator
plugins: [plugins/keyword_alert.py]
keyword_alert: {keywords: [lake]}
audio:
  input: {backend: wav, file: assets/question.wav, trailing_silence_ms: 1500}
  output: {backend: wav, file: "{run_dir}/output.wav"}
"""


def write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def nulls(value, path="") -> list[str]:
    if value is None:
        return [path or "<root>"]
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in nulls(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in nulls(child, f"{path}[{index}]")]
    return []


def payload_of(tmp_path: Path, text: str, overrides=()) -> dict:
    return session_update_payload(load_profile(write(tmp_path, text), overrides, environ=ENV))


# -- the two shipped examples ----------------------------------------------------------------------


def test_quickstart_profile_round_trips_exactly(tmp_path):
    profile = load_profile(write(tmp_path, AVA, "ava.yaml"), environ=ENV)
    assert profile.warnings == []
    assert profile.connection == {"endpoint": "https://res.services.ai.azure.com/", "model": "gpt-realtime"}
    payload = session_update_payload(profile)
    assert payload["type"] == "session.update"
    assert payload["session"] == AVA_SESSION
    assert profile.session == AVA_SESSION
    assert nulls(payload) == []


def test_quickstart_session_uses_the_typed_sdk_models(tmp_path):
    session = build_request_session(load_profile(write(tmp_path, AVA), environ=ENV))
    assert isinstance(session, models.RequestSession)
    assert isinstance(session.voice, models.AzureStandardVoice)
    assert isinstance(session.turn_detection, models.AzureSemanticVad)
    eou = session.turn_detection.end_of_utterance_detection
    assert isinstance(eou, models.AzureSemanticDetection)
    assert eou["threshold"] == 0.01 and eou["timeout"] == 2  # set by item assignment: not SDK fields
    assert isinstance(session.input_audio_noise_reduction, models.AudioNoiseReduction)
    assert isinstance(session.input_audio_echo_cancellation, models.AudioEchoCancellation)
    assert session.turn_detection.threshold == 0.3


def test_demo_like_profile_validates_and_keeps_the_plugin_section(tmp_path):
    write(tmp_path, AVA, "ava.yaml")
    profile = load_profile(write(tmp_path, DEMO, "demo.yaml"), environ={})
    assert profile.connection == {"endpoint": "emulator", "model": "gpt-realtime"}
    assert profile.audio == {
        "input": {"backend": "wav", "file": "assets/question.wav", "trailing_silence_ms": 1500},
        "output": {"backend": "wav", "file": "{run_dir}/output.wav"},
    }
    assert profile.plugins == ["plugins/keyword_alert.py"]
    assert profile.section("keyword_alert") == {"keywords": ["lake"]}
    assert profile.location("keyword_alert") == f"{tmp_path / 'demo.yaml'}:5:1"
    assert session_update_payload(profile)["session"] == AVA_SESSION


def test_shipped_profiles_validate():
    for name in ("ava.yaml", "demo.yaml"):
        profile = load_profile(ROOT / "profiles" / name, environ=ENV)
        assert session_update_payload(profile)["session"] == AVA_SESSION | (
            {"input_audio_transcription": {"model": "whisper-1"}} if name == "demo.yaml" else {}
        )


# -- what is sent ----------------------------------------------------------------------------------


def test_unset_keys_are_omitted_never_null(tmp_path):
    payload = payload_of(tmp_path, "session:\n  voice: alloy\n  turn_detection: {type: server_vad}\n")
    assert payload == {"type": "session.update", "session": {"voice": "alloy", "turn_detection": {"type": "server_vad"}}}


def test_an_empty_session_is_an_empty_update(tmp_path):
    assert payload_of(tmp_path, "connection: {endpoint: emulator}\n") == {"type": "session.update", "session": {}}


def test_explicit_null_is_sent_as_null(tmp_path):
    payload = payload_of(tmp_path, "session:\n  turn_detection: null\n")
    assert payload["session"] == {"turn_detection": None}


def test_passthrough_fields_reach_the_payload(tmp_path):
    payload = payload_of(tmp_path, """
        session:
          turn_detection:
            type: azure_semantic_vad_multilingual
            languages: [en, es]
            auto_truncate: true
            idle_timeout_ms: 10000
            appended_text_after_truncation: " [The user interrupted me.]"
            speech_duration_assistant_speaking_ms: 800
            end_of_utterance_detection: {model: semantic_detection_v1_multilingual, threshold_level: low, timeout_ms: 900}
          input_audio_transcription: {model: gpt-4o-transcribe, prompt: Contoso products}
        """)
    assert payload["session"] == {
        "turn_detection": {
            "type": "azure_semantic_vad_multilingual",
            "languages": ["en", "es"],
            "auto_truncate": True,
            "idle_timeout_ms": 10000,
            "appended_text_after_truncation": " [The user interrupted me.]",
            "speech_duration_assistant_speaking_ms": 800,
            "end_of_utterance_detection": {"model": "semantic_detection_v1_multilingual", "threshold_level": "low",
                                           "timeout_ms": 900},
        },
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "prompt": "Contoso products"},
    }


def test_extra_keys_go_through_verbatim(tmp_path):
    payload = payload_of(tmp_path, """
        session:
          instructions: hi
          extra: {greeting: {type: text, text: Hello}, truncation_strategy: auto}
          turn_detection:
            type: server_vad
            extra: {new_knob: 3}
        """)
    assert payload["session"] == {
        "instructions": "hi",
        "greeting": {"type": "text", "text": "Hello"},
        "truncation_strategy": "auto",
        "turn_detection": {"type": "server_vad", "new_knob": 3},
    }
    assert "extra" not in str(payload)


def test_tools_tool_choice_and_voices_become_sdk_models(tmp_path):
    profile = load_profile(write(tmp_path, """
        session:
          voice: {type: openai, name: marin}
          tools:
            - {type: function, name: get_time, parameters: {type: object, properties: {}}}
            - {type: mcp, server_label: wiki, server_url: "https://mcp.example/mcp", require_approval: {never: [search]}}
          tool_choice: {type: function, name: get_time}
          max_response_output_tokens: inf
          metadata: {team: voice}
        """), environ={})
    session = build_request_session(profile)
    assert isinstance(session.voice, models.OpenAIVoice)
    assert [type(tool) for tool in session.tools] == [models.FunctionTool, models.MCPServer]
    assert isinstance(session.tool_choice, models.ToolChoiceFunctionSelection)
    assert session.as_dict() == {
        "voice": {"type": "openai", "name": "marin"},
        "tools": [
            {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
            {"type": "mcp", "server_label": "wiki", "server_url": "https://mcp.example/mcp",
             "require_approval": {"never": ["search"]}},
        ],
        "tool_choice": {"type": "function", "name": "get_time"},
        "max_response_output_tokens": "inf",
        "metadata": {"team": "voice"},
    }


def test_avatar_and_interim_response(tmp_path):
    payload = payload_of(tmp_path, """
        session:
          modalities: [text, audio, avatar]
          avatar:
            type: video-avatar
            character: lisa
            style: casual-sitting
            video: {bitrate: 2000000, resolution: {width: 1920, height: 1080}, background: {color: "#00FF00FF"}}
          interim_response: {type: llm_interim_response, triggers: [latency], latency_threshold_ms: 300}
        """)
    assert payload["session"]["avatar"] == {
        "type": "video-avatar", "character": "lisa", "style": "casual-sitting",
        "video": {"bitrate": 2000000, "resolution": {"width": 1920, "height": 1080}, "background": {"color": "#00FF00FF"}},
    }
    assert payload["session"]["interim_response"] == {"type": "llm_interim_response", "triggers": ["latency"],
                                                      "latency_threshold_ms": 300}


def test_set_overrides_show_in_the_payload(tmp_path):
    payload = payload_of(tmp_path, AVA, ["session.voice.name=en-US-Emma:DragonHDLatestNeural",
                                         "session.turn_detection.type=server_vad"])
    assert payload["session"]["voice"]["name"] == "en-US-Emma:DragonHDLatestNeural"
    # remove_filler_words is no setting of server_vad: dropped with the type change
    assert payload["session"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.3, "prefix_padding_ms": 200, "silence_duration_ms": 200,
        "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2},
    }


def test_plugins_can_still_mutate_the_built_session(tmp_path):
    session = build_request_session(load_profile(write(tmp_path, AVA), environ=ENV))
    session["tools"] = [models.FunctionTool(name="f")]
    echo = dict(session["input_audio_echo_cancellation"])
    echo.update(reference_source="client", channels=2)
    session["input_audio_echo_cancellation"] = echo
    sent = session.as_dict()
    assert sent["tools"] == [{"type": "function", "name": "f"}]
    assert sent["input_audio_echo_cancellation"] == {"type": "server_echo_cancellation", "reference_source": "client",
                                                     "channels": 2}
