"""``voicepipe init``: a starter project (a profile, the example plugin with its test, the
profile's JSON Schema for editors) written into a folder."""

from __future__ import annotations

from pathlib import Path

from voicepipe.errors import UsageError
from voicepipe.shipped import root

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
