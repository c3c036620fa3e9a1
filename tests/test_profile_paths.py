"""Relative paths in a profile are relative to the file that wrote them, so `extends:` works from anywhere."""

import textwrap
from pathlib import Path

from voicepipe.builtin.audio import AudioSettings, _file_folders
from voicepipe.plugins import make_plugin_manager
from voicepipe.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "demo.yaml"


def test_a_profile_elsewhere_extending_the_demo_keeps_its_paths(tmp_path):
    mine = tmp_path / "elsewhere" / "mine.yaml"
    mine.parent.mkdir()
    (tmp_path / "elsewhere" / "other.wav").write_bytes(b"")
    mine.write_text(f"extends: {DEMO}\naudio:\n  output: {{backend: wav, file: other.wav}}\n")
    profile = load_profile(mine)

    assert profile.dir_of("plugins", 0) == DEMO.parent
    assert profile.dir_of("connection", "emulator", "scenario") == DEMO.parent
    settings = AudioSettings(profile.section("audio"), _file_folders(profile))
    assert settings.input_options["file"] == DEMO.parent / "audio" / "question.wav"
    assert settings.output_options["file"] == mine.parent / "other.wav"  # set here, relative to here

    pm = make_plugin_manager(profile, autoload=False)
    assert pm.get_plugin("keyword_alert") is not None


def test_a_set_override_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    profile_path = tmp_path / "p.yaml"
    profile_path.write_text(textwrap.dedent("""\
        connection: {endpoint: emulator, model: gpt-realtime}
        audio: {input: {backend: wav, file: a.wav}}
        """))
    monkeypatch.chdir(ROOT)
    profile = load_profile(profile_path, ["audio.input.file=profiles/audio/question.wav"])
    assert profile.dir_of("audio", "input", "file") == ROOT
    assert load_profile(profile_path).dir_of("audio", "input", "file") == tmp_path
    assert profile.dir_of("logging", "dir") == profile.base_dir  # not set: the profile's folder
