"""Validation: every section's keys, types, enums and ranges, reported with file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from installed_dist import install_distribution

from voicepipe.errors import ProfileError
from voicepipe.profile import load_profile
from voicepipe.profile.schema import BUILTIN_BACKENDS, BUILTIN_PLUGINS


def write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(ProfileError) as err:
        load_profile(path, overrides, environ={})
    return err.value.problems


def only_problem(path, overrides=()) -> str:
    found = problems(path, overrides)
    assert len(found) == 1, found
    return found[0]


def valid(tmp_path, text: str):
    return load_profile(write(tmp_path, text), environ={})


# -- unknown keys ----------------------------------------------------------------------------------


def test_misspelt_top_level_section(tmp_path):
    path = write(tmp_path, "sesion:\n  instructions: hi\n")
    assert only_problem(path) == f"{path}:1:1: sesion: unknown key (did you mean 'session'?)"


def test_unknown_top_level_section_without_a_close_match_lists_the_sections(tmp_path):
    path = write(tmp_path, "zzz: {}\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:1:1: zzz: unknown key (sections: connection, session, audio,")
    assert "plugins:" in problem


def test_misspelt_key_in_a_voice(tmp_path):
    path = write(tmp_path, """
        session:
          voice:
            name: en-US-Ava:DragonHDLatestNeural
            type: azure-standard
            temprature: 0.5
        """)
    assert only_problem(path) == f"{path}:5:5: session.voice.temprature: unknown key (did you mean 'temperature'?)"


def test_misspelt_key_three_levels_down(tmp_path):
    path = write(tmp_path, """
        session:
          turn_detection:
            type: azure_semantic_vad
            end_of_utterance_detection:
              model: semantic_detection_v1
              treshold_level: low
        """)
    assert only_problem(path) == (
        f"{path}:6:7: session.turn_detection.end_of_utterance_detection.treshold_level: unknown key "
        "(did you mean 'threshold_level'?)"
    )


def test_unknown_session_field_points_to_extra(tmp_path):
    path = write(tmp_path, "session:\n  brand_new_service_field: 1\n")
    assert only_problem(path) == (
        f"{path}:2:3: session.brand_new_service_field: unknown key "
        "(or put a service field voicepipe does not know under extra:)"
    )


def test_a_setting_of_another_turn_detection_type(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection:\n    type: server_vad\n    remove_filler_words: true\n")
    assert only_problem(path) == (
        f"{path}:4:5: session.turn_detection.remove_filler_words: not a setting of type server_vad "
        "(only of azure_semantic_vad, azure_semantic_vad_en, azure_semantic_vad_multilingual)"
    )


def test_misspelt_key_in_a_list_item(tmp_path):
    path = write(tmp_path, """
        session:
          tools:
            - type: function
              name: lookup
              parameter: {type: object}
        """)
    assert only_problem(path) == f"{path}:5:7: session.tools[0].parameter: unknown key (did you mean 'parameters'?)"


def test_misspelt_audio_option_of_a_builtin_backend(tmp_path):
    path = write(tmp_path, "audio:\n  input: {backend: wav, file: q.wav, trailing_silense_ms: 500}\n")
    assert only_problem(path) == (
        f"{path}:2:38: audio.input.trailing_silense_ms: unknown key (did you mean 'trailing_silence_ms'?)"
    )


# -- types, ranges, enums --------------------------------------------------------------------------


def test_wrong_type(tmp_path):
    path = write(tmp_path, "session:\n  voice: {name: en-US-Ava:DragonHDLatestNeural, type: azure-standard, temperature: hot}\n")
    assert only_problem(path) == (
        f"{path}:2:84: session.voice.temperature: expected a number from 0 to 1, got 'hot'"
    )


def test_bool_is_not_a_number(tmp_path):
    path = write(tmp_path, "audio:\n  chunk_ms: true\n")
    assert only_problem(path) == f"{path}:2:13: audio.chunk_ms: expected an integer from 10 to 200, got true"


def test_a_string_where_a_list_is_expected(tmp_path):
    path = write(tmp_path, "session:\n  modalities: audio\n")
    assert only_problem(path) == f"{path}:2:15: session.modalities: expected a list (one of text, audio, animation, avatar each), got 'audio'"


def test_out_of_range(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection: {type: server_vad, threshold: 1.5, silence_duration_ms: -1}\n")
    assert problems(path) == [
        f"{path}:2:49: session.turn_detection.threshold: expected a number from 0 to 1, got 1.5",
        f"{path}:2:75: session.turn_detection.silence_duration_ms: expected an integer >= 0, got -1",
    ]


def test_float_where_an_integer_is_expected(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection: {type: server_vad, prefix_padding_ms: 2.5}\n")
    assert only_problem(path) == (
        f"{path}:2:57: session.turn_detection.prefix_padding_ms: expected an integer >= 0, got 2.5"
    )


def test_bad_enum_with_did_you_mean(tmp_path):
    path = write(tmp_path, "session:\n  input_audio_noise_reduction: {type: azure_deep_noise_supression}\n")
    assert only_problem(path) == (
        f"{path}:2:39: session.input_audio_noise_reduction.type: expected one of azure_deep_noise_suppression, "
        "near_field, far_field, got 'azure_deep_noise_supression' (did you mean 'azure_deep_noise_suppression'?)"
    )


def test_bad_turn_detection_type(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection: {type: semantic_vad}\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:2:26: session.turn_detection.type: expected one of server_vad, azure_semantic_vad,")


def test_missing_turn_detection_type(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection: {threshold: 0.5}\n")
    assert only_problem(path).startswith(
        f"{path}:2:3: session.turn_detection: missing required key 'type' (one of server_vad, "
    )


def test_bad_modality_in_a_list(tmp_path):
    path = write(tmp_path, "session:\n  modalities: [text, audo]\n")
    assert only_problem(path) == (
        f"{path}:2:22: session.modalities[1]: expected one of text, audio, animation, avatar, got 'audo' "
        "(did you mean 'audio'?)"
    )


def test_formats_and_rates(tmp_path):
    path = write(tmp_path, """
        session:
          input_audio_format: pcm24
          output_audio_format: pcm16_96000hz
          input_audio_sampling_rate: 22050
        """)
    found = problems(path)
    assert len(found) == 3
    assert found[0].startswith(f"{path}:2:23: session.input_audio_format: expected one of pcm16, g711_ulaw, g711_alaw")
    assert found[1].startswith(f"{path}:3:24: session.output_audio_format: expected one of pcm16, pcm16_8000hz")
    assert found[2] == (
        f"{path}:4:30: session.input_audio_sampling_rate: expected one of 8000, 16000, 24000, 44100, 48000, got 22050"
    )


def test_g711_needs_8000_hz(tmp_path):
    path = write(tmp_path, "session:\n  input_audio_format: g711_ulaw\n  input_audio_sampling_rate: 16000\n")
    assert only_problem(path) == f"{path}:3:30: session.input_audio_sampling_rate: g711_ulaw audio is 8000 Hz, got 16000"


def test_stereo_echo_reference_needs_client_source(tmp_path):
    path = write(tmp_path, "session:\n  input_audio_echo_cancellation: {type: server_echo_cancellation, channels: 2}\n")
    assert only_problem(path) == (
        f"{path}:2:77: session.input_audio_echo_cancellation.channels: channels 2 needs reference_source: client "
        "(the second channel carries the signal the client played)"
    )
    ok = valid(tmp_path, "session:\n  input_audio_echo_cancellation: {reference_source: client, channels: 2}\n")
    assert ok.session["input_audio_echo_cancellation"] == {"reference_source": "client", "channels": 2}


def test_voice_types_and_their_required_keys(tmp_path):
    path = write(tmp_path, """
        session:
          voice: {type: azure-custom, name: my-voice}
        """)
    assert only_problem(path) == f"{path}:2:3: session.voice: missing required key 'endpoint_id'"
    path = write(tmp_path, "session:\n  voice: {type: azure-personal, name: me, model: DragonNeural}\n", "p2.yaml")
    assert "expected one of DragonLatestNeural, PhoenixLatestNeural" in only_problem(path)


def test_openai_voice_name_forms(tmp_path):
    assert valid(tmp_path, "session: {voice: alloy}\n").session == {"voice": "alloy"}
    assert valid(tmp_path, "session: {voice: {type: openai, name: marin}}\n").session["voice"] == {"type": "openai",
                                                                                                  "name": "marin"}
    path = write(tmp_path, "session:\n  voice: alloyy\n")
    assert only_problem(path).endswith("got 'alloyy' (did you mean 'alloy'?)")
    path = write(tmp_path, "session:\n  voice: en-US-Ava:DragonHDLatestNeural\n")
    assert only_problem(path) == (
        f"{path}:2:10: session.voice: an Azure voice is a mapping: "
        "{name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}"
    )


def test_voice_prosody_numbers_become_text(tmp_path):
    profile = valid(tmp_path, "session:\n  voice: {type: azure-standard, name: en-US-AvaNeural, rate: 1.2, pitch: +5%}\n")
    assert profile.session["voice"]["rate"] == "1.2" and profile.session["voice"]["pitch"] == "+5%"


def test_max_response_output_tokens(tmp_path):
    assert valid(tmp_path, "session: {max_response_output_tokens: inf}\n").session == {"max_response_output_tokens": "inf"}
    assert valid(tmp_path, "session: {max_response_output_tokens: 4096}\n").session == {"max_response_output_tokens": 4096}
    path = write(tmp_path, "session:\n  max_response_output_tokens: 0\n")
    assert only_problem(path) == f"{path}:2:31: session.max_response_output_tokens: expected an integer from 1 to 4096, got 0"


def test_tools_and_tool_choice(tmp_path):
    profile = valid(tmp_path, """
        session:
          tools:
            - type: function
              name: get_weather
              description: Weather for a city
              parameters: {type: object, properties: {city: {type: string}}, required: [city]}
            - {type: mcp, server_label: deepwiki, server_url: "https://mcp.deepwiki.com/mcp", require_approval: never}
          tool_choice: {type: function, name: get_weather}
        """)
    assert profile.session["tools"][1]["require_approval"] == "never"
    assert profile.session["tool_choice"] == {"type": "function", "name": "get_weather"}
    path = write(tmp_path, "session:\n  tools:\n    - {type: function}\n  tool_choice: sometimes\n")
    assert problems(path) == [
        f"{path}:3:7: session.tools[0]: missing required key 'name'",
        f"{path}:4:16: session.tool_choice: expected one of auto, none, required, got 'sometimes'",
    ]


def test_mcp_authorization_is_never_shown(tmp_path):
    path = write(tmp_path, "session:\n  tools:\n    - {type: mcp, server_label: x, server_url: y, authorization: 12345678}\n")
    problem = only_problem(path)
    assert "authorization: expected a string, got a value of another type" in problem and "12345678" not in problem


def test_metadata_is_at_most_16_strings(tmp_path):
    entries = ", ".join(f"k{i}: v" for i in range(17))
    path = write(tmp_path, f"session:\n  metadata: {{{entries}}}\n")
    assert only_problem(path) == f"{path}:2:13: session.metadata: expected at most 16 entries, got 17"


def test_transcription_options(tmp_path):
    profile = valid(tmp_path, "session:\n  input_audio_transcription: {model: azure-speech, language: en-US, phrase_list: [Contoso]}\n")
    assert profile.session["input_audio_transcription"]["phrase_list"] == ["Contoso"]
    path = write(tmp_path, "session:\n  input_audio_transcription: {model: whisper-2}\n")
    assert only_problem(path).endswith("got 'whisper-2' (did you mean 'whisper-1'?)")


def test_explicit_null_disables_a_nullable_session_feature(tmp_path):
    profile = valid(tmp_path, "session:\n  turn_detection: null\n  input_audio_noise_reduction: null\n")
    assert profile.session == {"turn_detection": None, "input_audio_noise_reduction": None}
    path = write(tmp_path, "session:\n  temperature: null\n")
    assert only_problem(path) == f"{path}:2:16: session.temperature: expected a number from 0 to 2, got null"


def test_extra_may_not_shadow_a_known_field(tmp_path):
    path = write(tmp_path, "session:\n  extra: {voice: alloy, greeting: hi}\n")
    assert only_problem(path) == f"{path}:2:11: session.extra.voice: 'voice' is a known setting: set session.voice instead"


# -- connection ------------------------------------------------------------------------------------


def test_connection_fields(tmp_path):
    profile = valid(tmp_path, """
        connection:
          endpoint: https://res.services.ai.azure.com/
          auth: entra
          credential_scopes: https://ai.azure.com/.default
          agent: {name: concierge, project: hotel, version: 2}
          connect_timeout_s: 5
          emulator: {scenario: s.yaml, speed: 0}
        """)
    assert profile.connection["agent"] == {"name": "concierge", "project": "hotel", "version": "2"}
    assert profile.connection["credential_scopes"] == "https://ai.azure.com/.default"


def test_bad_auth_mode_and_endpoint(tmp_path):
    path = write(tmp_path, "connection:\n  endpoint: my-resource\n  auth: key\n  connect_timeout_s: 0\n")
    assert problems(path) == [
        f"{path}:2:13: connection.endpoint: expected a URL like https://<resource>.services.ai.azure.com/ or "
        "'emulator', got 'my-resource'",
        f"{path}:3:9: connection.auth: expected one of api-key, entra, got 'key' (did you mean 'api-key'?)",
        f"{path}:4:22: connection.connect_timeout_s: expected a number of seconds > 0, got 0",
    ]


def test_agent_needs_name_and_project(tmp_path):
    path = write(tmp_path, "connection:\n  agent: {name: concierge}\n")
    assert only_problem(path) == f"{path}:2:3: connection.agent: missing required key 'project'"


@pytest.mark.parametrize("key", ["api_key", "key", "token", "password", "bearer", "API-KEY"])
def test_a_literal_key_is_refused_and_never_echoed(tmp_path, key):
    secret = "sk-live-9f8e7d6c5b4a"
    path = write(tmp_path, f"connection:\n  endpoint: emulator\n  {key}: {secret}\n")
    problem = only_problem(path)
    assert problem == (
        f"{path}:3:3: connection.{key}: a key must not be written in the profile "
        "(set AZURE_VOICELIVE_API_KEY in the environment)"
    )
    assert secret not in problem


def test_a_key_under_the_emulator_or_agent_is_refused_too(tmp_path):
    secret = "abcdef0123456789"
    path = write(tmp_path, f"connection:\n  emulator:\n    api_key: {secret}\n  agent:\n    name: a\n    project: b\n    token: {secret}\n")
    found = problems(path)
    assert [p.split(": ")[1] for p in found] == ["connection.emulator.api_key", "connection.agent.token"]
    assert all(secret not in p for p in found)


# -- audio -----------------------------------------------------------------------------------------


def test_audio_section(tmp_path):
    profile = valid(tmp_path, """
        audio:
          chunk_ms: 40
          truncate: false
          input: {backend: PyAudio, device: 2, latency: low}
          output: {backend: sounddevice, device: USB Headset, latency: 0.05, fade_ms: 5}
        """)
    assert profile.audio["input"] == {"backend": "pyaudio", "device": 2, "latency": "low"}
    assert profile.audio["output"]["device"] == "USB Headset"


def test_unknown_backend_close_to_a_builtin(tmp_path):
    path = write(tmp_path, "audio:\n  output: {backend: pyadio}\n")
    assert only_problem(path) == f"{path}:2:21: audio.output.backend: unknown audio backend 'pyadio' (did you mean 'pyaudio'?)"


def test_third_party_backend_takes_any_options(tmp_path):
    profile = valid(tmp_path, "audio:\n  output: {backend: webrtc_bridge, room: lobby, bitrate: 64000}\n")
    assert profile.audio["output"] == {"backend": "webrtc_bridge", "room": "lobby", "bitrate": 64000}


def test_wav_backend_needs_a_file(tmp_path):
    path = write(tmp_path, "audio:\n  input: {backend: wav, realtime: false}\n")
    assert only_problem(path) == f"{path}:2:3: audio.input: missing required key 'file'"


def test_options_without_a_backend(tmp_path):
    path = write(tmp_path, "audio:\n  input: {device: default}\n")
    assert only_problem(path).startswith(f"{path}:2:3: audio.input: missing required key 'backend' (pyaudio, ")


def test_bad_device_and_latency(tmp_path):
    path = write(tmp_path, "audio:\n  output: {backend: pyaudio, device: [1], latency: 3}\n")
    assert problems(path) == [
        f"{path}:2:38: audio.output.device: expected a device name, an index or 'default', got a list",
        f"{path}:2:52: audio.output.latency: expected a number of seconds > 0 and <= 2, got 3",
    ]


def test_backend_shorthand_and_null(tmp_path):
    profile = valid(tmp_path, "audio:\n  input: null\n  output: wav_custom\n")
    assert profile.audio == {"input": None, "output": "wav_custom"}


# -- other sections --------------------------------------------------------------------------------


def test_disable_takes_builtin_names_only(tmp_path):
    path = write(tmp_path, "disable: [console, metrix]\n")
    assert only_problem(path) == (
        f"{path}:1:20: disable[1]: expected one of audio, console, transcript, recorder, metrics, tools, got 'metrix' "
        "(did you mean 'metrics'?)"
    )


def test_builtin_plugin_names_match_the_plugin_manager():
    from voicepipe.builtin.audio import BUILTIN_BACKENDS as AUDIO_BACKENDS
    from voicepipe.builtin.audio import TRANSPORT_BACKENDS
    from voicepipe.plugins import BUILTINS

    assert set(BUILTIN_PLUGINS) == set(BUILTINS)
    assert list(BUILTIN_BACKENDS) == list(AUDIO_BACKENDS) + list(TRANSPORT_BACKENDS)


def test_logging_levels_any_case(tmp_path):
    profile = valid(tmp_path, "logging: {level: debug, file_level: Info, azure_level: WARNING, dir: out, run_name: 7}\n")
    assert profile.logging == {"level": "DEBUG", "file_level": "INFO", "azure_level": "WARNING", "dir": "out",
                               "run_name": "7"}


def test_metrics_runtime_console_recorder_transcript(tmp_path):
    profile = valid(tmp_path, """
        metrics: {prometheus_port: 9464, otel: true, table: false}
        runtime: {slow_hook_ms: 5, duration_s: 30}
        console: {quiet: true}
        recorder: {audio: true}
        transcript: {enabled: false}
        """)
    assert profile.runtime == {"slow_hook_ms": 5, "duration_s": 30}
    path = write(tmp_path, "metrics: {prometheus_port: 0}\nruntime: {slow_hook_ms: 0}\n")
    assert problems(path) == [
        f"{path}:1:28: metrics.prometheus_port: expected an integer from 1 to 65535, got 0",
        f"{path}:2:25: runtime.slow_hook_ms: expected a number > 0, got 0",
    ]


def test_emulator_is_not_a_top_level_section(tmp_path):
    path = write(tmp_path, "emulator: {speed: 0}\n")
    assert only_problem(path).startswith(f"{path}:1:1: emulator: unknown key")


def test_a_plugin_section_is_accepted_for_a_listed_plugin(tmp_path):
    profile = valid(tmp_path, """
        plugins: [plugins/keyword_alert.py, acme.voice.redactor]
        keyword_alert: {keywords: [lake]}
        redactor: {patterns: ['\\d{4}']}
        """)
    assert profile.section("keyword_alert") == {"keywords": ["lake"]}
    assert profile.plugins == ["plugins/keyword_alert.py", "acme.voice.redactor"]


def test_a_plugin_section_without_the_plugin_is_unknown(tmp_path):
    path = write(tmp_path, "keyword_alert: {keywords: [lake]}\n")
    assert only_problem(path).startswith(f"{path}:1:1: keyword_alert: unknown key (")


def test_a_section_of_an_installed_plugin_is_accepted(tmp_path, monkeypatch):
    path = write(tmp_path, "acme_alerts: {level: high}\n")
    assert only_problem(path).startswith(f"{path}:1:1: acme_alerts: unknown key")
    site = install_distribution(tmp_path / "site", "acme-alerts", "0.3", "[voicepipe]\nacme_alerts = acme_alerts\n", {})
    monkeypatch.syspath_prepend(str(site))
    profile = valid(tmp_path, "acme_alerts: {level: high}\n")
    assert profile.section("acme_alerts") == {"level": "high"}


def test_plugin_section_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "plugins: [my.plug]\nplug: [1, 2]\n")
    assert only_problem(path) == f"{path}:2:7: plug: expected a mapping (the plugin's own settings), got a list"


# -- all at once, warnings -------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    path = write(tmp_path, """
        connection:
          auth: magic
        session:
          temperature: 5
          voice: {type: azure-standard}
        audio:
          chunk_ms: 1000
        sesion: {}
        """)
    assert problems(path) == [
        f"{path}:2:9: connection.auth: expected one of api-key, entra, got 'magic'",
        f"{path}:4:16: session.temperature: expected a number from 0 to 2, got 5",
        f"{path}:5:3: session.voice: missing required key 'name'",
        f"{path}:7:13: audio.chunk_ms: expected an integer from 10 to 200, got 1000",
        f"{path}:8:1: sesion: unknown key (did you mean 'session'?)",
    ]


def test_problems_from_yaml_interpolation_and_schema_come_together(tmp_path):
    path = write(tmp_path, """
        connection:
          endpoint: ${NOPE}
          model: gpt-realtime
          model: again
        session:
          temperatur: 0.5
        """)
    found = problems(path, ["session.voice.name=x"])
    assert [p.split(": ")[1] for p in found] == [
        "connection.endpoint", "connection.model", "session.temperatur", "session.voice",
    ]
    assert found[-1] == "--set session.voice.name: session.voice: missing required key 'type' (one of azure-standard, " \
                        "azure-custom, azure-personal, avatar-voice-sync, azure-realtime-native, openai)"


def test_auto_truncate_with_client_truncation_is_a_warning(tmp_path):
    path = write(tmp_path, """
        session:
          turn_detection: {type: server_vad, auto_truncate: true}
        audio:
          truncate: true
        """)
    profile = load_profile(path)
    assert profile.warnings == [
        f"{path}:4:3: audio.truncate: client truncation and session.turn_detection.auto_truncate are both on: the "
        "service already truncates interrupted answers (set one of them to false)"
    ]


def test_no_warning_when_only_one_truncation_is_on(tmp_path):
    path = write(tmp_path, "session:\n  turn_detection: {type: server_vad, auto_truncate: true}\naudio: {truncate: false}\n")
    assert load_profile(path).warnings == []


def test_builtin_backends_list_is_the_audio_plugins():
    assert "null" in BUILTIN_BACKENDS


def test_a_credential_from_the_environment_is_masked_in_messages(tmp_path, monkeypatch):
    secret = "sk-live-5f4e3d2c1b0a"
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", secret)
    path = write(tmp_path, "connection:\n  endpoint: ${AZURE_VOICELIVE_API_KEY}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:2:13: connection.endpoint: expected a URL")
    assert secret not in str(err.value)

    assert "got '***'" in str(err.value)


@pytest.mark.parametrize("source, target", [("q.wav", "q.wav"), ("audio/q.wav", "./audio/q.wav"),
                                            ("a/../q.wav", "q.wav")])
def test_an_output_file_that_is_the_input_file_is_refused(tmp_path, source, target):
    path = write(tmp_path, f"audio:\n  input: {{backend: wav, file: {source}}}\n  output: {{backend: wav, file: {target}}}\n")
    assert only_problem(path).endswith(
        f"audio.output.file: '{target}' is also audio.input.file: the output would overwrite the input "
        "(write the output elsewhere, e.g. \"{run_dir}/output.wav\")")


def test_different_input_and_output_files_are_fine(tmp_path):
    valid(tmp_path, "audio:\n  input: {backend: wav, file: q.wav}\n  output: {backend: wav, file: a.wav}\n")
