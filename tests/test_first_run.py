"""What a new user meets first: shipped profiles by name, `voicepipe init`, `.env`, local emulators."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from shipped_files import shipped_profiles

from voicepipe.connection import is_loopback, resolve_target
from voicepipe.errors import UsageError
from voicepipe.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent


def voicepipe(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_VOICELIVE", "VOICEPIPE"))}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "voicepipe", *args], cwd=cwd, env=environ, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )


def test_a_profile_elsewhere_extends_a_shipped_one(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: builtin:demo.yaml\nsession: {instructions: Be brief.}\n")
    profile = load_profile(mine)
    assert profile.session["instructions"] == "Be brief."
    assert profile.session["voice"]["name"] == "en-US-Ava:DragonHDLatestNeural"  # from ava.yaml, two levels up
    # the shipped profile's relative paths still point at the shipped files
    assert (profile.dir_of("audio", "input", "file") / profile.audio["input"]["file"]).is_file()


@pytest.mark.parametrize("spec", ["builtin:nope.yaml", "builtin:", "builtin:../pyproject.toml", "builtin:scenarios/demo.yaml"])
def test_an_unknown_shipped_profile_is_one_line_listing_the_shipped_ones(tmp_path, spec):
    mine = tmp_path / "mine.yaml"
    mine.write_text(f'extends: "{spec}"\n')
    result = voicepipe("validate", str(mine), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{mine}:1:10: extends:") and "builtin:demo.yaml" not in line and "demo.yaml" in line


def test_shipped_profiles_run_by_name_from_any_folder(tmp_path):
    listed = voicepipe("profiles", cwd=tmp_path)
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert "builtin:demo.yaml" in names and "builtin:ava.yaml" in names
    assert all((ROOT / "profiles" / name.removeprefix("builtin:")).is_file() for name in names)
    shipped = [f"builtin:{path.name}" for path in shipped_profiles()]  # not a profiles/mine.yaml of someone's
    assert set(shipped) <= set(names)
    valid = voicepipe("validate", *shipped, cwd=tmp_path, env={"VOICEPIPE_AGENT": "a", "VOICEPIPE_PROJECT": "p"})
    assert valid.returncode == 0, valid.stderr


def test_init_writes_a_project_and_never_overwrites_without_force(tmp_path):
    first = voicepipe("init", "proj", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    project = tmp_path / "proj"
    assert (project / "profiles" / "my-agent.yaml").is_file()
    assert "voicepipe run profiles/my-agent.yaml" in first.stdout
    (project / "plugins" / "keyword_alert.py").write_text("# mine\n")
    again = voicepipe("init", "proj", cwd=tmp_path)
    assert again.returncode == 2 and "already there" in again.stderr
    assert (project / "plugins" / "keyword_alert.py").read_text() == "# mine\n"
    forced = voicepipe("init", "proj", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and "hookimpl" in (project / "plugins" / "keyword_alert.py").read_text()
    valid = voicepipe("validate", "profiles/my-agent.yaml", cwd=project)
    assert valid.returncode == 0, valid.stderr


def test_dotenv_fills_what_the_environment_lacks_and_names_but_never_shows_values(tmp_path):
    secret = "dotenv-secret-key-0123456789abcdef"
    (tmp_path / ".env").write_text(
        f"AZURE_VOICELIVE_API_KEY={secret}\nAZURE_VOICELIVE_ENDPOINT=https://from-dotenv.example\nVOICEPIPE_X=1\n"
    )
    (tmp_path / "p.yaml").write_text("extends: builtin:ava.yaml\n")
    shown = voicepipe("show", "p.yaml", cwd=tmp_path, env={"VOICEPIPE_X": "from-env"})
    assert shown.returncode == 0, shown.stderr
    assert "https://from-dotenv.example" in shown.stdout
    said = [line for line in shown.stderr.splitlines() if ".env" in line]
    assert said == ["voicepipe: from .env: AZURE_VOICELIVE_API_KEY, AZURE_VOICELIVE_ENDPOINT"]  # VOICEPIPE_X was set
    assert secret not in shown.stdout + shown.stderr


@pytest.mark.parametrize(
    "endpoint, local",
    [("http://127.0.0.1:8765", True), ("ws://localhost:9000/", True), ("http://[::1]:80", True),
     ("http://127.9.9.9", True), ("https://x.services.ai.azure.com/", False), ("http://10.0.0.1:8765", False),
     ("http://localhost.example.com", False)],
)
def test_a_local_emulator_url_needs_no_credentials(tmp_path, endpoint, local):
    profile_file = tmp_path / "p.yaml"
    profile_file.write_text(f"extends: builtin:ava.yaml\nconnection: {{endpoint: '{endpoint}'}}\n")
    assert is_loopback(endpoint) is local
    target = resolve_target(load_profile(profile_file, environ={}), environ={})
    assert target.auth == ("api-key" if local else "entra")


def test_api_key_auth_without_a_key_is_still_an_error_for_a_remote_endpoint(tmp_path):
    profile_file = tmp_path / "p.yaml"
    profile_file.write_text("extends: builtin:ava.yaml\nconnection: {endpoint: 'https://x.example/', auth: api-key}\n")
    with pytest.raises(UsageError, match="AZURE_VOICELIVE_API_KEY is not set"):
        resolve_target(load_profile(profile_file, environ={}), environ={})


def test_the_test_fixture_runs_unpaced_unless_asked_for_real_time():
    from voicepipe.testing import _fast_pacing

    demo = load_profile(ROOT / "profiles" / "demo.yaml")
    assert _fast_pacing(demo) == [
        "connection.emulator.speed=0", "audio.input.realtime=false", "audio.output.realtime=false"
    ]
    microphone = load_profile(ROOT / "profiles" / "ava.yaml", ["connection.endpoint=emulator"])
    assert _fast_pacing(microphone) == ["connection.emulator.speed=0"]  # devices keep their own clock
    bare = load_profile(ROOT / "profiles" / "ava.yaml", ["connection.endpoint=emulator", "audio.input=null",
                                                        "audio.output=null"])
    assert "audio.input.realtime=false" not in _fast_pacing(bare)  # null input never ends: stays paced
