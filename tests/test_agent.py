"""Foundry agent sessions: the agent profile validates, connects with Entra and writes its transcript."""

from __future__ import annotations

import json
import time
from pathlib import Path

from voicepipe.cli import main as cli_main
from voicepipe.testing import run_profile

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"


def client_events(run_dir: Path, kind: str) -> list[dict]:
    records = (json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines())
    return [r["event"] for r in records if r.get("direction") == "client" and r["event"]["type"] == kind]


def test_the_agent_profiles_validate(capsys):
    assert cli_main(["validate", str(PROFILES / "agent.yaml"), str(PROFILES / "agent-demo.yaml")]) == 0
    assert capsys.readouterr().err == ""


def test_an_agent_session_against_the_emulator(tmp_path, capsys):
    result = run_profile(PROFILES / "agent-demo.yaml", run_dir=tmp_path / "run", emulator=False,
                         overrides=["connection.emulator.speed=0", "audio.input.realtime=false",
                                    "audio.output.realtime=false"])
    assert result.exit_code == 0
    (update,) = client_events(result.run_dir, "session.update")
    assert "instructions" not in update["session"] and "model" not in update["session"]  # the agent owns them
    assert update["session"]["voice"]["name"] == "en-US-Ava:DragonHDLatestNeural"
    (created,) = [e for e in result.server_events if e["type"] == "session.created"]
    served = created["session"]["agent"]
    assert served["name"] == "my-agent" and served["agent_id"].startswith("asst_")

    header, _, turns = result.read("transcript.txt").partition("\n\n")
    assert "# agent: my-agent (project my-project)" in header.splitlines()
    assert f"# agent id: {served['agent_id']}" in header.splitlines()
    assert f"# thread: {served['thread_id']}" in header.splitlines()
    assert any(line.startswith("# instructions: You are my-agent") for line in header.splitlines())
    lines = turns.splitlines()
    assert lines[0].endswith("User: What is the largest lake in the world?")
    assert "] Agent: The Caspian Sea is the largest lake" in lines[1]
    assert "Agent: The Caspian Sea" in capsys.readouterr().out
    roles = [json.loads(line)["role"] for line in result.read("transcript.jsonl").splitlines()]
    assert roles == ["user", "assistant"]  # programs read the same roles as for a model session


def test_an_agent_connects_with_its_query_and_an_entra_token(tmp_path, monkeypatch, voicelive_emulator):
    """The real-Azure path: DefaultAzureCredential's token and the agent's name, project, version
    and conversation travel as the SDK sends them."""
    import azure.identity.aio
    from azure.core.credentials import AccessToken

    scopes_asked: list[tuple] = []

    class Credential:
        def __init__(self, *args, **kwargs):
            pass

        async def get_token(self, *scopes, **kwargs):
            scopes_asked.append(scopes)
            return AccessToken("entra-token-for-the-agent-1234", int(time.time()) + 600)

        async def close(self):
            pass

    monkeypatch.setattr(azure.identity.aio, "DefaultAzureCredential", Credential)
    monkeypatch.delenv("AZURE_VOICELIVE_API_KEY", raising=False)
    result = run_profile(
        PROFILES / "agent-demo.yaml", run_dir=tmp_path / "run", emulator=False,
        overrides=[f"connection.endpoint={voicelive_emulator.url}", "connection.agent.version=3",
                   "connection.agent.conversation_id=conv-42", "audio.input.realtime=false",
                   "audio.output.realtime=false"],
    )
    assert result.exit_code == 0
    (record,) = voicelive_emulator.connections
    assert {key: record.query.get(key) for key in ("agent-name", "agent-project-name", "agent-version", "conversation-id")} == {
        "agent-name": "my-agent", "agent-project-name": "my-project", "agent-version": "3", "conversation-id": "conv-42",
    }
    assert "model" not in record.query
    assert scopes_asked == [("https://ai.azure.com/.default",)]
    assert record.session["agent"]["thread_id"] == "conv-42"
    assert "# thread: conv-42" in result.read("transcript.txt")


def test_a_profile_giving_an_agent_a_model_or_instructions_is_refused(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(f"extends: {PROFILES / 'agent.yaml'}\nconnection:\n  model: gpt-realtime\n"
                    "session:\n  instructions: Be brief.\n")
    assert cli_main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:3:10: connection.model: set connection.model or connection.agent, not both (the agent has its own model)",
        f"{path}:5:17: session.instructions: a Foundry agent owns its instructions: remove this key, or connect to a "
        "model instead of an agent",
    ]
