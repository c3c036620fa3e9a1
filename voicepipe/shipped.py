"""The profiles, plugins and audio that ship with voicepipe, and ``voicepipe init``.

A profile names a shipped one as ``builtin:<file>`` (``extends: builtin:ava.yaml``, or
``voicepipe run builtin:demo.yaml``), so a project outside this repository starts from them. In a
wheel they are package data under ``voicepipe/data/``; in a checkout they are the repository's own
``profiles/`` and ``plugins/`` folders (the wheel is built from those).
"""

from __future__ import annotations

from pathlib import Path

from voicepipe.errors import UsageError

PREFIX = "builtin:"

STARTER_PROFILE = """\
# yaml-language-server: $schema=../profile.schema.json
# Your agent. Offline it runs against the local emulator (no credentials, no sound card):
#
#   voicepipe run profiles/my-agent.yaml
#
# Against Azure: set AZURE_VOICELIVE_ENDPOINT (and AZURE_VOICELIVE_API_KEY, or `az login`) in .env,
# then use `extends: builtin:ava.yaml` and a microphone (`audio.input.backend: pyaudio`).
extends: builtin:demo.yaml
session:
  instructions: You are a friendly assistant for a small museum. Keep answers short.
plugins: [../plugins/keyword_alert.py]
keyword_alert:
  keywords: [refund, lake]
"""

STARTER_TEST = '''\
"""The starter plugin's test: runs the profile against the local emulator (fast pacing)."""

import json
from pathlib import Path

PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "my-agent.yaml"


def test_alert_when_the_user_says_a_keyword(voicepipe_run):
    result = voicepipe_run(PROFILE, overrides=["keyword_alert.keywords=[lake]"])
    assert result.exit_code == 0
    alerts = [json.loads(line) for line in result.read("alerts.jsonl").splitlines()]
    assert [alert["keywords"] for alert in alerts] == [["lake"]]


def test_no_alert_without_a_keyword(voicepipe_run):
    result = voicepipe_run(PROFILE, overrides=["keyword_alert.keywords=[volcano]"])
    assert result.exit_code == 0
    assert not (result.run_dir / "alerts.jsonl").exists()
'''

ENV_EXAMPLE = """\
# Copy to .env (voicepipe reads .env from the folder you run it in; never commit .env).
AZURE_VOICELIVE_ENDPOINT=https://<your-resource>.services.ai.azure.com/
# Key authentication; leave unset to sign in with Entra ID (`az login`).
AZURE_VOICELIVE_API_KEY=
"""

GITIGNORE = ".env\nlogs/\n__pycache__/\n"


def root() -> Path:
    """The folder that holds the shipped ``profiles/`` and ``plugins/``."""
    packaged = Path(__file__).with_name("data")
    if (packaged / "profiles").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent  # a checkout


def is_builtin(spec: str) -> bool:
    return spec.startswith(PREFIX)


def profile_path(spec: str) -> Path:
    """The file a ``builtin:NAME`` names; a :class:`UsageError` listing the shipped ones if none."""
    name = spec[len(PREFIX):].strip()
    if not name.endswith((".yaml", ".yml")):
        name += ".yaml"
    path = root() / "profiles" / name
    if "/" in name or "\\" in name or not path.is_file():
        raise UsageError(f"{spec}: no such shipped profile (shipped: {', '.join(list_profiles())})")
    return path


def list_profiles() -> list[str]:
    """The shipped profiles' file names."""
    return sorted(p.name for p in (root() / "profiles").glob("*.yaml"))


def describe(name: str) -> str:
    """The first clause of a shipped profile's opening comment: what it is for."""
    words = []
    for line in (root() / "profiles" / name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or line.strip() == "#":
            break
        if "yaml-language-server" not in line:
            words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    ends = [i for i in (text.find(": "), text.find(". ")) if i >= 0]
    return text[: min(ends)] if ends else text


def init_project(folder: Path, *, force: bool = False) -> list[Path]:
    """Write a starter project into ``folder``: a profile, the example plugin with its test,
    ``.env.example``, the profile's JSON Schema for editors. Refuses to overwrite a file unless
    ``force``; returns what it wrote."""
    from voicepipe.profile.editorschema import schema_text

    files = {
        Path("profiles/my-agent.yaml"): STARTER_PROFILE,
        Path("plugins/keyword_alert.py"): (root() / "plugins" / "keyword_alert.py").read_text(encoding="utf-8"),
        Path("tests/test_keyword_alert.py"): STARTER_TEST,
        Path(".env.example"): ENV_EXAMPLE,
        Path(".gitignore"): GITIGNORE,
        Path("profile.schema.json"): schema_text(),  # named on the starter profile's first line
    }
    existing = [str(folder / name) for name in files if (folder / name).exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(existing)}: already there; remove it, or run `voicepipe init --force` to overwrite")
    written = []
    for name, text in files.items():
        target = folder / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written
