"""The profile reference, the editor schema and the enumerations taken from the SDK."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from shipped_files import shipped_profiles

from voicepipe import starter
from voicepipe.cli import main
from voicepipe.errors import ProfileError
from voicepipe.profile import load_profile, reference, schema, sdkenums
from voicepipe.profile.editorschema import json_schema, schema_text
from voicepipe.profile.keydocs import DOCS, NOT_SET
from voicepipe.profile.spec import Bool

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_LINE = "# yaml-language-server: $schema=../docs/profile.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def refusals(validator, text: str) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]


# -- every key documented ----------------------------------------------------------------------------


def test_every_key_the_schema_knows_has_a_default_and_a_meaning():
    assert reference.missing_docs() == []
    paths = [key.path for key in reference.keys()]
    assert len(paths) == len(set(paths)) > 150
    for wanted in ("metrics.prometheus_port", "metrics.otel", "recorder.audio", "transcript.enabled",
                   "logging.file_level", "logging.azure_level", "logging.run_name", "runtime.duration_s",
                   "audio.input.realtime", "audio.output.realtime", "audio.input.latency", "audio.output.fade_ms",
                   "audio.input.answer_timeout_s", "audio.input.trailing_silence_ms", "audio.output.file"):
        assert wanted in paths


def test_a_new_key_without_documentation_fails(monkeypatch):
    monkeypatch.setitem(schema.SECTIONS["runtime"].fields, "brand_new", Bool())
    monkeypatch.setitem(schema.BACKEND_OPTIONS["output"]["wav"], "dither", Bool())
    assert reference.missing_docs() == [
        "audio.output.dither: no default and meaning in voicepipe/profile/keydocs.py",
        "runtime.brand_new: no default and meaning in voicepipe/profile/keydocs.py",
    ]
    monkeypatch.delitem(DOCS, "console.quiet")
    monkeypatch.setitem(DOCS, "console.gone", ("false", "A key that was removed."))
    problems = reference.missing_docs()
    assert "console.quiet: no default and meaning in voicepipe/profile/keydocs.py" in problems
    assert "console.gone: documented in voicepipe/profile/keydocs.py, but the schema has no such key" in problems


def test_variant_keys_say_which_variants_have_them():
    by_path = {key.path: key for key in reference.keys()}
    assert by_path["audio.input.trailing_silence_ms"].only == ["backend: wav"]
    assert by_path["audio.output.fade_ms"].only == ["backend: pyaudio, sounddevice"]
    assert by_path["session.turn_detection.languages"].only == ["type: azure_semantic_vad, azure_semantic_vad_multilingual"]
    assert by_path["session.turn_detection.threshold"].only == []


def _number(text: str) -> float:
    return float(re.match(r"[-0-9.]+", text.strip("`")).group())


def _default(path: str) -> str:
    return DOCS[path][0]


def test_documented_defaults_are_the_ones_the_code_applies():
    from voicepipe import connection, pipeline, rundir, runtime, toolbind
    from voicepipe.audio.device import DeviceInput, DeviceOutput
    from voicepipe.audio.null import NullOutput
    from voicepipe.audio.wav import WavInput
    from voicepipe.builtin import audio
    from voicepipe.builtin.metrics import MetricsSettings
    from voicepipe.emulator import pacing
    from voicepipe.logsetup import configure_logging
    from voicepipe.reconnect import ReconnectPolicy

    numbers = {
        "connection.connect_timeout_s": connection.DEFAULT_CONNECT_TIMEOUT_S,
        "connection.session_timeout_s": runtime.DEFAULT_SESSION_TIMEOUT_S,
        "connection.emulator.speed": pacing.SERVICE_SPEED,
        "connection.emulator.burst_ms": pacing.SERVICE_BURST_MS,
        "runtime.slow_hook_ms": pipeline.DEFAULT_SLOW_HOOK_MS,
        "runtime.max_plugin_errors": pipeline.DEFAULT_MAX_PLUGIN_ERRORS,
        "tools.timeout_s": toolbind.DEFAULT_TIMEOUT_S,
        "audio.chunk_ms": audio.DEFAULT_CHUNK_MS,
        "audio.input.answer_timeout_s": audio.DEFAULT_ANSWER_TIMEOUT_S,
        "audio.output.fade_ms": DeviceOutput({}).fade_ms,
        "audio.input.trailing_silence_ms": WavInput({"file": str(ROOT / "profiles/audio/question.wav")}).trailing_silence_ms,
    }
    policy = ReconnectPolicy()
    for name in policy.__dataclass_fields__:
        numbers[f"connection.reconnect.{name}"] = getattr(policy, name)
    for path, value in numbers.items():
        assert _number(_default(path)) == value, path
    flags = {
        "metrics.table": MetricsSettings().table,
        "metrics.otel": MetricsSettings().otel,
        "audio.output.realtime": NullOutput({}).realtime,
        "audio.input.realtime": WavInput({"file": str(ROOT / "profiles/audio/question.wav")}).realtime,
    }
    for path, value in flags.items():
        assert _default(path) == str(value).lower(), path
    assert MetricsSettings().prometheus_port is None and _default("metrics.prometheus_port").startswith(NOT_SET)
    assert _default("logging.dir") == f"`{rundir.DEFAULT_LOG_DIR}`"
    assert _default("audio.input.device") == f"`{DeviceInput({}).device}`" == _default("audio.output.device")
    parameters = inspect.signature(configure_logging).parameters
    assert _default("logging.file_level") == parameters["file_level"].default
    assert _default("logging.azure_level") == parameters["azure_level"].default


# -- the generated files ---------------------------------------------------------------------------------


def test_the_committed_reference_page_is_current():
    committed = (ROOT / reference.DOC_FILE).read_text(encoding="utf-8")
    assert committed == reference.markdown(), "run: python -m voicepipe.profile.reference"
    assert "| `metrics.prometheus_port` | an integer from 1 to 65535 | not set (no exporter) |" in committed


def test_the_committed_json_schema_is_current_and_a_valid_2020_12_schema():
    committed = (ROOT / reference.SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m voicepipe.profile.reference"
    document = json.loads(committed)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)
    hover = document["properties"]["runtime"]["properties"]["duration_s"]["description"]
    assert hover == f"{DOCS['runtime.duration_s'][1]} Default: {DOCS['runtime.duration_s'][0]}."


def test_reference_check_mode_reports_a_stale_file(tmp_path, capsys):
    assert reference.main(["--root", str(tmp_path)]) == 0
    assert reference.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / reference.DOC_FILE).write_text("old\n")
    assert reference.main(["--root", str(tmp_path), "--check"]) == 1
    assert "profile-reference.md: out of date" in capsys.readouterr().err


def test_voicepipe_schema_prints_it_and_init_writes_it(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == schema_text()
    assert main(["schema", "-o", str(tmp_path / "no" / "such" / "s.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
    written = starter.init_project(tmp_path / "project")
    assert tmp_path / "project" / "profile.schema.json" in written
    assert (tmp_path / "project" / "profile.schema.json").read_text() == schema_text()
    first = (tmp_path / "project" / "profiles" / "my-agent.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../profile.schema.json"


# -- the JSON Schema takes what validation takes -------------------------------------------------------


def test_every_shipped_profile_names_the_schema_and_validates_against_it(validator):
    profiles = shipped_profiles()
    assert len(profiles) >= 5
    for path in profiles:
        text = path.read_text(encoding="utf-8")
        assert text.splitlines()[0] == SCHEMA_LINE, path
        assert refusals(validator, text) == [], path
    first = (ROOT / "profiles" / "scenarios").glob("*.yaml")
    assert all(not p.read_text().startswith("# yaml-language-server") for p in first)  # not profiles


@pytest.mark.parametrize("text, where", [
    ("session: {voice: {name: x, type: azure-standard, temprature: 0.5}}\n", "session.voice"),
    ("session: {modalities: [txt]}\n", "session.modalities.0"),
    ("session: {temperature: 3}\n", "session.temperature"),
    ("connection: {reconnect: {attempts: -1}}\n", "connection.reconnect.attempts"),
    ("connection: {api_key: abc}\n", "connection"),
    ("audio: {input: {backend: wav, device: 1}}\n", "audio.input"),
    ("audio: {output: {backend: wav, file: o.wav, fade_ms: 5}}\n", "audio.output"),
    ("metrics: {prometheus_port: 70000}\n", "metrics.prometheus_port"),
    ("session: {turn_detection: {type: server_vad, languages: [en]}}\n", "session.turn_detection"),
    ("logging: {level: LOUD}\n", "logging.level"),
    ("session: {voice: {type: openai, name: alloy, temperature: 0.5}}\n", "session.voice"),
])
def test_wrong_profiles_are_refused_by_the_json_schema_and_by_validation(validator, tmp_path, text, where):
    assert [line for line in refusals(validator, text) if line.startswith(where)], refusals(validator, text)
    path = tmp_path / "wrong.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError):
        load_profile(path, environ={})


def test_the_json_schema_takes_a_few_keys_of_a_mapping_the_parent_profile_started(validator):
    assert refusals(validator, "extends: ava.yaml\nsession:\n  voice: {temperature: 0.5}\n"
                               "  input_audio_transcription: {language: en}\n"
                               "  turn_detection: {silence_duration_ms: 300, languages: [en]}\n"
                               "audio:\n  output: {file: answer.wav}\nconsole:\n") == []


def test_the_json_schema_takes_references_and_plugin_sections(validator):
    assert refusals(validator, "connection:\n  connect_timeout_s: ${TIMEOUT:-15}\n  reconnect:\n    attempts: ${N}\n"
                               "plugins: [x.py]\nx: {anything: 1}\nlogging: {level: debug}\n"
                               "audio: {input: {backend: my_backend, whatever: 3}, output: {backend: null, realtime: false}}\n") == []


# -- the README's YAML blocks ------------------------------------------------------------------------------

NOT_CHECKED = "# not checked"  # a README block starting with this line is an illustration, not a file


def readme_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_every_yaml_block_in_the_readme_is_valid(tmp_path, monkeypatch, validator):
    """Profiles are validated as `voicepipe validate` does it (in a copy of the repository's
    profiles/ and plugins/, where they would be saved) and against the JSON Schema; conversation
    files and emulator scenarios with their own loaders."""
    from voicepipe.conversation.spec import load_conversation
    from voicepipe.emulator.scenario import parse_scenario

    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    shutil.copytree(ROOT / "plugins", tmp_path / "plugins")
    (tmp_path / "conversations").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", "https://example.services.ai.azure.com/")
    kinds = []
    for index, block in enumerate(readme_blocks()):
        data = yaml.safe_load(block)
        first = block.splitlines()[0]
        if first.startswith(NOT_CHECKED):
            kinds.append("skipped")
        elif first.endswith(".conversation.yaml") or "profile" in data and "turns" in data:
            path = tmp_path / "conversations" / f"readme{index}.conversation.yaml"
            path.write_text(block)
            load_conversation(path)
            kinds.append("conversation")
        elif "turns" in data or "faults" in data:
            parse_scenario(block, f"README.md block {index}")
            kinds.append("scenario")
        else:
            path = tmp_path / "profiles" / f"readme{index}.yaml"
            path.write_text(block)
            assert main(["validate", str(path)]) == 0, block
            assert refusals(validator, block) == [], block
            kinds.append("profile")
    assert kinds.count("profile") >= 2 and "conversation" in kinds and "scenario" in kinds


# -- enumerations from the SDK -----------------------------------------------------------------------------


def _sdk_enums():
    found = []

    def visit(spec, seen):
        if id(spec) in seen:
            return
        seen.add(id(spec))
        if isinstance(spec, sdkenums.SdkEnum):
            found.append(spec)
        for value in vars(spec).values():
            for item in (value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]):
                if hasattr(item, "validate"):
                    visit(item, seen)

    seen: set = set()
    for section in schema.SECTIONS.values():
        visit(section, seen)
    return found


def test_every_sdk_enum_named_exists_in_the_installed_sdk_and_its_values_are_accepted(tmp_path):
    enums = _sdk_enums()
    assert {"OpenAIVoiceName", "AzureRealtimeNativeVoiceName", "Modality", "OutputAudioFormat"} <= {e.sdk_name for e in enums}
    for enum in enums:
        values = sdkenums.sdk_values(enum.sdk_name)
        assert values, enum.sdk_name
        assert all(enum.is_known(value) for value in values)


def test_a_voice_only_a_newer_sdk_knows_is_accepted_and_typos_still_get_a_suggestion(tmp_path, monkeypatch):
    real = sdkenums.sdk_values
    monkeypatch.setattr(sdkenums, "sdk_values",
                        lambda name: real(name) + (("nova",) if name == "OpenAIVoiceName" else ()))
    path = tmp_path / "p.yaml"
    path.write_text("session:\n  voice: nova\n")
    assert load_profile(path, environ={}).session["voice"] == "nova"
    path.write_text("session:\n  voice: {type: openai, name: nova}\n")
    assert load_profile(path, environ={}).session["voice"]["name"] == "nova"
    assert "nova" in json.dumps(json_schema()["properties"]["session"]["properties"]["voice"])
    path.write_text("session:\n  voice: {type: openai, name: novaa}\n")
    with pytest.raises(ProfileError) as error:
        load_profile(path, environ={})
    (problem,) = error.value.problems
    assert "session.voice.name" in problem and "did you mean 'nova'?" in problem
    path.write_text("session:\n  voice: alloi\n")
    with pytest.raises(ProfileError) as error:
        load_profile(path, environ={})
    assert "did you mean 'alloy'?" in error.value.problems[0]


def test_validating_known_values_does_not_import_the_sdk():
    code = (
        "import sys; from voicepipe.profile import load_profile; "
        f"load_profile({str(ROOT / 'profiles' / 'demo.yaml')!r}, environ={{}}); "
        f"load_profile({str(ROOT / 'profiles' / 'tools.yaml')!r}, environ={{}}); "
        "print('azure.ai.voicelive' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
    unknown = code.replace("print(", "import pathlib, tempfile; p = pathlib.Path(tempfile.mkdtemp()) / 'v.yaml'; "
                                     "p.write_text('session: {voice: {type: openai, name: brand_new}}'); "
                                     "exec('try: load_profile(p, environ={})\\nexcept Exception: pass'); print(")
    result = subprocess.run([sys.executable, "-c", unknown], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "True", result.stderr  # the test can fail: an unknown value asks the SDK


# -- enabled: false ----------------------------------------------------------------------------------------


def test_enabled_false_turns_a_built_in_off(tmp_path):
    from voicepipe.plugins import load_plugin_set

    path = tmp_path / "p.yaml"
    path.write_text("transcript: {enabled: false}\nrecorder: {enabled: false, audio: true}\n")
    names = [name for name, _, _ in load_plugin_set(load_profile(path, environ={}), autoload=False).entries]
    assert "transcript" not in names and "recorder" not in names and "metrics" in names
    path.write_text("transcript: {enabled: true}\n")
    names = [name for name, _, _ in load_plugin_set(load_profile(path, environ={}), autoload=False).entries]
    assert "transcript" in names and "recorder" in names
