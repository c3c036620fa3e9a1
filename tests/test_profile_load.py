"""Loading profiles: files, YAML errors, duplicate keys, extends, ${VAR}, --set overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voicepipe.errors import ProfileError, UsageError
from voicepipe.profile import Profile, load_profile

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path, overrides=(), environ=None) -> list[str]:
    with pytest.raises(ProfileError) as err:
        load_profile(path, overrides, environ=environ or {})
    return err.value.problems


def only_problem(path, overrides=(), environ=None) -> str:
    found = problems(path, overrides, environ)
    assert len(found) == 1, found
    return found[0]


# -- files -----------------------------------------------------------------------------------------


def test_missing_file_is_a_usage_error_naming_the_path_and_the_profiles_nearby(tmp_path):
    write(tmp_path, "ava.yaml", "session: {instructions: hi}\n")
    missing = tmp_path / "avaa.yaml"
    with pytest.raises(UsageError) as err:
        load_profile(missing)
    assert not isinstance(err.value, ProfileError)
    assert str(err.value) == f"{missing}: no such profile file (did you mean {str(tmp_path / 'ava.yaml')!r}?)"


def test_missing_file_path_is_printed_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as err:
        load_profile("profiles/nope.yaml")
    message = str(err.value)
    assert message.startswith("profiles/nope.yaml: no such profile file (")
    assert "\n" not in message


def test_a_folder_is_not_a_profile(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        load_profile(tmp_path)


def test_profile_name_folder_and_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "profiles/quiet.yaml", "console: {quiet: true}\n")
    profile = load_profile("profiles/quiet.yaml")
    assert isinstance(profile, Profile)
    assert profile.path == Path("profiles/quiet.yaml")
    assert profile.name == "quiet"
    assert profile.base_dir == Path("profiles")
    assert profile.section("console") == {"quiet": True}
    assert profile.location("console", "quiet") == "profiles/quiet.yaml:1:11"


def test_empty_file_is_an_empty_profile(tmp_path):
    profile = load_profile(write(tmp_path, "empty.yaml", ""))
    assert profile.data == {}
    assert profile.session == {} and profile.plugins == [] and profile.disable == []


def test_an_empty_section_counts_as_absent(tmp_path):
    profile = load_profile(write(tmp_path, "p.yaml", "session:\n  # nothing yet\naudio: {chunk_ms: 20}\n"))
    assert profile.data == {"audio": {"chunk_ms": 20}}


# -- YAML ------------------------------------------------------------------------------------------


def test_yaml_syntax_error_has_one_based_line_and_column(tmp_path):
    path = write(tmp_path, "p.yaml", """
        session:
          instructions: hi
            voice: alloy
        """)
    problem = only_problem(path)
    assert problem.startswith(f"{path}:3:10: YAML syntax error: mapping values are not allowed")


def test_unclosed_flow_list_reports_where_it_started(tmp_path):
    path = write(tmp_path, "p.yaml", "session:\n  modalities: [text, audio\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:3:1: YAML syntax error: ")
    assert "on line 2" in problem


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "p.yaml", "- session\n- audio\n")
    assert only_problem(path) == f"{path}:1:1: expected a mapping of sections (connection:, session:, …), got a list"


def test_duplicate_key_is_an_error_naming_the_first_line(tmp_path):
    path = write(tmp_path, "p.yaml", """
        session:
          instructions: one
          voice: alloy
          instructions: two
        """)
    assert only_problem(path) == f"{path}:4:3: session.instructions: duplicate key 'instructions' (first set on line 2)"


def test_duplicate_top_level_section(tmp_path):
    path = write(tmp_path, "p.yaml", "audio: {chunk_ms: 20}\nconsole: {quiet: true}\naudio: {chunk_ms: 40}\n")
    assert only_problem(path) == f"{path}:3:1: audio: duplicate key 'audio' (first set on line 1)"


def test_keys_are_kept_as_written(tmp_path):
    # YAML 1.1 would read the key `no` as False; a plugin section keeps it as a name
    path = write(tmp_path, "p.yaml", "plugins: [my.plugin]\nplugin: {no: 1, on: true}\n")
    assert load_profile(path).section("plugin") == {"no": 1, "on": True}


def test_yaml_merge_keys_work_and_explicit_keys_win(tmp_path):
    path = write(tmp_path, "p.yaml", """
        plugins: [my.plugin]
        plugin:
          base: &base {a: 1, b: 2}
          derived:
            <<: *base
            b: 3
        """)
    assert load_profile(path).section("plugin")["derived"] == {"a": 1, "b": 3}


# -- extends ---------------------------------------------------------------------------------------


def test_extends_later_keys_win_mappings_merge_lists_replace(tmp_path):
    write(tmp_path, "base.yaml", """
        session:
          instructions: from base
          modalities: [text, audio]
          voice: {name: en-US-Ava:DragonHDLatestNeural, type: azure-standard, temperature: 0.8}
        console: {quiet: true}
        """)
    child = write(tmp_path, "child.yaml", """
        extends: base.yaml
        session:
          modalities: [text]
          voice: {temperature: 0.5}
        """)
    profile = load_profile(child)
    assert profile.session == {
        "instructions": "from base",
        "modalities": ["text"],
        "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.5},
    }
    assert profile.section("console") == {"quiet": True}
    assert "extends" not in profile.data
    assert profile.location("session", "voice", "temperature") == f"{child}:4:11"
    assert profile.location("session", "instructions") == f"{tmp_path / 'base.yaml'}:2:3"


def test_extends_a_list_merges_parents_in_order(tmp_path):
    write(tmp_path, "a.yaml", "session: {instructions: a, temperature: 0.7}\n")
    write(tmp_path, "b.yaml", "session: {instructions: b}\n")
    child = write(tmp_path, "c.yaml", "extends: [a.yaml, b.yaml]\nconsole: {quiet: false}\n")
    assert load_profile(child).session == {"instructions": "b", "temperature": 0.7}


def test_extends_is_relative_to_the_profile_folder_not_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path, "profiles/base.yaml", "console: {quiet: true}\n")
    write(tmp_path, "profiles/child.yaml", "extends: base.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_profile("profiles/child.yaml").section("console") == {"quiet": True}


def test_a_changed_backend_drops_the_inherited_options_it_does_not_know(tmp_path):
    write(tmp_path, "base.yaml", "audio:\n  input: {backend: pyaudio, device: 3, latency: low}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\naudio:\n  input: {backend: wav, file: in.wav}\n")
    assert load_profile(child).audio == {"input": {"backend": "wav", "file": "in.wav"}}
    sibling = write(tmp_path, "sd.yaml", "extends: base.yaml\naudio:\n  input: {backend: sounddevice}\n")
    assert load_profile(sibling).audio == {"input": {"backend": "sounddevice", "device": 3, "latency": "low"}}


def test_extends_missing_parent_is_reported_at_the_extends_line(tmp_path):
    child = write(tmp_path, "child.yaml", "console: {quiet: true}\nextends: nowhere.yaml\n")
    expected = str(tmp_path / "nowhere.yaml")
    assert only_problem(child) == (
        f"{child}:2:10: extends: no such profile file {expected!r} (paths are relative to the folder of {child})"
    )


def test_extends_cycle_names_the_chain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: c.yaml\n")
    write(tmp_path, "c.yaml", "extends: a.yaml\n")
    assert only_problem("a.yaml") == "c.yaml:1:10: extends: extends cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml"


def test_extending_itself_is_a_cycle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "self.yaml", "extends: ./self.yaml\n")
    assert only_problem("self.yaml") == "self.yaml:1:10: extends: extends cycle: self.yaml -> self.yaml"


def test_problems_in_a_parent_point_at_the_parent_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "profiles/base.yaml", "session:\n  temperature: warm\n")
    write(tmp_path, "profiles/child.yaml", "extends: base.yaml\n")
    assert only_problem("profiles/child.yaml") == (
        "profiles/base.yaml:2:16: session.temperature: expected a number from 0 to 2, got 'warm'"
    )


# -- ${VAR} ----------------------------------------------------------------------------------------


def test_variable_is_substituted(tmp_path):
    path = write(tmp_path, "p.yaml", "connection:\n  endpoint: ${ENDPOINT}\n  model: gpt-${MODEL:-realtime}\n")
    profile = load_profile(path, environ={"ENDPOINT": "https://r.services.ai.azure.com/"})
    assert profile.connection == {"endpoint": "https://r.services.ai.azure.com/", "model": "gpt-realtime"}


def test_undefined_variable_names_the_variable_and_location(tmp_path):
    path = write(tmp_path, "p.yaml", "connection:\n  endpoint: ${AZURE_VOICELIVE_ENDPOINT}\n")
    assert only_problem(path) == (
        f"{path}:2:13: connection.endpoint: environment variable AZURE_VOICELIVE_ENDPOINT is not set "
        "(export it, or write ${AZURE_VOICELIVE_ENDPOINT:-default})"
    )


def test_default_is_used_when_unset_or_empty(tmp_path):
    path = write(tmp_path, "p.yaml", "logging: {run_name: '${RUN:-nightly}', dir: '${DIR:-logs}/x'}\n")
    assert load_profile(path, environ={"DIR": ""}).logging == {"run_name": "nightly", "dir": "logs/x"}
    assert load_profile(path, environ={"RUN": "r1"}).logging["run_name"] == "r1"


def test_an_empty_default_stays_an_empty_string(tmp_path):
    path = write(tmp_path, "p.yaml", "connection:\n  endpoint: ${AZURE_VOICELIVE_ENDPOINT:-}\n")
    assert load_profile(path, environ={}).connection == {"endpoint": ""}


def test_unquoted_whole_reference_is_read_again_as_yaml(tmp_path):
    path = write(tmp_path, "p.yaml", """
        metrics:
          prometheus_port: ${PORT:-8765}
          otel: ${OTEL:-false}
        runtime:
          duration_s: ${SECONDS}
        """)
    profile = load_profile(path, environ={"SECONDS": "2.5"})
    assert profile.section("metrics") == {"prometheus_port": 8765, "otel": False}
    assert profile.runtime == {"duration_s": 2.5}


def test_quoted_or_partial_reference_stays_a_string(tmp_path):
    path = write(tmp_path, "p.yaml", "plugins: [x.plug]\nplug:\n  a: '${N:-1}'\n  b: ${N:-1}0\n  c: ${N:-1}\n")
    assert load_profile(path).section("plug") == {"a": "1", "b": "10", "c": 1}


def test_a_substituted_value_is_never_parsed_as_structure(tmp_path):
    path = write(tmp_path, "p.yaml", "session:\n  instructions: ${TEXT}\n")
    profile = load_profile(path, environ={"TEXT": "a: b, [c]"})
    assert profile.session == {"instructions": "a: b, [c]"}


def test_double_dollar_escapes_a_literal_reference(tmp_path):
    path = write(tmp_path, "p.yaml", "session: {instructions: 'say $${HOME} and ${WHO}'}\n")
    assert load_profile(path, environ={"WHO": "me"}).session == {"instructions": "say ${HOME} and me"}


def test_an_unresolved_reference_is_reported_once(tmp_path):
    path = write(tmp_path, "p.yaml", "metrics:\n  prometheus_port: ${PORT}\n")
    assert only_problem(path) == (
        f"{path}:2:20: metrics.prometheus_port: environment variable PORT is not set (export it, or write ${{PORT:-default}})"
    )


def test_a_malformed_reference_is_reported(tmp_path):
    path = write(tmp_path, "p.yaml", "session: {instructions: 'a ${1X} b'}\n")
    assert "bad variable reference '${1X}'" in only_problem(path)


def test_a_value_the_child_replaces_is_never_interpolated(tmp_path):
    write(tmp_path, "base.yaml", "connection:\n  endpoint: ${AZURE_VOICELIVE_ENDPOINT}\n  model: gpt-realtime\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nconnection:\n  endpoint: emulator\n")
    assert load_profile(child, environ={}).connection == {"endpoint": "emulator", "model": "gpt-realtime"}


def test_extends_itself_may_use_a_variable(tmp_path):
    write(tmp_path, "base.yaml", "console: {quiet: true}\n")
    child = write(tmp_path, "child.yaml", "extends: ${BASE:-base}.yaml\n")
    assert load_profile(child, environ={}).section("console") == {"quiet": True}


def test_set_values_are_taken_literally(tmp_path):
    path = write(tmp_path, "p.yaml", "session: {instructions: hi}\n")
    profile = load_profile(path, ["session.instructions=costs ${PRICE}"], environ={"PRICE": "5"})
    assert profile.session == {"instructions": "costs ${PRICE}"}


def test_os_environ_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEPIPE_TEST_MODEL", "gpt-4.1")
    path = write(tmp_path, "p.yaml", "connection: {model: '${VOICEPIPE_TEST_MODEL}'}\n")
    assert load_profile(path).connection == {"model": "gpt-4.1"}


# -- --set -----------------------------------------------------------------------------------------

AVA_LIKE = """
    connection: {endpoint: emulator, model: gpt-realtime}
    session:
      voice: {name: en-US-Ava:DragonHDLatestNeural, type: azure-standard, temperature: 0.8}
      turn_detection: {type: azure_semantic_vad, threshold: 0.3, remove_filler_words: false}
    audio:
      input: {backend: pyaudio, device: default}
    """


def test_set_overrides_values_and_parses_them_as_yaml(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    profile = load_profile(path, [
        "session.voice.name=en-US-Emma:DragonHDLatestNeural",
        "session.turn_detection.threshold=0.5",
        "session.modalities=[text]",
        "console.quiet=true",
    ])
    assert profile.session["voice"]["name"] == "en-US-Emma:DragonHDLatestNeural"
    assert profile.session["turn_detection"]["threshold"] == 0.5
    assert profile.session["modalities"] == ["text"]
    assert profile.section("console") == {"quiet": True}
    assert profile.location("console", "quiet") == "--set console.quiet"
    assert profile.location("session", "voice", "type") == f"{path}:3:49"
    assert profile.location("session", "voice", "nothing", "here") == f"{path}:3:3"


def test_set_can_create_a_key_the_schema_knows(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    profile = load_profile(path, ["connection.emulator.scenario=/tmp/s.yaml", "session.turn_detection.auto_truncate=true"])
    assert profile.connection["emulator"] == {"scenario": "/tmp/s.yaml"}
    assert profile.session["turn_detection"]["auto_truncate"] is True


def test_set_on_a_plugin_section(tmp_path):
    path = write(tmp_path, "p.yaml", "plugins: [plugins/keyword_alert.py]\nkeyword_alert: {keywords: [lake]}\n")
    profile = load_profile(path, ["keyword_alert.keywords=[sea, river]"])
    assert profile.section("keyword_alert") == {"keywords": ["sea", "river"]}


def test_set_changing_the_backend_drops_options_it_does_not_know(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    assert load_profile(path, ["audio.input.backend=null"]).audio == {"input": {"backend": None}}


def test_set_unknown_key_has_did_you_mean(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    assert only_problem(path, ["session.voice.nmae=x"]) == "--set session.voice.nmae: unknown key (did you mean 'name'?)"


def test_set_unknown_key_in_the_middle_of_the_path(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    assert only_problem(path, ["sesion.voice.name=x"]) == "--set sesion.voice.name: sesion: unknown key (did you mean 'session'?)"


def test_set_uses_the_current_type_to_decide_which_keys_exist(tmp_path):
    path = write(tmp_path, "p.yaml", "session:\n  turn_detection: {type: server_vad}\n")
    assert only_problem(path, ["session.turn_detection.remove_filler_words=true"]) == (
        "--set session.turn_detection.remove_filler_words: unknown key"
    )


def test_set_bad_value_is_reported_at_the_override(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    assert only_problem(path, ["session.voice.temperature=hot"]) == (
        "--set session.voice.temperature: expected a number from 0 to 1, got 'hot'"
    )


def test_set_value_that_is_not_yaml(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    problem = only_problem(path, ["session.modalities=[text, audio"])
    assert problem.startswith("--set session.modalities: cannot read the value '[text, audio' (")


def test_set_without_equals_sign(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    assert only_problem(path, ["session.voice.name"]) == (
        "--set session.voice.name: expected KEY=VALUE, e.g. session.voice.name=en-US-Emma:DragonHDLatestNeural"
    )


def test_set_refuses_a_key_and_never_repeats_it(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    problem = only_problem(path, ["connection.api_key=sk-live-0123456789"])
    assert problem.startswith("--set connection.api_key: a key must not be written")
    assert "AZURE_VOICELIVE_API_KEY" in problem and "0123456789" not in problem


# -- cheap to load ---------------------------------------------------------------------------------


def test_loading_a_profile_does_not_import_the_sdk(tmp_path):
    path = write(tmp_path, "p.yaml", AVA_LIKE)
    code = (
        "import sys\nfrom voicepipe.profile import load_profile\n"
        f"load_profile({str(path)!r})\n"
        "print(sorted(m for m in ('azure', 'aiohttp', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_an_empty_path_and_a_fifo_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="^no profile given: name a profile file"):
        load_profile("")
    with pytest.raises(UsageError, match=r"pipe\.yaml: not a regular file"):
        load_profile(fifo)
    child = tmp_path / "child.yaml"
    child.write_text("extends: pipe.yaml\n")
    with pytest.raises(ProfileError, match=r"'.*pipe\.yaml' is not a regular file"):
        load_profile(child)


def _count_reads(monkeypatch) -> dict:
    reads: dict = {}
    original = Path.read_text

    def counting(self, *args, **kwargs):
        reads[self.name] = reads.get(self.name, 0) + 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    return reads


@pytest.mark.parametrize("levels, fan_out", [(6, 4), (9, 2), (4, 10)])
def test_an_extends_fan_out_reads_each_file_once(tmp_path, monkeypatch, levels, fan_out):
    for level in range(levels - 1):
        parents = ", ".join([f"p{level + 1}.yaml"] * fan_out)
        write(tmp_path, f"p{level}.yaml", f"extends: [{parents}]\nsession: {{instructions: level {level}}}\n")
    write(tmp_path, f"p{levels - 1}.yaml", "connection: {endpoint: emulator, model: gpt-realtime}\n")
    reads = _count_reads(monkeypatch)
    profile = load_profile(tmp_path / "p0.yaml")
    assert profile.session["instructions"] == "level 0" and profile.connection["model"] == "gpt-realtime"
    assert {name: count for name, count in reads.items() if name.startswith("p")} == {
        f"p{level}.yaml": 1 for level in range(levels)}


@pytest.mark.parametrize("shape", ["many files", "one file many times"])
def test_an_extends_tree_naming_too_many_files_is_refused(tmp_path, shape):
    from voicepipe.profile.merge import MAX_EXTENDS

    count = MAX_EXTENDS + 1
    if shape == "many files":
        for n in range(count):
            write(tmp_path, f"f{n}.yaml", f"session: {{instructions: file {n}}}\n")
        parents = ", ".join(f"f{n}.yaml" for n in range(count))
    else:
        write(tmp_path, "f.yaml", "session: {instructions: again}\n")
        parents = ", ".join(["f.yaml"] * count)
    main = write(tmp_path, "main.yaml", f"extends: [{parents}]\nconnection: {{endpoint: emulator, model: m}}\n")
    assert only_problem(main).endswith(
        f"extends[{MAX_EXTENDS}]: the extends tree names more than {MAX_EXTENDS} profile files in all "
        "(flatten it: extend fewer files, fewer times)")
